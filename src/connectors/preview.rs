//! A connector's record path with no effect outside: what it would make of each record (for a receiver, of each
//! produce record posted to it). `ebconnect preview` prints
//! it, `ebconnect test` compares it with what a test expects. Nothing is committed, sent to EventBridge or written
//! to Kafka; the Schema Registry is read (and a source writing Avro registers its schema, as the connector would).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

use super::processor::{Processed, ProcessorConnector, RecordProcessor, DEDUPE_KEY_HEADER};
use super::receiver::wire::{parse_record, ApiError, DataType, RecordData};
use super::receiver::{ReceiverConnector, RecordMaker};
use super::sink::prepare::{Prepared, RecordPreparer};
use super::sink::SinkConnector;
use super::source::{Converted, MessageConverter, SourceConnector};
use super::threshold::config::LateRecords;
use super::threshold::window::{Outcome as WindowOutcome, Windows};
use super::threshold::{Classified, Classifier, ThresholdConnector};
use super::{ConnectorConfig, ConnectorParts, ConnectorSettings};
use crate::config::{AwsConfig, ErrorTolerance, ErrorsConfig, InvalidSetting, WorkerConfig};
use crate::eventbridge::{Entry, EntryOutcome, PutEventsService};
use crate::pattern::Pattern;
use crate::rate_limit::RateLimits;
use crate::record::{Record, RecordFailure, Stage};

/// How long one record may wait for an unreachable Schema Registry before the preview gives up on it.
const REGISTRY_PATIENCE: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("cannot build the connector: {0}")]
    Build(String),
    #[error("record {at}: {reason}")]
    Registry { at: String, reason: String },
    #[error("--send: {0}")]
    Send(String),
}

/// What the errors policy does with a record that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Then {
    /// Written to this dead-letter topic (`errors.tolerance: all`).
    DeadLetter(String),
    /// The connector fails and stops at this record (`errors.tolerance: none`).
    Fail,
}

impl Then {
    fn of(errors: &ErrorsConfig) -> Self {
        match (errors.tolerance, &errors.deadletterqueue) {
            (ErrorTolerance::All, Some(dlq)) => Self::DeadLetter(dlq.topic.clone()),
            _ => Self::Fail,
        }
    }
}

/// A PutEvents entry as the request carries it, with the AWS field names; `Detail` as JSON rather than text.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutEventsEntry {
    pub event_bus_name: String,
    pub source: String,
    pub detail_type: String,
    /// RFC 3339; absent when EventBridge stamps the time of the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    pub resources: Vec<String>,
    pub detail: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_header: Option<String>,
    #[serde(skip)]
    entry: Entry,
}

impl PutEventsEntry {
    fn new(entry: Entry, event_bus_name: &str) -> Self {
        let detail = serde_json::from_slice::<String>(entry.detail.quoted())
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(Value::Null);
        Self {
            event_bus_name: event_bus_name.to_owned(),
            source: entry.source.to_string(),
            detail_type: entry.detail_type.clone(),
            time: entry.time.map(rfc3339),
            resources: entry.resources.clone(),
            detail,
            trace_header: entry.trace_header.clone(),
            entry,
        }
    }
}

fn rfc3339(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The part of an event a sink would write to S3 first (`offload`).
#[derive(Debug, Clone, Serialize)]
pub struct Offloaded {
    pub bucket: String,
    pub key: String,
    pub bytes: usize,
}

/// A threshold-alert window a record was counted in, with the group's count so far.
#[derive(Debug, Clone, Serialize)]
pub struct WindowCount {
    pub window_start: String,
    pub window_end: String,
    pub count: u64,
}

/// When a threshold-alert writes an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Emitted {
    /// At the first crossing of the threshold (`emit: early`).
    Early,
    /// When the watermark closed the window.
    WindowClosed,
    /// At the end of the records previewed, where every open window is closed: the connector writes it once the
    /// watermark passes the window.
    EndOfInput,
}

