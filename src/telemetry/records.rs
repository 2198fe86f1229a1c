//! What becomes of a record that does not go through: filtered, failed, dead-lettered, waiting for the registry.

use std::time::Duration;
use tracing::{error, warn};

use super::metrics::{connector as labels, metrics, ConnectorMetrics, StageLabels};
use super::{count_error, InternalEvent};

pub struct RecordFailed<'a> {
    pub(crate) connector: &'a str,
    /// `errors.log.enable`: counted always, logged only when set.
    pub(crate) log: bool,
    /// Only with `errors.log.include_messages`.
    pub(crate) position: Option<&'a crate::record::Position>,
    pub(crate) failure: &'a crate::record::RecordFailure,
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
    pub(crate) connector: &'a str,
    pub(crate) dlq_topic: &'a str,
    pub(crate) failure: &'a crate::record::RecordFailure,
    /// The value was cut to fit the topic's size limit.
    pub(crate) truncated: bool,
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
    pub(crate) connector: &'a str,
    pub(crate) dlq_topic: &'a str,
    pub(crate) error: &'a str,
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

/// A filter dropped records; they are settled.
pub struct RecordsSkipped<'a> {
    pub(crate) metrics: &'a ConnectorMetrics,
    pub(crate) count: u64,
}

impl InternalEvent for RecordsSkipped<'_> {
    fn emit(self) {
        self.metrics.records_skipped.inc_by(self.count);
    }
}

/// The Schema Registry could not be reached to decode a record: the record is decoded again after `delay`.
pub struct SchemaRegistryWaiting<'a> {
    pub(crate) connector: &'a str,
    pub(crate) error: &'a str,
    pub(crate) delay: Duration,
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
