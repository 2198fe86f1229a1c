//! Every event worth reporting, as a type. Emitting one writes its log line (and, once metrics exist, updates
//! its metric) in one step, so that logs and metrics cannot drift apart.

use std::time::Duration;

use tracing::{error, info, warn};

pub trait InternalEvent {
    fn emit(self);
}

pub fn emit(event: impl InternalEvent) {
    event.emit();
}

pub struct ConnectorStarted<'a> {
    pub connector: &'a str,
    pub kind: &'a str,
    pub attempt: u32,
}

impl InternalEvent for ConnectorStarted<'_> {
    fn emit(self) {
        info!(
            connector = self.connector,
            kind = self.kind,
            attempt = self.attempt,
            "connector started"
        );
    }
}

pub struct ConnectorStopped<'a> {
    pub connector: &'a str,
}

impl InternalEvent for ConnectorStopped<'_> {
    fn emit(self) {
        info!(connector = self.connector, "connector stopped");
    }
}

pub struct ConnectorFailed<'a> {
    pub connector: &'a str,
    pub error: &'a str,
    pub consecutive_failures: u32,
}

impl InternalEvent for ConnectorFailed<'_> {
    fn emit(self) {
        error!(
            connector = self.connector,
            error = self.error,
            consecutive_failures = self.consecutive_failures,
            "connector failed"
        );
    }
}

pub struct ConnectorRestartScheduled<'a> {
    pub connector: &'a str,
    pub delay: Duration,
}

impl InternalEvent for ConnectorRestartScheduled<'_> {
    fn emit(self) {
        warn!(connector = self.connector, delay = ?self.delay, "connector will be restarted");
    }
}

pub struct ConnectorGaveUp<'a> {
    pub connector: &'a str,
    pub max_restarts: u32,
}

impl InternalEvent for ConnectorGaveUp<'_> {
    fn emit(self) {
        error!(
            connector = self.connector,
            max_restarts = self.max_restarts,
            "connector failed too often in a row; it stays FAILED until restarted"
        );
    }
}

pub struct ReceiverListening<'a> {
    pub connector: &'a str,
    pub address: std::net::SocketAddr,
}

impl InternalEvent for ReceiverListening<'_> {
    fn emit(self) {
        info!(connector = self.connector, address = %self.address, "produce endpoint listening");
    }
}

/// A record or request the receiver answered with an error. The sender has the answer, so this is not a loss;
/// 5xx answers are warnings, since they point at Kafka or the registry rather than the sender.
pub struct ReceiverRecordRejected<'a> {
    pub connector: &'a str,
    pub status: u16,
    pub error_code: u32,
    pub message: &'a str,
}

impl InternalEvent for ReceiverRecordRejected<'_> {
    fn emit(self) {
        if self.status >= 500 {
            warn!(
                connector = self.connector,
                status = self.status,
                error_code = self.error_code,
                message = self.message,
                "record not written"
            );
        } else {
            tracing::debug!(
                connector = self.connector,
                status = self.status,
                error_code = self.error_code,
                message = self.message,
                "record rejected"
            );
        }
    }
}

pub struct ShutdownRequested<'a> {
    pub signal: &'a str,
    pub timeout: Duration,
}

impl InternalEvent for ShutdownRequested<'_> {
    fn emit(self) {
        info!(signal = self.signal, timeout = ?self.timeout, "shutting down");
    }
}

pub struct ShutdownTimedOut {
    pub timeout: Duration,
    pub unfinished: Vec<String>,
}

impl InternalEvent for ShutdownTimedOut {
    fn emit(self) {
        error!(
            timeout = ?self.timeout,
            unfinished = ?self.unfinished,
            "shutdown timed out; in-flight work was abandoned and will be redelivered"
        );
    }
}

pub struct RecordFailed<'a> {
    pub connector: &'a str,
    /// Only with `errors.log.include_messages`.
    pub position: Option<&'a crate::record::Position>,
    pub failure: &'a crate::dead_letter::RecordFailure,
}

impl InternalEvent for RecordFailed<'_> {
    fn emit(self) {
        match self.position {
            Some(position) => error!(
                connector = self.connector,
                topic = %position.topic,
                partition = position.partition,
                offset = position.offset,
                stage = self.failure.stage.as_str(),
                error_kind = %self.failure.error_kind,
                message = %self.failure.message,
                "record failed"
            ),
            None => error!(
                connector = self.connector,
                stage = self.failure.stage.as_str(),
                error_kind = %self.failure.error_kind,
                message = %self.failure.message,
                "record failed"
            ),
        }
    }
}

pub struct RecordDeadLettered<'a> {
    pub connector: &'a str,
    pub dlq_topic: &'a str,
    pub failure: &'a crate::dead_letter::RecordFailure,
}

impl InternalEvent for RecordDeadLettered<'_> {
    fn emit(self) {
        warn!(
            connector = self.connector,
            dlq_topic = self.dlq_topic,
            error_kind = %self.failure.error_kind,
            "record written to the dead-letter topic"
        );
    }
}

pub struct PutEventsRetrying<'a> {
    pub connector: &'a str,
    pub entries: usize,
    pub attempt: u32,
    pub delay: Duration,
    pub reason: &'a str,
}

impl InternalEvent for PutEventsRetrying<'_> {
    fn emit(self) {
        warn!(
            connector = self.connector,
            entries = self.entries,
            attempt = self.attempt,
            delay = ?self.delay,
            reason = self.reason,
            "PutEvents entries will be sent again"
        );
    }
}

pub struct KafkaConsumerError<'a> {
    pub connector: &'a str,
    pub error: &'a str,
}

impl InternalEvent for KafkaConsumerError<'_> {
    fn emit(self) {
        warn!(connector = self.connector, error = self.error, "Kafka consumer error");
    }
}

pub struct KafkaClientError<'a> {
    pub connector: &'a str,
    pub error: &'a str,
    pub reason: &'a str,
}

impl InternalEvent for KafkaClientError<'_> {
    fn emit(self) {
        warn!(
            connector = self.connector,
            error = self.error,
            reason = self.reason,
            "Kafka client error"
        );
    }
}

pub struct OffsetsCommitted<'a> {
    pub connector: &'a str,
    pub partitions: usize,
    pub reason: &'a str,
}

impl InternalEvent for OffsetsCommitted<'_> {
    fn emit(self) {
        tracing::debug!(
            connector = self.connector,
            partitions = self.partitions,
            reason = self.reason,
            "offsets committed"
        );
    }
}

pub struct OffsetCommitFailed<'a> {
    pub connector: &'a str,
    pub error: &'a str,
}

impl InternalEvent for OffsetCommitFailed<'_> {
    fn emit(self) {
        warn!(
            connector = self.connector,
            error = self.error,
            "offset commit failed; the next commit carries the offsets again"
        );
    }
}

pub struct SqsCallFailed<'a> {
    pub connector: &'a str,
    pub call: &'a str,
    pub error: &'a str,
}

impl InternalEvent for SqsCallFailed<'_> {
    fn emit(self) {
        warn!(
            connector = self.connector,
            call = self.call,
            error = self.error,
            "SQS call failed"
        );
    }
}

pub struct SqsMessageLeft<'a> {
    pub connector: &'a str,
    pub message_id: &'a str,
    pub reason: &'a str,
}

impl InternalEvent for SqsMessageLeft<'_> {
    fn emit(self) {
        warn!(
            connector = self.connector,
            message_id = self.message_id,
            reason = self.reason,
            "message left in the queue; it becomes visible again and is retried"
        );
    }
}
