//! `type: eventbridge-sink`: Kafka topics to an EventBridge bus, at least once.
//!
//! One loop owns the consumer, the offsets and the batches. It reads whatever records the consumer has at hand (up
//! to a chunk), tracks their offsets and hands the chunk to a task that decodes, transforms and builds the entries
//! (`prepare`), so that this work, most of the CPU time per record, runs on every core. Prepared chunks come back
//! in the order they were read and go into the batcher; closed batches go out as PutEvents requests, up to
//! `request.max_in_flight` at once; a batch waiting to retry frees its slot meanwhile. Finished requests are
//! handled before new records are read, so settled offsets move as early as possible, and the consumer pauses while
//! `max_buffered_records` records are unsettled. On shutdown nothing more is sent: requests already out are waited
//! for, and what settled is committed.

pub mod config;
pub mod offload;
pub mod prepare;
pub mod request_builder;

/// Records read at once and prepared by one task. A task runs its chunk without yielding (the registry's schemas
/// are cached), so chunks are kept small enough not to hold up the delivery tasks on the same core: 64 halved the
/// throughput, 16 did not.
const PREPARE_CHUNK: usize = 16;

/// How long reading may be held at `max_buffered_records` before the partitions are paused.
const PAUSE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::BorrowedMessage;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use self::config::SinkConfig;
use self::offload::{S3Uploader, Upload};
use self::prepare::{Prepared, PreparedChunk, RecordPreparer};
use self::request_builder::EntryBuilder;
use super::common::{consumer_error, subscribe, ClientFailure, SubscribeError};
use super::{BoxError, Connector, ConnectorContext, ConnectorParts, Progress};
use crate::aws::{endpoint_override, sdk_config, service_config, Service};
use crate::dead_letter::{ErrorPolicy, PolicyError};
use crate::eventbridge::adaptive::RequestSlots;
use crate::eventbridge::delivery::{Deliverer, Delivery, DeliveryError, OutageWarning, Settled};
use crate::eventbridge::endpoint::{self, EndpointError};
use crate::eventbridge::service::ServiceSetupError;
use crate::eventbridge::{Batcher, Entry, PutEventsService};
use crate::kafka::consumer::{commit, leave_group, GroupJoin, SharedTracker, TrackingContext};
use crate::kafka::offsets::Ticket;
use crate::kafka::{client_config, group_member, ClientRole, FatalClientError};
use crate::record::{MessageHeaders, Record};
use crate::record::{RecordFailure, Stage};
use crate::schema::registry::RegistrySetupError;
use crate::schema::{DecodeError, Decoder};
use crate::telemetry::{
    emit, ConnectorMetrics, RecordsSkipped, RevokedRecordsDropped, SinkRecordsRead, SinkRecordsSent,
};

