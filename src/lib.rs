//! ebconnect: a Kafka Connect-style worker that moves events between Apache Kafka and Amazon EventBridge.

pub mod config;
pub mod connectors;
pub mod dead_letter;
pub mod eventbridge;
pub mod json_path;
pub mod json_text;
pub mod kafka;
pub mod pattern;
pub mod rate_limit;
pub mod record;
pub mod runtime;
pub mod schema;
pub mod telemetry;
pub mod transform;

/// The error and its causes on one line, as the status API's `trace` shows it.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
