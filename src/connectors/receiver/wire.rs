//! The Confluent REST Produce API v3 on the wire: request records, delivery reports, error bodies, and which HTTP
//! status each failure gets. Unlike Confluent's endpoint, a failed single-record request carries its failure in
//! the HTTP status, so that EventBridge API destinations retry (429, 5xx) or give up (other 4xx) instead of taking a
//! 200 as delivered.

use axum::http::StatusCode;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::json_path::json_kind;
use crate::schema::encode::WriterSchema;

/// One record of a produce request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord {
    #[serde(default)]
    pub(crate) partition_id: Option<i32>,
    #[serde(default)]
    pub(crate) headers: Vec<RecordHeader>,
    #[serde(default)]
    pub(crate) key: Option<RecordData>,
    #[serde(default)]
    pub(crate) value: Option<RecordData>,
    /// RFC 3339; default: when the receiver took the record.
    #[serde(default)]
    pub(crate) timestamp: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordHeader {
    pub(crate) name: String,
    /// Base64, or null for a header without a value.
    #[serde(default)]
    pub(crate) value: Option<String>,
}

/// A key or a value: its type, its data, and for the registry's types the schema to write it with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordData {
    #[serde(rename = "type", default)]
    pub(crate) kind: Option<DataType>,
    #[serde(default)]
    pub(crate) data: Value,
    /// AVRO, PROTOBUF, JSONSCHEMA: the schema text, registered under the topic's subject.
    #[serde(default)]
    pub(crate) schema: Option<String>,
    /// AVRO, PROTOBUF, JSONSCHEMA: the latest schema of this subject.
    #[serde(default)]
    pub(crate) subject: Option<String>,
    /// AVRO, PROTOBUF, JSONSCHEMA: the schema with this id.
    #[serde(default)]
    pub(crate) schema_id: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum DataType {
    Binary,
    Json,
    String,
    Avro,
    Protobuf,
    Jsonschema,
}

impl DataType {
    /// Written through the Schema Registry, with a schema the record names (or its topic's latest).
    pub(crate) fn has_schema(self) -> bool {
        matches!(self, Self::Avro | Self::Protobuf | Self::Jsonschema)
    }
}

/// What a record's key or value becomes before it is written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Payload {
    Bytes(Vec<u8>),
    /// Avro, Protobuf or JSON Schema, written with the schema named.
    Registry {
        kind: DataType,
        value: Value,
        schema: WriterSchema,
    },
}

impl RecordData {
    /// The data type: as given, or Avro when a schema is named, or JSON.
    pub(crate) fn data_type(&self) -> DataType {
        match self.kind {
            Some(kind) => kind,
            None if self.schema.is_some() || self.subject.is_some() || self.schema_id.is_some() => DataType::Avro,
            None => DataType::Json,
        }
    }

    /// Turns the data into bytes, or into what a registry encoder needs; `what` is `key` or `value`, for messages.
    pub(crate) fn payload(&self, what: &str) -> Result<Payload, ApiError> {
        let kind = self.data_type();
        let named = [self.schema.is_some(), self.subject.is_some(), self.schema_id.is_some()]
            .into_iter()
            .filter(|named| *named)
            .count();
        if !kind.has_schema() && named > 0 {
            return Err(ApiError::invalid(format!(
                "{what}: `schema`, `subject` and `schema_id` apply only to types AVRO, PROTOBUF and JSONSCHEMA"
            )));
        }
        if named > 1 {
            return Err(ApiError::invalid(format!(
                "{what}: give one of `schema`, `subject` and `schema_id`"
            )));
        }
        Ok(match kind {
            DataType::Json => Payload::Bytes(
                serde_json::to_vec(&self.data)
                    .map_err(|error| ApiError::invalid(format!("{what}.data: cannot be written as JSON: {error}")))?,
            ),
            DataType::String => match &self.data {
                Value::String(text) => Payload::Bytes(text.clone().into_bytes()),
                other => {
                    return Err(ApiError::invalid(format!(
                        "{what}.data: type STRING needs a JSON string, not {}",
                        json_kind(other)
                    )))
                }
            },
            DataType::Binary => match &self.data {
                Value::String(text) => Payload::Bytes(
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .map_err(|error| {
                            ApiError::invalid(format!("{what}.data: type BINARY needs base64: {error}"))
                        })?,
                ),
                other => {
                    return Err(ApiError::invalid(format!(
                        "{what}.data: type BINARY needs a base64 string, not {}",
                        json_kind(other)
                    )))
                }
            },
            DataType::Avro | DataType::Protobuf | DataType::Jsonschema => Payload::Registry {
                kind,
                value: self.data.clone(),
                schema: match (&self.schema, &self.subject, self.schema_id) {
                    (Some(schema), _, _) => WriterSchema::Supplied(schema.clone()),
                    (_, Some(subject), _) => WriterSchema::Subject(subject.clone()),
                    (_, _, Some(id)) => WriterSchema::Id(id),
                    (None, None, None) => WriterSchema::TopicLatest,
                },
            },
        })
    }
}