#[derive(Debug, thiserror::Error)]
pub(crate) enum SinkError {
    #[error("cannot create the Kafka consumer: {0}")]
    Consumer(#[source] KafkaError),
    #[error(transparent)]
    Client(#[from] ClientFailure),
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
    #[error("cannot create the dead-letter producer: {0}")]
    DeadLetterProducer(#[source] KafkaError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("PutEvents to `{bus}`: {source}")]
    Delivery { bus: String, source: DeliveryError },
    #[error("a PutEvents delivery task failed: {0}")]
    DeliveryPanicked(String),
    #[error("a task preparing records failed: {0}")]
    PreparePanicked(String),
    #[error(transparent)]
    RegistrySetup(#[from] RegistrySetupError),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    Service(#[from] ServiceSetupError),
    /// The registry could not be reached and the connector stopped while it waited: the record is not at fault, so
    /// it is read again on the next start.
    #[error("decoding record {topic}/{partition}@{offset}: {source}")]
    Registry {
        topic: String,
        partition: i32,
        offset: i64,
        source: DecodeError,
    },
}

pub(crate) struct SinkConnector {
    parts: ConnectorParts,
    config: SinkConfig,
}

impl SinkConnector {
    pub(crate) fn new(parts: ConnectorParts, config: SinkConfig) -> Self {
        Self { parts, config }
    }
}

/// A record on its way to EventBridge.
struct InFlight {
    ticket: Ticket,
    record: Record,
    entry: Entry,
    /// The offloaded part, written to S3 before the entry is sent.
    upload: Option<Upload>,
}

impl AsRef<Entry> for InFlight {
    fn as_ref(&self) -> &Entry {
        &self.entry
    }
}

impl AsMut<Entry> for InFlight {
    fn as_mut(&mut self) -> &mut Entry {
        &mut self.entry
    }
}

/// What a finished piece of background work reports back to the loop.
enum Completion {
    Delivered(Delivery<InFlight>),
    /// A failed record went through the errors policy.
    Handled(Ticket, Result<(), PolicyError>),
    /// A delivery task ended without a result; its records stay unsettled.
    DeliveryPanicked(String),
}

struct Loop<'a> {
    name: &'a str,
    metrics: ConnectorMetrics,
    config: &'a SinkConfig,
    consumer: &'a StreamConsumer<TrackingContext>,
    tracker: SharedTracker,
    preparer: Arc<RecordPreparer>,
    /// Chunks of records being prepared, in the order they were read.
    preparing: FuturesOrdered<JoinHandle<Result<PreparedChunk, SinkError>>>,
    policy: ErrorPolicy,
    /// Copied only when an entry or a dead letter is built from them.
    message_headers: MessageHeaders,
    deliverer: Arc<Deliverer>,
    uploader: Option<Arc<S3Uploader>>,
    batcher: Batcher<InFlight>,
    ready: VecDeque<Vec<InFlight>>,
    in_flight: FuturesUnordered<BoxFuture<'static, Completion>>,
    phase: Phase,
    /// Since when `max_buffered_records` are unsettled: reading waits meanwhile.
    full_since: Option<Instant>,
    paused: bool,
    failure: Option<SinkError>,
    progress: &'a Progress,
}

/// Where the loop is on its way from reading to returning; it only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Reading, preparing and sending.
    Consuming,
    /// A record the errors policy did not tolerate: nothing more is read, and what was read before it is still
    /// delivered, so that the commit reaches it.
    Finishing,
    /// Shutdown, or a failure to send (PutEvents, S3, the dead-letter topic): nothing more is read or sent, and
    /// requests already out are waited for. What was read but not sent stays uncommitted and is read again.
    Draining,
}

impl Loop<'_> {
    fn enter(&mut self, phase: Phase) {
        self.phase = self.phase.max(phase);
    }

    fn fail(&mut self, error: SinkError) {
        if matches!(error, SinkError::Policy(PolicyError::NotTolerated { .. })) {
            self.enter(Phase::Finishing);
        } else {
            self.enter(Phase::Draining);
            // Batches waiting to retry come back now instead of retrying until the throttling ends.
            self.deliverer.stopping.cancel();
        }
        if self.failure.is_none() {
            self.failure = Some(error);
        }
    }

    /// Tracks a chunk of records just read and hands it to a task that prepares their entries.
    fn on_records(&mut self, records: Vec<Record>) {
        emit(SinkRecordsRead {
            metrics: &self.metrics,
            count: records.len() as u64,
        });
        let chunk: Vec<(Ticket, Record)> = {
            let mut tracker = self.tracker.lock();
            records
                .into_iter()
                .map(|record| {
                    let position = &record.position;
                    (
                        tracker.track(&position.topic, position.partition, position.offset),
                        record,
                    )
                })
                .collect()
        };
        let preparer = self.preparer.clone();
        self.preparing
            .push_back(tokio::spawn(async move { preparer.prepare_chunk(chunk).await }));
    }

    /// Takes a prepared chunk, in the order it was read: entries into batches, filtered records settled, record
    /// errors to the errors policy.
    fn on_prepared(&mut self, chunk: Result<PreparedChunk, SinkError>) {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            // While draining, a chunk cut short (its wait for the registry ended) is simply not delivered: its
            // records stay unsettled and are read again on the next start.
            Err(_) if self.phase == Phase::Draining => return,
            Err(error) => return self.fail(error),
        };
        let mut filtered = 0;
        for (ticket, record, prepared) in chunk {
            match prepared {
                Prepared::Entry { entry, upload, size } => {
                    // Until it settles, the record is needed only if its entry may fail into a dead letter.
                    let record = if self.policy.writes_dead_letters() {
                        record
                    } else {
                        record.without_payload()
                    };
                    let item = InFlight {
                        ticket,
                        record,
                        entry,
                        upload,
                    };
                    for batch in self.batcher.push(item, size) {
                        self.ready.push_back(batch);
                    }
                }
                Prepared::Filtered => {
                    self.tracker.lock().settle(&ticket);
                    filtered += 1;
                }
                Prepared::Failed(failure) => self.on_failure(ticket, record, failure),
            }
        }
        if filtered > 0 {
            emit(RecordsSkipped {
                metrics: &self.metrics,
                count: filtered,
            });
        }
        // Once nothing more is read, what was last prepared goes out without waiting for the linger.
        if self.phase != Phase::Consuming && self.preparing.is_empty() {
            self.flush();
        }
    }

