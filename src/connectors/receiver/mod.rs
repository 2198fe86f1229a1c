//! `type: rest-produce-receiver`: an HTTP endpoint speaking the Confluent REST Produce API v3, so that EventBridge
//! API destinations (and any HTTP producer) can push events into Kafka.
//!
//! `POST /kafka/v3/clusters/{cluster_id}/topics/{topic}/records` takes one record, or in streaming mode (a chunked
//! body, or several records in one body) a sequence of records answered by one delivery report each, in order.
//! `POST .../records:batch` takes `{"entries": [...]}` and answers 207 with `successes` and `failures`.
//! Every answer is sent after Kafka acknowledged the record (idempotent producer, acks=all). A single-record request
//! that failed gets its failure's HTTP status: 429 and 5xx for what a retry may fix, other 4xx for what it cannot.

pub mod body;
pub mod config;
pub mod server;
pub mod wire;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::stream::FuturesOrdered;
use futures::{SinkExt, StreamExt};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use self::body::RecordReader;
pub use self::config::ReceiverConfig;
use self::wire::{
    parse_record, ApiError, BatchFailure, BatchResponse, BatchSuccess, DataSummary, DataType, Delivered, Payload,
    ProduceRecord,
};
use super::common::ClientFailure;
use super::{BoxError, Connector, ConnectorContext, ConnectorParts};
use crate::kafka::{ActiveTopics, FatalClientError, ProducerErrors};
use crate::schema::encode::{AvroRecordEncoder, BinaryText, EncodeError, JsonSchemaRecordEncoder};
use crate::schema::protobuf::ProtobufRecordEncoder;
use crate::schema::registry::RegistrySetupError;
use crate::telemetry::{
    emit, ConnectorMetrics, ReceiverListening, ReceiverRecordRejected, ReceiverRecordWritten, SourceRecordsPolled,
};

/// Records of one streaming request being written at once; reading pauses beyond it.
const STREAM_WINDOW: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReceiverError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[source] KafkaError),
    #[error(transparent)]
    Registry(RegistrySetupError),
    #[error(transparent)]
    Client(#[from] ClientFailure),
}

pub(crate) struct ReceiverConnector {
    parts: ConnectorParts,
    config: ReceiverConfig,
}

impl ReceiverConnector {
    pub(crate) fn new(parts: ConnectorParts, config: ReceiverConfig) -> Self {
        Self { parts, config }
    }

    pub(crate) fn maker(&self) -> Result<RecordMaker, ReceiverError> {
        let encoders = match &self.parts.worker.schema_registry {
            Some(registry) => {
                let settings = crate::schema::registry::settings(registry).map_err(ReceiverError::Registry)?;
                Some(RegistryEncoders {
                    // Confluent's REST Proxy reads a record's data in Avro's JSON encoding.
                    avro: AvroRecordEncoder::new(settings.clone(), BinaryText::AvroJson),
                    protobuf: ProtobufRecordEncoder::new(settings.clone(), None),
                    json_schema: JsonSchemaRecordEncoder::new(settings),
                })
            }
            None => None,
        };
        Ok(RecordMaker { encoders })
    }
}

/// What every request handler shares.
struct Receiver {
    name: String,
    metrics: ConnectorMetrics,
    config: ReceiverConfig,
    producer: FutureProducer<ProducerErrors>,
    maker: RecordMaker,
    in_flight: Arc<Semaphore>,
    /// Bytes of request bodies being read and held, over all requests (`max_buffered_bytes`).
    budget: Arc<Semaphore>,
    /// The API key and secret, when auth is configured.
    credentials: Option<(Vec<u8>, Vec<u8>)>,
    topics: ActiveTopics,
}

/// Whether a record that finds every write slot taken is refused (a single record: its client retries on 429) or
/// waits for one (an entry of a batch, which the client cannot resend alone).
#[derive(Clone, Copy)]
enum WhenBusy {
    Refuse,
    Wait,
}

