//! Every event worth reporting, as a type. Emitting one writes its log line and updates its metric in one step,
//! so that logs and metrics cannot drift apart.

pub mod log_levels;
pub mod metrics;

use std::time::Duration;

use tracing::{debug, error, info, warn};

use self::metrics::{connector as labels, metrics, PartitionLabels, StageLabels, StatusLabels};

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

/// Counts a warning or error in `ebconnect_errors_total`; every event that logs at those levels calls it
/// (`every_warning_is_counted` checks).
fn count_error(connector: &str, stage: &str, kind: &str) {
    metrics()
        .errors
        .get_or_create(&metrics::ErrorLabels {
            connector: connector.to_owned(),
            stage: stage.to_owned(),
            kind: kind.to_owned(),
        })
        .inc();
}

pub struct ConnectorFailed<'a> {
    pub connector: &'a str,
    pub error: &'a str,
    pub consecutive_failures: u32,
}

impl InternalEvent for ConnectorFailed<'_> {
    fn emit(self) {
        count_error(self.connector, "connector", "failed");
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
        count_error(self.connector, "connector", "restart_scheduled");
        warn!(connector = self.connector, delay = ?self.delay, "connector will be restarted");
    }
}

pub struct ConnectorGaveUp<'a> {
    pub connector: &'a str,
    pub max_restarts: u32,
}

impl InternalEvent for ConnectorGaveUp<'_> {
    fn emit(self) {
        count_error(self.connector, "connector", "gave_up");
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
        metrics()
            .receiver_records
            .get_or_create(&StatusLabels {
                connector: self.connector.to_owned(),
                status: self.status,
            })
            .inc();
        if self.status >= 500 {
            count_error(self.connector, "receiver", &format!("http_{}", self.status));
            warn!(
                connector = self.connector,
                status = self.status,
                error_code = self.error_code,
                message = self.message,
                "record not written"
            );
        } else {
            debug!(
                connector = self.connector,
                status = self.status,
                error_code = self.error_code,
                message = self.message,
                "record rejected"
            );
        }
    }
}

/// The Schema Registry could not be reached to decode a record: the record is decoded again after `delay`.
pub struct SchemaRegistryWaiting<'a> {
    pub connector: &'a str,
    pub error: &'a str,
    pub delay: Duration,
}

impl InternalEvent for SchemaRegistryWaiting<'_> {
    fn emit(self) {
        count_error(self.connector, "schema_registry", "unreachable");
        metrics().registry_waits.get_or_create(&labels(self.connector)).inc();
        warn!(
            connector = self.connector,
            error = self.error,
            delay = ?self.delay,
            "the Schema Registry is unreachable; waiting to decode again"
        );
    }
}

/// The receiver could not accept a connection (out of file descriptors, or reset before it was accepted).
pub struct ReceiverAcceptFailed<'a> {
    pub connector: &'a str,
    pub error: &'a std::io::Error,
}

impl InternalEvent for ReceiverAcceptFailed<'_> {
    fn emit(self) {
        count_error(self.connector, "receiver", "accept");
        warn!(connector = self.connector, error = %self.error, "cannot accept a connection");
    }
}

/// The REST API listens on a non-loopback address without authentication, as `rest.allow_unauthenticated` asked.
pub struct RestUnauthenticated {
    pub address: std::net::SocketAddr,
}

impl InternalEvent for RestUnauthenticated {
    fn emit(self) {
        count_error("", "rest", "unauthenticated");
        warn!(
            address = %self.address,
            "the REST API has no basic_auth on a non-loopback address (rest.allow_unauthenticated): anyone who \
             reaches it can create connectors and read their configuration"
        );
    }
}

pub struct TlsHostnameUnverified;

impl InternalEvent for TlsHostnameUnverified {
    fn emit(self) {
        count_error("", "kafka", "hostname_unverified");
        warn!(
            "kafka.tls.verify_hostname is false: the broker's certificate is not checked against its host name, so \
             anyone with a certificate from a trusted CA can pose as the broker"
        );
    }
}

pub struct MskIamSigning<'a> {
    pub region: &'a str,
}

impl InternalEvent for MskIamSigning<'_> {
    fn emit(self) {
        info!(
            region = self.region,
            "Kafka clients authenticate with MSK IAM, signing with the worker's AWS credentials"
        );
    }
}

