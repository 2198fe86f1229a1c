//! JSON to Confluent-framed Avro (here), Protobuf (in `protobuf`) or JSON Schema (here) through the Schema Registry,
//! for the connectors that write to Kafka. The schema is
//! registered or looked up once per subject (or id) and cached by schema_registry_converter; the JSON is resolved
//! against it with apache-avro's schema resolution, so numbers widen or narrow to the field's type, objects become
//! records or maps, and a union takes the first branch the value fits.

use std::sync::Arc;

use apache_avro::types::Value as AvroValue;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema as AvroSchemaNode;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::json::JsonDecoder;
use schema_registry_converter::async_impl::schema_registry::{get_schema_by_subject, SrSettings};
use schema_registry_converter::avro_common::AvroSchema;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema};
use serde_json::Value;

use super::protobuf::ProtobufRecordEncoder;
use super::registry::describe;

/// Which schema a value is written with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriterSchema {
    /// This schema text, registered (idempotently) under `<topic>-key` or `<topic>-value`.
    Supplied(String),
    /// The latest version of this subject.
    Subject(String),
    /// The schema with this id.
    Id(u32),
    /// The latest version of `<topic>-key` or `<topic>-value`, Confluent's default TopicNameStrategy.
    TopicLatest,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum EncodeError {
    /// The schema cannot be had: unknown subject or id, or the registry refused it as invalid.
    #[error("no usable schema for {what}: {reason}")]
    Schema { what: String, reason: String },
    /// The value does not fit the schema.
    #[error("the value does not fit schema id {schema_id}: {reason}")]
    Mismatch { schema_id: u32, reason: String },
    /// The registry could not be asked (network, 5xx): not the value's fault.
    #[error("the Schema Registry is unavailable ({what}): {reason}")]
    RegistryUnavailable { what: String, reason: String },
}

impl EncodeError {
    /// True when trying again later may succeed.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, Self::RegistryUnavailable { .. })
    }
}

/// JSON to an Avro value for `schema`, reading back what the decoder writes: the logical types it shows as text
/// (dates, times of day, timestamps) are parsed into their Avro values, so that a record read as Avro can be written
/// as Avro again (a topic-processor's Avro in and out). The rest is converted as apache-avro converts JSON, and
/// resolution against the schema does the rest. Inside a named type reused by reference, logical types are left as
/// text (and then fail to resolve, naming the field).
fn avro_value(json: &Value, schema: &AvroSchemaNode) -> Result<AvroValue, apache_avro::Error> {
    let generic = || AvroValue::try_from(json.clone());
    Ok(match (schema, json) {
        (AvroSchemaNode::Record(record), Value::Object(fields)) => AvroValue::Record(
            fields
                .iter()
                .map(|(name, field)| {
                    let known = record.lookup.get(name).and_then(|index| record.fields.get(*index));
                    let converted = match known {
                        Some(known) => avro_value(field, &known.schema),
                        None => AvroValue::try_from(field.clone()),
                    };
                    converted.map(|converted| (name.clone(), converted))
                })
                .collect::<Result<_, _>>()?,
        ),
        (AvroSchemaNode::Array(array), Value::Array(items)) => AvroValue::Array(
            items
                .iter()
                .map(|item| avro_value(item, &array.items))
                .collect::<Result<_, _>>()?,
        ),
        (AvroSchemaNode::Map(map), Value::Object(entries)) => AvroValue::Map(
            entries
                .iter()
                .map(|(name, entry)| avro_value(entry, &map.types).map(|converted| (name.clone(), converted)))
                .collect::<Result<_, _>>()?,
        ),
        (AvroSchemaNode::Union(union), Value::String(text)) => {
            match union.variants().iter().find_map(|variant| logical(text, variant)) {
                Some(converted) => converted,
                None => generic()?,
            }
        }
        (AvroSchemaNode::Union(union), Value::Object(_) | Value::Array(_)) => {
            let container = union.variants().iter().find(|variant| {
                matches!(
                    (variant, json),
                    (AvroSchemaNode::Record(_) | AvroSchemaNode::Map(_), Value::Object(_))
                        | (AvroSchemaNode::Array(_), Value::Array(_))
                )
            });
            match container {
                Some(variant) => avro_value(json, variant)?,
                None => generic()?,
            }
        }
        (_, Value::String(text)) => match logical(text, schema) {
            Some(converted) => converted,
            None => generic()?,
        },
        _ => generic()?,
    })
}