/// What a connector makes of one record (a threshold-alert may make several: the count and the alerts it
/// writes).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// eventbridge-sink: the PutEvents entry.
    Entry {
        #[serde(flatten)]
        entry: Box<PutEventsEntry>,
        /// As EventBridge counts it against the request limit.
        size: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        offloaded: Option<Offloaded>,
    },
    /// A filter or transform dropped the record; it counts as settled.
    Filtered,
    /// eventbridge-source: the rule it provisions does not match the event (or it is not JSON), so EventBridge
    /// never delivers it to the queue.
    Unmatched,
    /// A record error, and what the errors policy does with it.
    Error {
        stage: &'static str,
        kind: String,
        reason: String,
        then: Then,
    },
    /// threshold-alert: counted in these windows of its group.
    Counted {
        group: Map<String, Value>,
        windows: Vec<WindowCount>,
    },
    /// threshold-alert: every window of its event time had closed, and `late_records: drop` drops it.
    Late { reason: String },
    /// threshold-alert: a record written to the output topic (its value before the output format).
    Alert {
        topic: String,
        key: Value,
        value: Value,
        emitted: Emitted,
    },
    /// eventbridge-source, rest-produce-receiver and topic-processor: the Kafka record (its value before the value
    /// format, when that is Avro; a receiver's BINARY data in base64).
    Record {
        topic: String,
        key: Option<String>,
        headers: BTreeMap<String, Option<String>>,
        value: Value,
        /// RFC 3339, when the record sets its own (a receiver's `timestamp`); else Kafka's producer stamps it.
        #[serde(skip_serializing_if = "Option::is_none")]
        timestamp: Option<String>,
    },
    /// rest-produce-receiver: the record is refused with this answer.
    Rejected {
        status: u16,
        error_code: u32,
        message: String,
    },
}

impl Outcome {
    fn error(failure: RecordFailure, errors: &ErrorsConfig) -> Self {
        Self::Error {
            stage: failure.stage.as_str(),
            kind: failure.error_kind,
            reason: failure.message,
            then: Then::of(errors),
        }
    }

    /// The outcome's name, as `outcome` in its JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Entry { .. } => "entry",
            Self::Filtered => "filtered",
            Self::Unmatched => "unmatched",
            Self::Error { .. } => "error",
            Self::Counted { .. } => "counted",
            Self::Late { .. } => "late",
            Self::Alert { .. } => "alert",
            Self::Record { .. } => "record",
            Self::Rejected { .. } => "rejected",
        }
    }
}

/// One connector's record path, built from its file and the worker's.
pub struct Preview {
    errors: ErrorsConfig,
    path: Path,
}

enum Path {
    Sink(Box<SinkPath>),
    Source(Box<SourcePath>),
    Threshold(Box<ThresholdPath>),
    Receiver(Box<ReceiverPath>),
    Processor(Box<ProcessorPath>),
}

struct ProcessorPath {
    processor: RecordProcessor,
    output_topic: String,
}

impl ProcessorPath {
    /// The outer error: the registry is away.
    async fn outcome(&self, record: &Record, errors: &ErrorsConfig) -> Result<Outcome, String> {
        let processed = tokio::time::timeout(REGISTRY_PATIENCE, self.processor.process(record))
            .await
            .map_err(|_| "the Schema Registry did not answer".to_owned())?
            .map_err(|error| error.to_string())?;
        Ok(match processed {
            Processed::Output { key, value, dedupe_key } => {
                let mut headers: BTreeMap<String, Option<String>> = record
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        let text = value
                            .as_deref()
                            .map(|bytes| String::from_utf8_lossy(bytes).into_owned());
                        (name.clone(), text)
                    })
                    .collect();
                if let Some(dedupe_key) = dedupe_key {
                    headers.insert(DEDUPE_KEY_HEADER.to_owned(), Some(dedupe_key));
                }
                Outcome::Record {
                    topic: self.output_topic.clone(),
                    key: key.map(|key| String::from_utf8_lossy(&key).into_owned()),
                    headers,
                    value: value.unwrap_or(Value::Null),
                    timestamp: record.timestamp.map(rfc3339),
                }
            }
            Processed::Skipped => Outcome::Filtered,
            Processed::Failed(failure) => Outcome::error(failure, errors),
        })
    }
}

