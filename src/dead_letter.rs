//! The `errors` policy every connector applies to a record it cannot process, and the dead-letter writer.
//!
//! With `tolerance: none` a failed record fails the connector; with `all` it is written to the dead-letter
//! topic with its original key, value and headers plus Kafka Connect's `__connect.errors.*` headers, and the record
//! counts as settled only once Kafka acknowledged that write.
//!
//! A record the dead-letter topic cannot take whole (larger than its `max.message.bytes`) is written with its key
//! and headers and the start of its value, cut to fit, and a `__ebconnect.errors.value.truncated` header giving the
//! value's full size: one record too large for the topic never halts the connector behind it.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::OnceCell;

use crate::config::{ErrorTolerance, ErrorsConfig};
use crate::kafka::SigningContext;
use crate::record::{Record, RecordFailure};
use crate::telemetry::{emit, DeadLetterTopicNotCreated, RecordDeadLettered, RecordFailed};

#[derive(Debug, thiserror::Error)]
pub(crate) enum PolicyError {
    /// `tolerance: none`: the connector must stop at this record.
    #[error("record {topic}/{partition}@{offset} failed ({failure}); errors.tolerance is `none`, so the connector stops here")]
    NotTolerated {
        topic: String,
        partition: i32,
        offset: i64,
        failure: RecordFailure,
    },
    /// A policy made for transactions was asked to write with a producer of its own, which it has not.
    #[error("record {topic}/{partition}@{offset} failed ({failure}); its dead letter belongs in the output's transaction, and none was given")]
    NoTransaction {
        topic: String,
        partition: i32,
        offset: i64,
        failure: RecordFailure,
    },
    #[error("writing record {topic}/{partition}@{offset} to dead-letter topic `{dlq_topic}` failed: {reason}")]
    DeadLetterFailed {
        topic: String,
        partition: i32,
        offset: i64,
        dlq_topic: String,
        reason: String,
    },
}

/// A connector's `errors` settings, ready to apply.
#[derive(Clone)]
pub(crate) struct ErrorPolicy {
    connector: String,
    config: ErrorsConfig,
    producer: Option<FutureProducer<SigningContext>>,
    /// For a client that reads the dead-letter topic's settings, the first time a record is too large for it.
    admin_config: ClientConfig,
    /// The dead-letter topic's `max.message.bytes`, once looked up.
    topic_limit: Arc<OnceCell<usize>>,
    /// Set once the dead-letter topic was created (or found), when `replication_factor` asks for it.
    topic_created: Arc<OnceCell<()>>,
}

/// The header on a dead letter whose value was cut to fit the topic: the value's full size in bytes.
pub const TRUNCATED_HEADER: &str = "__ebconnect.errors.value.truncated";

/// The limit assumed when the topic's own cannot be read: Kafka's default `message.max.bytes`.
const DEFAULT_TOPIC_LIMIT: usize = 1_048_588;

/// Room left in a truncated dead letter for Kafka's record and batch framing.
const FRAMING: usize = 1024;

/// The dead-letter producer's own size limit, high enough that the topic's `max.message.bytes` is what decides,
/// whatever the topic allows. An explicit `message.max.bytes` in the connector's `producer_override` wins.
pub(crate) const PRODUCER_MESSAGE_LIMIT: &str = "104857600";

/// `producer_config` with the dead-letter producer's size limit, unless it sets one.
fn with_message_limit(mut producer_config: ClientConfig) -> ClientConfig {
    if producer_config.get("message.max.bytes").is_none() {
        producer_config.set("message.max.bytes", PRODUCER_MESSAGE_LIMIT);
    }
    producer_config
}

impl ErrorPolicy {
    /// `producer_config` is used only when a dead-letter topic is configured.
    pub(crate) fn new(
        connector: &str,
        config: ErrorsConfig,
        producer_config: ClientConfig,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let producer_config = with_message_limit(producer_config);
        let producer = match config.deadletterqueue {
            Some(_) => Some(producer_config.create_with_context(SigningContext)?),
            None => None,
        };
        Ok(Self::with_producer(connector, config, producer_config, producer))
    }

    /// A policy whose dead letters are all written in the caller's transactions (`handle_in_transaction`), so
    /// that it needs no producer of its own; `handle` fails at a record that would be dead-lettered.
    /// `producer_config` is for reading the dead-letter topic's settings.
    pub(crate) fn for_transactions(connector: &str, config: ErrorsConfig, producer_config: ClientConfig) -> Self {
        Self::with_producer(connector, config, with_message_limit(producer_config), None)
    }

    /// Whether a failed record's key, value and headers are written anywhere: only to a dead-letter topic, with
    /// `tolerance: all`. Otherwise a failure is reported by the record's position alone.
    pub(crate) fn writes_dead_letters(&self) -> bool {
        self.config.tolerance == ErrorTolerance::All && self.config.deadletterqueue.is_some()
    }