/// The Avro value of a logical type's text as the decoder writes it; `None` when `schema` is not such a type or the
/// text does not parse (resolution then names the mismatch).
fn logical(text: &str, schema: &AvroSchemaNode) -> Option<AvroValue> {
    use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};
    let instant = || chrono::DateTime::parse_from_rfc3339(text).ok();
    let local = || {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|time| time.and_utc())
    };
    let time_of_day = || {
        NaiveTime::parse_from_str(text, "%H:%M:%S%.f")
            .ok()
            .map(|time| i64::from(time.num_seconds_from_midnight()) * 1_000_000_000 + i64::from(time.nanosecond()))
    };
    Some(match schema {
        AvroSchemaNode::TimestampMillis => AvroValue::TimestampMillis(instant()?.timestamp_millis()),
        AvroSchemaNode::TimestampMicros => AvroValue::TimestampMicros(instant()?.timestamp_micros()),
        AvroSchemaNode::TimestampNanos => AvroValue::TimestampNanos(instant()?.timestamp_nanos_opt()?),
        AvroSchemaNode::LocalTimestampMillis => AvroValue::LocalTimestampMillis(local()?.timestamp_millis()),
        AvroSchemaNode::LocalTimestampMicros => AvroValue::LocalTimestampMicros(local()?.timestamp_micros()),
        AvroSchemaNode::LocalTimestampNanos => AvroValue::LocalTimestampNanos(local()?.timestamp_nanos_opt()?),
        AvroSchemaNode::Date => {
            let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
            AvroValue::Date(date.to_epoch_days())
        }
        AvroSchemaNode::TimeMillis => AvroValue::TimeMillis(i32::try_from(time_of_day()? / 1_000_000).ok()?),
        AvroSchemaNode::TimeMicros => AvroValue::TimeMicros(time_of_day()? / 1_000),
        _ => return None,
    })
}

/// Writes JSON values as Confluent-framed Avro.
pub(crate) struct AvroRecordEncoder {
    encoder: AvroEncoder,
    /// The encoder looks schemas up by subject only; schemas given by id come from a decoder's cache.
    by_id: AvroDecoder,
}

impl std::fmt::Debug for AvroRecordEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroRecordEncoder").finish_non_exhaustive()
    }
}

impl AvroRecordEncoder {
    pub(crate) fn new(settings: SrSettings) -> Arc<Self> {
        Arc::new(Self {
            encoder: AvroEncoder::new(settings.clone()),
            by_id: AvroDecoder::new(settings),
        })
    }

    /// Encodes `value` for `topic`'s key (`is_key`) or value, with the schema `schema` names.
    pub(crate) async fn encode(
        &self,
        value: &Value,
        topic: &str,
        is_key: bool,
        schema: &WriterSchema,
    ) -> Result<Vec<u8>, EncodeError> {
        let schema = self.schema(topic, is_key, schema).await?;
        let mismatch = |error: apache_avro::Error| EncodeError::Mismatch {
            schema_id: schema.id,
            reason: error.to_string(),
        };
        let resolved = avro_value(value, &schema.parsed)
            .and_then(|value| value.resolve(&schema.parsed))
            .map_err(mismatch)?;
        let body = GenericDatumWriter::builder(&schema.parsed)
            .build()
            .and_then(|writer| writer.write_value_to_vec(resolved))
            .map_err(mismatch)?;
        let mut framed = Vec::with_capacity(body.len() + 5);
        framed.push(0);
        framed.extend_from_slice(&schema.id.to_be_bytes());
        framed.extend_from_slice(&body);
        Ok(framed)
    }

