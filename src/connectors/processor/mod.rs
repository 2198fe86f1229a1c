//! `type: topic-processor`: Kafka topics through the transform chain to one output topic.
//!
//! The loop reads a record, decodes it, runs the transforms (a filter or the dedupe may drop it), encodes the value
//! in the output format and writes it with the input's key, headers and timestamp. Nothing is committed per record:
//!
//! - `exactly_once`: output records are written in a Kafka transaction, and every `commit_interval` the input
//!   offsets are added to it (`send_offsets_to_transaction`, with the consumer's group metadata) and it is
//!   committed. Either both the output and the offsets count, or neither, so a `read_committed` consumer of the
//!   output sees each input record's result once. A restarted worker fences its previous incarnation by its
//!   `transactional.id` (connector name and worker id), and a member that lost its partitions in a rebalance is
//!   fenced by its group generation (KIP-447), so one producer per worker serves every partition it owns.
//! - `at_least_once`: an idempotent producer; the offsets are committed after every output record before them is
//!   acknowledged.
//!
//! Rebalancing is eager. On revocation the open transaction is committed with the offsets so far (or, at least
//! once, the producer is flushed and the offsets committed); the new assignment starts from the committed offsets.
//! With exactly-once and a `dedupe` transform, the seen set is rebuilt from the output topic after every
//! assignment (see [`seen_keys`]), so that it holds exactly what was committed.

pub mod config;
mod seen_keys;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use futures::FutureExt;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use self::config::ProcessorConfig;
use super::common::{
    commit_transaction, consumer_error, decode_and_transform, key_bytes, subscribe, ClientFailure, OutputProducerError,
    SubscribeError, Transformed, TRANSACTION_TIMEOUT,
};
use super::settings::Processing;
use super::{BoxError, Connector, ConnectorContext, ConnectorParts};
use crate::dead_letter::{ErrorPolicy, PolicyError};
use crate::kafka::consumer::{commit_list, leave_group, GroupJoin, NotesGroupJoin};
use crate::kafka::{blocking, client_config, ActiveTopics, ClientRole, FatalClientError, ProducerErrors};
use crate::record::{Record, RecordFailure, Stage};
use crate::schema::encode::JsonWriter;
use crate::schema::registry::RegistrySetupError;
use crate::schema::Decoder;
use crate::telemetry::{
    emit, ConnectorMetrics, RecordsSkipped, SinkRecordsRead, SourceRecordWritten, TransactionAborted,
    TransactionCommitted,
};
use crate::transform::Chain;

/// The header an output record carries the key the dedupe transform admitted it by: what a restart rebuilds the
/// seen set from.
pub(crate) const DEDUPE_KEY_HEADER: &str = "ebconnect.dedupe.key";

