//! The sink and its PutEvents requests.

use std::time::Duration;
use tracing::{debug, warn};

use super::metrics::ConnectorMetrics;
use super::{count_error, InternalEvent};

/// A sink read records from Kafka.
pub struct SinkRecordsRead<'a> {
    pub(crate) metrics: &'a ConnectorMetrics,
    pub(crate) count: u64,
}

impl InternalEvent for SinkRecordsRead<'_> {
    fn emit(self) {
        self.metrics.records_read.inc_by(self.count);
    }
}

/// A sink's records reached EventBridge.
pub struct SinkRecordsSent<'a> {
    pub(crate) metrics: &'a ConnectorMetrics,
    pub(crate) count: u64,
}

impl InternalEvent for SinkRecordsSent<'_> {
    fn emit(self) {
        self.metrics.records_sent.inc_by(self.count);
    }
}

pub struct PutEventsRetrying<'a> {
    pub(crate) metrics: &'a ConnectorMetrics,
    pub(crate) entries: usize,
    pub(crate) attempt: u32,
    pub(crate) delay: Duration,
    pub(crate) reason: &'a str,
    /// Throttling or an outage, retried without limit.
    pub(crate) transient: bool,
}

impl InternalEvent for PutEventsRetrying<'_> {
    fn emit(self) {
        self.metrics.retried_entries.inc_by(self.entries as u64);
        let connector = self.metrics.connector();
        // Throttling is routine at the quota and counted in `ebconnect_putevents_retried_entries_total`; a line for
        // each retry would flood the log.
        if self.transient {
            debug!(
                connector,
                entries = self.entries,
                attempt = self.attempt,
                delay = ?self.delay,
                reason = self.reason,
                "PutEvents entries throttled or failed in passing, will be sent again"
            );
        } else {
            count_error(connector, "putevents", "unclear_answer");
            warn!(
                connector,
                entries = self.entries,
                attempt = self.attempt,
                delay = ?self.delay,
                reason = self.reason,
                "PutEvents answer unclear, entries will be sent again"
            );
        }
    }
}

/// One PutEvents request was answered (whatever became of its entries).
pub struct PutEventsCompleted<'a> {
    pub(crate) metrics: &'a ConnectorMetrics,
    pub(crate) entries: usize,
    pub(crate) duration: Duration,
}

impl InternalEvent for PutEventsCompleted<'_> {
    fn emit(self) {
        self.metrics.putevents_duration.observe(self.duration.as_secs_f64());
        self.metrics.putevents_batch_entries.observe(self.entries as f64);
    }
}

/// A PutEvents request waited for the rate limiter.
pub struct RateLimitWaited<'a> {
    pub(crate) metrics: &'a ConnectorMetrics,
    pub(crate) waited: Duration,
}

impl InternalEvent for RateLimitWaited<'_> {
    fn emit(self) {
        self.metrics.rate_limit_wait.inc_by(self.waited.as_secs_f64());
    }
}

/// EventBridge refused a request as too large, and its batch is sent again in halves.
pub struct PutEventsSplit<'a> {
    pub metrics: &'a ConnectorMetrics,
    pub reason: &'a str,
}

impl InternalEvent for PutEventsSplit<'_> {
    fn emit(self) {
        count_error(self.metrics.connector(), "putevents", "request_too_large");
        warn!(
            connector = self.metrics.connector(),
            reason = self.reason,
            "PutEvents request too large; sending its batch again in halves"
        );
    }
}

/// PutEvents requests keep failing as a whole for a reason other than throttling (no connection, a refused
/// certificate, a proxy that is not there, 5xx): retried without limit, so without this an endpoint that cannot be
/// reached would show only as retried entries.
pub struct PutEventsFailing<'a> {
    pub metrics: &'a ConnectorMetrics,
    /// Requests of one batch in a row.
    pub failed_requests: u32,
    pub reason: &'a str,
}

impl InternalEvent for PutEventsFailing<'_> {
    fn emit(self) {
        count_error(self.metrics.connector(), "putevents", "requests_failing");
        warn!(
            connector = self.metrics.connector(),
            failed_requests = self.failed_requests,
            reason = self.reason,
            "PutEvents requests keep failing; their entries wait and are sent again"
        );
    }
}

/// Adaptive concurrency closed a window: the limit it set, and what the window saw.
pub struct ConcurrencyAdjusted<'a> {
    pub metrics: &'a ConnectorMetrics,
    pub limit: usize,
    pub rate_limit: Option<f64>,
    pub rate: f64,
    pub throttle_ratio: f64,
}

impl InternalEvent for ConcurrencyAdjusted<'_> {
    fn emit(self) {
        self.metrics
            .concurrency_limit
            .set(i64::try_from(self.limit).unwrap_or(i64::MAX));
        self.metrics.rate_limit.set(self.rate_limit.unwrap_or(0.0));
        self.metrics.send_rate.set(self.rate);
        self.metrics.throttle_ratio.set(self.throttle_ratio);
    }
}

/// Records read before their partition was revoked, not sent: the partition's next owner reads them again.
pub struct RevokedRecordsDropped<'a> {
    pub metrics: &'a ConnectorMetrics,
    pub count: usize,
}

impl InternalEvent for RevokedRecordsDropped<'_> {
    fn emit(self) {
        debug!(
            connector = self.metrics.connector(),
            records = self.count,
            "records of a revoked partition left to its next owner"
        );
    }
}
