//! A decoded record to a PutEvents entry: source, detail-type, detail, time, resources, trace header.

use std::sync::Arc;

use base64::Engine;
use chrono::DateTime;
use serde_json::{json, Map, Value};

use super::config::{DetailShape, DetailTypeConfig, ResourceConfig, SinkConfig};
use super::offload::{Offloader, Upload};
use crate::config::ConnectorName;
use crate::connectors::settings::TimeConfig;
use crate::eventbridge::{Detail, Entry};
use crate::json_path::JsonPath;
use crate::json_text::QuotedJson;
use crate::record::Record;
use crate::schema::avro::{Capture, Captured};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum BuildError {
    #[error("the detail must be a JSON object, but the value is {0}; use `detail: envelope` to wrap it")]
    DetailNotObject(&'static str),
    #[error("time: `{path}` holds {found}, not an RFC 3339 timestamp")]
    BadTime { path: String, found: String },
    #[error("time: `{path}` holds {found}, before 1970, which PutEvents cannot carry")]
    TimeBeforeEpoch { path: String, found: String },
    #[error("resources: `{path}` selected {found}; resources must be strings (ARNs)")]
    BadResource { path: String, found: String },
    #[error("detail_type: `{path}` selected {found}; a detail-type must be a non-empty string")]
    BadDetailType { path: String, found: String },
    #[error("trace_header: header `{0}` is not valid UTF-8")]
    BadTraceHeader(String),
}

use crate::json_path::json_kind as kind_of;

fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 80 {
        format!("{}... ({})", &text[..text.floor_char_boundary(80)], kind_of(value))
    } else {
        text
    }
}

/// Header values are shown as text when they are UTF-8, else as base64.
fn header_value(bytes: Option<&[u8]>) -> Value {
    match bytes {
        None => Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Value::String(text.to_owned()),
            Err(_) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        },
    }
}

/// Where an entry's detail-type, time and resources are read from: the record's value, or the values kept of it
/// while it was written as text.
#[derive(Clone, Copy)]
enum Fields<'v> {
    Value(&'v Value),
    Kept(&'v Capture, &'v Captured),
}

impl<'v> Fields<'v> {
    fn select_one(self, path: &JsonPath) -> Option<&'v Value> {
        match self {
            Self::Value(value) => path.select_one(value),
            Self::Kept(capture, captured) => capture.select_one(captured, path),
        }
    }

    fn select(self, path: &JsonPath) -> Vec<&'v Value> {
        match self {
            Self::Value(value) => path.select(value),
            Self::Kept(capture, captured) => capture.select(captured, path),
        }
    }
}

/// An entry but its detail.
struct EntryFields {
    source: Arc<str>,
    detail_type: String,
    time: Option<i64>,
    resources: Vec<String>,
    trace_header: Option<String>,
}