impl RecordHeader {
    pub(crate) fn decoded(&self) -> Result<(String, Option<Vec<u8>>), ApiError> {
        let value = match &self.value {
            None => None,
            Some(text) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|error| {
                        ApiError::invalid(format!("headers.{}: the value must be base64: {error}", self.name))
                    })?,
            ),
        };
        Ok((self.name.clone(), value))
    }
}

/// The `key` and `value` of a delivery report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DataSummary {
    #[serde(rename = "type")]
    pub(crate) kind: DataType,
    pub(crate) size: usize,
}

/// A delivery report: the record is in Kafka.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Delivered {
    pub(crate) error_code: u16,
    pub(crate) cluster_id: String,
    pub(crate) topic_name: String,
    pub(crate) partition_id: i32,
    pub(crate) offset: i64,
    pub(crate) timestamp: String,
    pub(crate) key: Option<DataSummary>,
    pub(crate) value: Option<DataSummary>,
}

/// A failure, as the HTTP status and the body Confluent's API uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub(crate) status: StatusCode,
    pub(crate) error_code: u32,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error_code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            error_code,
            message: message.into(),
        }
    }

    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 40001, message)
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            40101,
            "authentication failed: send Basic credentials with the configured API key and secret",
        )
    }

    pub(crate) fn unknown_topic(topic: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40403,
            format!("this endpoint does not serve topic `{topic}`"),
        )
    }

    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, 41301, message)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, 42201, message)
    }

    pub(crate) fn busy(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, 42901, message)
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, 50301, message)
    }
}

/// One entry of a `records:batch` request: its `id`, and its text, parsed into a record only when it is written.
#[derive(Debug)]
pub struct BatchEntry<'a> {
    pub(crate) id: String,
    pub(crate) record: &'a RawValue,
}

/// The entries of a `records:batch` body (`{"entries": [{"id": ..., <record fields>}, ...]}`), at most
/// `max_entries` of them, each with a distinct `id`. Only the ids are parsed here; the body's text is borrowed, so
/// the entries cost a few words each however large the body.
pub fn batch_entries(body: &[u8], max_entries: usize) -> Result<Vec<BatchEntry<'_>>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch<'a> {
        #[serde(borrow)]
        entries: &'a RawValue,
    }
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    let text =
        std::str::from_utf8(body).map_err(|error| ApiError::malformed(format!("the body is not UTF-8: {error}")))?;
    let batch: Batch<'_> = serde_json::from_str(text).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => ApiError::invalid(format!("not a batch request: {error}")),
        _ => ApiError::malformed(format!("the body is not JSON: {error}")),
    })?;
    let raw: Vec<&RawValue> = bounded_array(batch.entries.get(), max_entries)?;
    let mut ids = std::collections::HashSet::with_capacity(raw.len());
    let mut entries = Vec::with_capacity(raw.len());
    for (index, record) in raw.into_iter().enumerate() {
        let Id { id } = serde_json::from_str(record.get())
            .map_err(|error| ApiError::invalid(format!("entries[{index}]: not a batch entry with an `id`: {error}")))?;
        if !ids.insert(id.clone()) {
            return Err(ApiError::invalid(format!("entries: id `{id}` is used twice")));
        }
        entries.push(BatchEntry { id, record });
    }
    Ok(entries)
}

/// The elements of a JSON array, refusing more than `max` as soon as the next one begins.
fn bounded_array(text: &str, max: usize) -> Result<Vec<&RawValue>, ApiError> {
    struct Bounded<'a> {
        max: usize,
        overflowed: &'a std::cell::Cell<bool>,
    }
    impl<'de> serde::de::Visitor<'de> for Bounded<'_> {
        type Value = Vec<&'de RawValue>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("an array of entries")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut elements = Vec::new();
            while let Some(element) = seq.next_element()? {
                if elements.len() == self.max {
                    self.overflowed.set(true);
                    return Err(serde::de::Error::custom(format_args!(
                        "more than {} entries (max_batch_entries)",
                        self.max
                    )));
                }
                elements.push(element);
            }
            Ok(elements)
        }
    }
    let overflowed = std::cell::Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    serde::Deserializer::deserialize_seq(
        &mut deserializer,
        Bounded {
            max,
            overflowed: &overflowed,
        },
    )
    .map_err(|error| {
        if overflowed.get() {
            ApiError::too_large(format!("entries: {error}"))
        } else {
            ApiError::invalid(format!("entries: {error}"))
        }
    })
}

#[derive(Debug, Serialize)]
pub(crate) struct BatchSuccess {
    pub(crate) id: String,
    #[serde(flatten)]
    pub(crate) delivered: Delivered,
}