pub struct SecretChanged<'a> {
    pub reference: &'a str,
}

impl InternalEvent for SecretChanged<'_> {
    fn emit(self) {
        info!(
            reference = self.reference,
            "a secret changed in AWS; restarting what uses it"
        );
    }
}

pub struct SecretRefreshFailed<'a> {
    pub reference: &'a str,
    pub error: &'a str,
}

impl InternalEvent for SecretRefreshFailed<'_> {
    fn emit(self) {
        count_error("", "secrets", "refresh_failed");
        warn!(
            reference = self.reference,
            error = self.error,
            "cannot re-read a secret from AWS; its last value stays in use"
        );
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
        count_error("", "shutdown", "timed_out");
        error!(
            timeout = ?self.timeout,
            unfinished = ?self.unfinished,
            "shutdown timed out; in-flight work was abandoned and will be redelivered"
        );
    }
}

pub struct RecordFailed<'a> {
    pub connector: &'a str,
    /// `errors.log.enable`: counted always, logged only when set.
    pub log: bool,
    /// Only with `errors.log.include_messages`.
    pub position: Option<&'a crate::record::Position>,
    pub failure: &'a crate::record::RecordFailure,
}

impl InternalEvent for RecordFailed<'_> {
    fn emit(self) {
        count_error(self.connector, self.failure.stage.as_str(), &self.failure.error_kind);
        metrics()
            .record_errors
            .get_or_create(&StageLabels {
                connector: self.connector.to_owned(),
                stage: self.failure.stage.as_str().to_owned(),
            })
            .inc();
        if !self.log {
            return;
        }
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
    pub failure: &'a crate::record::RecordFailure,
    /// The value was cut to fit the topic's size limit.
    pub truncated: bool,
}

impl InternalEvent for RecordDeadLettered<'_> {
    fn emit(self) {
        count_error(self.connector, "dead_letter", "written");
        metrics().dead_lettered.get_or_create(&labels(self.connector)).inc();
        warn!(
            connector = self.connector,
            dlq_topic = self.dlq_topic,
            error_kind = %self.failure.error_kind,
            truncated = self.truncated,
            "record written to the dead-letter topic"
        );
    }
}

pub struct DeadLetterTopicNotCreated<'a> {
    pub connector: &'a str,
    pub dlq_topic: &'a str,
    pub error: &'a str,
}

impl InternalEvent for DeadLetterTopicNotCreated<'_> {
    fn emit(self) {
        count_error(self.connector, "dead_letter", "topic_not_created");
        warn!(
            connector = self.connector,
            dlq_topic = self.dlq_topic,
            error = self.error,
            "cannot create the dead-letter topic; writing to it anyway"
        );
    }
}

pub struct PutEventsRetrying<'a> {
    pub connector: &'a str,
    pub entries: usize,
    pub attempt: u32,
    pub delay: Duration,
    pub reason: &'a str,
    /// Throttling or an outage, retried without limit.
    pub transient: bool,
}

impl InternalEvent for PutEventsRetrying<'_> {
    fn emit(self) {
        metrics()
            .retried_entries
            .get_or_create(&labels(self.connector))
            .inc_by(self.entries as u64);
        // Throttling is routine at the quota and counted in `ebconnect_retried_entries_total`; a line for each
        // retry would flood the log.
        if self.transient {
            debug!(
                connector = self.connector,
                entries = self.entries,
                attempt = self.attempt,
                delay = ?self.delay,
                reason = self.reason,
                "PutEvents entries throttled or failed in passing, will be sent again"
            );
        } else {
            count_error(self.connector, "putevents", "unclear_answer");
            warn!(
                connector = self.connector,
                entries = self.entries,
                attempt = self.attempt,
                delay = ?self.delay,
                reason = self.reason,
                "PutEvents answer unclear, entries will be sent again"
            );
        }
    }
}

pub struct KafkaConsumerError<'a> {
    pub connector: &'a str,
    pub error: &'a str,
}

impl InternalEvent for KafkaConsumerError<'_> {
    fn emit(self) {
        count_error(self.connector, "kafka", "consumer");
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
        count_error(self.connector, "kafka", "client");
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
        count_error(self.connector, "kafka", "commit");
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
    pub connector: &'a str,
    pub message_id: &'a str,
    pub reason: &'a str,
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

/// A sink read records from Kafka.
pub struct SinkRecordsRead<'a> {
    pub connector: &'a str,
    pub count: u64,
}