    fn with_producer(
        connector: &str,
        config: ErrorsConfig,
        producer_config: ClientConfig,
        producer: Option<FutureProducer<SigningContext>>,
    ) -> Self {
        Self {
            connector: connector.to_owned(),
            config,
            producer,
            admin_config: producer_config,
            topic_limit: Arc::new(OnceCell::new()),
            topic_created: Arc::new(OnceCell::new()),
        }
    }

    /// The dead-letter topic's `max.message.bytes`, or Kafka's default when it cannot be read.
    async fn topic_limit(&self, topic: &str) -> usize {
        *self
            .topic_limit
            .get_or_init(|| async {
                let Ok(admin) = crate::kafka::admin_client(&self.admin_config) else {
                    return DEFAULT_TOPIC_LIMIT;
                };
                let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
                let described = admin
                    .describe_configs([&ResourceSpecifier::Topic(topic)], &options)
                    .await;
                described
                    .ok()
                    .and_then(|results| results.into_iter().next())
                    .and_then(Result::ok)
                    .and_then(|resource| resource.get("max.message.bytes")?.value.as_deref()?.parse().ok())
                    .unwrap_or(DEFAULT_TOPIC_LIMIT)
            })
            .await
    }

    /// Creates the dead-letter topic (one partition, `replication_factor` replicas) unless it exists, once. A
    /// failure is reported and the write goes ahead: the topic may exist after all, or the broker create it.
    async fn create_topic(&self, topic: &str, replication_factor: i16) {
        self.topic_created
            .get_or_init(|| async {
                let created = match crate::kafka::admin_client(&self.admin_config) {
                    Ok(admin) => {
                        let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
                        let new = NewTopic::new(topic, 1, TopicReplication::Fixed(i32::from(replication_factor)));
                        match admin.create_topics([&new], &options).await {
                            Ok(results) => match results.into_iter().next() {
                                Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | Some(Ok(_)) | None => Ok(()),
                                Some(Err((_, code))) => Err(code.to_string()),
                            },
                            Err(error) => Err(error.to_string()),
                        }
                    }
                    Err(error) => Err(error),
                };
                if let Err(error) = created {
                    emit(DeadLetterTopicNotCreated {
                        connector: &self.connector,
                        dlq_topic: topic,
                        error: &error,
                    });
                }
            })
            .await;
    }

    /// Settings the dead-letter producer needs to write each record exactly where it was acknowledged.
    pub(crate) const PRODUCER_SETTINGS: &'static [(&'static str, &'static str)] =
        &[("enable.idempotence", "true"), ("acks", "all")];

    /// Applies the policy. `Ok` means the record is settled (dead-lettered); `Err` means the connector must stop.
    pub(crate) async fn handle(&self, record: &Record, failure: RecordFailure) -> Result<(), PolicyError> {
        self.apply(record, failure, self.producer.as_ref(), false).await
    }

    /// As `handle`, but the dead letter is written with `producer` in the transaction it has open, so that it is
    /// committed or aborted with the output it comes between. A record the broker refuses would fail the whole
    /// transaction, so one too large for the dead-letter topic is cut to fit before it is sent, not after.
    pub(crate) async fn handle_in_transaction<C: ClientContext + 'static>(
        &self,
        record: &Record,
        failure: RecordFailure,
        producer: &FutureProducer<C>,
    ) -> Result<(), PolicyError> {
        self.apply(record, failure, Some(producer), true).await
    }

    async fn apply<C: ClientContext + 'static>(
        &self,
        record: &Record,
        failure: RecordFailure,
        producer: Option<&FutureProducer<C>>,
        fit_first: bool,
    ) -> Result<(), PolicyError> {
        let position = &record.position;
        emit(RecordFailed {
            connector: &self.connector,
            log: self.config.log.enable,
            position: self.config.log.include_messages.then_some(position),
            failure: &failure,
        });
        let (dlq, producer) = match (self.config.tolerance, &self.config.deadletterqueue, producer) {
            (ErrorTolerance::All, Some(dlq), Some(producer)) => (dlq, producer),
            (ErrorTolerance::All, Some(_), None) => {
                return Err(PolicyError::NoTransaction {
                    topic: position.topic.clone(),
                    partition: position.partition,
                    offset: position.offset,
                    failure,
                })
            }
            _ => {
                return Err(PolicyError::NotTolerated {
                    topic: position.topic.clone(),
                    partition: position.partition,
                    offset: position.offset,
                    failure,
                })
            }
        };
        let partition = position.partition.to_string();
        let offset = position.offset.to_string();
        let context = [
            ("__connect.errors.topic", position.topic.as_str()),
            ("__connect.errors.partition", partition.as_str()),
            ("__connect.errors.offset", offset.as_str()),
            ("__connect.errors.connector.name", self.connector.as_str()),
            ("__connect.errors.task.id", "0"),
            ("__connect.errors.stage", failure.stage.as_str()),
            ("__connect.errors.class.name", "ebconnect"),
            ("__connect.errors.exception.class.name", failure.error_kind.as_str()),
            ("__connect.errors.exception.message", failure.message.as_str()),
        ];
        let context = if dlq.context_headers { &context[..] } else { &[] };
        // The record's headers, the context headers, and any more (the truncation mark) after them.
        let headers = |more: &[(&str, &str)]| {
            let extra: Vec<(&str, &str)> = context.iter().chain(more).copied().collect();
            record.headers_and(&extra)
        };
        if let Some(replication_factor) = dlq.replication_factor {
            self.create_topic(&dlq.topic, replication_factor).await;
        }
        let value = record.value.as_deref();
        let key_size = record.key.as_ref().map_or(0, Vec::len);
        let whole = headers(&[]);
        let too_large = if fit_first {
            let size = FRAMING + headers_size(&whole) + key_size + value.map_or(0, <[u8]>::len);
            size > self.topic_limit(&dlq.topic).await
        } else {
            false
        };
        // A record found too large beforehand takes the same way as one the producer refused: cut to fit, below.
        let mut result = if too_large {
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge))
        } else {
            send(producer, &dlq.topic, record, whole, value).await
        };
        let mut truncated = false;
        if let (Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)), Some(value)) =
            (&result, value)
        {
            let limit = self.topic_limit(&dlq.topic).await;
            let full_size = value.len().to_string();
            let mark = [(TRUNCATED_HEADER, full_size.as_str())];
            let headers = headers(&mark);
            let room = limit
                .saturating_sub(FRAMING + headers_size(&headers) + key_size)
                .min(value.len());
            result = send(producer, &dlq.topic, record, headers, Some(&value[..room])).await;
            truncated = true;
        }
        match result {
            Ok(()) => {
                emit(RecordDeadLettered {
                    connector: &self.connector,
                    dlq_topic: &dlq.topic,
                    failure: &failure,
                    truncated,
                });
                Ok(())
            }
            Err(error) => Err(PolicyError::DeadLetterFailed {
                topic: position.topic.clone(),
                partition: position.partition,
                offset: position.offset,
                dlq_topic: dlq.topic.clone(),
                reason: error.to_string(),
            }),
        }
    }
}