    async fn schema(&self, topic: &str, is_key: bool, schema: &WriterSchema) -> Result<Arc<AvroSchema>, EncodeError> {
        let strategy = match schema {
            WriterSchema::Supplied(text) => SubjectNameStrategy::TopicNameStrategyWithSchema(
                topic.to_owned(),
                is_key,
                SuppliedSchema::new(None, SchemaType::Avro, text.clone()),
            ),
            WriterSchema::Subject(subject) => SubjectNameStrategy::RecordNameStrategy(subject.clone()),
            WriterSchema::TopicLatest => SubjectNameStrategy::TopicNameStrategy(topic.to_owned(), is_key),
            WriterSchema::Id(id) => {
                let what = format!("schema id {id}");
                return self.by_id.get_schema(*id).await.map_err(|error| classify(what, &error));
            }
        };
        let subject = strategy
            .get_subject()
            .map_err(|error| classify(String::from("the subject"), &error))?;
        self.encoder
            .get_schema_and_id(&subject, strategy)
            .await
            .map_err(|error| classify(format!("subject `{subject}`"), &error))
    }
}

pub(crate) fn classify(what: String, error: &SRCError) -> EncodeError {
    if error.retriable {
        EncodeError::RegistryUnavailable {
            what,
            reason: describe(error),
        }
    } else {
        EncodeError::Schema {
            what,
            reason: describe(error),
        }
    }
}

/// Writes JSON values as Confluent-framed JSON Schema: the schema registered (or looked up) once per subject or id,
/// each value checked against it, the JSON text framed with the schema id.
pub(crate) struct JsonSchemaRecordEncoder {
    settings: SrSettings,
    /// Compiles and caches the schemas by id, and validates against them.
    schemas: JsonDecoder,
    /// Schema ids by subject.
    ids: tokio::sync::RwLock<std::collections::HashMap<String, u32>>,
}

impl std::fmt::Debug for JsonSchemaRecordEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchemaRecordEncoder").finish_non_exhaustive()
    }
}

impl JsonSchemaRecordEncoder {
    pub(crate) fn new(settings: SrSettings) -> Arc<Self> {
        Arc::new(Self {
            schemas: JsonDecoder::new(settings.clone()),
            settings,
            ids: tokio::sync::RwLock::default(),
        })
    }

    pub(crate) async fn encode(
        &self,
        value: &Value,
        topic: &str,
        is_key: bool,
        schema: &WriterSchema,
    ) -> Result<Vec<u8>, EncodeError> {
        let schema_id = self.schema_id(topic, is_key, schema).await?;
        let compiled = self
            .schemas
            .get_schema(schema_id)
            .await
            .map_err(|error| classify(format!("schema id {schema_id}"), &error))?;
        self.schemas
            .validate(&compiled, value)
            .map_err(|error| EncodeError::Mismatch {
                schema_id,
                reason: describe(&error),
            })?;
        let mut framed = vec![0];
        framed.extend_from_slice(&schema_id.to_be_bytes());
        framed.extend_from_slice(value.to_string().as_bytes());
        Ok(framed)
    }

    async fn schema_id(&self, topic: &str, is_key: bool, schema: &WriterSchema) -> Result<u32, EncodeError> {
        let strategy = match schema {
            WriterSchema::Id(id) => return Ok(*id),
            WriterSchema::Supplied(text) => SubjectNameStrategy::TopicNameStrategyWithSchema(
                topic.to_owned(),
                is_key,
                SuppliedSchema::new(None, SchemaType::Json, text.clone()),
            ),
            WriterSchema::Subject(subject) => SubjectNameStrategy::RecordNameStrategy(subject.clone()),
            WriterSchema::TopicLatest => SubjectNameStrategy::TopicNameStrategy(topic.to_owned(), is_key),
        };
        let subject = strategy
            .get_subject()
            .map_err(|error| classify(String::from("the subject"), &error))?;
        if let Some(id) = self.ids.read().await.get(&subject) {
            return Ok(*id);
        }
        let registered = get_schema_by_subject(&self.settings, &strategy)
            .await
            .map_err(|error| classify(format!("subject `{subject}`"), &error))?;
        self.ids.write().await.insert(subject, registered.id);
        Ok(registered.id)
    }
}