impl InternalEvent for SinkRecordsRead<'_> {
    fn emit(self) {
        metrics()
            .sink_records_read
            .get_or_create(&labels(self.connector))
            .inc_by(self.count);
    }
}

/// A sink's records reached EventBridge.
pub struct SinkRecordsSent<'a> {
    pub connector: &'a str,
    pub count: u64,
}

impl InternalEvent for SinkRecordsSent<'_> {
    fn emit(self) {
        metrics()
            .sink_records_sent
            .get_or_create(&labels(self.connector))
            .inc_by(self.count);
    }
}

/// A filter dropped records; they are settled.
pub struct RecordsSkipped<'a> {
    pub connector: &'a str,
    pub count: u64,
}

impl InternalEvent for RecordsSkipped<'_> {
    fn emit(self) {
        metrics()
            .records_skipped
            .get_or_create(&labels(self.connector))
            .inc_by(self.count);
    }
}

/// One PutEvents request was answered (whatever became of its entries).
pub struct PutEventsCompleted<'a> {
    pub connector: &'a str,
    pub entries: usize,
    pub duration: Duration,
}

impl InternalEvent for PutEventsCompleted<'_> {
    fn emit(self) {
        let labels = labels(self.connector);
        metrics()
            .putevents_duration
            .get_or_create(&labels)
            .observe(self.duration.as_secs_f64());
        metrics()
            .putevents_batch_entries
            .get_or_create(&labels)
            .observe(self.entries as f64);
    }
}

/// A PutEvents request waited for the rate limiter.
pub struct RateLimitWaited<'a> {
    pub connector: &'a str,
    pub waited: Duration,
}

impl InternalEvent for RateLimitWaited<'_> {
    fn emit(self) {
        metrics()
            .rate_limit_wait
            .get_or_create(&labels(self.connector))
            .inc_by(self.waited.as_secs_f64());
    }
}

/// librdkafka's statistics: how far behind each assigned partition the consumer is.
pub struct ConsumerLagReported<'a> {
    pub connector: &'a str,
    pub partitions: &'a [(String, i32, i64)],
}

impl InternalEvent for ConsumerLagReported<'_> {
    fn emit(self) {
        if let Some(max) = self.partitions.iter().map(|(_, _, lag)| *lag).max() {
            metrics().set_max_lag(self.connector, max);
        }
        for (topic, partition, lag) in self.partitions {
            metrics()
                .consumer_lag
                .get_or_create(&PartitionLabels {
                    connector: self.connector.to_owned(),
                    topic: topic.clone(),
                    partition: *partition,
                })
                .set(*lag);
        }
    }
}

/// A source received events (SQS messages, or records posted to a receiver).
pub struct SourceRecordsPolled<'a> {
    pub connector: &'a str,
    pub count: u64,
}

impl InternalEvent for SourceRecordsPolled<'_> {
    fn emit(self) {
        metrics()
            .source_records_polled
            .get_or_create(&labels(self.connector))
            .inc_by(self.count);
    }
}

/// Kafka acknowledged a source's record.
pub struct SourceRecordWritten<'a> {
    pub connector: &'a str,
}

impl InternalEvent for SourceRecordWritten<'_> {
    fn emit(self) {
        metrics()
            .source_records_written
            .get_or_create(&labels(self.connector))
            .inc();
    }
}

/// SQS messages were received (positive) or settled or left (negative).
pub struct SqsMessagesInFlight<'a> {
    pub connector: &'a str,
    pub change: i64,
}

impl InternalEvent for SqsMessagesInFlight<'_> {
    fn emit(self) {
        metrics()
            .sqs_messages_in_flight
            .get_or_create(&labels(self.connector))
            .inc_by(self.change);
    }
}

/// A receiver answered a record with its delivery report.
pub struct ReceiverRecordWritten<'a> {
    pub connector: &'a str,
}

impl InternalEvent for ReceiverRecordWritten<'_> {
    fn emit(self) {
        metrics()
            .receiver_records
            .get_or_create(&StatusLabels {
                connector: self.connector.to_owned(),
                status: 200,
            })
            .inc();
        metrics()
            .source_records_written
            .get_or_create(&labels(self.connector))
            .inc();
    }
}

