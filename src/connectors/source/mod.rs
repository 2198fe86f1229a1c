//! `type: eventbridge-source`: events from an EventBridge bus, through a rule's SQS target, into a Kafka topic.
//!
//! Each poller long-polls the queue, turns each message into a record (key from a JSON path, the event as the JSON
//! value, envelope fields as headers), runs the transforms, and writes it with an idempotent producer (acks=all).
//! A message is deleted from SQS only after Kafka acknowledged its record, or after it was dead-lettered or
//! filtered out. A message whose write failed is left alone and becomes visible again; while writes are pending
//! the pollers extend the messages' visibility. Pollers on several workers share one queue: SQS hands each message
//! to one of them.

pub mod config;
pub mod provision;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use self::config::SourceConfig;
use super::common::{key_bytes, ClientFailure};
use super::{BoxError, Connector, ConnectorContext, ConnectorParts, Progress};
use crate::aws::{sdk_config, service_config, Service};
use crate::dead_letter::{ErrorPolicy, PolicyError};
use crate::kafka::{ActiveTopics, FatalClientError, ProducerErrors};
use crate::record::{Position, Record, TimestampType};
use crate::record::{RecordFailure, Stage};
use crate::schema::encode::JsonWriter;
use crate::schema::registry::RegistrySetupError;
use crate::telemetry::{
    emit, ConnectorMetrics, RecordsSkipped, SourceRecordWritten, SourceRecordsPolled, SqsCallFailed, SqsMessageLeft,
    SqsMessagesInFlight,
};
use crate::transform::{Chain, Context as TransformContext, Decoded};