/// How a connector writes JSON values to Kafka.
#[derive(Debug, Clone)]
pub(crate) enum JsonWriter {
    /// As JSON text.
    Json,
    /// As Confluent-framed Avro with the given schema.
    Avro {
        encoder: Arc<AvroRecordEncoder>,
        schema: WriterSchema,
    },
    /// As Confluent-framed Protobuf with the given schema.
    Protobuf {
        encoder: Arc<ProtobufRecordEncoder>,
        schema: WriterSchema,
    },
    /// As Confluent-framed JSON Schema with the given schema.
    JsonSchema {
        encoder: Arc<JsonSchemaRecordEncoder>,
        schema: WriterSchema,
    },
}

impl JsonWriter {
    pub(crate) async fn write(&self, value: &Value, topic: &str, is_key: bool) -> Result<Vec<u8>, EncodeError> {
        match self {
            Self::Json => Ok(value.to_string().into_bytes()),
            Self::Avro { encoder, schema } => encoder.encode(value, topic, is_key, schema).await,
            Self::Protobuf { encoder, schema } => encoder.encode(value, topic, is_key, schema).await,
            Self::JsonSchema { encoder, schema } => encoder.encode(value, topic, is_key, schema).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::writer::datum::GenericDatumWriter;
    use serde_json::json;

    use super::*;
    use crate::schema::avro::{decode_to_json, AvroJsonOptions};

    /// What the decoder writes, encoded again and decoded: the same JSON.
    #[test]
    fn what_the_decoder_writes_encodes_back_to_the_same_values() {
        let schema = AvroSchemaNode::parse_str(
            r#"{"type":"record","name":"Call","fields":[
                {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
                {"name":"atu","type":{"type":"long","logicalType":"timestamp-micros"}},
                {"name":"local","type":{"type":"long","logicalType":"local-timestamp-millis"}},
                {"name":"day","type":{"type":"int","logicalType":"date"}},
                {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
                {"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
                {"name":"seen","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null},
                {"name":"who","type":["null",{"type":"record","name":"Who","fields":[
                    {"name":"since","type":{"type":"long","logicalType":"timestamp-millis"}},
                    {"name":"name","type":"string"}]}],"default":null},
                {"name":"calls","type":{"type":"array","items":{"type":"int","logicalType":"date"}}},
                {"name":"last","type":{"type":"map","values":{"type":"long","logicalType":"timestamp-millis"}}},
                {"name":"note","type":"string"}]}"#,
        )
        .unwrap();
        let written = json!({
            "at": "2023-07-10T11:42:31.123Z",
            "atu": "2023-07-10T11:42:31.123456Z",
            "local": "2023-07-10T11:42:31.123",
            "day": "2023-07-10",
            "tm": "11:42:31.123",
            "tu": "11:42:31.123456",
            "seen": "2023-07-10T11:42:00.000Z",
            "who": {"since": "2020-01-01T00:00:00.000Z", "name": "benjamin"},
            "calls": ["2023-07-09", "2023-07-10"],
            "last": {"GetObject": "2023-07-10T11:42:31.000Z"},
            "note": "2023-07-10"
        });
        let resolved = avro_value(&written, &schema)
            .and_then(|value| value.resolve(&schema))
            .unwrap();
        let bytes = GenericDatumWriter::builder(&schema)
            .build()
            .and_then(|writer| writer.write_value_to_vec(resolved))
            .unwrap();
        let read = decode_to_json(&bytes, &schema, AvroJsonOptions::default()).unwrap();
        assert_eq!(read, written);
    }

    #[test]
    fn text_that_is_not_the_logical_type_fails_resolution() {
        let schema =
            AvroSchemaNode::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#)
                .unwrap();
        let failed = avro_value(&json!({"at": "yesterday"}), &schema).and_then(|value| value.resolve(&schema));
        assert!(failed.is_err());
    }
}
