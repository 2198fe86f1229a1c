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

use super::avro::branch_name;
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

/// JSON to an Avro value for `schema`, reading back what the decoder writes (`avro.rs`): the logical types it shows
/// as text (dates, times of day, timestamps, decimals, UUIDs), `bytes` and `fixed` as base64, and a `duration` as
/// `{months, days, milliseconds}` become their Avro values, so that a record read as Avro is written as Avro again
/// unchanged (a topic-processor's Avro in and out). Text that is none of these where the schema wants one is an
/// error: apache-avro would otherwise take a string's UTF-8 bytes as `bytes`. The rest is converted as apache-avro
/// converts JSON, and resolution against the schema does the rest. Inside a named type reused by reference, these
/// are left as they are (and then fail to resolve).
pub(super) fn avro_value(
    json: &Value,
    schema: &AvroSchemaNode,
    binary: BinaryText,
) -> Result<AvroValue, apache_avro::Error> {
    let generic = || AvroValue::try_from(json.clone());
    Ok(match (schema, json) {
        (AvroSchemaNode::Record(record), Value::Object(fields)) => AvroValue::Record(
            fields
                .iter()
                .map(|(name, field)| {
                    let known = record.lookup.get(name).and_then(|index| record.fields.get(*index));
                    let converted = match known {
                        Some(known) => avro_value(field, &known.schema, binary),
                        None => AvroValue::try_from(field.clone()),
                    };
                    converted.map(|converted| (name.clone(), converted))
                })
                .collect::<Result<_, _>>()?,
        ),
        (AvroSchemaNode::Array(array), Value::Array(items)) => AvroValue::Array(
            items
                .iter()
                .map(|item| avro_value(item, &array.items, binary))
                .collect::<Result<_, _>>()?,
        ),
        (AvroSchemaNode::Map(map), Value::Object(entries)) => AvroValue::Map(
            entries
                .iter()
                .map(|(name, entry)| avro_value(entry, &map.types, binary).map(|converted| (name.clone(), converted)))
                .collect::<Result<_, _>>()?,
        ),
        (AvroSchemaNode::Duration(_), Value::Object(parts)) => duration(parts)?,
        (AvroSchemaNode::Union(union), Value::String(text)) => {
            // The first branch that reads the text takes it, in the union's order, as apache-avro resolves one.
            let mut refusal = None;
            for variant in union.variants() {
                match (from_text(text, variant, binary), variant) {
                    (Some(Ok(converted)), _) => return Ok(converted),
                    (Some(Err(error)), _) => {
                        refusal.get_or_insert(error);
                    }
                    (None, AvroSchemaNode::String) => return generic(),
                    (None, AvroSchemaNode::Enum(enumeration)) if enumeration.symbols.contains(text) => {
                        return generic()
                    }
                    (None, _) => {}
                }
            }
            match refusal {
                Some(error) => return Err(error),
                None => generic()?,
            }
        }
        (AvroSchemaNode::Union(union), Value::Object(_) | Value::Array(_)) => {
            // An object whose one key names a branch is that branch's value, as Avro's JSON encoding writes a union
            // (and the decoder with `union_type_tags`, and Confluent's REST Proxy reads it).
            let tagged = json
                .as_object()
                .filter(|members| members.len() == 1)
                .and_then(|members| {
                    let (tag, inner) = members.iter().next()?;
                    let branch = union.variants().iter().find(|variant| branch_name(variant) == *tag)?;
                    Some((branch, inner))
                });
            if let Some((branch, inner)) = tagged {
                return avro_value(inner, branch, binary);
            }
            let container = union.variants().iter().find(|variant| {
                matches!(
                    (variant, json),
                    (
                        AvroSchemaNode::Record(_) | AvroSchemaNode::Map(_) | AvroSchemaNode::Duration(_),
                        Value::Object(_)
                    ) | (AvroSchemaNode::Array(_), Value::Array(_))
                )
            });
            match container {
                Some(variant) => avro_value(json, variant, binary)?,
                None => generic()?,
            }
        }
        (_, Value::String(text)) => match from_text(text, schema, binary) {
            Some(converted) => converted?,
            None => generic()?,
        },
        _ => generic()?,
    })
}

