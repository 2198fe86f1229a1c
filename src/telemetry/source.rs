//! The source: SQS calls and messages, records written to Kafka.

use tracing::warn;

use super::metrics::ConnectorMetrics;
use super::{count_error, InternalEvent};

pub struct SqsCallFailed<'a> {
    pub(crate) connector: &'a str,
    pub(crate) call: &'a str,
    pub(crate) error: &'a str,
}

impl InternalEvent for SqsCallFailed<'_> {
    fn emit(self) {
        count_error(self.connector, "sqs", self.call);
        warn!(
            connector = self.connector,
            call = self.call,
            error = self.error,
            "SQS call failed"
        );
    }
}

pub struct SqsMessageLeft<'a> {
    pub(crate) connector: &'a str,
    pub(crate) message_id: &'a str,
    pub(crate) reason: &'a str,
}

impl InternalEvent for SqsMessageLeft<'_> {
    fn emit(self) {
        count_error(self.connector, "sqs", "message_left");
        warn!(
            connector = self.connector,
            message_id = self.message_id,
            reason = self.reason,
            "message left in the queue; it becomes visible again and is retried"
        );
    }
}

/// A source received events (SQS messages, or records posted to a receiver).
pub struct SourceRecordsPolled<'a> {
    pub(crate) metrics: &'a ConnectorMetrics,
    pub(crate) count: u64,
}

impl InternalEvent for SourceRecordsPolled<'_> {
    fn emit(self) {
        self.metrics.records_polled.inc_by(self.count);
    }
}

/// Kafka acknowledged a source's record.
pub struct SourceRecordWritten<'a> {
    pub(crate) metrics: &'a ConnectorMetrics,
}

impl InternalEvent for SourceRecordWritten<'_> {
    fn emit(self) {
        self.metrics.records_written.inc();
    }
}

/// SQS messages were received (positive) or settled or left (negative).
pub struct SqsMessagesInFlight<'a> {
    pub(crate) metrics: &'a ConnectorMetrics,
    pub(crate) change: i64,
}

impl InternalEvent for SqsMessagesInFlight<'_> {
    fn emit(self) {
        self.metrics.sqs_messages_in_flight.inc_by(self.change);
    }
}
