//! Everything about talking to EventBridge: entries and their AWS-defined size, batching to PutEvents' limits,
//! the PutEvents call with its per-entry outcomes, and the retry policy.

pub mod adaptive;
pub mod batch;
pub mod delivery;
pub mod endpoint;
pub mod entry;
pub mod request;
pub mod retry;
pub mod service;
pub mod signing;

pub use batch::Batcher;
pub use entry::{Detail, Entry};
pub use service::{EntryOutcome, PutEventsService, RequestError};