/// How JSON text stands for the bytes of Avro's `bytes` and `fixed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryText {
    /// Base64, as the decoder writes them (and Kafka Connect's JsonConverter): for records read as Avro and written
    /// again, and for events, whose JSON carries binary data as base64.
    Base64,
    /// Avro's own JSON encoding, as Confluent's REST Proxy reads a record's data: each character one byte, U+0000 to
    /// U+00FF.
    AvroJson,
}

impl BinaryText {
    fn wanted(self) -> &'static str {
        match self {
            Self::Base64 => "base64",
            Self::AvroJson => "text of characters U+0000 to U+00FF, one a byte",
        }
    }
}

fn refused(what: String) -> apache_avro::Error {
    apache_avro::error::Details::SerializeValue(what).into()
}

/// The Avro value of `text` as the decoder writes it for `schema`; `None` when `schema` is not a type the decoder
/// writes as text of its own (a string, an enum, a number: apache-avro converts those).
fn from_text(text: &str, schema: &AvroSchemaNode, binary: BinaryText) -> Option<Result<AvroValue, apache_avro::Error>> {
    use base64::Engine;
    use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
    let instant = || DateTime::parse_from_rfc3339(text).ok().map(|time| time.to_utc());
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
    let bytes = || match binary {
        BinaryText::Base64 => base64::engine::general_purpose::STANDARD.decode(text).ok(),
        BinaryText::AvroJson => text.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect(),
    };
    // A timestamp's text, its count of the type's units since the epoch, and the Avro value of that count.
    let timestamp = |zoned: bool, count: fn(&DateTime<Utc>) -> Option<i64>, make: fn(i64) -> AvroValue| {
        let time = if zoned { instant() } else { local() };
        let wanted = if zoned {
            "an RFC 3339 timestamp"
        } else {
            "a timestamp without a zone (2024-03-01T12:00:00.123)"
        };
        (time.as_ref().and_then(count).map(make), wanted.to_owned())
    };
    let (converted, wanted): (Option<AvroValue>, String) = match schema {
        AvroSchemaNode::TimestampMillis => {
            timestamp(true, |time| Some(time.timestamp_millis()), AvroValue::TimestampMillis)
        }
        AvroSchemaNode::TimestampMicros => {
            timestamp(true, |time| Some(time.timestamp_micros()), AvroValue::TimestampMicros)
        }
        AvroSchemaNode::TimestampNanos => timestamp(true, DateTime::timestamp_nanos_opt, AvroValue::TimestampNanos),
        AvroSchemaNode::LocalTimestampMillis => timestamp(
            false,
            |time| Some(time.timestamp_millis()),
            AvroValue::LocalTimestampMillis,
        ),
        AvroSchemaNode::LocalTimestampMicros => timestamp(
            false,
            |time| Some(time.timestamp_micros()),
            AvroValue::LocalTimestampMicros,
        ),
        AvroSchemaNode::LocalTimestampNanos => {
            timestamp(false, DateTime::timestamp_nanos_opt, AvroValue::LocalTimestampNanos)
        }
        AvroSchemaNode::Date => (
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .map(|date| AvroValue::Date(date.to_epoch_days())),
            "a date (2024-03-01)".into(),
        ),
        AvroSchemaNode::TimeMillis => (
            time_of_day()
                .and_then(|nanos| i32::try_from(nanos / 1_000_000).ok())
                .map(AvroValue::TimeMillis),
            "a time of day (12:34:56.789)".into(),
        ),
        AvroSchemaNode::TimeMicros => (
            time_of_day().map(|nanos| AvroValue::TimeMicros(nanos / 1_000)),
            "a time of day (12:34:56.789123)".into(),
        ),
        AvroSchemaNode::Bytes => (bytes().map(AvroValue::Bytes), binary.wanted().into()),
        AvroSchemaNode::Fixed(fixed) => (
            bytes()
                .filter(|bytes| bytes.len() == fixed.size)
                .map(|bytes| AvroValue::Fixed(fixed.size, bytes)),
            format!("{} of exactly {} bytes", binary.wanted(), fixed.size),
        ),
        AvroSchemaNode::Decimal(decimal) => (
            unscaled_decimal(text, decimal.scale, decimal.precision)
                .map(|unscaled| AvroValue::Decimal(unscaled.into())),
            format!("a decimal with at most {} digits after the point", decimal.scale),
        ),
        AvroSchemaNode::Uuid(_) => (uuid::Uuid::parse_str(text).ok().map(AvroValue::Uuid), "a UUID".into()),
        _ => return None,
    };
    Some(converted.ok_or_else(|| refused(format!("a {} value must be {wanted}", kind_name(schema)))))
}