struct ReceiverPath {
    maker: RecordMaker,
    topics: Vec<String>,
    max_record_bytes: usize,
}

struct SourcePath {
    converter: MessageConverter,
    /// The rule a provisioning source creates: an event it does not match never reaches the queue.
    rule: Option<Pattern>,
}

struct SinkPath {
    preparer: RecordPreparer,
    connector: SinkConnector,
    event_bus: String,
    aws: AwsConfig,
}

struct ThresholdPath {
    classifier: Classifier,
    windows: Windows,
    /// Each (topic, partition) as the small number `Windows` knows it by.
    index: HashMap<(String, i32), i32>,
    late_records: LateRecords,
    output_topic: String,
    avro: bool,
}

impl Preview {
    pub async fn build(connector: &ConnectorConfig, worker: &WorkerConfig) -> Result<Self, PreviewError> {
        let parts = ConnectorParts {
            name: connector.name.clone(),
            errors: connector.errors.clone(),
            transforms: connector.transforms.for_run(),
            worker: worker.clone(),
            rate_limits: RateLimits::new(&worker.rate_limits),
        };
        let failed = |error: &(dyn std::error::Error + 'static)| PreviewError::Build(crate::error_chain(error));
        let path = match &connector.settings {
            ConnectorSettings::EventbridgeSink(settings) => {
                let event_bus = settings.event_bus.clone();
                let connector = SinkConnector::new(parts, (**settings).clone());
                // Never cancelled: a registry outage is bounded by REGISTRY_PATIENCE instead.
                let preparer = connector
                    .preparer(tokio_util::sync::CancellationToken::new())
                    .map_err(|error| failed(&error))?;
                Path::Sink(Box::new(SinkPath {
                    preparer,
                    connector,
                    event_bus,
                    aws: worker.aws.clone(),
                }))
            }
            ConnectorSettings::EventbridgeSource(settings) => {
                let rule = match &settings.provision {
                    Some(provision) => Some(
                        provision
                            .pattern_text()
                            .and_then(|text| {
                                Pattern::parse(&text).map_err(|error| {
                                    InvalidSetting::new("config.provision.event_pattern", error.to_string())
                                })
                            })
                            .map_err(|error| failed(&error))?,
                    ),
                    None => None,
                };
                Path::Source(Box::new(SourcePath {
                    converter: SourceConnector::new(parts, (**settings).clone())
                        .converter()
                        .map_err(|error| failed(&error))?,
                    rule,
                }))
            }
            ConnectorSettings::ThresholdAlert(settings) => {
                let output_topic = settings.output.topic.clone();
                let avro = settings.output.format == crate::schema::OutputFormat::Avro;
                let late_records = settings.late_records;
                let connector = ThresholdConnector::new(parts, (**settings).clone());
                Path::Threshold(Box::new(ThresholdPath {
                    classifier: connector.classifier().map_err(|error| failed(&error))?,
                    windows: Windows::new(connector.window_settings()),
                    index: HashMap::new(),
                    late_records,
                    output_topic,
                    avro,
                }))
            }
            ConnectorSettings::TopicProcessor(settings) => Path::Processor(Box::new(ProcessorPath {
                processor: ProcessorConnector::new(parts, (**settings).clone())
                    .record_processor()
                    .map_err(|error| failed(&error))?,
                output_topic: settings.output.topic.clone(),
            })),
            ConnectorSettings::RestProduceReceiver(settings) => {
                let receiver = ReceiverConnector::new(parts, (**settings).clone());
                Path::Receiver(Box::new(ReceiverPath {
                    maker: receiver.maker().map_err(|error| failed(&error))?,
                    topics: settings.topics.clone(),
                    max_record_bytes: settings.max_record_bytes,
                }))
            }
        };
        Ok(Self {
            errors: connector.errors.clone(),
            path,
        })
    }

    /// The topic a record given without one is placed on: a sink's or threshold-alert's first input topic, a
    /// receiver's first topic, a source's topic.
    pub fn default_topic(connector: &ConnectorConfig) -> String {
        match &connector.settings {
            ConnectorSettings::EventbridgeSink(settings) => settings.topics.first(),
            ConnectorSettings::ThresholdAlert(settings) => settings.topics.first(),
            ConnectorSettings::TopicProcessor(settings) => settings.topics.first(),
            ConnectorSettings::RestProduceReceiver(settings) => settings.topics.first(),
            ConnectorSettings::EventbridgeSource(settings) => Some(&settings.topic),
        }
        .cloned()
        // A sink reading by `topics_regex` names none.
        .unwrap_or_else(|| "preview".to_owned())
    }

    /// What the connector makes of `record`. A source reads the record's value as the SQS message's body.
    pub(crate) async fn record(&mut self, record: &Record) -> Result<Vec<Outcome>, PreviewError> {
        let at = || {
            let position = &record.position;
            format!("{}/{}@{}", position.topic, position.partition, position.offset)
        };
        let registry_away = |reason: String| PreviewError::Registry { at: at(), reason };
        match &mut self.path {
            Path::Sink(sink) => {
                let SinkPath {
                    preparer, event_bus, ..
                } = &**sink;
                let prepared = tokio::time::timeout(REGISTRY_PATIENCE, preparer.prepare(record))
                    .await
                    .map_err(|_| {
                        registry_away(format!(
                            "the Schema Registry did not answer within {}s",
                            REGISTRY_PATIENCE.as_secs()
                        ))
                    })?
                    .map_err(|error| registry_away(error.to_string()))?;
                Ok(vec![match prepared {
                    Prepared::Entry { entry, upload, size } => Outcome::Entry {
                        entry: Box::new(PutEventsEntry::new(entry, event_bus)),
                        size,
                        offloaded: upload.map(|upload| Offloaded {
                            bucket: upload.bucket,
                            key: upload.key,
                            bytes: upload.body.len(),
                        }),
                    },
                    Prepared::Filtered => Outcome::Filtered,
                    Prepared::Failed(failure) => Outcome::error(failure, &self.errors),
                }])
            }
            Path::Source(source) => {
                let SourcePath { converter, rule } = &**source;
                let body = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default());
                if let Some(rule) = rule {
                    let delivered = serde_json::from_str::<Value>(&body).is_ok_and(|event| rule.matches(&event));
                    if !delivered {
                        return Ok(vec![Outcome::Unmatched]);
                    }
                }
                let converted = tokio::time::timeout(REGISTRY_PATIENCE, converter.convert(&body))
                    .await
                    .map_err(|_| registry_away("the Schema Registry did not answer".to_owned()))?;
                Ok(vec![match converted {
                    Converted::Record(written) => Outcome::Record {
                        topic: converter.config.topic.clone(),
                        key: written.key.map(|key| String::from_utf8_lossy(&key).into_owned()),
                        headers: written
                            .headers
                            .into_iter()
                            .map(|(name, text)| (name, Some(text)))
                            .collect(),
                        value: written.event,
                        timestamp: None,
                    },
                    Converted::Filtered => Outcome::Filtered,
                    Converted::Failed(failure) => Outcome::error(failure, &self.errors),
                    Converted::NotNow(reason) => return Err(registry_away(reason)),
                }])
            }
            Path::Receiver(receiver) => Ok(vec![receiver.make(record).await]),
            Path::Processor(path) => Ok(vec![path.outcome(record, &self.errors).await.map_err(registry_away)?]),
            Path::Threshold(path) => {
                let classified = tokio::time::timeout(REGISTRY_PATIENCE, path.classifier.classify(record))
                    .await
                    .map_err(|_| registry_away("the Schema Registry did not answer".to_owned()))?
                    .map_err(|error| registry_away(error.to_string()))?;
                Ok(path.count(record, classified, &self.errors))
            }
        }
    }