/// The bytes of the headers' names and values.
fn headers_size(headers: &OwnedHeaders) -> usize {
    headers
        .iter()
        .map(|header| header.key.len() + header.value.map_or(0, <[u8]>::len))
        .sum()
}

/// Writes one dead letter: the record's key and timestamp, `headers`, and `value`.
async fn send<C: ClientContext + 'static>(
    producer: &FutureProducer<C>,
    topic: &str,
    record: &Record,
    headers: OwnedHeaders,
    value: Option<&[u8]>,
) -> Result<(), KafkaError> {
    let mut dead_letter: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
    if let Some(key) = &record.key {
        dead_letter = dead_letter.key(key);
    }
    if let Some(value) = value {
        dead_letter = dead_letter.payload(value);
    }
    if let Some(timestamp) = record.timestamp {
        dead_letter = dead_letter.timestamp(timestamp);
    }
    // The producer's own delivery timeout bounds this; the queue-full wait is bounded by it too.
    producer
        .send(dead_letter, Duration::from_secs(30))
        .await
        .map(|_| ())
        .map_err(|(error, _)| error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Position, Stage, TimestampType};

    #[tokio::test]
    async fn a_policy_for_transactions_refuses_to_dead_letter_without_one() {
        let config: ErrorsConfig =
            serde_norway::from_str("tolerance: all\ndeadletterqueue: {topic: dlq}\n").expect("errors settings");
        let policy = ErrorPolicy::for_transactions("c", config, ClientConfig::new());
        assert!(policy.producer.is_none(), "no producer of its own");
        let record = Record {
            position: Position {
                topic: "in".into(),
                partition: 2,
                offset: 7,
            },
            timestamp: None,
            timestamp_type: TimestampType::NotAvailable,
            key: None,
            value: Some(b"x".to_vec()),
            headers: Vec::new(),
        };
        let failure = RecordFailure {
            stage: Stage::Transformation,
            error_kind: "TransformError".into(),
            message: "bad".into(),
        };
        let refused = policy.handle(&record, failure).await;
        assert!(
            matches!(&refused, Err(PolicyError::NoTransaction { offset: 7, .. })),
            "{refused:?}"
        );
    }

    #[test]
    fn only_a_tolerant_policy_with_a_dead_letter_topic_writes_records_out() {
        let writes = |settings: &str| {
            let config: ErrorsConfig = serde_norway::from_str(settings).expect("errors settings");
            ErrorPolicy::for_transactions("c", config, ClientConfig::new()).writes_dead_letters()
        };
        assert!(writes("tolerance: all\ndeadletterqueue: {topic: dlq}\n"));
        assert!(!writes("tolerance: none\ndeadletterqueue: {topic: dlq}\n"));
        assert!(!writes("tolerance: all\n"));
        assert!(!writes("{}"));
    }
}
