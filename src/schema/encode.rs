//! JSON to Confluent-framed Avro (here), Protobuf (in `protobuf`) or JSON Schema (here) through the Schema Registry,
//! for the connectors that write to Kafka. The schema is
//! registered or looked up once per subject (or id) and cached by schema_registry_converter; the JSON is resolved
//! against it with apache-avro's schema resolution, so numbers widen or narrow to the field's type, objects become
//! records or maps, and a union takes the first branch the value fits.

use std::sync::Arc;

use apache_avro::types::Value as AvroValue;
use apache_avro::writer::datum::GenericDatumWriter;
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
        let resolved = AvroValue::try_from(value.clone())
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
