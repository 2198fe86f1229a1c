//! Kafka clients: authentication, client and consumer errors, commits, consumer lag.

use tracing::{info, warn};

use super::metrics::{metrics, PartitionLabels};
use super::{count_error, InternalEvent};

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
    pub(crate) region: &'a str,
}

impl InternalEvent for MskIamSigning<'_> {
    fn emit(self) {
        info!(
            region = self.region,
            "Kafka clients authenticate with MSK IAM, signing with the worker's AWS credentials"
        );
    }
}

pub struct KafkaConsumerError<'a> {
    pub(crate) connector: &'a str,
    pub(crate) error: &'a str,
}

impl InternalEvent for KafkaConsumerError<'_> {
    fn emit(self) {
        count_error(self.connector, "kafka", "consumer");
        warn!(connector = self.connector, error = self.error, "Kafka consumer error");
    }
}

pub struct KafkaClientError<'a> {
    pub(crate) connector: &'a str,
    pub(crate) error: &'a str,
    pub(crate) reason: &'a str,
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
    pub(crate) connector: &'a str,
    pub(crate) partitions: usize,
    pub(crate) reason: &'a str,
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
    pub(crate) connector: &'a str,
    pub(crate) error: &'a str,
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

/// A Kafka transaction committed: output records and the input offsets they came from, at once.
pub struct TransactionCommitted<'a> {
    pub(crate) connector: &'a str,
    pub(crate) partitions: usize,
    pub(crate) reason: &'a str,
}

impl InternalEvent for TransactionCommitted<'_> {
    fn emit(self) {
        metrics()
            .transactions
            .get_or_create(&super::metrics::connector(self.connector))
            .inc();
        tracing::debug!(
            connector = self.connector,
            partitions = self.partitions,
            reason = self.reason,
            "transaction committed"
        );
    }
}

/// A transaction that could not be committed was aborted: its output is discarded and its input is read again.
pub struct TransactionAborted<'a> {
    pub(crate) connector: &'a str,
    pub(crate) error: &'a str,
}

impl InternalEvent for TransactionAborted<'_> {
    fn emit(self) {
        count_error(self.connector, "kafka", "transaction");
        warn!(
            connector = self.connector,
            error = self.error,
            "transaction aborted; its input is read again"
        );
    }
}

/// librdkafka's statistics: how far behind each assigned partition the consumer is.
pub struct ConsumerLagReported<'a> {
    pub(crate) connector: &'a str,
    pub(crate) partitions: &'a [(String, i32, i64)],
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