impl Receiver {
    /// Checks what every produce request must satisfy before its body is read.
    fn admit(&self, cluster_id: &str, topic: &str, headers: &HeaderMap) -> Result<(), ApiError> {
        self.authenticate(headers)?;
        let content_type = headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok());
        let is_json = content_type.is_some_and(|value| {
            value
                .split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
        });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                41501,
                format!(
                    "the body must be `application/json`, not {}",
                    content_type.map_or("unspecified".to_owned(), |value| format!("`{value}`"))
                ),
            ));
        }
        if cluster_id != self.config.cluster_id {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                40402,
                format!(
                    "cluster `{cluster_id}` not found; this endpoint serves `{}`",
                    self.config.cluster_id
                ),
            ));
        }
        if !self.config.topics.iter().any(|allowed| allowed == topic) {
            return Err(ApiError::unknown_topic(topic));
        }
        Ok(())
    }

    fn authenticate(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some((key, secret)) = &self.credentials else {
            return Ok(());
        };
        if crate::basic_auth::admits(headers.get(AUTHORIZATION), key, secret) {
            Ok(())
        } else {
            Err(ApiError::unauthorized())
        }
    }

    /// A write slot (`max_in_flight`), at once or, for `WhenBusy::Wait`, when one is free.
    async fn slot(&self, when_busy: WhenBusy) -> Result<OwnedSemaphorePermit, ApiError> {
        let busy = || {
            ApiError::busy(format!(
                "{} records are being written already (max_in_flight); retry later",
                self.config.max_in_flight
            ))
        };
        match when_busy {
            WhenBusy::Refuse => self.in_flight.clone().try_acquire_owned().map_err(|_| busy()),
            WhenBusy::Wait => self.in_flight.clone().acquire_owned().await.map_err(|_| busy()),
        }
    }

    /// Writes one record in `_slot` and waits for Kafka's acknowledgement.
    async fn write(
        &self,
        topic: &str,
        record: ProduceRecord,
        _slot: OwnedSemaphorePermit,
    ) -> Result<Delivered, ApiError> {
        let made = self.maker.make(topic, &record).await?;
        let mut kafka_headers = OwnedHeaders::new_with_capacity(made.headers.len());
        for (name, value) in &made.headers {
            kafka_headers = kafka_headers.insert(Header {
                key: name,
                value: value.as_deref(),
            });
        }
        let mut kafka_record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).timestamp(made.timestamp).headers(kafka_headers);
        if let Some((_, bytes)) = &made.key {
            kafka_record = kafka_record.key(bytes.as_slice());
        }
        if let Some((_, bytes)) = &made.value {
            kafka_record = kafka_record.payload(bytes.as_slice());
        }
        if let Some(partition) = made.partition {
            kafka_record = kafka_record.partition(partition);
        }
        let delivery = self
            .producer
            .send(kafka_record, Duration::ZERO)
            .await
            .map_err(|(error, _)| kafka_failure(topic, &error))?;
        self.topics.record(topic);
        Ok(Delivered {
            error_code: 200,
            cluster_id: self.config.cluster_id.clone(),
            topic_name: topic.to_owned(),
            partition_id: delivery.partition,
            offset: delivery.offset,
            timestamp: chrono::DateTime::from_timestamp_millis(made.timestamp)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            key: made.key.map(|(kind, bytes)| DataSummary {
                kind,
                size: bytes.len(),
            }),
            value: made.value.map(|(kind, bytes)| DataSummary {
                kind,
                size: bytes.len(),
            }),
        })
    }

    /// Parses and writes one record of a body.
    async fn write_json(
        self: Arc<Self>,
        topic: Arc<str>,
        record: Result<Value, ApiError>,
        when_busy: WhenBusy,
    ) -> Result<Delivered, ApiError> {
        emit(SourceRecordsPolled {
            metrics: &self.metrics,
            count: 1,
        });
        let written = match record.and_then(parse_record) {
            Ok(record) => match self.slot(when_busy).await {
                Ok(slot) => self.write(&topic, record, slot).await,
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        };
        match &written {
            Ok(_) => emit(ReceiverRecordWritten { metrics: &self.metrics }),
            Err(error) => self.count_rejection(error),
        }
        written
    }

    fn count_rejection(&self, error: &ApiError) {
        emit(ReceiverRecordRejected {
            connector: &self.name,
            status: error.status.as_u16(),
            error_code: error.error_code,
            message: &error.message,
        });
    }

    /// Answers a request that failed before any of its records was written.
    fn reject(&self, error: ApiError) -> Response {
        self.count_rejection(&error);
        Self::error_response(error)
    }

    fn error_response(error: ApiError) -> Response {
        let mut response = (error.status, Json(&error)).into_response();
        if error.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"ebconnect\""));
        }
        if error.status == StatusCode::TOO_MANY_REQUESTS || error.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// The answer for a Kafka write that failed.