/// Output records written but not committed, past which a transaction is committed before the interval ends.
const MAX_UNCOMMITTED: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProcessorError {
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
    #[error("writing to `{topic}` failed: {reason}")]
    Output { topic: String, reason: String },
    /// The transaction was aborted cleanly: its input must be read again from the committed offsets.
    #[error("the Kafka transaction was aborted, its input to be read again: {0}")]
    Aborted(Box<ProcessorError>),
    #[error("the Kafka transaction failed ({step}): {reason}")]
    Transaction { step: &'static str, reason: String },
    #[error("rebuilding the dedupe set from `{topic}` failed: {reason}")]
    Rebuild { topic: String, reason: String },
}

pub(crate) struct ProcessorConnector {
    parts: ConnectorParts,
    config: ProcessorConfig,
}

impl ProcessorConnector {
    pub(crate) fn new(parts: ConnectorParts, config: ProcessorConfig) -> Self {
        Self { parts, config }
    }
}

/// What is written and not yet committed, shared with the rebalance callbacks.
#[derive(Default)]
struct Uncommitted {
    /// The next offset of each input partition whose records are settled (written, filtered or dead-lettered).
    offsets: HashMap<(String, i32), i64>,
    /// Exactly once: a transaction is open.
    open: bool,
    /// Output records written since the last commit, with (at least once) their acknowledgements to wait for.
    deliveries: Vec<DeliveryFuture>,
    /// Set by an assignment: the dedupe set is rebuilt before the next record.
    rebuild: bool,
    /// Why a callback could not end a transaction: the loop fails with it.
    broken: Option<String>,
}

impl Uncommitted {
    fn offset_list(&self) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in &self.offsets {
            // Adding a partition to a fresh list only fails for an invalid offset, which these are not.
            let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
        }
        list
    }

    fn clear(&mut self) {
        self.offsets.clear();
        self.deliveries.clear();
        self.open = false;
    }
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Uncommitted>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Uncommitted> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The output producer and how records are committed with it.
#[derive(Clone)]
struct Committer {
    connector: String,
    output_topic: String,
    producer: FutureProducer<ProducerErrors>,
    processing: Processing,
    shared: Shared,
}

impl Committer {
    /// Ends what is uncommitted: exactly once, commits the transaction with the offsets, or aborts it if that
    /// fails (`Aborted`: the consumer's positions are past input that must be read again); at least once, waits
    /// for the output and commits the offsets. Any other `Err` means the output producer cannot go on.
    /// Opens a transaction if none is.
    fn begin(&self, uncommitted: &mut Uncommitted) -> Result<(), ProcessorError> {
        if !uncommitted.open {
            self.producer
                .begin_transaction()
                .map_err(|error| ProcessorError::Transaction {
                    step: "begin",
                    reason: error.to_string(),
                })?;
            uncommitted.open = true;
        }
        Ok(())
    }

    fn commit<C: ConsumerContext>(&self, consumer: &impl Consumer<C>, reason: &str) -> Result<(), ProcessorError> {
        let mut uncommitted = self.shared.lock();
        let offsets = uncommitted.offset_list();
        match self.processing {
            Processing::ExactlyOnce => {
                if !uncommitted.open && offsets.count() == 0 {
                    return Ok(());
                }
                // With no transaction open, only filtered or dead-lettered records came since the last commit: their
                // offsets still go through a transaction, the one way this group's offsets are committed.
                self.begin(&mut uncommitted)?;
                let result = commit_transaction(&self.producer, consumer, &offsets, TRANSACTION_TIMEOUT)
                    .map_err(|(step, reason)| ProcessorError::Transaction { step, reason });
                uncommitted.clear();
                match result {
                    Ok(()) => {
                        emit(TransactionCommitted {
                            connector: &self.connector,
                            partitions: offsets.count(),
                            reason,
                        });
                        Ok(())
                    }
                    Err(error) => {
                        emit(TransactionAborted {
                            connector: &self.connector,
                            error: &error.to_string(),
                        });
                        blocking(|| self.producer.abort_transaction(TRANSACTION_TIMEOUT)).map_err(|abort| {
                            ProcessorError::Transaction {
                                step: "abort",
                                reason: format!("{abort} (after: {error})"),
                            }
                        })?;
                        Err(ProcessorError::Aborted(Box::new(error)))
                    }
                }
            }
            Processing::AtLeastOnce => {
                if uncommitted.deliveries.is_empty() && offsets.count() == 0 {
                    return Ok(());
                }
                let flushed = blocking(|| self.producer.flush(TRANSACTION_TIMEOUT));
                let failed = uncommitted
                    .deliveries
                    .drain(..)
                    // Flushed: every acknowledgement has arrived.
                    .filter_map(|delivery| match delivery.now_or_never() {
                        Some(Ok(Ok(_))) => None,
                        Some(Ok(Err((error, _)))) => Some(error.to_string()),
                        Some(Err(_)) | None => Some("the producer dropped the record".to_owned()),
                    })
                    .next();
                if let Some(reason) = flushed.err().map(|error| error.to_string()).or(failed) {
                    uncommitted.clear();
                    return Err(ProcessorError::Output {
                        topic: self.output_topic.clone(),
                        reason,
                    });
                }
                commit_list(&self.connector, consumer, &offsets, CommitMode::Sync, reason);
                uncommitted.clear();
                Ok(())
            }
        }
    }
}

struct ProcessorContext {
    committer: Committer,
    topics: ActiveTopics,
    fatal: FatalClientError,
    join: GroupJoin,
}

impl NotesGroupJoin for ProcessorContext {
    fn group_join(&self) -> &GroupJoin {
        &self.join
    }
}

impl ClientContext for ProcessorContext {
    crate::msk_iam_tokens!();

    fn error(&self, error: KafkaError, reason: &str) {
        self.fatal.report(&self.committer.connector, &error, reason);
    }
}

impl ConsumerContext for ProcessorContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if !matches!(rebalance, Rebalance::Revoke(_)) {
            return;
        }
        // What was done for the partitions going away counts before another member takes them over. A transaction
        // that cannot commit (this member was fenced: the group moved on without it) is aborted, and the next
        // assignment reads from the committed offsets anyway.
        match self.committer.commit(consumer, "revoke") {
            Ok(()) | Err(ProcessorError::Aborted(_)) => {}
            Err(error) => self.committer.shared.lock().broken = Some(error.to_string()),
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(assigned) = rebalance else {
            return;
        };
        for element in assigned.elements() {
            self.topics.record(element.topic());
        }
        self.committer.shared.lock().rebuild = true;
        self.join.completed();
    }
}