    fn on_failure(&mut self, ticket: Ticket, record: Record, failure: RecordFailure) {
        let policy = self.policy.clone();
        self.in_flight.push(
            async move {
                let result = policy.handle(&record, failure).await;
                Completion::Handled(ticket, result)
            }
            .boxed(),
        );
    }

    fn on_completion(&mut self, completion: Completion) {
        self.settle_completion(completion);
        // Progress is records finished for good (delivered or dead-lettered); deliveries behind a record that keeps
        // failing are not, since they commit nothing.
        if !self.progress.was_made() && self.tracker.lock().has_advanced() {
            self.progress.made();
        }
    }

    fn settle_completion(&mut self, completion: Completion) {
        match completion {
            Completion::Handled(ticket, Ok(())) => {
                self.tracker.lock().settle(&ticket);
            }
            Completion::Handled(_, Err(error)) => self.fail(error.into()),
            Completion::DeliveryPanicked(reason) => self.fail(SinkError::DeliveryPanicked(reason)),
            Completion::Delivered(delivery) => {
                let mut sent = 0;
                for (item, settled) in delivery.settled {
                    match settled {
                        Settled::Delivered { .. } => {
                            self.tracker.lock().settle(&item.ticket);
                            sent += 1;
                        }
                        Settled::Rejected { code, message } => {
                            let failure = RecordFailure {
                                stage: Stage::TaskPut,
                                error_kind: code,
                                message,
                            };
                            self.on_failure(item.ticket, item.record, failure);
                        }
                    }
                }
                emit(SinkRecordsSent {
                    metrics: &self.metrics,
                    count: sent,
                });
                if let Some(error) = delivery.error {
                    self.fail(SinkError::Delivery {
                        bus: self.config.event_bus.clone(),
                        source: error,
                    });
                }
            }
        }
    }

    /// Whether a batch waits for a request slot.
    fn wants_slot(&self) -> bool {
        self.phase != Phase::Draining && !self.ready.is_empty()
    }

    /// Sends ready batches while request slots are free.
    fn dispatch(&mut self) {
        while self.wants_slot() {
            let Some(slot) = self.deliverer.slots.try_acquire() else {
                break;
            };
            self.send(slot);
        }
    }

    /// The next ready batch, without the records of partitions revoked since they were read: their next owner
    /// reads them again, and sending them here too would only deliver them twice.
    fn next_batch(&mut self) -> Option<Vec<InFlight>> {
        while let Some(mut batch) = self.ready.pop_front() {
            let read = batch.len();
            {
                let tracker = self.tracker.lock();
                batch.retain(|item| tracker.is_current(&item.ticket));
            }
            if batch.len() < read {
                emit(RevokedRecordsDropped {
                    metrics: &self.metrics,
                    count: read - batch.len(),
                });
            }
            if !batch.is_empty() {
                return Some(batch);
            }
        }
        None
    }

    /// Sends the next ready batch in `slot`.
    fn send(&mut self, slot: OwnedSemaphorePermit) {
        if let Some(batch) = self.next_batch() {
            let deliverer = self.deliverer.clone();
            let uploader = self.uploader.clone();
            // A task of its own: building, signing and sending requests then runs on every core, not only on the
            // one that runs this loop.
            let delivery = tokio::spawn(async move {
                // Offloaded parts go to S3 first, so that no event refers to an object that does not exist.
                if let Some(uploader) = uploader {
                    let uploads = batch.iter().filter_map(|item| item.upload.as_ref());
                    if let Err(error) = uploader.upload_all(uploads).await {
                        return Delivery {
                            settled: Vec::new(),
                            unsettled: batch,
                            error: Some(error),
                            attempts: 0,
                        };
                    }
                }
                deliverer.deliver(batch, slot).await
            });
            self.in_flight.push(
                delivery
                    .map(|joined| match joined {
                        Ok(delivery) => Completion::Delivered(delivery),
                        Err(error) => Completion::DeliveryPanicked(error.to_string()),
                    })
                    .boxed(),
            );
        }
    }