fn kafka_failure(topic: &str, error: &KafkaError) -> ApiError {
    let code = match error {
        KafkaError::MessageProduction(code) => *code,
        other => return ApiError::unavailable(format!("writing to Kafka failed: {other}")),
    };
    let message = format!("writing to Kafka failed: {code}");
    match code {
        RDKafkaErrorCode::MessageSizeTooLarge => ApiError::too_large(message),
        RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => ApiError::new(
            StatusCode::NOT_FOUND,
            40403,
            format!("topic `{topic}` does not exist in Kafka"),
        ),
        RDKafkaErrorCode::UnknownPartition => ApiError::new(StatusCode::NOT_FOUND, 40402, message),
        RDKafkaErrorCode::TopicAuthorizationFailed | RDKafkaErrorCode::ClusterAuthorizationFailed => {
            ApiError::new(StatusCode::FORBIDDEN, 40301, message)
        }
        RDKafkaErrorCode::QueueFull => ApiError::busy(message),
        RDKafkaErrorCode::InvalidRecord | RDKafkaErrorCode::InvalidTimestamp => ApiError::invalid(message),
        _ => ApiError::unavailable(message),
    }
}

fn report_line(report: Result<Delivered, ApiError>) -> Bytes {
    let mut line = match report {
        Ok(delivered) => serde_json::to_vec(&delivered),
        Err(error) => serde_json::to_vec(&error),
    }
    .unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

async fn produce(
    State(receiver): State<Arc<Receiver>>,
    Path((cluster_id, topic)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(error) = receiver.admit(&cluster_id, &topic, &headers) {
        return receiver.reject(error);
    }
    let topic: Arc<str> = Arc::from(topic);
    // The reader holds at most a record (and the chunk that ends it), so that is what the budget is charged.
    let (chunks, _) = receiver.budgeted(body, receiver.config.max_record_bytes);
    let mut reader = RecordReader::new(chunks, receiver.config.max_record_bytes);
    // A body of known length is read to its end before answering: if it holds one record, the answer's status is
    // that record's. A chunked body is a stream whose client may wait for each report before sending more.
    if !headers.contains_key(CONTENT_LENGTH) {
        return stream_reports(receiver, topic, reader, Vec::new());
    }
    let first = match reader.next().await {
        None => return receiver.reject(ApiError::malformed("the body holds no record")),
        Some(first) => first,
    };
    match reader.next().await {
        None => match receiver.clone().write_json(topic, first, WhenBusy::Refuse).await {
            Ok(delivered) => Json(delivered).into_response(),
            Err(error) => Receiver::error_response(error),
        },
        Some(second) => stream_reports(receiver, topic, reader, vec![first, second]),
    }
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Answers 200 at once and sends one delivery report per record, in the records' order, while writing up to
/// `STREAM_WINDOW` records at a time.
fn stream_reports<S>(
    receiver: Arc<Receiver>,
    topic: Arc<str>,
    mut reader: RecordReader<S>,
    already_read: Vec<Result<Value, ApiError>>,
) -> Response
where
    S: futures::Stream<Item = Result<Bytes, BodyError>> + Unpin + Send + 'static,
{
    let (mut reports, body) = futures::channel::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut queued = VecDeque::from(already_read);
        let mut writes = FuturesOrdered::new();
        let mut reading = true;
        loop {
            let next_record = async {
                match queued.pop_front() {
                    Some(record) => Some(record),
                    None => reader.next().await,
                }
            };
            tokio::select! {
                biased;
                                Some(report) = writes.next(), if !writes.is_empty() => {
                                        let report: Result<Delivered, ApiError> = report;
                    if reports.send(report_line(report)).await.is_err() {
                        // The client went away; records already written stay written, and it will resend the rest.
                        return;
                    }
                }
                record = next_record, if reading && writes.len() < STREAM_WINDOW => match record {
                    Some(record) => writes.push_back(receiver.clone().write_json(topic.clone(), record, WhenBusy::Refuse)),
                    None => reading = false,
                },
                else => return,
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body.map(Ok::<_, Infallible>)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn produce_batch(
    State(receiver): State<Arc<Receiver>>,
    Path((cluster_id, topic)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(error) = receiver.admit(&cluster_id, &topic, &headers) {
        return receiver.reject(error);
    }
    let limit = receiver.config.max_batch_bytes;
    let too_large = || ApiError::too_large(format!("the batch is larger than max_batch_bytes ({limit} bytes)"));
    let announced = content_length(&headers);
    if announced.is_some_and(|length| length > limit) {
        return receiver.reject(too_large());
    }
    // The whole body is held until the batch is answered; the budget is charged as it arrives. Room for the
    // announced length is set aside at once (memory is only used as it is written), so that growing the buffer
    // never holds two copies.
    let (mut chunks, charge) = receiver.budgeted(body, limit);
    let mut bytes = Vec::with_capacity(announced.unwrap_or(0));
    while let Some(chunk) = chunks.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => return receiver.reject(error.into()),
        };
        if bytes.len() + chunk.len() > limit {
            return receiver.reject(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    let entries = match wire::batch_entries(&bytes, receiver.config.max_batch_entries) {
        Ok(entries) => entries,
        Err(error) => return receiver.reject(error),
    };
    let topic: Arc<str> = Arc::from(topic);
    // Each entry is parsed only once it has a write slot, so that what a large batch holds in memory beyond its
    // body is bounded by `max_in_flight`, not by its length.
    let writes = entries.iter().map(|entry| {
        let receiver = receiver.clone();
        let topic = topic.clone();
        async move {
            let record = serde_json::from_str::<Value>(entry.record.get())
                .map_err(|error| ApiError::malformed(format!("entry `{}`: {error}", entry.id)))
                .map(|mut record| {
                    if let Some(fields) = record.as_object_mut() {
                        fields.shift_remove("id");
                    }
                    record
                });
            receiver.write_json(topic, record, WhenBusy::Wait).await
        }
    });
    let mut response = BatchResponse {
        successes: Vec::new(),
        failures: Vec::new(),
    };
    for (entry, report) in entries.iter().zip(futures::future::join_all(writes).await) {
        let id = entry.id.clone();
        match report {
            Ok(delivered) => response.successes.push(BatchSuccess { id, delivered }),
            Err(error) => response.failures.push(BatchFailure {
                id,
                error_code: error.error_code,
                message: error.message,
            }),
        }
    }
    drop(charge);
    (StatusCode::MULTI_STATUS, Json(response)).into_response()
}

/// The reason a body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("no data for {0:?} (body_timeout)")]
    Idle(Duration),
    #[error("the receiver holds {0} bytes of requests already (max_buffered_bytes); retry later")]
    OverBudget(usize),
    #[error("reading the body: {0}")]
    Read(#[from] axum::Error),
}

impl From<BodyError> for ApiError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::OverBudget(_) => ApiError::unavailable(error.to_string()),
            BodyError::Idle(_) | BodyError::Read(_) => ApiError::malformed(error.to_string()),
        }
    }
}

/// A body's chunks as they arrive, each charged to the memory budget until the request ends, up to `cap` bytes
/// (what the request holds at most). Ends with an error when the budget is spent, or when no chunk arrives for
/// `body_timeout`: a client that sends a byte now and then, or stops, holds neither its connection nor memory
/// forever.
struct Budgeted {
    chunks: axum::body::BodyDataStream,
    budget: Arc<Semaphore>,
    budget_size: usize,
    idle: Duration,
    cap: usize,
    charged: usize,
    held: Charge,
}

/// What a request was charged to the budget; given back when the last clone is dropped.
#[derive(Clone, Default)]
struct Charge(Arc<std::sync::Mutex<Vec<OwnedSemaphorePermit>>>);

impl Charge {
    fn add(&self, permit: OwnedSemaphorePermit) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(permit);
    }
}

impl Receiver {
    /// The body's chunks, and the charge, which the stream holds until it ends and the caller as long as it keeps
    /// the body's bytes.
    fn budgeted(
        &self,
        body: Body,
        cap: usize,
    ) -> (futures::stream::BoxStream<'static, Result<Bytes, BodyError>>, Charge) {
        let charge = Charge::default();
        let state = Budgeted {
            chunks: body.into_data_stream(),
            budget: self.budget.clone(),
            budget_size: self.config.max_buffered_bytes,
            idle: self.config.body_timeout,
            cap,
            charged: 0,
            held: charge.clone(),
        };
        let chunks = Box::pin(futures::stream::unfold(Some(state), |state| async move {
            let mut state = state?;
            let chunk = match tokio::time::timeout(state.idle, state.chunks.next()).await {
                Err(_) => return Some((Err(BodyError::Idle(state.idle)), None)),
                Ok(None) => return None,
                Ok(Some(Err(error))) => return Some((Err(error.into()), None)),
                Ok(Some(Ok(chunk))) => chunk,
            };
            let charge = chunk.len().min(state.cap.saturating_sub(state.charged));
            if charge > 0 {
                let permit = u32::try_from(charge)
                    .ok()
                    .and_then(|permits| state.budget.clone().try_acquire_many_owned(permits).ok());
                match permit {
                    Some(permit) => {
                        state.held.add(permit);
                        state.charged += charge;
                    }
                    None => return Some((Err(BodyError::OverBudget(state.budget_size)), None)),
                }
            }
            Some((Ok(chunk), Some(state)))
        }));
        (chunks, charge)
    }
}

/// A produce record's Kafka record, before it is written.
pub(crate) struct Made {
    pub(crate) key: Option<(DataType, Vec<u8>)>,
    pub(crate) value: Option<(DataType, Vec<u8>)>,
    pub(crate) headers: Vec<(String, Option<Vec<u8>>)>,
    /// Milliseconds since the epoch: the record's own, or now.
    pub(crate) timestamp: i64,
    pub(crate) partition: Option<i32>,
}

/// A produce record to the Kafka record it becomes: key and value in their types (Avro through the registry),
/// headers, timestamp, partition. No effect outside but registering an Avro schema: the receiver writes what it
/// makes, `preview` shows it.
pub(crate) struct RecordMaker {
    pub(crate) encoders: Option<RegistryEncoders>,
}

impl RecordMaker {
    pub(crate) async fn make(&self, topic: &str, record: &ProduceRecord) -> Result<Made, ApiError> {
        let key = match &record.key {
            Some(data) => Some((data.data_type(), self.encode(data.payload("key")?, topic, true).await?)),
            None => None,
        };
        let value = match &record.value {
            Some(data) => Some((
                data.data_type(),
                self.encode(data.payload("value")?, topic, false).await?,
            )),
            None => None,
        };
        let headers = record
            .headers
            .iter()
            .map(wire::RecordHeader::decoded)
            .collect::<Result<Vec<_>, _>>()?;
        let timestamp = match &record.timestamp {
            Some(text) => record_timestamp(text)?,
            None => chrono::Utc::now().timestamp_millis(),
        };
        if record.partition_id.is_some_and(|partition| partition < 0) {
            return Err(ApiError::invalid("partition_id: must not be negative"));
        }
        Ok(Made {
            key,
            value,
            headers,
            timestamp,
            partition: record.partition_id,
        })
    }

    async fn encode(&self, payload: Payload, topic: &str, is_key: bool) -> Result<Vec<u8>, ApiError> {
        let (kind, value, schema) = match payload {
            Payload::Bytes(bytes) => return Ok(bytes),
            Payload::Registry { kind, value, schema } => (kind, value, schema),
        };
        let Some(encoders) = &self.encoders else {
            return Err(ApiError::invalid(format!(
                "type {} needs a schema_registry in the worker configuration",
                serde_json::to_value(kind)
                    .ok()
                    .and_then(|kind| kind.as_str().map(str::to_owned))
                    .unwrap_or_default()
            )));
        };
        let encoded = match kind {
            DataType::Protobuf => encoders.protobuf.encode(&value, topic, is_key, &schema).await,
            DataType::Jsonschema => encoders.json_schema.encode(&value, topic, is_key, &schema).await,
            _ => encoders.avro.encode(&value, topic, is_key, &schema).await,
        };
        encoded.map_err(|error| match error {
            EncodeError::RegistryUnavailable { .. } => ApiError::unavailable(error.to_string()),
            EncodeError::Schema { .. } | EncodeError::Mismatch { .. } => ApiError::invalid(error.to_string()),
        })
    }
}

/// The registry's encoders, one per type a produce record may name.
pub(crate) struct RegistryEncoders {
    avro: Arc<AvroRecordEncoder>,
    /// A schema's first message, as Confluent's REST produce API writes.
    protobuf: Arc<ProtobufRecordEncoder>,
    json_schema: Arc<JsonSchemaRecordEncoder>,
}

/// A produce request's `timestamp` in epoch milliseconds.
fn record_timestamp(text: &str) -> Result<i64, ApiError> {
    let millis = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|error| ApiError::invalid(format!("timestamp: `{text}` is not RFC 3339: {error}")))?
        .timestamp_millis();
    // Kafka reads a negative timestamp as none.
    if millis < 0 {
        return Err(ApiError::invalid(format!(
            "timestamp: `{text}` is before 1970, which a Kafka record cannot carry"
        )));
    }
    Ok(millis)
}

fn router(receiver: Arc<Receiver>) -> Router {
    Router::new()
        .route("/kafka/v3/clusters/{cluster_id}/topics/{topic}/records", post(produce))
        .route(
            "/kafka/v3/clusters/{cluster_id}/topics/{topic}/records:batch",
            post(produce_batch),
        )
        .with_state(receiver)
}

#[async_trait]
impl Connector for ReceiverConnector {
    async fn run(self: Box<Self>, context: ConnectorContext) -> Result<(), BoxError> {
        let name = self.parts.name.as_str();
        let timeout_ms = self.config.produce_timeout.as_millis().to_string();
        let mut producer_config =
            self.parts
                .producer_config(&self.config.producer_override, &[("linger.ms", "5")], name);
        producer_config.set("message.timeout.ms", &timeout_ms);
        let fatal = FatalClientError::default();
        let producer = ProducerErrors::producer(&producer_config, name, &fatal).map_err(ReceiverError::Producer)?;
        let credentials = self.config.auth.as_ref().map(|auth| {
            (
                auth.api_key.value().as_bytes().to_vec(),
                auth.api_secret.expose().as_bytes().to_vec(),
            )
        });
        let receiver = Arc::new(Receiver {
            name: name.to_owned(),
            metrics: ConnectorMetrics::new(name),
            in_flight: Arc::new(Semaphore::new(self.config.max_in_flight)),
            budget: Arc::new(Semaphore::new(self.config.max_buffered_bytes)),
            config: self.config.clone(),
            producer,
            maker: self.maker()?,
            credentials,
            topics: context.topics.clone(),
        });
        let address = self.config.listen;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| ReceiverError::Bind { address, source })?;
        emit(ReceiverListening {
            connector: name,
            address,
        });
        context.started.mark();
        let limits = server::ServerLimits {
            max_connections: self.config.max_connections,
            header_timeout: self.config.header_timeout,
        };
        let serve = server::serve(name, listener, router(receiver), limits, context.shutdown.clone());
        // Graceful shutdown waits for open requests; a streaming client could keep one open forever, so after the
        // produce timeout the rest are cut off. Their unanswered records are resent by their clients.
        let grace = self.config.produce_timeout + Duration::from_secs(1);
        tokio::select! {
            () = serve => {}
            () = async { context.shutdown.cancelled().await; tokio::time::sleep(grace).await } => {}
            // Every request would fail: the connector fails instead, and its status says why.
            refused = fatal.raised() => return Err(ReceiverError::Client(ClientFailure::Refused(refused)).into()),
        }
        Ok(())
    }
}