#[derive(Debug, thiserror::Error)]
pub(crate) enum SourceError {
    #[error(transparent)]
    Provision(#[from] provision::ProvisionError),
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[source] KafkaError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Registry(RegistrySetupError),
    #[error("config: neither `queue_url` nor `provision` is set")]
    NoQueue,
    #[error("a poller ended without a result: {0}")]
    PollerPanicked(String),
    #[error(transparent)]
    Client(#[from] ClientFailure),
}

pub(crate) struct SourceConnector {
    parts: ConnectorParts,
    config: SourceConfig,
}

impl SourceConnector {
    pub(crate) fn new(parts: ConnectorParts, config: SourceConfig) -> Self {
        Self { parts, config }
    }

    pub(crate) fn converter(&self) -> Result<MessageConverter, SourceError> {
        Ok(MessageConverter {
            name: self.parts.name.as_str().to_owned(),
            config: self.config.clone(),
            transforms: self.parts.transforms.clone(),
            value_writer: self
                .config
                .value
                .writer(self.parts.worker.schema_registry.as_ref())
                .map_err(SourceError::Registry)?,
        })
    }
}

/// What became of one message.
enum Fate {
    /// Written to Kafka, dead-lettered, or filtered out: delete it from SQS.
    Settled,
    /// Not written; SQS makes it visible again after its visibility timeout.
    Left(String),
}

/// Everything a poller needs, shared by all pollers of the connector.
struct Poller {
    name: String,
    metrics: ConnectorMetrics,
    config: SourceConfig,
    queue_url: String,
    sqs: aws_sdk_sqs::Client,
    producer: FutureProducer<ProducerErrors>,
    policy: ErrorPolicy,
    converter: MessageConverter,
    /// Marked on each record written, so that a failure after progress starts the restart count over.
    progress: Progress,
    topics: ActiveTopics,
}

fn envelope_text(event: &Value, field: &str) -> Option<String> {
    match event.get(field)? {
        Value::String(text) => Some(text.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

impl Poller {
    async fn run(self: Arc<Self>, stop: CancellationToken) -> Result<(), SourceError> {
        let wait = i32::try_from(self.config.wait_time.as_secs()).unwrap_or(20);
        let visibility = i32::try_from(self.config.visibility_timeout.as_secs()).unwrap_or(30);
        loop {
            let receive = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(wait)
                .visibility_timeout(visibility)
                .send();
            let received = tokio::select! {
                biased;
                () = stop.cancelled() => return Ok(()),
                received = receive => received,
            };
            let messages = match received {
                Ok(output) => output.messages.unwrap_or_default(),
                Err(error) => {
                    emit(SqsCallFailed {
                        connector: &self.name,
                        call: "ReceiveMessage",
                        error: &crate::error_chain(&error),
                    });
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            if !messages.is_empty() {
                emit(SourceRecordsPolled {
                    metrics: &self.metrics,
                    count: messages.len() as u64,
                });
                emit(SqsMessagesInFlight {
                    metrics: &self.metrics,
                    change: messages.len() as i64,
                });
                self.process(messages).await?;
            }
        }
    }

    /// Writes a batch of messages and deletes those that are settled. Runs to the end even during shutdown, so
    /// that nothing written is left undeleted for long.
    async fn process(&self, messages: Vec<Message>) -> Result<(), SourceError> {
        let mut pending: HashSet<String> = messages.iter().filter_map(|m| m.receipt_handle.clone()).collect();
        let mut work: FuturesUnordered<_> = messages
            .into_iter()
            .map(|message| async move {
                let fate = self.handle(&message).await;
                (message, fate)
            })
            .collect();
        let mut heartbeat = tokio::time::interval(self.config.visibility_timeout / 2);
        heartbeat.tick().await;
        let mut settled = Vec::new();
        let mut failure = None;
        loop {
            tokio::select! {
                next = work.next() => match next {
                    None => break,
                    Some((message, fate)) => {
                        emit(SqsMessagesInFlight { metrics: &self.metrics, change: -1 });
                        if let Some(handle) = &message.receipt_handle {
                            pending.remove(handle);
                        }
                        match fate {
                            Ok(Fate::Settled) => settled.extend(message.receipt_handle),
                            Ok(Fate::Left(reason)) => emit(SqsMessageLeft {
                                connector: &self.name,
                                message_id: message.message_id().unwrap_or_default(),
                                reason: &reason,
                            }),
                            Err(error) => {
                                failure.get_or_insert(error);
                            }
                        }
                    }
                },
                _ = heartbeat.tick() => self.extend_visibility(&pending).await,
            }
        }
        self.delete(settled).await;
        match failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    async fn handle(&self, message: &Message) -> Result<Fate, SourceError> {
        match self.converter.convert(message.body().unwrap_or_default()).await {
            Converted::Record(record) => {
                let dedupe_key = record.dedupe_key.clone();
                let fate = self.produce(message, record).await;
                if !matches!(fate, Ok(Fate::Settled)) {
                    self.converter.forget(dedupe_key.as_deref());
                }
                fate
            }
            Converted::Filtered => {
                emit(RecordsSkipped {
                    metrics: &self.metrics,
                    count: 1,
                });
                Ok(Fate::Settled)
            }
            Converted::Failed(failure) => self.fail(message, failure).await,
            Converted::NotNow(reason) => Ok(Fate::Left(reason)),
        }
    }

    /// Writes the event's record and waits for Kafka's acknowledgement.
    async fn produce(&self, message: &Message, converted: SourceRecord) -> Result<Fate, SourceError> {
        let topic = &self.converter.config.topic;
        let mut record_headers = OwnedHeaders::new_with_capacity(converted.headers.len());
        for (name, text) in &converted.headers {
            record_headers = record_headers.insert(Header {
                key: name,
                value: Some(text.as_bytes()),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .payload(converted.value.as_slice())
            .headers(record_headers);
        if let Some(key) = &converted.key {
            record = record.key(key);
        }
        match self.producer.send(record, Duration::from_secs(30)).await {
            Ok(_) => {
                self.topics.record(topic);
                emit(SourceRecordWritten { metrics: &self.metrics });
                self.progress.made();
                Ok(Fate::Settled)
            }
            Err((KafkaError::MessageProduction(code @ RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                let failure = RecordFailure {
                    stage: Stage::KafkaProduce,
                    error_kind: "RecordTooLarge".into(),
                    message: code.to_string(),
                };
                self.fail(message, failure).await
            }
            Err((error, _)) => Ok(Fate::Left(format!("writing to Kafka failed: {error}"))),
        }
    }

    /// Applies the errors policy to a message that cannot become a record.
    async fn fail(&self, message: &Message, failure: RecordFailure) -> Result<Fate, SourceError> {
        let record = Record {
            position: Position {
                topic: self.queue_url.clone(),
                partition: -1,
                offset: -1,
            },
            timestamp: None,
            timestamp_type: TimestampType::NotAvailable,
            key: message.message_id.clone().map(String::into_bytes),
            value: message.body.clone().map(String::into_bytes),
            headers: vec![(
                "sqs.message_id".to_owned(),
                message.message_id.clone().map(String::into_bytes),
            )],
        };
        self.policy.handle(&record, failure).await?;
        Ok(Fate::Settled)
    }

    async fn extend_visibility(&self, pending: &HashSet<String>) {
        let visibility = i32::try_from(self.config.visibility_timeout.as_secs()).unwrap_or(30);
        let handles: Vec<&String> = pending.iter().collect();
        for chunk in handles.chunks(10) {
            let entries = chunk.iter().enumerate().filter_map(|(index, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(*handle)
                    .visibility_timeout(visibility)
                    .build()
                    .ok()
            });
            let result = self
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries.collect()))
                .send()
                .await;
            if let Err(error) = result {
                emit(SqsCallFailed {
                    connector: &self.name,
                    call: "ChangeMessageVisibilityBatch",
                    error: &crate::error_chain(&error),
                });
            }
        }
    }

    /// Deletes settled messages. One that cannot be deleted is delivered again later: a duplicate, never a loss.
    async fn delete(&self, handles: Vec<String>) {
        for chunk in handles.chunks(10) {
            let entries = chunk.iter().enumerate().filter_map(|(index, handle)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(handle)
                    .build()
                    .ok()
            });
            let result = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries.collect()))
                .send()
                .await;
            let error = match result {
                Ok(output) if output.failed().is_empty() => continue,
                Ok(output) => format!("{:?}", output.failed()),
                Err(error) => crate::error_chain(&error),
            };
            emit(SqsCallFailed {
                connector: &self.name,
                call: "DeleteMessageBatch",
                error: &error,
            });
        }
    }
}

/// The Kafka record an event becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceRecord {
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Vec<u8>,
    /// The envelope fields named by `headers`, as text.
    pub(crate) headers: Vec<(String, String)>,
    /// The value before it was written in the value format.
    pub(crate) event: Value,
    /// The key the dedupe transform admitted the event by: forgotten if the record is not written.
    pub(crate) dedupe_key: Option<String>,
}

/// What an SQS message's body becomes.
pub(crate) enum Converted {
    Record(SourceRecord),
    /// A transform dropped it.
    Filtered,
    /// A record error, for the errors policy.
    Failed(RecordFailure),
    /// Not the message's fault (the registry is away): left for SQS to deliver again.
    NotNow(String),
}

/// An event to its record: the key from its JSON path, the envelope fields as headers, the transforms, the value
/// written in the configured format. No effect outside: the pollers write what it makes, `preview` shows it.
pub(crate) struct MessageConverter {
    pub(crate) name: String,
    pub(crate) config: SourceConfig,
    pub(crate) transforms: Chain,
    pub(crate) value_writer: JsonWriter,
}

impl MessageConverter {
    pub(crate) async fn convert(&self, body: &str) -> Converted {
        let failed = |stage, kind: &str, message: String| {
            Converted::Failed(RecordFailure {
                stage,
                error_kind: kind.to_owned(),
                message,
            })
        };
        let event = match parse_event(body) {
            Ok(event) => event,
            Err(reason) => return failed(Stage::ValueConverter, "DecodeError", reason),
        };
        let headers: Vec<(String, String)> = self
            .config
            .headers
            .iter()
            .filter_map(|field| envelope_text(&event, field.name()).map(|text| (field.name().to_owned(), text)))
            .collect();
        let key = self.config.key.select_one(&event).cloned().unwrap_or(Value::Null);
        let context = TransformContext {
            connector: &self.name,
            topic: &self.config.topic,
            partition: -1,
            offset: -1,
            timestamp: None,
        };
        let (decoded, dedupe_key) = match self.transforms.apply_keyed(Decoded { key, value: event }, &context) {
            Ok(Some(applied)) => (applied.record, applied.dedupe_key),
            Ok(None) => return Converted::Filtered,
            Err(error) => return failed(Stage::Transformation, "TransformError", error.to_string()),
        };
        let key = key_bytes(&decoded.key);
        match self.value_writer.write(&decoded.value, &self.config.topic, false).await {
            Ok(value) => Converted::Record(SourceRecord {
                key,
                value,
                headers,
                event: decoded.value,
                dedupe_key,
            }),
            Err(error) if error.is_transient() => {
                self.forget(dedupe_key.as_deref());
                Converted::NotNow(error.to_string())
            }
            Err(error) => failed(Stage::ValueConverter, "SerializationError", error.to_string()),
        }
    }
}

impl MessageConverter {
    /// The event admitted by `key` was left for SQS to deliver again: its next delivery is not a duplicate.
    pub(crate) fn forget(&self, key: Option<&str>) {
        if let (Some(dedupe), Some(key)) = (self.transforms.dedupe(), key) {
            dedupe.forget(key);
        }
    }
}

/// An SQS message's body as the event it carries: a JSON object.
fn parse_event(body: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(body) {
        Ok(event @ Value::Object(_)) => Ok(event),
        Ok(_) => Err("the message is not a JSON object".to_owned()),
        Err(error) => Err(format!("the message is not JSON: {error}")),
    }
}

#[async_trait]
impl Connector for SourceConnector {
    async fn run(self: Box<Self>, context: ConnectorContext) -> Result<(), BoxError> {
        let name = self.parts.name.as_str();
        let aws = &self.parts.worker.aws;
        let sdk = sdk_config(aws).await;
        let sqs = aws_sdk_sqs::Client::new(&service_config(&sdk, aws, Service::Sqs));
        let queue_url = match (&self.config.queue_url, &self.config.provision) {
            (Some(url), _) => url.value().to_owned(),
            (None, Some(provision)) => {
                let events = aws_sdk_eventbridge::Client::new(&service_config(&sdk, aws, Service::Events));
                provision::provision(&events, &sqs, &self.parts.name, provision)
                    .await
                    .map_err(SourceError::from)?
            }
            (None, None) => return Err(SourceError::NoQueue.into()),
        };
        let converter = self.converter()?;
        let producer_config = self.parts.producer_config(
            &self.config.producer_override,
            &[("linger.ms", "5"), ("message.timeout.ms", "120000")],
            name,
        );
        let fatal = FatalClientError::default();
        let producer = ProducerErrors::producer(&producer_config, name, &fatal).map_err(SourceError::Producer)?;
        let policy = self
            .parts
            .error_policy(producer_config)
            .map_err(SourceError::Producer)?;
        let poller = Arc::new(Poller {
            name: name.to_owned(),
            metrics: ConnectorMetrics::new(name),
            config: self.config.clone(),
            queue_url,
            sqs,
            producer,
            policy,
            converter,
            progress: context.progress.clone(),
            topics: context.topics.clone(),
        });
        context.started.mark();
        // One poller's failure stops the others; shutdown stops all of them.
        let stop = context.shutdown.child_token();
        let mut pollers = JoinSet::new();
        for _ in 0..self.config.pollers {
            pollers.spawn(poller.clone().run(stop.clone()));
        }
        let mut first_error: Option<SourceError> = None;
        loop {
            let joined = tokio::select! {
                joined = pollers.join_next() => joined,
                refused = fatal.raised(), if first_error.is_none() => {
                    stop.cancel();
                    first_error = Some(ClientFailure::Refused(refused).into());
                    continue;
                }
            };
            let Some(joined) = joined else {
                break;
            };
            let error = match joined {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error,
                Err(error) => SourceError::PollerPanicked(error.to_string()),
            };
            stop.cancel();
            first_error.get_or_insert(error);
        }
        match first_error {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }
}