    fn flush(&mut self) {
        if let Some(batch) = self.batcher.take() {
            self.ready.push_back(batch);
        }
    }

    /// Holds reading while `max_buffered_records` are unsettled, so memory stays bounded. Holding reading costs
    /// nothing; pausing the partitions makes librdkafka drop what it prefetched and fetch it again on resume, which
    /// at 30 ms per request left half the request slots empty. So the partitions are paused only when reading has
    /// been held for `PAUSE_AFTER` (a stall, during which the consumer must still be polled to stay in its group).
    fn apply_backpressure(&mut self) {
        let pending = self.tracker.lock().pending();
        let full = pending >= self.config.max_buffered_records;
        match (full, self.full_since) {
            (true, None) => self.full_since = Some(Instant::now()),
            (false, Some(_)) => self.full_since = None,
            _ => {}
        }
        let want_paused = self.full_since.is_some_and(|since| since.elapsed() >= PAUSE_AFTER);
        // Resume at half, so that the consumer does not flap around the limit.
        let want_resumed = pending <= self.config.max_buffered_records / 2;
        if want_paused == self.paused || (self.paused && !want_resumed) {
            return;
        }
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let result = if want_paused {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        if result.is_ok() {
            self.paused = want_paused;
        }
    }

    /// Whether the loop reads more records: while consuming and under `max_buffered_records`, or paused (the
    /// consumer then gives nothing but must be polled).
    fn reading(&self) -> bool {
        self.phase == Phase::Consuming && (self.full_since.is_none() || self.paused)
    }

    fn is_done(&self) -> bool {
        match self.phase {
            Phase::Consuming => false,
            Phase::Finishing => {
                self.in_flight.is_empty()
                    && self.preparing.is_empty()
                    && self.ready.is_empty()
                    && self.batcher.is_empty()
            }
            Phase::Draining => self.in_flight.is_empty(),
        }
    }

    fn commit(&self, mode: CommitMode, reason: &str) {
        let offsets = self.tracker.lock().to_commit();
        commit(self.name, self.consumer, &offsets, mode, reason);
    }

    /// Reads, prepares, sends and settles until `is_done`, then commits what settled.
    async fn run(mut self, shutdown: &CancellationToken, fatal: &FatalClientError) -> Result<(), SinkError> {
        let consumer = self.consumer;
        // Whatever the consumer has at hand, up to a chunk: one record at a time when they trickle in, chunks
        // that keep every core busy when they stream.
        let mut messages = consumer.stream().ready_chunks(PREPARE_CHUNK);
        let max_preparing = std::thread::available_parallelism().map_or(2, usize::from) * 2;
        let mut commit_timer = tokio::time::interval(self.config.commit_interval);
        commit_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Made once, not on each turn of the loop: the loop turns for every chunk of records.
        let refused = fatal.raised();
        tokio::pin!(refused);
        while !self.is_done() {
            self.dispatch();
            let linger_until = self
                .batcher
                .opened_at()
                .map(|opened| Instant::from_std(opened) + self.config.batch.linger);
            tokio::select! {
                biased;
                () = shutdown.cancelled(), if self.phase != Phase::Draining => self.enter(Phase::Draining),
                Some(completion) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.on_completion(completion);
                }
                reason = &mut refused, if self.failure.is_none() => self.fail(ClientFailure::Refused(reason).into()),
                Ok(slot) = self.deliverer.slots.acquire(), if self.wants_slot() => self.send(slot),
                _ = commit_timer.tick() => self.commit(CommitMode::Async, "interval"),
                () = tokio::time::sleep_until(linger_until.unwrap_or_else(Instant::now)), if linger_until.is_some() => {
                    self.flush();
                }
                Some(prepared) = self.preparing.next(), if !self.preparing.is_empty() => {
                    self.on_prepared(prepared.unwrap_or_else(|error| Err(SinkError::PreparePanicked(error.to_string()))));
                }
                messages = messages.next(), if self.reading() && self.preparing.len() < max_preparing => {
                    match messages {
                        Some(messages) => self.on_messages(messages, fatal),
                        None => self.fail(ClientFailure::Consumer(KafkaError::NoMessageReceived).into()),
                    }
                }
            }
            self.apply_backpressure();
        }
        self.commit(CommitMode::Sync, "stop");
        self.failure.map_or(Ok(()), Err)
    }

