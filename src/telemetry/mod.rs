//! Every event worth reporting, as a type. Emitting one writes its log line and updates its metric in one step,
//! so that logs and metrics cannot drift apart.

mod cluster;
mod connector;
mod kafka;
pub mod log_levels;
pub mod metrics;
mod receiver;
mod records;
mod sink;
mod source;
mod threshold;
mod transform;
mod worker;

pub use self::cluster::{
    ClusterFileWritten, ClusterJoined, ClusterRecordRejected, ClusterStatusTopicFailed, ClusterTopicRecovered,
    ClusterTopicUnreadable, ClusterWorkerIdInUse,
};
pub use self::connector::{
    ConnectorFailed, ConnectorFileRejected, ConnectorGaveUp, ConnectorRemoved, ConnectorRestartScheduled,
    ConnectorStarted, ConnectorStateChanged, ConnectorStopped, ConnectorSummary,
};
pub use self::kafka::{
    ConsumerLagReported, KafkaClientError, KafkaConsumerError, MskIamSigning, OffsetCommitFailed, OffsetsCommitted,
    TlsHostnameUnverified, TransactionAborted, TransactionCommitted,
};
pub use self::receiver::{ReceiverAcceptFailed, ReceiverListening, ReceiverRecordRejected, ReceiverRecordWritten};
pub use self::records::{
    DeadLetterTopicNotCreated, RecordDeadLettered, RecordFailed, RecordsSkipped, SchemaRegistryWaiting,
};
pub use self::sink::{
    ConcurrencyAdjusted, PutEventsCompleted, PutEventsFailing, PutEventsRetrying, PutEventsSplit, RateLimitWaited,
    RevokedRecordsDropped, SinkRecordsRead, SinkRecordsSent,
};
pub use self::source::{SourceRecordWritten, SourceRecordsPolled, SqsCallFailed, SqsMessageLeft, SqsMessagesInFlight};
pub use self::threshold::LateRecordDropped;
pub use self::transform::{DuplicateDropped, SeenKeyEvicted};
pub use self::worker::{
    RestUnauthenticated, SecretChanged, SecretRefreshFailed, ServiceManagerUnreachable, ShutdownRequested,
    ShutdownTimedOut,
};

use self::metrics::metrics;
pub use self::metrics::ConnectorMetrics;

pub trait InternalEvent {
    fn emit(self);
}

pub fn emit(event: impl InternalEvent) {
    event.emit();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Read from the component files, so that an event added later without its count fails here.
    #[test]
    fn every_warning_is_counted() {
        let source = [
            include_str!("connector.rs"),
            include_str!("kafka.rs"),
            include_str!("receiver.rs"),
            include_str!("records.rs"),
            include_str!("sink.rs"),
            include_str!("source.rs"),
            include_str!("threshold.rs"),
            include_str!("worker.rs"),
        ]
        .concat();
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

    /// Handles made at different times for one connector (a restart makes new ones) count into one series.
    #[test]
    fn handles_resolved_once_feed_the_shown_series() {
        let first = ConnectorMetrics::new("handles");
        emit(SinkRecordsRead {
            metrics: &first,
            count: 2,
        });
        let again = ConnectorMetrics::new("handles");
        emit(SinkRecordsRead {
            metrics: &again,
            count: 3,
        });
        emit(ReceiverRecordWritten { metrics: &again });
        let text = metrics().render();
        assert!(
            text.contains(r#"ebconnect_sink_record_read_total{connector="handles"} 5"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ebconnect_receiver_records_total{connector="handles",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ebconnect_source_record_write_total{connector="handles"} 1"#),
            "{text}"
        );
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