impl EntryFields {
    fn with_detail(self, detail: Detail) -> Entry {
        Entry {
            source: self.source,
            detail_type: self.detail_type,
            detail,
            time: self.time,
            resources: self.resources,
            trace_header: self.trace_header,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct EntryBuilder {
    source: Arc<str>,
    detail: DetailShape,
    detail_type: DetailTypeConfig,
    resources: Vec<ResourceConfig>,
    time: TimeConfig,
    trace_header: Option<String>,
    offloader: Option<Offloader>,
    max_bytes: usize,
}

impl EntryBuilder {
    /// `config` has passed `SinkConfig::check`.
    pub(crate) fn new(name: &ConnectorName, config: &SinkConfig) -> Self {
        let offloader = match (&config.offload, config.offload_path()) {
            (Some(offload), Ok(Some(path))) => Offloader::new(offload, &path),
            _ => None,
        };
        Self {
            source: config.source(name).into(),
            detail: config.detail,
            detail_type: config.detail_type.clone(),
            resources: config.resources.clone(),
            time: config.time.clone(),
            trace_header: config.trace_header.clone(),
            offloader,
            max_bytes: config.batch.max_bytes,
        }
    }

    /// Whether an entry is built from the record's headers: an envelope holds them, and the trace header is one.
    pub(crate) fn reads_headers(&self) -> bool {
        self.detail == DetailShape::Envelope || self.trace_header.is_some()
    }

    /// The fields a detail written straight as text must keep as values, for the entry's detail-type, time and
    /// resources; `None` when the detail must be built as a value: when it is not the record's value as it is
    /// (an envelope, or offloading to S3 changes it), or when a path does not start with a field.
    pub(crate) fn text_detail_capture(&self) -> Option<Capture> {
        if self.detail != DetailShape::Value || self.offloader.is_some() {
            return None;
        }
        let time = match &self.time {
            TimeConfig::JsonPath(path) => Some(path),
            TimeConfig::None | TimeConfig::RecordTimestamp => None,
        };
        let resources = self.resources.iter().filter_map(|resource| match resource {
            ResourceConfig::Path { json_path } => Some(json_path),
            ResourceConfig::Literal(_) => None,
        });
        let paths: Vec<Vec<&str>> = self
            .detail_type
            .json_path
            .iter()
            .chain(time)
            .chain(resources)
            .map(JsonPath::leading_field_names)
            .collect();
        if paths.iter().any(Vec::is_empty) {
            return None;
        }
        Some(Capture::fields(paths))
    }

    /// The entry, and the object to write to S3 first when part of the event was offloaded.
    pub(crate) fn build(
        &self,
        record: &Record,
        key: Value,
        value: Value,
    ) -> Result<(Entry, Option<Upload>), BuildError> {
        let fields = self.fields(record, Fields::Value(&value))?;
        let detail = match self.detail {
            DetailShape::Value => match value {
                Value::Object(_) => value,
                other => return Err(BuildError::DetailNotObject(kind_of(&other))),
            },
            DetailShape::Envelope => {
                let headers: Vec<Value> = record
                    .headers
                    .iter()
                    .map(|(name, bytes)| {
                        let mut header = Map::new();
                        header.insert(name.clone(), header_value(bytes.as_deref()));
                        Value::Object(header)
                    })
                    .collect();
                json!({
                    "topic": record.position.topic,
                    "partition": record.position.partition,
                    "offset": record.position.offset,
                    "timestamp": record.timestamp,
                    "timestampType": record.timestamp_type.as_str(),
                    "headers": headers,
                    "key": key,
                    "value": value,
                })
            }
        };
        let mut entry = fields.with_detail(Detail::from_value(&detail));
        let mut detail = detail;
        let upload = match &self.offloader {
            Some(offloader) if offloader.always || entry.size() >= self.max_bytes => {
                let upload = offloader.offload(&mut detail);
                if upload.is_some() {
                    entry.detail = Detail::from_value(&detail);
                }
                upload
            }
            _ => None,
        };
        Ok((entry, upload))
    }

    /// The entry for a record whose value was written straight as its detail's text, a JSON object; `captured`
    /// holds the values of the fields `capture`, made by `text_detail_capture`, names.
    pub(crate) fn build_from_text(
        &self,
        record: &Record,
        capture: &Capture,
        captured: &Captured,
        detail: QuotedJson,
    ) -> Result<Entry, BuildError> {
        Ok(self
            .fields(record, Fields::Kept(capture, captured))?
            .with_detail(Detail::from_quoted_object(detail)))
    }

    /// The entry's fields but its detail, from the record and its value.
    fn fields(&self, record: &Record, value: Fields<'_>) -> Result<EntryFields, BuildError> {
        let detail_type = self.detail_type(record, value)?;
        let time = self.time(record, value)?;
        let resources = self.resources(value)?;
        let trace_header = match &self.trace_header {
            None => None,
            Some(name) => record
                .header(name)
                .map(|bytes| {
                    std::str::from_utf8(bytes)
                        .map(str::to_owned)
                        .map_err(|_| BuildError::BadTraceHeader(name.clone()))
                })
                .transpose()?,
        };
        Ok(EntryFields {
            source: self.source.clone(),
            detail_type,
            time,
            resources,
            trace_header,
        })
    }

    fn detail_type(&self, record: &Record, value: Fields<'_>) -> Result<String, BuildError> {
        if let Some(path) = &self.detail_type.json_path {
            match value.select_one(path) {
                Some(Value::String(text)) if !text.is_empty() => return Ok(text.clone()),
                None | Some(Value::Null) => {}
                Some(other) => {
                    return Err(BuildError::BadDetailType {
                        path: path.to_string(),
                        found: shown(other),
                    })
                }
            }
        }
        let topic = &record.position.topic;
        Ok(match self.detail_type.by_topic.get(topic) {
            Some(fixed) => fixed.clone(),
            None => self.detail_type.default.replace("${topic}", topic),
        })
    }

    /// A path that finds nothing leaves the time to EventBridge; a value that is not a timestamp, or one before
    /// 1970, is an error. A record timestamp before 1970 (Kafka's -1 is none) leaves the time to EventBridge too.
    fn time(&self, record: &Record, value: Fields<'_>) -> Result<Option<i64>, BuildError> {
        match &self.time {
            TimeConfig::None => Ok(None),
            TimeConfig::RecordTimestamp => Ok(record.timestamp.filter(|millis| *millis >= 0)),
            TimeConfig::JsonPath(path) => match value.select_one(path) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => {
                    let millis = DateTime::parse_from_rfc3339(text)
                        .map_err(|_| BuildError::BadTime {
                            path: path.to_string(),
                            found: shown(&Value::String(text.clone())),
                        })?
                        .timestamp_millis();
                    if millis < 0 {
                        return Err(BuildError::TimeBeforeEpoch {
                            path: path.to_string(),
                            found: shown(&Value::String(text.clone())),
                        });
                    }
                    Ok(Some(millis))
                }
                Some(other) => Err(BuildError::BadTime {
                    path: path.to_string(),
                    found: shown(other),
                }),
            },
        }
    }

    fn resources(&self, value: Fields<'_>) -> Result<Vec<String>, BuildError> {
        let mut resources = Vec::new();
        for resource in &self.resources {
            match resource {
                ResourceConfig::Literal(arn) => resources.push(arn.clone()),
                ResourceConfig::Path { json_path } => {
                    for selected in value.select(json_path) {
                        match selected {
                            Value::String(arn) => resources.push(arn.clone()),
                            Value::Null => {}
                            other => {
                                return Err(BuildError::BadResource {
                                    path: json_path.to_string(),
                                    found: shown(other),
                                })
                            }
                        }
                    }
                }
            }
        }
        Ok(resources)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::record::{Position, TimestampType};

    fn builder(config: &str) -> EntryBuilder {
        let document = format!("topics: [t]\nevent_bus: b\n{config}");
        let config: SinkConfig = serde_norway::from_str(&document).unwrap();
        EntryBuilder::new(&ConnectorName::try_from("c".to_owned()).unwrap(), &config)
    }

    fn record(topic: &str, headers: Vec<(String, Option<Vec<u8>>)>) -> Record {
        Record {
            position: Position {
                topic: topic.into(),
                partition: 1,
                offset: 9,
            },
            timestamp: Some(1_700_000_000_000),
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: None,
            headers,
        }
    }

    fn build(builder: &EntryBuilder, record: &Record, value: Value) -> Result<Entry, BuildError> {
        builder.build(record, Value::Null, value).map(|(entry, _)| entry)
    }

    #[test]
    fn detail_type_from_path_then_topic_map_then_template() {
        let builder =
            builder("detail_type:\n  json_path: $.kind\n  by_topic: {orders: Order}\n  default: 'x-${topic}'\n");
        let value = json!({"kind": "Refund"});
        assert_eq!(
            build(&builder, &record("orders", vec![]), value).unwrap().detail_type,
            "Refund"
        );
        assert_eq!(
            build(&builder, &record("orders", vec![]), json!({}))
                .unwrap()
                .detail_type,
            "Order"
        );
        assert_eq!(
            build(&builder, &record("other", vec![]), json!({}))
                .unwrap()
                .detail_type,
            "x-other"
        );
        assert!(matches!(
            build(&builder, &record("t", vec![]), json!({"kind": 5})),
            Err(BuildError::BadDetailType { .. })
        ));
    }

    #[test]
    fn trace_header_time_and_source() {
        let builder = builder("trace_header: x-amzn-trace-id\n");
        let headers = vec![(
            "x-amzn-trace-id".to_owned(),
            Some(b"Root=1-5759e988-bd862e3fe1be46a994272793".to_vec()),
        )];
        let entry = build(&builder, &record("t", headers), json!({})).unwrap();
        assert_eq!(
            entry.trace_header.as_deref(),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793")
        );
        assert_eq!(entry.time, Some(1_700_000_000_000), "the record timestamp by default");
        assert_eq!(&*entry.source, "kafka-connect.c");
        let bad = vec![("x-amzn-trace-id".to_owned(), Some(vec![0xff]))];
        assert!(matches!(
            build(&builder, &record("t", bad), json!({})),
            Err(BuildError::BadTraceHeader(_))
        ));
    }

    #[test]
    fn time_and_resources_from_the_value() {
        let builder = builder("detail: value\ntime: {json_path: $.at}\nresources: [{json_path: '$.arns[*]'}]\n");
        let entry = build(
            &builder,
            &record("t", vec![]),
            json!({"at": "2024-03-01T12:00:00+02:00", "arns": ["a", "b"]}),
        )
        .unwrap();
        assert_eq!(entry.time, Some(1_709_287_200_000));
        assert_eq!(entry.resources, ["a", "b"]);
        assert_eq!(
            build(&builder, &record("t", vec![]), json!({})).unwrap().time,
            None,
            "absent: EventBridge stamps it"
        );
        assert!(matches!(
            build(&builder, &record("t", vec![]), json!({"at": "yesterday"})),
            Err(BuildError::BadTime { .. })
        ));
        assert!(matches!(
            build(&builder, &record("t", vec![]), json!({"at": "1969-12-31T23:59:59Z"})),
            Err(BuildError::TimeBeforeEpoch { .. })
        ));
        assert!(matches!(
            build(&builder, &record("t", vec![]), json!({"arns": [1]})),
            Err(BuildError::BadResource { .. })
        ));
        assert!(matches!(
            build(&builder, &record("t", vec![]), json!([1])),
            Err(BuildError::DetailNotObject("an array"))
        ));
    }

    #[test]
    fn a_detail_written_as_text_takes_its_fields_from_the_captured_values() {
        let paths = builder_with(
            "detail_type: {json_path: $.kind}\ntime: {json_path: $.at.when}\n\
             resources: [arn:aws:s3:::fixed, {json_path: '$.arns[*]'}]\n",
        );
        let capture = paths.text_detail_capture().expect("paths that start with fields");
        assert_eq!(
            capture,
            Capture::fields([vec!["kind"], vec!["at", "when"], vec!["arns"]])
        );
        let value =
            json!({"kind": "Refund", "at": {"when": "2024-03-01T12:00:00Z", "other": 1}, "arns": ["a"], "x": 2});
        let captured = capture.kept_from(&value);
        let record = record("t", vec![]);
        let text = crate::json_text::quoted_json(&value);
        let from_text = paths.build_from_text(&record, &capture, &captured, text).unwrap();
        assert_eq!(from_text, build(&paths, &record, value).unwrap());
        assert_eq!(from_text.resources, ["arn:aws:s3:::fixed", "a"]);

        // The detail must be built as a value when it is not the record's value as it is, or a path starts
        // with no field.
        assert!(builder("detail: envelope\n").text_detail_capture().is_none());
        assert!(builder_with("detail_type: {json_path: '$[0]'}\n")
            .text_detail_capture()
            .is_none());
        assert_eq!(
            builder_with("time: none\n").text_detail_capture(),
            Some(Capture::fields(Vec::<Vec<&str>>::new()))
        );
    }

    fn builder_with(config: &str) -> EntryBuilder {
        builder(&format!("detail: value\n{config}"))
    }
}
