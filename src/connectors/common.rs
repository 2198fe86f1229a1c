//! What every connector builds the same way from its parts: its producers' settings, its errors policy, its
//! subscription, and what a consumer error means for its loop. One copy, so that a fix (a setting the dead-letter
//! writer needs, the broker's reason for a refused login) reaches all four connector types.

use std::collections::BTreeMap;

use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{ClientConfig, TopicPartitionList};

use serde_json::Value;

use super::settings::{OffsetReset, Processing};
use super::ConnectorParts;
use crate::config::Interpolated;
use crate::dead_letter::ErrorPolicy;
use crate::kafka::{blocking, client_config, group_member, ClientRole, FatalClientError, ProducerErrors};
use crate::record::{Record, RecordFailure, Stage};
use crate::schema::Decoder;
use crate::telemetry::{emit, KafkaConsumerError};
use crate::transform::{Applied, Chain, Context as TransformContext, Decoded};

impl ConnectorParts {
    /// The consumer settings of a type that reads committed input only and rebalances eagerly (threshold-alert,
    /// topic-processor): a revocation ends all its work at once, its state or its open transaction.
    pub(super) fn eager_consumer_config(
        &self,
        group_id: &str,
        overrides: &BTreeMap<String, Interpolated>,
        auto_offset_reset: OffsetReset,
    ) -> ClientConfig {
        group_member(
            client_config(
                &self.worker.kafka,
                ClientRole::Consumer,
                overrides,
                &[("queued.max.messages.kbytes", "16384")],
                &[
                    ("group.id", group_id),
                    ("enable.auto.commit", "false"),
                    ("auto.offset.reset", auto_offset_reset.as_librdkafka()),
                    // An upstream transactional writer's aborted records are not input.
                    ("isolation.level", "read_committed"),
                    ("partition.assignment.strategy", "range"),
                    ("enable.partition.eof", "false"),
                ],
            ),
            &self.worker,
        )
    }

    /// The settings of the connector's producers, its output and its dead-letter writer alike: `defaults`, the
    /// worker's cluster and producer overrides, the connector's `overrides`, then what the dead-letter writer needs.
    pub(super) fn producer_config(
        &self,
        overrides: &BTreeMap<String, Interpolated>,
        defaults: &[(&str, &str)],
        client_id: &str,
    ) -> ClientConfig {
        let mut config = client_config(
            &self.worker.kafka,
            ClientRole::Producer,
            overrides,
            defaults,
            ErrorPolicy::PRODUCER_SETTINGS,
        );
        config.set("client.id", client_id);
        config
    }

    /// The producer a connector writes its output with: exactly once, transactional, with a `transactional.id`
    /// stable across this worker's restarts (so that a restart fences the transaction the last run left open, in
    /// `init_transactions`) and distinct between workers; at least once, idempotent.
    pub(super) fn output_producer(
        &self,
        producer_config: &ClientConfig,
        processing: Processing,
        fatal: &FatalClientError,
    ) -> Result<FutureProducer<ProducerErrors>, OutputProducerError> {
        let name = self.name.as_str();
        let mut config = producer_config.clone();
        if processing == Processing::ExactlyOnce {
            config.set(
                "transactional.id",
                format!("ebconnect-{name}-{}", self.worker.worker_id()),
            );
            // Dead letters are written in the transaction too, cut to the topic's limit, which is then the one
            // that decides, as for the dead-letter producer of `ErrorPolicy`.
            if config.get("message.max.bytes").is_none() {
                config.set("message.max.bytes", crate::dead_letter::PRODUCER_MESSAGE_LIMIT);
            }
        }
        let producer = ProducerErrors::producer(&config, name, fatal).map_err(OutputProducerError::Create)?;
        if processing == Processing::ExactlyOnce {
            blocking(|| producer.init_transactions(TRANSACTION_TIMEOUT)).map_err(OutputProducerError::Init)?;
        }
        Ok(producer)
    }

    /// The connector's `errors` policy; its dead-letter writer, when one is configured, uses `producer_config`.
    pub(super) fn error_policy(&self, producer_config: ClientConfig) -> Result<ErrorPolicy, KafkaError> {
        ErrorPolicy::new(self.name.as_str(), self.errors.clone(), producer_config)
    }
}

