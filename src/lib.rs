//! ebconnect: a Kafka Connect-style worker that moves events between Apache Kafka and Amazon EventBridge.

pub mod config;
pub mod connectors;
pub mod dead_letter;
pub mod eventbridge;
pub mod json_path;
pub mod kafka;
pub mod pattern;
pub mod rate_limit;
pub mod record;
pub mod runtime;
pub mod schema;
pub mod telemetry;
pub mod transform;
