//! ebconnect: a Kafka Connect-style worker that moves events between Apache Kafka and Amazon EventBridge.
//!
//! # Layout
//!
//! Each layer uses only those below it (`tests/unit/layers.rs` checks): `runtime` (the worker, the controller, the REST
//! API) and `tools` (`preview` and `test`) -> `connectors` (each type as config, build and loop; what they share; reading connector files) ->
//! `eventbridge`, `kafka`, `schema`, `dead_letter` -> `aws` -> `config` -> `telemetry`, `transform` -> the leaves
//! (`record`, `json_path`, `json_text`, `rate_limit`, `pattern`, `redact`, `connector_state`, `basic_auth`,
//! `backoff`). The README's architecture section says what each holds.

pub mod aws;
pub mod backoff;
pub mod basic_auth;
pub mod config;
pub mod connector_state;
pub mod connectors;
pub mod dead_letter;
pub mod eventbridge;
pub mod json_path;
pub mod json_text;
pub mod kafka;
pub mod pattern;
pub mod rate_limit;
pub mod record;
pub mod redact;
pub mod runtime;
pub mod schema;
pub mod telemetry;
pub mod tools;
pub mod transform;

/// The error and its causes on one line, as the status API's `trace` shows it. Many errors already print their
/// cause in their own message (`#[error("…: {0}")]` beside `#[source]`); a cause whose text is already there is not
/// repeated.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the schema: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("decoding record 7")]
    struct Wraps(#[source] Repeats);

    #[test]
    fn a_cause_is_shown_once() {
        let error = Wraps(Repeats(std::io::Error::other("connection refused")));
        assert_eq!(
            error_chain(&error),
            "decoding record 7: reading the schema: connection refused"
        );
    }
}