/// The schema's type, as Avro's JSON names it, for errors.
fn kind_name(schema: &AvroSchemaNode) -> String {
    let kind = apache_avro::schema::SchemaKind::from(schema);
    format!("{kind:?}")
}

/// The two's-complement big-endian unscaled integer of the decimal `text` (`-1234.50`, as the decoder writes it) at
/// `scale` digits after the point, in as many bytes as `precision` digits take (apache-avro checks that room, not
/// the value); `None` for anything else, or for more digits after the point than `scale`.
fn unscaled_decimal(text: &str, scale: usize, precision: usize) -> Option<Vec<u8>> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || fraction.len() > scale || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let sign = if digits.len() < text.len() { "-" } else { "" };
    let unscaled: num_bigint::BigInt = format!("{sign}{whole}{fraction:0<scale$}").parse().ok()?;
    let bytes = unscaled.to_signed_bytes_be();
    // n bytes hold every number of up to floor((8n - 1) log10 2) digits, as apache-avro counts them.
    let room = (1..)
        .find(|len: &usize| ((8 * len - 1) as f64 * std::f64::consts::LOG10_2).floor() as usize >= precision)
        .unwrap_or(bytes.len());
    let fill = if unscaled.sign() == num_bigint::Sign::Minus {
        0xff
    } else {
        0
    };
    let mut extended = vec![fill; room.saturating_sub(bytes.len())];
    extended.extend(bytes);
    Some(extended)
}

/// A duration as the decoder writes it: `{months, days, milliseconds}`, each an unsigned 32-bit count.
fn duration(parts: &serde_json::Map<String, Value>) -> Result<AvroValue, apache_avro::Error> {
    let part = |name: &str| {
        parts
            .get(name)
            .and_then(Value::as_u64)
            .and_then(|count| u32::try_from(count).ok())
            .ok_or_else(|| refused(format!("a Duration value needs `{name}`, a count from 0 to 4294967295")))
    };
    if let Some(unknown) = parts
        .keys()
        .find(|key| !["months", "days", "milliseconds"].contains(&key.as_str()))
    {
        return Err(refused(format!(
            "a Duration value has only `months`, `days` and `milliseconds`, not `{unknown}`"
        )));
    }
    Ok(AvroValue::Duration(apache_avro::Duration::new(
        apache_avro::Months::new(part("months")?),
        apache_avro::Days::new(part("days")?),
        apache_avro::Millis::new(part("milliseconds")?),
    )))
}

/// Writes JSON values as Confluent-framed Avro.
pub(crate) struct AvroRecordEncoder {
    encoder: AvroEncoder,
    /// The encoder looks schemas up by subject only; schemas given by id come from a decoder's cache.
    by_id: AvroDecoder,
    binary: BinaryText,
}

impl std::fmt::Debug for AvroRecordEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroRecordEncoder").finish_non_exhaustive()
    }
}