    /// What is left when the records end: a threshold-alert's alerts of the windows still open.
    pub fn finish(&mut self) -> Vec<Outcome> {
        match &mut self.path {
            Path::Threshold(path) => {
                let alerts = path.windows.close_through(i64::MAX);
                path.alerts(alerts, Emitted::EndOfInput)
            }
            Path::Sink(_) | Path::Source(_) | Path::Receiver(_) | Path::Processor(_) => Vec::new(),
        }
    }

    /// Sends a sink's entries to its bus, ten to a request, each request strictly under the size limit; returns
    /// each entry's event id or why it was not accepted, in order.
    pub async fn send(&self, entries: &[&PutEventsEntry]) -> Result<Vec<Result<String, String>>, PreviewError> {
        let Path::Sink(sink) = &self.path else {
            return Err(PreviewError::Send(
                "only an eventbridge-sink sends to EventBridge".to_owned(),
            ));
        };
        let SinkPath {
            connector,
            preparer,
            aws,
            ..
        } = &**sink;
        let service = connector
            .service(&crate::aws::sdk_config(aws).await)
            .await
            .map_err(|error| PreviewError::Send(crate::error_chain(&error)))?;
        let mut results = Vec::with_capacity(entries.len());
        let mut batch: Vec<&Entry> = Vec::new();
        let mut batch_bytes = 0;
        for entry in entries.iter().map(|entry| &entry.entry) {
            if batch.len() == 10 || (!batch.is_empty() && batch_bytes + entry.size() >= preparer.max_bytes) {
                results.extend(send_batch(&service, &batch).await?);
                batch.clear();
                batch_bytes = 0;
            }
            batch_bytes += entry.size();
            batch.push(entry);
        }
        if !batch.is_empty() {
            results.extend(send_batch(&service, &batch).await?);
        }
        Ok(results)
    }
}