    /// A chunk of what the consumer had at hand: its records go to be prepared, a fatal error fails the loop.
    fn on_messages(&mut self, messages: Vec<KafkaResult<BorrowedMessage<'_>>>, fatal: &FatalClientError) {
        let mut records = Vec::with_capacity(messages.len());
        for message in messages {
            match message {
                Ok(message) => records.push(Record::from_message_reading(&message, self.message_headers)),
                Err(error) => {
                    if let Some(failure) = consumer_error(self.name, error, fatal) {
                        self.fail(failure.into());
                    }
                }
            }
        }
        if !records.is_empty() {
            self.on_records(records);
        }
    }
}

/// The running parts of a sink, built from its settings.
struct SinkParts {
    consumer: StreamConsumer<TrackingContext>,
    tracker: SharedTracker,
    fatal: FatalClientError,
    policy: ErrorPolicy,
    deliverer: Arc<Deliverer>,
    uploader: Option<Arc<S3Uploader>>,
    preparer: Arc<RecordPreparer>,
}

impl SinkConnector {
    async fn build(&self, context: &ConnectorContext) -> Result<SinkParts, SinkError> {
        let name = self.parts.name.as_str();
        let config = &self.config;
        let tracker = SharedTracker::default();
        let fatal = FatalClientError::default();
        let consumer = self.consumer(context, &tracker, &fatal)?;
        let producer_config = self
            .parts
            .producer_config(&config.producer_override, &[], &format!("{name}-dlq"));
        let policy = self
            .parts
            .error_policy(producer_config)
            .map_err(SinkError::DeadLetterProducer)?;
        let sdk = sdk_config(&self.parts.worker.aws).await;
        let deliverer = Arc::new(self.deliverer(&sdk, context).await?);
        let preparer = Arc::new(self.preparer(deliverer.stopping.clone())?);
        subscribe(&consumer, &config.topics, config.topics_regex.as_deref())?;
        Ok(SinkParts {
            consumer,
            tracker,
            fatal,
            policy,
            deliverer,
            uploader: config.offload.is_some().then(|| Arc::new(self.uploader(&sdk))),
            preparer,
        })
    }

    fn consumer(
        &self,
        context: &ConnectorContext,
        tracker: &SharedTracker,
        fatal: &FatalClientError,
    ) -> Result<StreamConsumer<TrackingContext>, SinkError> {
        let config = &self.config;
        let group_id = config.group_id(&self.parts.name);
        group_member(
            client_config(
                &self.parts.worker.kafka,
                ClientRole::Consumer,
                &config.consumer_override,
                // librdkafka prefetches up to 64 MiB by default. With the short backoff below it fetches again
                // within milliseconds, so 2 MiB (about 25 ms of records at 90,000/s) keeps the sink fed; 4 MiB
                // cost 4-7 MiB more peak RSS and 16 MiB 15 MiB more, for no more throughput.
                &[
                    ("queued.max.messages.kbytes", "2048"),
                    ("queued.min.messages", "20000"),
                    // librdkafka waits this long (1 s by default) to fetch again once the queue above is full; the
                    // queue holds less than a second of records, so it ran dry and capped the sink at ~22,000 records/s.
                    ("fetch.queue.backoff.ms", "10"),
                    // A fetch takes up to this much of each partition (1 MiB by default), held until its last record
                    // is taken: 256 KiB cut the peak RSS by 5-10 MiB at the same throughput. A larger record batch
                    // still comes whole (KIP-74), so `message.max.bytes` need not change with it.
                    ("max.partition.fetch.bytes", "262144"),
                    // For the consumer lag metric.
                    ("statistics.interval.ms", "10000"),
                ],
                &[
                    ("group.id", &group_id),
                    ("enable.auto.commit", "false"),
                    ("enable.auto.offset.store", "false"),
                    ("auto.offset.reset", config.auto_offset_reset.as_librdkafka()),
                    ("partition.assignment.strategy", "cooperative-sticky"),
                    ("enable.partition.eof", "false"),
                ],
            ),
            &self.parts.worker,
        )
        .create_with_context(TrackingContext {
            connector: self.parts.name.as_str().to_owned(),
            tracker: tracker.clone(),
            topics: context.topics.clone(),
            fatal: fatal.clone(),
            join: GroupJoin::default(),
        })
        .map_err(SinkError::Consumer)
    }