/// A record's fate in the processor.
pub(crate) enum Processed {
    /// The output record before the output format: its key bytes, its value (`None`: a tombstone, passed as it
    /// is), and the key the dedupe admitted it by.
    Output {
        key: Option<Vec<u8>>,
        value: Option<Value>,
        dedupe_key: Option<String>,
    },
    /// A filter or the dedupe dropped it.
    Skipped,
    /// A record error, for the errors policy.
    Failed(RecordFailure),
}

/// Decodes and transforms one record, with no effect outside but the dedupe's memory: the loop writes, `preview`
/// shows.
pub(crate) struct RecordProcessor {
    pub(crate) name: String,
    pub(crate) decoder: Decoder,
    pub(crate) transforms: Chain,
}

impl RecordProcessor {
    /// The outer error is a failure that is not the record's (the registry is away).
    pub(crate) async fn process(&self, record: &Record) -> Result<Processed, ProcessorError> {
        // A tombstone passes as it is: it deletes its key downstream as it did upstream.
        if record.value.is_none() {
            return Ok(Processed::Output {
                key: record.key.clone(),
                value: None,
                dedupe_key: None,
            });
        }
        let (applied, key) = match decode_and_transform(&self.name, &self.decoder, &self.transforms, record)
            .await
            .map_err(ProcessorError::RegistryUnavailable)?
        {
            Transformed::Kept { applied, input_key } => (applied, input_key),
            Transformed::Dropped => return Ok(Processed::Skipped),
            Transformed::Failed(failure) => return Ok(Processed::Failed(failure)),
        };
        // The input's key bytes unless a transform set another key.
        let output_key = if applied.record.key == key {
            record.key.clone()
        } else {
            key_bytes(&applied.record.key)
        };
        Ok(Processed::Output {
            key: output_key,
            value: Some(applied.record.value),
            dedupe_key: applied.dedupe_key,
        })
    }
}

struct Loop<'a> {
    name: &'a str,
    config: &'a ProcessorConfig,
    metrics: ConnectorMetrics,
    processor: RecordProcessor,
    writer: JsonWriter,
    committer: Committer,
    policy: ErrorPolicy,
    topics: ActiveTopics,
    /// Settings for the consumer that reads the output topic back for the dedupe set.
    reader_config: rdkafka::ClientConfig,
}