/// A connector entered a state.
pub struct ConnectorStateChanged<'a> {
    pub connector: &'a str,
    pub state: crate::connector_state::ConnectorState,
}

impl InternalEvent for ConnectorStateChanged<'_> {
    fn emit(self) {
        for state in crate::connector_state::ConnectorState::ALL {
            metrics()
                .connector_state
                .get_or_create(&metrics::StateLabels {
                    connector: self.connector.to_owned(),
                    state: state.as_str().to_owned(),
                })
                .set(i64::from(state == self.state));
        }
    }
}

/// The periodic one-line account of a connector.
pub struct ConnectorSummary<'a> {
    pub connector: &'a str,
    pub state: &'a str,
    pub read_per_second: f64,
    pub written_per_second: f64,
    /// PutEvents entries sent again per second: how hard EventBridge is throttling.
    pub retried_per_second: f64,
    pub errors: u64,
    pub max_lag: Option<i64>,
}

impl InternalEvent for ConnectorSummary<'_> {
    fn emit(self) {
        info!(
            connector = self.connector,
            state = self.state,
            read_per_second = format!("{:.1}", self.read_per_second),
            written_per_second = format!("{:.1}", self.written_per_second),
            retried_per_second = format!("{:.1}", self.retried_per_second),
            errors = self.errors,
            max_lag = self.max_lag,
            "summary"
        );
    }
}

/// A connector file that does not load; the running version of its connector, if any, is kept.
pub struct ConnectorFileRejected<'a> {
    pub file: &'a str,
    pub error: &'a str,
}

impl InternalEvent for ConnectorFileRejected<'_> {
    fn emit(self) {
        count_error("", "config", "file_rejected");
        metrics().config_rejections.inc();
        error!(
            file = self.file,
            error = self.error,
            "connector file rejected; the running version is kept"
        );
    }
}

/// A connector was removed (its file deleted, or `DELETE /connectors/{name}`).
pub struct ConnectorRemoved<'a> {
    pub connector: &'a str,
}

impl InternalEvent for ConnectorRemoved<'_> {
    fn emit(self) {
        for state in crate::connector_state::ConnectorState::ALL {
            metrics().connector_state.remove(&metrics::StateLabels {
                connector: self.connector.to_owned(),
                state: state.as_str().to_owned(),
            });
        }
        info!(connector = self.connector, "connector removed");
    }
}

/// A record later than every window it falls in, dropped under `late_records: drop`: counted and logged, not lost
/// silently.
pub struct LateRecordDropped<'a> {
    pub connector: &'a str,
    pub position: &'a crate::record::Position,
    pub reason: &'a str,
}

impl InternalEvent for LateRecordDropped<'_> {
    fn emit(self) {
        count_error(self.connector, "threshold", "late_record");
        metrics().records_skipped.get_or_create(&labels(self.connector)).inc();
        warn!(
            connector = self.connector,
            topic = %self.position.topic,
            partition = self.position.partition,
            offset = self.position.offset,
            reason = self.reason,
            "late record dropped"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read from this file, so that an event added later without its count fails here.
    #[test]
    fn every_warning_is_counted() {
        let source = include_str!("mod.rs");
        let source = source.split("#[cfg(test)]").next().unwrap_or_default();
        let uncounted: Vec<&str> = source
            .split("impl InternalEvent for ")
            .skip(1)
            .filter(|event| {
                let body = event.split("\npub struct ").next().unwrap_or_default();
                (body.contains("warn!(") || body.contains("error!(")) && !body.contains("count_error(")
            })
            .map(|event| event.split(' ').next().unwrap_or_default())
            .collect();
        assert!(uncounted.is_empty(), "warnings and errors not counted: {uncounted:?}");
    }

    #[test]
    fn an_error_event_is_counted_by_connector_stage_and_kind() {
        for _ in 0..2 {
            emit(KafkaClientError {
                connector: "counted",
                error: "SSL",
                reason: "certificate verify failed",
            });
        }
        emit(SecretRefreshFailed {
            reference: "${aws-ssm:/x}",
            error: "no parameter",
        });
        let text = metrics().render();
        assert!(
            text.contains(r#"ebconnect_errors_total{connector="counted",stage="kafka",kind="client"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ebconnect_errors_total{connector="",stage="secrets",kind="refresh_failed"} 1"#),
            "{text}"
        );
    }
}