    /// What turns a record into its entry. `stopping` ends a wait for an unreachable registry.
    pub(crate) fn preparer(&self, stopping: CancellationToken) -> Result<RecordPreparer, SinkError> {
        let config = &self.config;
        let registry = self.parts.worker.schema_registry.as_ref();
        let value_decoder = Decoder::new(&config.value, registry, &self.parts.worker.aws)?;
        let builder = EntryBuilder::new(&self.parts.name, config);
        // Transforms change the value, so it must be built first.
        let text_detail = if self.parts.transforms.is_empty() && value_decoder.writes_quoted() {
            builder.text_detail_capture()
        } else {
            None
        };
        Ok(RecordPreparer {
            connector: self.parts.name.as_str().to_owned(),
            key_decoder: Decoder::new(&config.key, registry, &self.parts.worker.aws)?,
            value_decoder,
            transforms: self.parts.transforms.clone(),
            builder,
            text_detail,
            max_bytes: config.batch.max_bytes,
            stopping,
        })
    }

    /// PutEvents to the connector's bus, through its endpoint.
    pub(crate) async fn service(&self, sdk: &aws_config::SdkConfig) -> Result<PutEventsService, SinkError> {
        let config = &self.config;
        let events = service_config(sdk, &self.parts.worker.aws, Service::Events);
        let endpoint = endpoint::resolve(&events, config.endpoint_id.as_deref()).await?;
        Ok(PutEventsService::new(
            endpoint,
            sdk.credentials_provider(),
            config.event_bus.clone(),
            config.endpoint_id.clone(),
            config.request.timeout,
        )?)
    }

    async fn deliverer(&self, sdk: &aws_config::SdkConfig, context: &ConnectorContext) -> Result<Deliverer, SinkError> {
        let config = &self.config;
        let service = self.service(sdk).await?;
        let metrics = ConnectorMetrics::new(self.parts.name.as_str());
        let max_in_flight = config.request.max_in_flight;
        let slots = if config.request.adaptive {
            RequestSlots::adaptive(config.request.initial_in_flight(), max_in_flight, metrics.clone())
        } else {
            RequestSlots::fixed(max_in_flight)
        };
        Ok(Deliverer {
            metrics,
            service,
            retry: config.retry.clone(),
            rate_limit: config
                .rate_limit
                .as_deref()
                .and_then(|group| self.parts.rate_limits.get(group)),
            slots: Arc::new(slots),
            stopping: context.shutdown.child_token(),
            outage_warning: OutageWarning::default(),
        })
    }

    fn uploader(&self, sdk: &aws_config::SdkConfig) -> S3Uploader {
        let aws = &self.parts.worker.aws;
        let s3 = aws_sdk_s3::config::Builder::from(&service_config(sdk, aws, Service::S3))
            // Emulators and VPC endpoints do not serve bucket names as host names.
            .force_path_style(endpoint_override(aws, Service::S3).is_some())
            .build();
        S3Uploader {
            client: aws_sdk_s3::Client::from_conf(s3),
            retry: self.config.retry.clone(),
        }
    }
}

#[async_trait]
impl Connector for SinkConnector {
    async fn run(self: Box<Self>, context: ConnectorContext) -> Result<(), BoxError> {
        let parts = self.build(&context).await?;
        context.started.mark();
        let message_headers = if parts.preparer.builder.reads_headers() || parts.policy.writes_dead_letters() {
            MessageHeaders::Copied
        } else {
            MessageHeaders::Skipped
        };
        let state = Loop {
            name: self.parts.name.as_str(),
            metrics: parts.deliverer.metrics.clone(),
            config: &self.config,
            consumer: &parts.consumer,
            tracker: parts.tracker,
            preparer: parts.preparer,
            preparing: FuturesOrdered::new(),
            policy: parts.policy,
            message_headers,
            batcher: Batcher::new(self.config.batch.max_entries, self.config.batch.max_bytes),
            deliverer: parts.deliverer,
            uploader: parts.uploader,
            ready: VecDeque::new(),
            in_flight: FuturesUnordered::new(),
            phase: Phase::Consuming,
            full_since: None,
            paused: false,
            failure: None,
            progress: &context.progress,
        };
        let result = state.run(&context.shutdown, &parts.fatal).await;
        if context.stops_alone() {
            leave_group(&parts.consumer).await;
        }
        Ok(result?)
    }
}
