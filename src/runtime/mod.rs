//! The worker runtime: supervision of connectors, their status, and shutdown.

mod cluster;
pub mod controller;
mod definitions;
pub mod readiness;
pub mod rest;
pub mod status;
pub mod supervisor;
mod systemd;
pub mod worker;

pub use status::{ConnectorState, ConnectorStatus, StatusRegistry};
pub use worker::{shutdown_on_signal, Worker, WorkerError};