async fn send_batch(service: &PutEventsService, batch: &[&Entry]) -> Result<Vec<Result<String, String>>, PreviewError> {
    let outcomes = service
        .send(batch)
        .await
        .map_err(|error| PreviewError::Send(error.to_string()))?;
    Ok(outcomes
        .into_iter()
        .map(|outcome| match outcome {
            EntryOutcome::Delivered { event_id } => Ok(event_id),
            EntryOutcome::Retryable { code, message, .. } | EntryOutcome::Rejected { code, message } => {
                Err(format!("{code}: {message}"))
            }
        })
        .collect())
}

impl ReceiverPath {
    /// A record's value is a produce record (`{"key": ..., "value": {"type": "JSON", "data": ...}}`), posted to its
    /// topic.
    async fn make(&self, record: &Record) -> Outcome {
        let topic = &record.position.topic;
        let body = record.value.as_deref().unwrap_or_default();
        let made = async {
            if !self.topics.iter().any(|allowed| allowed == topic) {
                return Err(ApiError::unknown_topic(topic));
            }
            if body.len() > self.max_record_bytes {
                return Err(ApiError::too_large(format!(
                    "the record is {} bytes, over max_record_bytes ({})",
                    body.len(),
                    self.max_record_bytes
                )));
            }
            let produce = serde_json::from_slice::<Value>(body)
                .map_err(|error| ApiError::malformed(format!("the body is not JSON: {error}")))
                .and_then(parse_record)?;
            let made = self.maker.make(topic, &produce).await?;
            Ok((produce, made))
        };
        match made.await {
            Ok((produce, made)) => {
                let shown = |part: Option<(DataType, Vec<u8>)>, given: Option<&RecordData>| match part {
                    None => Value::Null,
                    Some((DataType::Json, bytes)) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    Some((DataType::String, bytes)) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
                    Some((DataType::Binary, bytes)) => Value::String(BASE64.encode(bytes)),
                    Some((DataType::Avro | DataType::Protobuf | DataType::Jsonschema, _)) => {
                        given.map_or(Value::Null, |given| given.data.clone())
                    }
                };
                let key = match shown(made.key, produce.key.as_ref()) {
                    Value::Null => None,
                    Value::String(text) => Some(text),
                    other => Some(other.to_string()),
                };
                Outcome::Record {
                    topic: topic.clone(),
                    key,
                    headers: made
                        .headers
                        .into_iter()
                        .map(|(name, value)| (name, value.map(|bytes| String::from_utf8_lossy(&bytes).into_owned())))
                        .collect(),
                    value: shown(made.value, produce.value.as_ref()),
                    timestamp: produce.timestamp.is_some().then(|| rfc3339(made.timestamp)),
                }
            }
            Err(error) => Outcome::Rejected {
                status: error.status.as_u16(),
                error_code: error.error_code,
                message: error.message,
            },
        }
    }
}