#[derive(Debug, Serialize)]
pub(crate) struct BatchFailure {
    pub(crate) id: String,
    pub(crate) error_code: u32,
    pub(crate) message: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct BatchResponse {
    pub(crate) successes: Vec<BatchSuccess>,
    pub(crate) failures: Vec<BatchFailure>,
}

/// Reads one record from its JSON; a well-formed object that is not a record gets 422 naming the problem.
pub fn parse_record(mut value: Value) -> Result<ProduceRecord, ApiError> {
    if !value.is_object() {
        return Err(ApiError::malformed(format!(
            "a record must be a JSON object, not {}",
            json_kind(&value)
        )));
    }
    // A key's or value's `data` is moved out before the typed parse and back after it: parsed into a field, a
    // `Value` is rebuilt entry by entry, which took an eighth of the receiver's CPU on CloudTrail events.
    let key_data = take_data(&mut value, "key");
    let value_data = take_data(&mut value, "value");
    let mut record: ProduceRecord =
        serde_json::from_value(value).map_err(|error| ApiError::invalid(format!("not a produce record: {error}")))?;
    for (part, data) in [(&mut record.key, key_data), (&mut record.value, value_data)] {
        if let (Some(part), Some(data)) = (part, data) {
            part.data = data;
        }
    }
    Ok(record)
}

/// The `data` of the record's `part`, removed from it, when the part is an object that has one.
fn take_data(record: &mut Value, part: &str) -> Option<Value> {
    record.get_mut(part)?.as_object_mut()?.shift_remove("data")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data(value: Value) -> RecordData {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn each_type_becomes_its_bytes() {
        let json = data(json!({"type": "JSON", "data": {"a": 1}}));
        assert_eq!(json.payload("value").unwrap(), Payload::Bytes(br#"{"a":1}"#.to_vec()));
        let string = data(json!({"type": "STRING", "data": "héllo"}));
        assert_eq!(
            string.payload("value").unwrap(),
            Payload::Bytes("héllo".as_bytes().to_vec())
        );
        let binary = data(json!({"type": "BINARY", "data": "AP8="}));
        assert_eq!(binary.payload("value").unwrap(), Payload::Bytes(vec![0, 255]));
        let untyped = data(json!({"data": [1, 2]}));
        assert_eq!(untyped.payload("value").unwrap(), Payload::Bytes(b"[1,2]".to_vec()));
    }

    #[test]
    fn avro_names_its_schema_one_way() {
        let by_subject = data(json!({"type": "AVRO", "subject": "s", "data": {}}));
        assert!(matches!(
            by_subject.payload("value").unwrap(),
            Payload::Registry { kind: DataType::Avro, schema: WriterSchema::Subject(subject), .. } if subject == "s"
        ));
        let implied = data(json!({"schema_id": 7, "data": {}}));
        assert!(matches!(
            implied.payload("value").unwrap(),
            Payload::Registry {
                kind: DataType::Avro,
                schema: WriterSchema::Id(7),
                ..
            }
        ));
        let both = data(json!({"type": "AVRO", "subject": "s", "schema_id": 7, "data": {}}));
        assert_eq!(both.payload("value").unwrap_err().error_code, 42201);
        let json_with_schema = data(json!({"type": "JSON", "schema_id": 7, "data": {}}));
        assert_eq!(
            json_with_schema.payload("value").unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn data_of_the_wrong_kind_is_unprocessable() {
        let error = data(json!({"type": "STRING", "data": 5})).payload("key").unwrap_err();
        assert_eq!(error.message, "key.data: type STRING needs a JSON string, not a number");
        let error = data(json!({"type": "BINARY", "data": "%%"}))
            .payload("value")
            .unwrap_err();
        assert!(error.message.starts_with("value.data: type BINARY needs base64"));
    }

    #[test]
    fn records_are_objects_with_known_fields() {
        assert_eq!(parse_record(json!([1])).unwrap_err().status, StatusCode::BAD_REQUEST);
        let error = parse_record(json!({"valeu": {}})).unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(error.message.contains("unknown field `valeu`"), "{}", error.message);
        let record = parse_record(json!({"value": {"type": "JSON", "data": {"id": "e-1"}}})).unwrap();
        assert_eq!(record.value.unwrap().data, json!({"id": "e-1"}));
    }

    #[test]
    fn each_part_keeps_its_own_data() {
        let record = parse_record(json!({
            "key": {"type": "STRING", "data": "k"},
            "value": {"data": [1, {"b": 2}], "type": "JSON"},
        }))
        .unwrap();
        assert_eq!(record.key.unwrap().data, json!("k"));
        assert_eq!(record.value.unwrap().data, json!([1, {"b": 2}]));
        let record = parse_record(json!({"key": null, "value": {"type": "JSON"}})).unwrap();
        assert!(record.key.is_none());
        assert_eq!(record.value.unwrap().data, Value::Null);
        let error = parse_record(json!({"value": "x"})).unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        let error = parse_record(json!({"value": {"data": 1, "typo": 2}})).unwrap_err();
        assert!(error.message.contains("unknown field `typo`"), "{}", error.message);
    }
}