impl Loop<'_> {
    async fn run(
        &mut self,
        consumer: &StreamConsumer<ProcessorContext>,
        fatal: &FatalClientError,
        shutdown: &CancellationToken,
    ) -> Result<(), ProcessorError> {
        let mut commits = tokio::time::interval(self.config.commit_interval);
        let refused = fatal.raised();
        tokio::pin!(refused);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                reason = &mut refused => return Err(ClientFailure::Refused(reason).into()),
                message = consumer.recv() => match message {
                    Ok(message) => {
                        let record = Record::from_message(&message);
                        drop(message);
                        self.before_record().await?;
                        self.on_record(consumer, record).await?;
                    }
                    Err(error) => {
                        if let Some(failure) = consumer_error(self.name, error, fatal) {
                            return Err(failure.into());
                        }
                    }
                },
                _ = commits.tick() => self.committer.commit(consumer, "interval")?,
            }
        }
    }

    /// What a rebalance left to do: fail if a transaction could not be ended, rebuild the dedupe set after an
    /// assignment.
    async fn before_record(&mut self) -> Result<(), ProcessorError> {
        let rebuild = {
            let mut uncommitted = self.committer.shared.lock();
            if let Some(reason) = uncommitted.broken.take() {
                return Err(ProcessorError::Transaction {
                    step: "rebalance",
                    reason,
                });
            }
            std::mem::take(&mut uncommitted.rebuild)
        };
        if !rebuild || self.config.processing != Processing::ExactlyOnce {
            return Ok(());
        }
        let Some(dedupe) = self.processor.transforms.dedupe() else {
            return Ok(());
        };
        let topic = self.config.output.topic.clone();
        let config = self.reader_config.clone();
        let window = dedupe.window();
        let connector = self.name.to_owned();
        let keys = tokio::task::spawn_blocking(move || seen_keys::read(&connector, &config, &topic, window))
            .await
            .map_err(|error| error.to_string())
            .and_then(|keys| keys);
        let keys = keys.map_err(|reason| ProcessorError::Rebuild {
            topic: self.config.output.topic.clone(),
            reason,
        })?;
        dedupe.restore(keys);
        Ok(())
    }

    async fn on_record(
        &mut self,
        consumer: &StreamConsumer<ProcessorContext>,
        record: Record,
    ) -> Result<(), ProcessorError> {
        emit(SinkRecordsRead {
            metrics: &self.metrics,
            count: 1,
        });
        match self.processor.process(&record).await? {
            Processed::Skipped => emit(RecordsSkipped {
                metrics: &self.metrics,
                count: 1,
            }),
            Processed::Failed(failure) => self.dead_letter(&record, failure).await?,
            Processed::Output { key, value, dedupe_key } => {
                let encoded = match &value {
                    None => Ok(None),
                    Some(value) => self
                        .writer
                        .write(value, &self.config.output.topic, false)
                        .await
                        .map(Some),
                };
                match encoded {
                    Ok(bytes) => self.write(consumer, &record, key, bytes, dedupe_key)?,
                    Err(error) if error.is_transient() => {
                        return Err(ProcessorError::RegistryUnavailable(error.to_string()))
                    }
                    Err(error) => {
                        let failure = RecordFailure {
                            stage: Stage::ValueConverter,
                            error_kind: "EncodeError".to_owned(),
                            message: error.to_string(),
                        };
                        self.dead_letter(&record, failure).await?;
                    }
                }
            }
        }
        let position = &record.position;
        self.committer
            .shared
            .lock()
            .offsets
            .insert((position.topic.clone(), position.partition), position.offset + 1);
        Ok(())
    }

    fn write(
        &mut self,
        consumer: &StreamConsumer<ProcessorContext>,
        record: &Record,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        dedupe_key: Option<String>,
    ) -> Result<(), ProcessorError> {
        let topic = self.config.output.topic.as_str();
        let dedupe_header: Vec<(&str, &str)> = dedupe_key.iter().map(|key| (DEDUPE_KEY_HEADER, key.as_str())).collect();
        let headers = record.headers_and(&dedupe_header);
        let mut output: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
        if let Some(key) = &key {
            output = output.key(key.as_slice());
        }
        if let Some(value) = &value {
            output = output.payload(value.as_slice());
        }
        if let Some(timestamp) = record.timestamp {
            output = output.timestamp(timestamp);
        }
        if self.committer.shared.lock().deliveries.len() >= MAX_UNCOMMITTED {
            self.committer.commit(consumer, "size")?;
        }
        self.begin()?;
        let delivery = match self.committer.producer.send_result(output) {
            Ok(delivery) => delivery,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), output)) => {
                // The producer's queue is full: commit, which drains it, and try once more.
                self.committer.commit(consumer, "queue full")?;
                self.begin()?;
                self.committer
                    .producer
                    .send_result(output)
                    .map_err(|(error, _)| self.output_error(&error))?
            }
            Err((error, _)) => return Err(self.output_error(&error)),
        };
        self.committer.shared.lock().deliveries.push(delivery);
        self.topics.record(topic);
        emit(SourceRecordWritten { metrics: &self.metrics });
        Ok(())
    }

    /// A record error, for the errors policy. With exactly once its dead letter is written in the open
    /// transaction, so that a crash before the commit leaves no dead letter behind for a record read again.
    async fn dead_letter(&self, record: &Record, failure: RecordFailure) -> Result<(), ProcessorError> {
        if self.config.processing == Processing::ExactlyOnce {
            self.begin()?;
            self.policy
                .handle_in_transaction(record, failure, &self.committer.producer)
                .await?;
        } else {
            self.policy.handle(record, failure).await?;
        }
        Ok(())
    }

    /// Exactly once: opens a transaction if none is.
    fn begin(&self) -> Result<(), ProcessorError> {
        if self.config.processing != Processing::ExactlyOnce {
            return Ok(());
        }
        self.committer.begin(&mut self.committer.shared.lock())
    }

    fn output_error(&self, error: &KafkaError) -> ProcessorError {
        ProcessorError::Output {
            topic: self.config.output.topic.clone(),
            reason: error.to_string(),
        }
    }
}