impl AvroRecordEncoder {
    pub(crate) fn new(settings: SrSettings, binary: BinaryText) -> Arc<Self> {
        Arc::new(Self {
            encoder: AvroEncoder::new(settings.clone()),
            by_id: AvroDecoder::new(settings),
            binary,
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
        let resolved = avro_value(value, &schema.parsed, self.binary)
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
        let resolved = avro_value(&written, &schema, BinaryText::Base64)
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
        let failed = avro_value(&json!({"at": "yesterday"}), &schema, BinaryText::Base64)
            .and_then(|value| value.resolve(&schema));
        assert!(failed.is_err());
    }

    /// Text where the schema wants bytes, a decimal, a UUID or a duration is read as the decoder writes them, or
    /// refused with what was wanted: never taken as a string's UTF-8 bytes. In a union the first branch that reads
    /// the text takes it, so a string branch before `bytes` takes base64 text too.
    #[test]
    fn text_a_type_cannot_read_is_refused_with_what_it_wants() {
        let schema = AvroSchemaNode::parse_str(
            r#"{"type":"record","name":"R","fields":[
                {"name":"raw","type":"bytes"},
                {"name":"maybe","type":["null","bytes"]},
                {"name":"either","type":["null","string","bytes"]},
                {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":6,"scale":2}},
                {"name":"id","type":{"type":"fixed","name":"U","size":16,"logicalType":"uuid"}},
                {"name":"took","type":{"type":"fixed","name":"P","size":12,"logicalType":"duration"}}]}"#,
        )
        .unwrap();
        let good = json!({
            "raw": "AAEC",
            "maybe": "/w==",
            "either": "AAEC",
            "price": "-12.5",
            "id": "550e8400-e29b-41d4-a716-446655440000",
            "took": {"months": 1, "days": 2, "milliseconds": 3}
        });
        let write = |value: &Value| {
            avro_value(value, &schema, BinaryText::Base64)
                .and_then(|value| value.resolve(&schema))
                .and_then(|value| GenericDatumWriter::builder(&schema).build()?.write_value_to_vec(value))
        };
        let read = decode_to_json(&write(&good).unwrap(), &schema, AvroJsonOptions::default()).unwrap();
        let mut expected = good.clone();
        expected["price"] = json!("-12.50");
        assert_eq!(read, expected);
        let refused = |field: &str, value: Value, wanted: &str| {
            let mut bad = good.clone();
            bad[field] = value;
            let error = write(&bad).unwrap_err().to_string();
            assert!(error.contains(wanted), "{field}: {error}");
        };
        refused("raw", json!("not base64!"), "a Bytes value must be base64");
        refused("maybe", json!("not base64!"), "a Bytes value must be base64");
        refused(
            "price",
            json!("1.234"),
            "a Decimal value must be a decimal with at most 2 digits",
        );
        refused("id", json!("550e8400"), "a Uuid value must be a UUID");
        refused("took", json!({"months": 1, "days": 2}), "needs `milliseconds`");
        refused(
            "took",
            json!({"months": 1, "days": 2, "milliseconds": 3, "weeks": 0}),
            "not `weeks`",
        );
        let mut text = good.clone();
        text["either"] = json!("not base64!");
        let read = decode_to_json(&write(&text).unwrap(), &schema, AvroJsonOptions::default()).unwrap();
        assert_eq!(read["either"], "not base64!");
    }

    /// In Avro's JSON encoding, as the receiver reads a record's data, each character of `bytes` or `fixed` text is
    /// one byte; a character past U+00FF is refused.
    #[test]
    fn avro_json_bytes_are_a_byte_a_character() {
        let schema = AvroSchemaNode::parse_str(
            r#"{"type":"record","name":"R","fields":[
                {"name":"raw","type":"bytes"},
                {"name":"four","type":{"type":"fixed","name":"F","size":4}}]}"#,
        )
        .unwrap();
        let value = |raw: &str| {
            avro_value(
                &json!({"raw": raw, "four": "\u{0}é\u{ff}A"}),
                &schema,
                BinaryText::AvroJson,
            )
            .and_then(|value| value.resolve(&schema))
        };
        assert_eq!(
            value("\u{0}\u{ff}Aé").unwrap(),
            AvroValue::Record(vec![
                ("raw".into(), AvroValue::Bytes(vec![0, 0xff, b'A', 0xe9])),
                ("four".into(), AvroValue::Fixed(4, vec![0, 0xe9, 0xff, b'A'])),
            ])
        );
        let error = value("日").unwrap_err().to_string();
        assert!(
            error.contains("a Bytes value must be text of characters U+0000 to U+00FF"),
            "{error}"
        );
    }
}
