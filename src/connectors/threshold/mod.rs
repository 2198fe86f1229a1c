//! `type: threshold-alert`: Kafka to Kafka, one record for each (window, group) whose count is over a threshold.
//!
//! The loop reads a record, decodes it, runs the transforms and the filter, takes its event time and group, and
//! counts it in its windows (`window`). Closed windows over the threshold become output records, written with an
//! idempotent producer and acknowledged before anything is committed. There is no state store: the input offset
//! committed for a partition is the oldest record still in an open window, so a restart reads again exactly what
//! the open windows need; the commit's metadata carries how far windows were closed, so that records of windows
//! already emitted are not counted again into partial ones. Rebalancing is eager: on revocation the positions are
//! committed and the state dropped, and the new assignment is rebuilt from the commits.
//!
//! With `processing: exactly_once` the producer is transactional: each batch of alerts is written in a transaction
//! that also carries the commit (offsets and `closed_through`) that goes with it, so an alert counts exactly when
//! its window counts as closed. Commits without alerts stay plain commits: nothing is written with them.

pub mod config;
pub mod window;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

pub use self::config::ThresholdConfig;
use self::config::{Comparison, Emit, LateRecords};
use self::window::{Alert, Outcome, Settings, Threshold, WindowSpec, Windows};
use super::common::{
    commit_transaction, consumer_error, decode_and_transform, subscribe, ClientFailure, OutputProducerError,
    SubscribeError, Transformed, TRANSACTION_TIMEOUT,
};
use super::settings::{Processing, TimeConfig};
use super::{BoxError, Connector, ConnectorContext, ConnectorParts};
use crate::config::InvalidSetting;
use crate::dead_letter::{ErrorPolicy, PolicyError};
use crate::kafka::consumer::{commit_list, leave_group, GroupJoin, NotesGroupJoin};
use crate::kafka::{blocking, ActiveTopics, FatalClientError, ProducerErrors};
use crate::pattern::Pattern;
use crate::record::Record;
use crate::record::{RecordFailure, Stage};
use crate::schema::encode::{AvroRecordEncoder, BinaryText, JsonWriter, WriterSchema};
use crate::schema::registry::RegistrySetupError;
use crate::schema::{Decoder, OutputFormat};
use crate::telemetry::{
    emit, ConnectorMetrics, LateRecordDropped, RecordsSkipped, SinkRecordsRead, SourceRecordWritten,
    TransactionAborted, TransactionCommitted,
};
use crate::transform::Chain;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ThresholdError {
    #[error("cannot create the Kafka {what}: {source}")]
    Create { what: &'static str, source: KafkaError },
    #[error(transparent)]
    Producer(#[from] OutputProducerError),
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
    #[error(transparent)]
    Client(#[from] ClientFailure),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Registry(#[from] RegistrySetupError),
    #[error("the Schema Registry is unavailable: {0}")]
    RegistryUnavailable(String),
    #[error("writing an alert to `{topic}` failed: {reason}")]
    Output { topic: String, reason: String },
    #[error("the Kafka transaction failed ({step}), and its alerts were discarded: {reason}")]
    Transaction { step: &'static str, reason: String },
    #[error(transparent)]
    Setting(InvalidSetting),
}

pub(crate) struct ThresholdConnector {
    parts: ConnectorParts,
    config: ThresholdConfig,
}

impl ThresholdConnector {
    pub(crate) fn new(parts: ConnectorParts, config: ThresholdConfig) -> Self {
        Self { parts, config }
    }
}

/// The counting state and the numbering of input partitions, shared with the rebalance callbacks.
struct State {
    windows: Windows,
    /// Each input (topic, partition) as the small number `Windows` knows it by.
    index: HashMap<(String, i32), i32>,
}

impl State {
    fn index(&mut self, topic: &str, partition: i32) -> i32 {
        let next = i32::try_from(self.index.len()).unwrap_or(i32::MAX);
        *self.index.entry((topic.to_owned(), partition)).or_insert(next)
    }

    /// The offsets to commit, with the `closed_through` mark as metadata.
    fn commit_list(&self) -> TopicPartitionList {
        let (positions, closed_through) = self.windows.commit_positions();
        let positions: HashMap<i32, i64> = positions.into_iter().collect();
        let mut list = TopicPartitionList::new();
        for ((topic, partition), index) in &self.index {
            if let Some(offset) = positions.get(index) {
                if list
                    .add_partition_offset(topic, *partition, Offset::Offset(*offset))
                    .is_ok()
                {
                    if let Some(mut element) = list.find_partition(topic, *partition) {
                        element.set_metadata(closed_through.to_string());
                    }
                }
            }
        }
        list
    }
}

#[derive(Clone)]
struct SharedState(Arc<Mutex<State>>);

impl SharedState {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct AlertContext {
    connector: String,
    state: SharedState,
    topics: ActiveTopics,
    fatal: FatalClientError,
    join: GroupJoin,
}

impl NotesGroupJoin for AlertContext {
    fn group_join(&self) -> &GroupJoin {
        &self.join
    }
}

impl ClientContext for AlertContext {
    crate::msk_iam_tokens!();

    fn error(&self, error: KafkaError, reason: &str) {
        self.fatal.report(&self.connector, &error, reason);
    }
}

impl ConsumerContext for AlertContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if !matches!(rebalance, Rebalance::Revoke(_)) {
            return;
        }
        let mut state = self.state.lock();
        let list = state.commit_list();
        commit_list(&self.connector, consumer, &list, CommitMode::Sync, "revoke");
        state.windows.reset();
        state.index.clear();
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(assigned) = rebalance else {
            return;
        };
        // Where the previous owner had closed its windows: the metadata of the committed offsets.
        let committed = consumer.committed_offsets((*assigned).clone(), Duration::from_secs(10));
        let mut state = self.state.lock();
        let now = Instant::now();
        for element in assigned.elements() {
            self.topics.record(element.topic());
            let closed_through = committed.as_ref().ok().and_then(|list| {
                list.find_partition(element.topic(), element.partition())
                    .and_then(|found| found.metadata().parse::<i64>().ok())
            });
            let index = state.index(element.topic(), element.partition());
            state.windows.assign(index, closed_through, now);
        }
        self.join.completed();
    }
}

fn rfc3339(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A group value as the Avro output holds it: text, or null.
fn as_text(value: &Value) -> Value {
    match value {
        Value::Null | Value::String(_) => value.clone(),
        other => Value::String(other.to_string()),
    }
}

/// The output schema: the window, the group fields (optional strings), the count and whether it is final.
pub(crate) fn output_schema(group_names: &[String]) -> String {
    let mut fields = vec![
        json!({"name": "window_start", "type": "string"}),
        json!({"name": "window_end", "type": "string"}),
    ];
    fields.extend(
        group_names
            .iter()
            .map(|name| json!({"name": name, "type": ["null", "string"], "default": null})),
    );
    fields.push(json!({"name": "event_count", "type": "long"}));
    fields.push(json!({"name": "final", "type": "boolean"}));
    json!({"type": "record", "name": "ThresholdAlert", "namespace": "ebconnect", "fields": fields}).to_string()
}

/// Event time in epoch milliseconds: RFC 3339 text, or a number of milliseconds.
fn event_time(config: &TimeConfig, record: &Record, value: &Value) -> Result<i64, String> {
    match config {
        TimeConfig::RecordTimestamp | TimeConfig::None => {
            record.timestamp.ok_or_else(|| "the record has no timestamp".to_owned())
        }
        TimeConfig::JsonPath(path) => match path.select_one(value) {
            Some(Value::String(text)) => chrono::DateTime::parse_from_rfc3339(text)
                .map(|time| time.timestamp_millis())
                .map_err(|error| format!("{path}: `{text}` is not RFC 3339: {error}")),
            Some(Value::Number(number)) => number
                .as_i64()
                .ok_or_else(|| format!("{path}: {number} is not a whole number of milliseconds")),
            Some(other) => Err(format!("{path}: {other} is not a time")),
            None => Err(format!("{path} selects nothing")),
        },
    }
}

struct Loop<'a> {
    name: &'a str,
    consumer: &'a StreamConsumer<AlertContext>,
    metrics: ConnectorMetrics,
    config: &'a ThresholdConfig,
    state: SharedState,
    classifier: Classifier,
    policy: ErrorPolicy,
    producer: FutureProducer<ProducerErrors>,
    writer: JsonWriter,
    topics: ActiveTopics,
}

/// What a record is before it is counted.
pub(crate) enum Classified {
    /// A transform dropped it, or the filter does not match; its event time, if it has one, still moves the
    /// watermark.
    Skipped { time: Option<i64> },
    /// A record error, for the errors policy.
    Failed(RecordFailure),
    /// To be counted in the windows of its event time, in its group (the `group_by` values, in order).
    Counted { time: i64, group: Vec<Value> },
}

/// Decodes a record, runs the transforms and the filter, and takes its event time and group: everything about a
/// record but the windows, with no effect outside (the loop counts and writes, `preview` shows).
pub(crate) struct Classifier {
    pub(crate) name: String,
    pub(crate) config: ThresholdConfig,
    pub(crate) decoder: Decoder,
    pub(crate) transforms: Chain,
    pub(crate) filter: Option<Pattern>,
}

impl Classifier {
    /// The outer error is a failure that is not the record's (the registry is away).
    pub(crate) async fn classify(&self, record: &Record) -> Result<Classified, ThresholdError> {
        let failed = |stage, kind: &str, message: String| {
            Classified::Failed(RecordFailure {
                stage,
                error_kind: kind.to_owned(),
                message,
            })
        };
        let value = match decode_and_transform(&self.name, &self.decoder, &self.transforms, record)
            .await
            .map_err(ThresholdError::RegistryUnavailable)?
        {
            Transformed::Kept { applied, .. } => applied.record.value,
            Transformed::Dropped => return Ok(Classified::Skipped { time: None }),
            Transformed::Failed(failure) => return Ok(Classified::Failed(failure)),
        };
        let time = event_time(&self.config.event_time, record, &value);
        if self.filter.as_ref().is_some_and(|filter| !filter.matches(&value)) {
            return Ok(Classified::Skipped { time: time.ok() });
        }
        Ok(match time {
            Ok(time) => Classified::Counted {
                time,
                group: self
                    .config
                    .group_by
                    .values()
                    .map(|path| path.select_one(&value).cloned().unwrap_or(Value::Null))
                    .collect(),
            },
            Err(reason) => failed(Stage::Transformation, "EventTimeError", reason),
        })
    }

    /// An alert's output record: the key (the group, as JSON) and the value before it is written in the output
    /// format. Avro holds the group values as text.
    pub(crate) fn alert_record(&self, alert: &Alert, avro: bool) -> (Value, Value) {
        let mut value = Map::new();
        value.insert("window_start".into(), json!(rfc3339(alert.window_start)));
        value.insert("window_end".into(), json!(rfc3339(alert.window_end)));
        let mut key = Map::new();
        for (name, group_value) in self.config.group_by.keys().zip(&alert.group) {
            key.insert(name.clone(), group_value.clone());
            let shown = if avro {
                as_text(group_value)
            } else {
                group_value.clone()
            };
            value.insert(name.clone(), shown);
        }
        value.insert("event_count".into(), json!(alert.count));
        value.insert("final".into(), json!(alert.is_final));
        (Value::Object(key), Value::Object(value))
    }

    /// Why a record that falls only in closed windows is late.
    pub(crate) fn late_reason(time: i64) -> String {
        format!("event time {} falls only in windows already closed", rfc3339(time))
    }
}

impl Loop<'_> {
    async fn on_record(&mut self, record: Record) -> Result<(), ThresholdError> {
        emit(SinkRecordsRead {
            metrics: &self.metrics,
            count: 1,
        });
        let position = &record.position;
        let index = self.state.lock().index(&position.topic, position.partition);
        let now = Instant::now();
        match self.classifier.classify(&record).await? {
            Classified::Skipped { time } => {
                emit(RecordsSkipped {
                    metrics: &self.metrics,
                    count: 1,
                });
                self.state.lock().windows.skip(index, position.offset, time, now);
                return Ok(());
            }
            Classified::Failed(failure) => {
                self.policy.handle(&record, failure).await?;
                self.state.lock().windows.skip(index, position.offset, None, now);
                return Ok(());
            }
            Classified::Counted { time, group } => self.count(index, &record, time, group, now).await?,
        }
        self.advance().await
    }

    /// Counts the record in its group's windows; a record later than every window it falls in goes where
    /// `late_records` says.
    async fn count(
        &mut self,
        index: i32,
        record: &Record,
        time: i64,
        group: Vec<Value>,
        now: Instant,
    ) -> Result<(), ThresholdError> {
        let outcome = self
            .state
            .lock()
            .windows
            .add(index, record.position.offset, time, group, now);
        match outcome {
            Outcome::Counted(early) => self.write(early).await?,
            Outcome::AlreadyCounted => {}
            Outcome::Late => {
                let reason = Classifier::late_reason(time);
                match self.config.late_records {
                    LateRecords::Drop => emit(LateRecordDropped {
                        connector: self.name,
                        position: &record.position,
                        reason: &reason,
                    }),
                    LateRecords::Dlq => self.fail(record, Stage::Transformation, "LateRecord", reason).await?,
                }
            }
        }
        Ok(())
    }

    async fn fail(&self, record: &Record, stage: Stage, kind: &str, message: String) -> Result<(), ThresholdError> {
        let failure = RecordFailure {
            stage,
            error_kind: kind.to_owned(),
            message,
        };
        self.policy.handle(record, failure).await?;
        Ok(())
    }

    /// Closes what the watermark passed and writes its alerts.
    async fn advance(&mut self) -> Result<(), ThresholdError> {
        let alerts = self.state.lock().windows.advance(Instant::now());
        self.write(alerts).await
    }

    /// Writes alerts and waits for Kafka to acknowledge each, before anything after them is committed; exactly
    /// once, in a transaction with the commit that goes with them.
    async fn write(&self, alerts: Vec<Alert>) -> Result<(), ThresholdError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let written = match self.config.processing {
            Processing::ExactlyOnce => self.write_in_transaction(alerts).await,
            Processing::AtLeastOnce => self.write_acknowledged(alerts).await,
        };
        if written.is_err() {
            // The windows these alerts closed are gone from memory, and commits after this one (on stop, on the
            // revocation closing the consumer) would mark them closed: commit nothing more, so that the restart
            // counts their records again and writes the alerts.
            let mut state = self.state.lock();
            state.windows.reset();
            state.index.clear();
        }
        written
    }

    async fn write_acknowledged(&self, alerts: Vec<Alert>) -> Result<(), ThresholdError> {
        for delivery in self.queue(alerts).await? {
            delivery
                .await
                .map_err(|_| "the producer dropped the alert".to_owned())
                .and_then(|delivered| delivered.map_err(|(error, _)| error.to_string()))
                .map_err(|reason| ThresholdError::Output {
                    topic: self.config.output.topic.clone(),
                    reason,
                })?;
            emit(SourceRecordWritten { metrics: &self.metrics });
        }
        Ok(())
    }

    async fn write_in_transaction(&self, alerts: Vec<Alert>) -> Result<(), ThresholdError> {
        let failed = |step| move |reason: String| ThresholdError::Transaction { step, reason };
        self.producer
            .begin_transaction()
            .map_err(|error| failed("begin")(error.to_string()))?;
        let count = alerts.len();
        // Not awaited one by one: committing the transaction waits for every record in it, and fails if one failed.
        let queued = self.queue(alerts).await;
        let committed = queued.and_then(|_| {
            let offsets = self.state.lock().commit_list();
            commit_transaction(&self.producer, self.consumer, &offsets, TRANSACTION_TIMEOUT)
                .map(|()| (count, offsets.count()))
                .map_err(|(step, reason)| failed(step)(reason))
        });
        match committed {
            Ok((count, partitions)) => {
                emit(TransactionCommitted {
                    connector: self.name,
                    partitions,
                    reason: "alerts",
                });
                for _ in 0..count {
                    emit(SourceRecordWritten { metrics: &self.metrics });
                }
                Ok(())
            }
            Err(error) => {
                emit(TransactionAborted {
                    connector: self.name,
                    error: &error.to_string(),
                });
                blocking(|| self.producer.abort_transaction(TRANSACTION_TIMEOUT))
                    .map_err(|abort| failed("abort")(format!("{abort} (after: {error})")))?;
                Err(error)
            }
        }
    }

    /// Queues every alert with the producer; their acknowledgements are to be awaited.
    async fn queue(&self, alerts: Vec<Alert>) -> Result<Vec<DeliveryFuture>, ThresholdError> {
        let topic = &self.config.output.topic;
        let failed = |reason: String| ThresholdError::Output {
            topic: topic.clone(),
            reason,
        };
        let avro = matches!(self.writer, JsonWriter::Avro { .. });
        let mut deliveries = Vec::with_capacity(alerts.len());
        for alert in alerts {
            let (key, value) = self.classifier.alert_record(&alert, avro);
            let bytes = self
                .writer
                .write(&value, topic, false)
                .await
                .map_err(|error| failed(error.to_string()))?;
            let key = key.to_string();
            let record: FutureRecord<'_, str, [u8]> =
                FutureRecord::to(topic).key(key.as_str()).payload(bytes.as_slice());
            let delivery = self
                .producer
                .send_result(record)
                .map_err(|(error, _)| failed(error.to_string()))?;
            deliveries.push(delivery);
            self.topics.record(topic);
        }
        Ok(deliveries)
    }
}

/// The running parts of a threshold-alert, built from its settings.
struct ThresholdParts {
    state: SharedState,
    consumer: StreamConsumer<AlertContext>,
    fatal: FatalClientError,
    producer: FutureProducer<ProducerErrors>,
    policy: ErrorPolicy,
    writer: JsonWriter,
}

impl ThresholdConnector {
    fn build(&self, context: &ConnectorContext) -> Result<ThresholdParts, ThresholdError> {
        let name = self.parts.name.as_str();
        let config = &self.config;
        let state = SharedState(Arc::new(Mutex::new(State {
            windows: Windows::new(self.window_settings()),
            index: HashMap::new(),
        })));
        let fatal = FatalClientError::default();
        let consumer = self.consumer(context, &state, &fatal)?;
        subscribe(&consumer, &config.topics, None)?;
        let producer_config = self
            .parts
            .producer_config(&config.producer_override, &[("linger.ms", "5")], name);
        let client = |what| move |source| ThresholdError::Create { what, source };
        let producer = self
            .parts
            .output_producer(&producer_config, config.processing, &fatal)?;
        let policy = self
            .parts
            .error_policy(producer_config)
            .map_err(client("dead-letter producer"))?;
        Ok(ThresholdParts {
            state,
            consumer,
            fatal,
            producer,
            policy,
            writer: self.writer()?,
        })
    }

    pub(crate) fn classifier(&self) -> Result<Classifier, ThresholdError> {
        let config = &self.config;
        Ok(Classifier {
            name: self.parts.name.as_str().to_owned(),
            config: config.clone(),
            decoder: Decoder::new(
                &config.value,
                self.parts.worker.schema_registry.as_ref(),
                &self.parts.worker.aws,
            )?,
            transforms: self.parts.transforms.clone(),
            filter: config.filter_pattern().map_err(ThresholdError::Setting)?,
        })
    }

    pub(crate) fn window_settings(&self) -> Settings {
        let config = &self.config;
        let millis = |duration: Duration| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Settings {
            window: WindowSpec {
                size_ms: millis(config.window),
                hop_ms: millis(config.hop()),
            },
            threshold: Threshold {
                count: config.threshold.count,
                inclusive: config.threshold.op == Comparison::AtLeast,
            },
            allowed_lateness_ms: millis(config.allowed_lateness),
            watermark_delay_ms: millis(config.watermark_delay),
            idle_timeout: config.idle_timeout,
            emit_early: config.emit == Emit::Early,
        }
    }

    fn consumer(
        &self,
        context: &ConnectorContext,
        state: &SharedState,
        fatal: &FatalClientError,
    ) -> Result<StreamConsumer<AlertContext>, ThresholdError> {
        let config = &self.config;
        // Eager: every rebalance drops the whole state and rebuilds it from the commits.
        self.parts
            .eager_consumer_config(
                &config.group_id(&self.parts.name),
                &config.consumer_override,
                config.auto_offset_reset,
            )
            .create_with_context(AlertContext {
                connector: self.parts.name.as_str().to_owned(),
                state: state.clone(),
                topics: context.topics.clone(),
                fatal: fatal.clone(),
                join: GroupJoin::default(),
            })
            .map_err(|source| ThresholdError::Create {
                what: "consumer",
                source,
            })
    }

    fn writer(&self) -> Result<JsonWriter, ThresholdError> {
        let group_names: Vec<String> = self.config.group_by.keys().cloned().collect();
        Ok(match (self.config.output.format, &self.parts.worker.schema_registry) {
            (OutputFormat::Json, _) => JsonWriter::Json,
            (OutputFormat::Avro, Some(registry)) => JsonWriter::Avro {
                encoder: AvroRecordEncoder::new(crate::schema::registry::settings(registry)?, BinaryText::Base64),
                schema: WriterSchema::Supplied(output_schema(&group_names)),
            },
            (format @ (OutputFormat::Protobuf | OutputFormat::JsonSchema), _) => {
                return Err(ThresholdError::Setting(InvalidSetting::new(
                    "config.output.format",
                    format!("`{format:?}`: a threshold-alert writes `json`, or `avro` with the schema it generates"),
                )))
            }
            (OutputFormat::Avro, None) => {
                return Err(ThresholdError::Setting(InvalidSetting::new(
                    "config.output.format",
                    "`avro` needs the worker file's schema_registry",
                )))
            }
        })
    }
}

#[async_trait]
impl Connector for ThresholdConnector {
    async fn run(self: Box<Self>, context: ConnectorContext) -> Result<(), BoxError> {
        let name = self.parts.name.as_str();
        let config = &self.config;
        let parts = self.build(&context)?;
        context.started.mark();
        let mut work = Loop {
            name,
            consumer: &parts.consumer,
            metrics: ConnectorMetrics::new(name),
            config,
            state: parts.state.clone(),
            classifier: self.classifier()?,
            policy: parts.policy,
            producer: parts.producer,
            writer: parts.writer,
            topics: context.topics.clone(),
        };
        let result = work.run(&parts.fatal, &context.shutdown).await;
        // Whatever happened, what is settled is committed; a failed record stays uncommitted.
        let list = parts.state.lock().commit_list();
        commit_list(name, &parts.consumer, &list, CommitMode::Sync, "stop");
        if context.stops_alone() {
            leave_group(&parts.consumer).await;
        }
        result.map_err(Into::into)
    }
}

impl Loop<'_> {
    /// Reads and counts until shutdown or a failure; closes windows every second as the clock moves.
    async fn run(&mut self, fatal: &FatalClientError, shutdown: &CancellationToken) -> Result<(), ThresholdError> {
        let consumer = self.consumer;
        let mut commits = tokio::time::interval(self.config.commit_interval);
        let mut clock = tokio::time::interval(Duration::from_secs(1));
        // Made once, not for every record the loop turns for.
        let refused = fatal.raised();
        tokio::pin!(refused);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                reason = &mut refused => return Err(ClientFailure::Refused(reason).into()),
                message = consumer.recv() => match message {
                    Ok(message) => self.on_record(Record::from_message(&message)).await?,
                    Err(error) => {
                        if let Some(failure) = consumer_error(self.name, error, fatal) {
                            return Err(failure.into());
                        }
                    }
                },
                _ = clock.tick() => self.advance().await?,
                _ = commits.tick() => {
                    let list = self.state.lock().commit_list();
                    commit_list(self.name, consumer, &list, CommitMode::Async, "interval");
                }
            }
        }
    }
}
