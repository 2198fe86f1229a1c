//! Which failures are worth another try, and how long to wait before it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Retries of throttled and failed entries, with full jitter. Throttling, internal failures, 5xx, timeouts and lost
/// connections are retried for as long as the connector runs: requests that fail as a whole wait longer each time,
/// up to `max_backoff`; entries EventBridge answered as throttled go again within a second. Only answers that leave
/// an entry's fate unclear (a success that is not a PutEvents response, a missing result) count toward
/// `max_attempts` and `max_duration`; past them the connector fails, and the entries' records stay uncommitted and
/// are read again after the restart. Throttling is never a reason to dead-letter a record or fail the connector.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryPolicy {
    /// Sends of one entry whose answers stayed unclear, the first included. Default: 10.
    #[serde(default = "default_max_attempts")]
    pub(crate) max_attempts: u32,
    /// Time from an entry's first unclear answer after which it is not sent again. Default: 5m.
    #[serde(default = "default_max_duration", with = "humantime_serde")]
    pub(crate) max_duration: Duration,
    /// The first wait, and the unit of the ones after it. Default: 100ms.
    #[serde(default = "default_initial_backoff", with = "humantime_serde")]
    pub(crate) initial_backoff: Duration,
    /// The longest wait (the waits for throttled entries stop at 1s). Default: 10s.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub(crate) max_backoff: Duration,
}

fn default_max_attempts() -> u32 {
    10
}

fn default_max_duration() -> Duration {
    Duration::from_secs(300)
}

fn default_initial_backoff() -> Duration {
    Duration::from_millis(100)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(10)
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            max_duration: default_max_duration(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
        }
    }
}

/// Per-entry error codes that a later send can fix: EventBridge was throttling or had an internal problem.
/// Every other code (InvalidArgument, MalformedDetail, AccessDeniedException, ...) fails the same way again.
pub(crate) fn is_retryable_entry_error(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException" | "InternalFailure" | "InternalException" | "ServiceUnavailable"
    )
}

/// Request-level error codes that say the account's quota is spent: back off.
pub(crate) fn is_throttling_error(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "LimitExceededException"
    )
}

/// Request-level error codes worth another try (besides 5xx statuses, timeouts and connection failures): throttles,
/// and the service's own passing failures.
pub(crate) fn is_retryable_request_error(code: &str) -> bool {
    is_throttling_error(code)
        || matches!(
            code,
            "InternalException"
                | "InternalFailure"
                | "ServiceUnavailable"
                | "RequestTimeout"
                | "RequestTimeoutException"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_entry_errors() {
        assert!(is_retryable_entry_error("ThrottlingException"));
        assert!(is_retryable_entry_error("InternalFailure"));
        assert!(!is_retryable_entry_error("InvalidArgument"));
        assert!(!is_retryable_entry_error("MalformedDetail"));
    }
}