impl ThresholdPath {
    fn count(&mut self, record: &Record, classified: Classified, errors: &ErrorsConfig) -> Vec<Outcome> {
        let position = &record.position;
        let next = i32::try_from(self.index.len()).unwrap_or(i32::MAX);
        let index = *self
            .index
            .entry((position.topic.clone(), position.partition))
            .or_insert(next);
        let now = Instant::now();
        let mut outcomes = match classified {
            Classified::Skipped { time } => {
                self.windows.skip(index, position.offset, time, now);
                vec![Outcome::Filtered]
            }
            Classified::Failed(failure) => {
                self.windows.skip(index, position.offset, None, now);
                vec![Outcome::error(failure, errors)]
            }
            Classified::Counted { time, group } => {
                match self.windows.add(index, position.offset, time, group.clone(), now) {
                    WindowOutcome::Counted(early) => {
                        let windows = self
                            .windows
                            .counts(time, &group)
                            .into_iter()
                            .map(|(start, count)| WindowCount {
                                window_start: rfc3339(start),
                                window_end: rfc3339(start.saturating_add(self.window_size())),
                                count,
                            })
                            .collect();
                        let group = self.classifier.config.group_by.keys().cloned().zip(group).collect();
                        let mut outcomes = vec![Outcome::Counted { group, windows }];
                        outcomes.extend(self.alerts(early, Emitted::Early));
                        outcomes
                    }
                    // Only a restart restores windows already emitted, and a preview starts from nothing.
                    WindowOutcome::AlreadyCounted => Vec::new(),
                    WindowOutcome::Late => {
                        let reason = Classifier::late_reason(time);
                        match self.late_records {
                            LateRecords::Drop => vec![Outcome::Late { reason }],
                            LateRecords::Dlq => vec![Outcome::error(
                                RecordFailure {
                                    stage: Stage::Transformation,
                                    error_kind: "LateRecord".into(),
                                    message: reason,
                                },
                                errors,
                            )],
                        }
                    }
                }
            }
        };
        let closed = self.windows.advance(now);
        outcomes.extend(self.alerts(closed, Emitted::WindowClosed));
        outcomes
    }

    fn window_size(&self) -> i64 {
        i64::try_from(self.classifier.config.window.as_millis()).unwrap_or(i64::MAX)
    }

    fn alerts(&self, alerts: Vec<super::threshold::window::Alert>, emitted: Emitted) -> Vec<Outcome> {
        alerts
            .iter()
            .map(|alert| {
                let (key, value) = self.classifier.alert_record(alert, self.avro);
                Outcome::Alert {
                    topic: self.output_topic.clone(),
                    key,
                    value,
                    emitted,
                }
            })
            .collect()
    }
}