/// The running parts of a topic-processor, built from its settings.
struct ProcessorParts {
    consumer: StreamConsumer<ProcessorContext>,
    fatal: FatalClientError,
    committer: Committer,
    policy: ErrorPolicy,
}

impl ProcessorConnector {
    fn build(&self, context: &ConnectorContext) -> Result<ProcessorParts, ProcessorError> {
        let name = self.parts.name.as_str();
        let config = &self.config;
        let fatal = FatalClientError::default();
        let client = |what| move |source| ProcessorError::Create { what, source };
        let producer_config = self
            .parts
            .producer_config(&config.producer_override, &[("linger.ms", "5")], name);
        let producer = self
            .parts
            .output_producer(&producer_config, config.processing, &fatal)?;
        let committer = Committer {
            connector: name.to_owned(),
            output_topic: config.output.topic.clone(),
            producer,
            processing: config.processing,
            shared: Shared::default(),
        };
        let consumer: StreamConsumer<ProcessorContext> = self
            .consumer_config()
            .create_with_context(ProcessorContext {
                committer: committer.clone(),
                topics: context.topics.clone(),
                fatal: fatal.clone(),
                join: GroupJoin::default(),
            })
            .map_err(client("consumer"))?;
        subscribe(&consumer, &config.topics, None)?;
        // Exactly once, dead letters are written with the output's transactional producer (`dead_letter`).
        let policy = match config.processing {
            Processing::ExactlyOnce => ErrorPolicy::for_transactions(name, self.parts.errors.clone(), producer_config),
            Processing::AtLeastOnce => self
                .parts
                .error_policy(producer_config)
                .map_err(client("dead-letter producer"))?,
        };
        Ok(ProcessorParts {
            consumer,
            fatal,
            committer,
            policy,
        })
    }

    /// Eager: a revocation ends the open transaction for every partition at once.
    fn consumer_config(&self) -> rdkafka::ClientConfig {
        let config = &self.config;
        self.parts.eager_consumer_config(
            &config.group_id(&self.parts.name),
            &config.consumer_override,
            config.auto_offset_reset,
        )
    }

    /// The settings of the consumer that reads the output back: committed records only, from where it is told.
    fn reader_config(&self) -> rdkafka::ClientConfig {
        client_config(
            &self.parts.worker.kafka,
            ClientRole::Consumer,
            &self.config.consumer_override,
            &[],
            &[
                (
                    "group.id",
                    &format!("{}-dedupe-rebuild", self.config.group_id(&self.parts.name)),
                ),
                ("enable.auto.commit", "false"),
                ("isolation.level", "read_committed"),
                ("enable.partition.eof", "true"),
            ],
        )
    }

    pub(crate) fn record_processor(&self) -> Result<RecordProcessor, ProcessorError> {
        let config = &self.config;
        let registry = self.parts.worker.schema_registry.as_ref();
        Ok(RecordProcessor {
            name: self.parts.name.as_str().to_owned(),
            decoder: Decoder::new(&config.value, registry, &self.parts.worker.aws)?,
            transforms: self.parts.transforms.clone(),
        })
    }
}

#[async_trait]
impl Connector for ProcessorConnector {
    async fn run(self: Box<Self>, context: ConnectorContext) -> Result<(), BoxError> {
        let name = self.parts.name.as_str();
        let parts = self.build(&context)?;
        context.started.mark();
        let mut work = Loop {
            name,
            config: &self.config,
            metrics: ConnectorMetrics::new(name),
            processor: self.record_processor()?,
            writer: self
                .config
                .output
                .value
                .writer(self.parts.worker.schema_registry.as_ref())?,
            committer: parts.committer.clone(),
            policy: parts.policy,
            topics: context.topics.clone(),
            reader_config: self.reader_config(),
        };
        let result = work.run(&parts.consumer, &parts.fatal, &context.shutdown).await;
        // On a clean stop what was done is committed; after a failure the open transaction is aborted by the
        // commit's error path or left to be fenced by the restart.
        let stopped = match result {
            Ok(()) => parts.committer.commit(&parts.consumer, "stop"),
            Err(error) => Err(error),
        };
        if context.stops_alone() {
            leave_group(&parts.consumer).await;
        }
        stopped.map_err(Into::into)
    }
}