/// How long a transaction call (init, commit, abort, or a flush) may take before the connector fails and restarts.
pub(super) const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub(crate) enum OutputProducerError {
    #[error("cannot create the Kafka producer: {0}")]
    Create(#[source] KafkaError),
    #[error("the Kafka producer cannot start its transactions: {0}")]
    Init(#[source] KafkaError),
}

/// A Kafka record decoded and through the connector's transforms: where the threshold-alert and the topic-processor
/// both start.
pub(super) enum Transformed {
    /// What the transforms let through, with the key (the input's, as UTF-8 text, or null) it came in with.
    Kept { applied: Applied, input_key: Value },
    /// A filter or the dedupe dropped it.
    Dropped,
    /// A record error, for the errors policy.
    Failed(RecordFailure),
}

/// Decodes `record`'s value and applies `transforms`. The error is a failure that is not the record's (the
/// registry is away).
pub(super) async fn decode_and_transform(
    connector: &str,
    decoder: &Decoder,
    transforms: &Chain,
    record: &Record,
) -> Result<Transformed, String> {
    let failed = |stage, kind: &str, message: String| {
        Transformed::Failed(RecordFailure {
            stage,
            error_kind: kind.to_owned(),
            message,
        })
    };
    let value = match decoder.decode(record.value.as_deref()).await {
        Ok(value) => value,
        Err(error) if error.is_record_error() => {
            return Ok(failed(Stage::ValueConverter, "DecodeError", error.to_string()))
        }
        Err(error) => return Err(error.to_string()),
    };
    let input_key = record
        .key
        .as_deref()
        .and_then(|key| std::str::from_utf8(key).ok())
        .map_or(Value::Null, |key| Value::String(key.to_owned()));
    let position = &record.position;
    let context = TransformContext {
        connector,
        topic: &position.topic,
        partition: position.partition,
        offset: position.offset,
        timestamp: record.timestamp,
    };
    let decoded = Decoded {
        key: input_key.clone(),
        value,
    };
    Ok(match transforms.apply_keyed(decoded, &context) {
        Ok(Some(applied)) => Transformed::Kept { applied, input_key },
        Ok(None) => Transformed::Dropped,
        Err(error) => failed(Stage::Transformation, "TransformError", error.to_string()),
    })
}

/// A record key given as JSON, as the bytes written: a string as its text, another value as its JSON, null as no
/// key.
pub(super) fn key_bytes(key: &Value) -> Option<Vec<u8>> {
    match key {
        Value::Null => None,
        Value::String(text) => Some(text.clone().into_bytes()),
        other => Some(other.to_string().into_bytes()),
    }
}

/// Adds the input `offsets` to the producer's open transaction, with the consumer's group metadata (so that a member
/// the group has moved on from is fenced, KIP-447), and commits it. The error names the step that failed.
pub(super) fn commit_transaction<P: Producer<X>, X: rdkafka::producer::ProducerContext, C: ConsumerContext>(
    producer: &P,
    consumer: &impl Consumer<C>,
    offsets: &TopicPartitionList,
    timeout: Duration,
) -> Result<(), (&'static str, String)> {
    if offsets.count() > 0 {
        let metadata = consumer
            .group_metadata()
            .ok_or(("send offsets", "the consumer has no group metadata".to_owned()))?;
        blocking(|| producer.send_offsets_to_transaction(offsets, &metadata, timeout))
            .map_err(|error| ("send offsets", error.to_string()))?;
    }
    blocking(|| producer.commit_transaction(timeout)).map_err(|error| ("commit", error.to_string()))
}

#[derive(Debug, thiserror::Error)]
#[error("cannot subscribe to {what}: {source}")]
pub(crate) struct SubscribeError {
    what: String,
    source: KafkaError,
}

/// Subscribes to `topics`, or to the topics `regex` matches when it is given.
pub(super) fn subscribe<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    topics: &[String],
    regex: Option<&str>,
) -> Result<(), SubscribeError> {
    let subscription = match regex {
        // librdkafka treats a topic starting with `^` as a regular expression.
        Some(pattern) => vec![format!("^{}", pattern.trim_start_matches('^'))],
        None => topics.to_vec(),
    };
    let names: Vec<&str> = subscription.iter().map(String::as_str).collect();
    consumer.subscribe(&names).map_err(|source| SubscribeError {
        what: subscription.join(", "),
        source,
    })
}

/// Why a connector's Kafka client cannot go on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientFailure {
    /// The broker refuses the client (credentials, certificate); the reason is the broker's, as the client's
    /// error callback heard it.
    #[error("Kafka refuses this client: {0}")]
    Refused(String),
    #[error("Kafka consumer failed: {0}")]
    Consumer(#[source] KafkaError),
}

/// What a consumer error means for the loop: a fatal one ends it, with the broker's reason when the client's
/// callback raised one (the consumer's own error is then a bare `Authentication failure`); any other is reported,
/// and librdkafka retries.
pub(super) fn consumer_error(connector: &str, error: KafkaError, fatal: &FatalClientError) -> Option<ClientFailure> {
    if !crate::kafka::consumer::is_fatal(&error) {
        emit(KafkaConsumerError {
            connector,
            error: &error.to_string(),
        });
        return None;
    }
    Some(match fatal.first() {
        Some(reason) => ClientFailure::Refused(reason),
        None => ClientFailure::Consumer(error),
    })
}
