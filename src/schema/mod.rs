//! Turning record bytes into JSON: the plain formats here; the Schema Registry's formats (Avro, Protobuf, JSON
//! Schema) in `registry`, Avro's body in `avro`.

pub mod avro;
pub mod encode;
pub mod glue;
mod oauth;
pub mod protobuf;
pub mod registry;

use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::avro::{AvroJsonOptions, Capture, QuotedRecord};
use self::glue::GlueRecordDecoder;
use self::protobuf::{ProtobufRecordDecoder, ProtobufRecordEncoder};
use self::registry::{AvroRecordDecoder, JsonSchemaRecordDecoder, RegistrySetupError};
use crate::config::{AwsConfig, InvalidSetting, SchemaRegistryConfig};

/// How bytes from Kafka become JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Format {
    /// UTF-8 JSON.
    Json,
    /// UTF-8 text, as a JSON string.
    String,
    /// Any bytes, as a base64 JSON string.
    Bytes,
    /// Confluent Schema Registry Avro (magic byte, schema id, Avro body), as readable JSON.
    Avro,
    /// Confluent Schema Registry Protobuf (magic byte, schema id, message indexes, message), as protobuf's
    /// canonical JSON.
    Protobuf,
    /// Confluent Schema Registry JSON Schema (magic byte, schema id, JSON text): the JSON as it is, checked against
    /// the schema with `validate: true`.
    JsonSchema,
    /// AWS Glue Schema Registry (header version 3, compression, schema version UUID): Avro or JSON by the schema's
    /// data format.
    Glue,
}

impl Format {
    /// Whether the bytes name a schema in the registry.
    pub(crate) fn needs_registry(self) -> bool {
        matches!(self, Self::Avro | Self::Protobuf | Self::JsonSchema)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::String => "string",
            Self::Bytes => "bytes",
            Self::Avro => "avro",
            Self::Protobuf => "protobuf",
            Self::JsonSchema => "json_schema",
            Self::Glue => "glue",
        }
    }
}

/// `key:` or `value:` in a connector's config.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FormatConfig {
    pub(crate) format: Format,
    /// Avro only: wrap the value of a non-null union branch as `{"<branch type>": value}`, as Avro's JSON encoding
    /// does, instead of unwrapping it. Default: false.
    #[serde(default)]
    pub(crate) union_type_tags: bool,
    /// `json_schema` only: check each value against its schema; one that does not conform is a record error
    /// naming where (a JSON pointer). Default: false (the JSON is taken as it is).
    #[serde(default)]
    pub(crate) validate: bool,
    /// `glue` only: the format of records without Glue's header (e.g. `avro` while producers move from the
    /// Confluent registry to Glue). Default: none, such a record is a record error.
    #[serde(default)]
    pub(crate) secondary: Option<Format>,
}

impl FormatConfig {
    pub(crate) fn new(format: Format) -> Self {
        Self {
            format,
            union_type_tags: false,
            validate: false,
            secondary: None,
        }
    }

    /// Rules serde cannot express; `key` is `config.key` or `config.value`, for the message.
    pub(crate) fn check(
        &self,
        key: &str,
        registry: Option<Option<&SchemaRegistryConfig>>,
    ) -> Result<(), InvalidSetting> {
        if self.secondary.is_some() && self.format != Format::Glue {
            return Err(InvalidSetting::new(
                format!("{key}.secondary"),
                "applies only to `format: glue`",
            ));
        }
        if self.secondary == Some(Format::Glue) {
            return Err(InvalidSetting::new(
                format!("{key}.secondary"),
                "is the format of records that are not Glue's",
            ));
        }
        if self.union_type_tags && !matches!(self.format, Format::Avro | Format::Glue) {
            return Err(InvalidSetting::new(
                format!("{key}.union_type_tags applies only to `format"),
                "avro`",
            ));
        }
        if self.validate && self.format != Format::JsonSchema {
            return Err(InvalidSetting::new(
                format!("{key}.validate"),
                "applies only to `format: json_schema`",
            ));
        }
        let registry_needed = self.format.needs_registry() || self.secondary.is_some_and(Format::needs_registry);
        if registry_needed && matches!(registry, Some(None)) {
            return Err(InvalidSetting::new(
                format!("{key}.format"),
                format!(
                    "`{}` needs the worker file's schema_registry",
                    self.secondary
                        .filter(|_| !self.format.needs_registry())
                        .unwrap_or(self.format)
                        .as_str()
                ),
            ));
        }
        Ok(())
    }
}

/// How a connector that writes to Kafka encodes a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OutputFormat {
    Json,
    /// Confluent Schema Registry Avro.
    Avro,
    /// Confluent Schema Registry Protobuf.
    Protobuf,
    /// Confluent Schema Registry JSON Schema.
    JsonSchema,
}

impl OutputFormat {
    fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Avro => "avro",
            Self::Protobuf => "protobuf",
            Self::JsonSchema => "json_schema",
        }
    }
}

/// `value:` of a connector that writes to Kafka.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutputFormatConfig {
    /// `json`, `avro`, `protobuf` or `json_schema`. Default: `json`.
    pub(crate) format: OutputFormat,
    /// A schema file (`.avsc`, `.proto` without imports, or a JSON Schema; relative to the working directory),
    /// registered under `<topic>-value` (a registered schema is found again, not duplicated). Excludes `subject`.
    #[serde(default)]
    pub(crate) schema_file: Option<std::path::PathBuf>,
    /// Write with the latest schema of this subject. Without `schema_file` or `subject`: the latest schema of
    /// `<topic>-value`.
    #[serde(default)]
    pub(crate) subject: Option<String>,
    /// Protobuf: the full name of the message to write (`package.Message`). Default: the schema's first message.
    #[serde(default)]
    pub(crate) message: Option<String>,
}

impl Default for OutputFormatConfig {
    fn default() -> Self {
        Self {
            format: OutputFormat::Json,
            schema_file: None,
            subject: None,
            message: None,
        }
    }
}

impl OutputFormatConfig {
    /// Rules serde cannot express, including that the schema file parses; `key` names the setting for messages.
    pub(crate) fn check(&self, key: &str) -> Result<(), InvalidSetting> {
        match self.format {
            OutputFormat::Json => {
                if self.schema_file.is_some() || self.subject.is_some() {
                    return Err(InvalidSetting::new(
                        key,
                        "`schema_file` and `subject` apply only to the Schema Registry's formats",
                    ));
                }
            }
            _ if self.message.is_some() && self.format != OutputFormat::Protobuf => {
                return Err(InvalidSetting::new(
                    format!("{key}.message"),
                    "applies only to `format: protobuf`",
                ));
            }
            OutputFormat::Avro | OutputFormat::Protobuf | OutputFormat::JsonSchema => {
                if self.schema_file.is_some() && self.subject.is_some() {
                    return Err(InvalidSetting::new(
                        key,
                        "`schema_file` and `subject` exclude each other",
                    ));
                }
                self.schema_text(key)?;
            }
        }
        Ok(())
    }

    /// The schema file's text, checked to be an Avro schema; `None` without a file.
    pub(crate) fn schema_text(&self, key: &str) -> Result<Option<String>, InvalidSetting> {
        let Some(file) = &self.schema_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(file).map_err(|error| {
            InvalidSetting::new(
                format!("{key}.schema_file"),
                format!("cannot read {}: {error}", file.display()),
            )
        })?;
        let invalid = |what: &str, error: String| {
            InvalidSetting::new(
                format!("{key}.schema_file"),
                format!("{} is not {what}: {error}", file.display()),
            )
        };
        match self.format {
            OutputFormat::Avro => {
                apache_avro::Schema::parse_str(&text).map_err(|error| invalid("an Avro schema", error.to_string()))?;
            }
            OutputFormat::Protobuf => {
                protox::file::File::from_source(&file.to_string_lossy(), &text)
                    .map_err(|error| invalid("a Protobuf schema", error.to_string()))?;
            }
            OutputFormat::JsonSchema => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(_) | Value::Bool(_)) => {}
                Ok(other) => return Err(invalid("a JSON Schema", format!("{other} is not an object"))),
                Err(error) => return Err(invalid("a JSON Schema", error.to_string())),
            },
            OutputFormat::Json => {}
        }
        Ok(Some(text))
    }

    /// The writer for this setting. `registry` is needed for Avro.
    pub(crate) fn writer(
        &self,
        registry: Option<&SchemaRegistryConfig>,
    ) -> Result<self::encode::JsonWriter, RegistrySetupError> {
        use self::encode::{AvroRecordEncoder, BinaryText, JsonSchemaRecordEncoder, JsonWriter, WriterSchema};
        if self.format == OutputFormat::Json {
            return Ok(JsonWriter::Json);
        }
        let Some(registry) = registry else {
            return Err(RegistrySetupError {
                url: String::new(),
                reason: format!("format `{}` needs the worker's schema_registry", self.format.as_str()),
            });
        };
        let schema = match (self.schema_text("value"), &self.subject) {
            (Err(invalid), _) => {
                return Err(RegistrySetupError {
                    url: registry.url.as_written().to_owned(),
                    reason: invalid.to_string(),
                })
            }
            (Ok(Some(text)), _) => WriterSchema::Supplied(text),
            (Ok(None), Some(subject)) => WriterSchema::Subject(subject.clone()),
            (Ok(None), None) => WriterSchema::TopicLatest,
        };
        let settings = self::registry::settings(registry)?;
        Ok(match self.format {
            OutputFormat::Protobuf => JsonWriter::Protobuf {
                encoder: ProtobufRecordEncoder::new(settings, self.message.clone()),
                schema,
            },
            OutputFormat::JsonSchema => JsonWriter::JsonSchema {
                encoder: JsonSchemaRecordEncoder::new(settings),
                schema,
            },
            OutputFormat::Avro | OutputFormat::Json => JsonWriter::Avro {
                encoder: AvroRecordEncoder::new(settings, BinaryText::Base64),
                schema,
            },
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not valid UTF-8: {0}")]
    Utf8(#[from] std::str::Utf8Error),
    #[error("not Confluent Schema Registry {format}: {reason}")]
    NotConfluentFramed { format: &'static str, reason: String },
    #[error("cannot decode Avro with schema id {schema_id}: {reason}")]
    Avro { schema_id: u32, reason: String },
    #[error("cannot decode Protobuf with schema id {schema_id}: {reason}")]
    Protobuf { schema_id: u32, reason: String },
    #[error("JSON with schema id {schema_id}: {reason}")]
    JsonSchema { schema_id: u32, reason: String },
    /// The registry could not be asked (network, 5xx): not the record's fault.
    #[error("the Schema Registry is unavailable (fetching schema id {schema_id}): {reason}")]
    RegistryUnavailable { schema_id: u32, reason: String },
    #[error("not AWS Glue Schema Registry data: {0}")]
    NotGlueFramed(String),
    #[error("cannot decode with Glue schema version {version}: {reason}")]
    Glue { version: String, reason: String },
    /// Glue could not be asked (network, throttling, permissions): not the record's fault.
    #[error("AWS Glue is unavailable (fetching schema version {version}): {reason}")]
    GlueUnavailable { version: String, reason: String },
}

impl DecodeError {
    /// True when the record itself is bad, false when decoding may work later (the registry was unreachable).
    pub(crate) fn is_record_error(&self) -> bool {
        !matches!(self, Self::RegistryUnavailable { .. } | Self::GlueUnavailable { .. })
    }
}

/// Decodes one key or value into JSON.
#[derive(Debug, Clone)]
pub(crate) enum Decoder {
    Plain(Format),
    Avro(Arc<AvroRecordDecoder>),
    Protobuf(Arc<ProtobufRecordDecoder>),
    JsonSchema(Arc<JsonSchemaRecordDecoder>),
    Glue(Arc<GlueRecordDecoder>),
}

impl Decoder {
    /// `registry` is the worker's Schema Registry, needed for `avro`, `protobuf` and `json_schema`; `aws` its AWS
    /// settings, for `glue`.
    pub(crate) fn new(
        config: &FormatConfig,
        registry: Option<&SchemaRegistryConfig>,
        aws: &AwsConfig,
    ) -> Result<Self, RegistrySetupError> {
        let options = AvroJsonOptions {
            union_type_tags: config.union_type_tags,
        };
        match (config.format, registry) {
            (Format::Glue, _) => {
                let secondary = match config.secondary {
                    Some(format) => Some(Self::new(
                        &FormatConfig {
                            format,
                            secondary: None,
                            ..config.clone()
                        },
                        registry,
                        aws,
                    )?),
                    None => None,
                };
                Ok(Self::Glue(GlueRecordDecoder::new(aws, options, secondary)))
            }
            (Format::Avro, Some(registry)) => Ok(Self::Avro(AvroRecordDecoder::new(
                self::registry::settings(registry)?,
                options,
            ))),
            (Format::Protobuf, Some(registry)) => Ok(Self::Protobuf(ProtobufRecordDecoder::new(
                self::registry::settings(registry)?,
            ))),
            (Format::JsonSchema, Some(registry)) => Ok(Self::JsonSchema(JsonSchemaRecordDecoder::new(
                self::registry::settings(registry)?,
                config.validate,
            ))),
            (format, None) if format.needs_registry() => Err(RegistrySetupError {
                url: String::new(),
                reason: format!("format `{}` needs the worker's schema_registry", format.as_str()),
            }),
            (format, _) => Ok(Self::Plain(format)),
        }
    }

    /// Decodes `bytes`; a missing key or value (a Kafka null) is JSON `null`.
    pub(crate) async fn decode(&self, bytes: Option<&[u8]>) -> Result<Value, DecodeError> {
        let Some(bytes) = bytes else {
            return Ok(Value::Null);
        };
        match self {
            Self::Plain(format) => decode_plain(*format, bytes),
            Self::Avro(decoder) => decoder.decode(bytes).await,
            Self::Protobuf(decoder) => decoder.decode(bytes).await,
            Self::JsonSchema(decoder) => decoder.decode(bytes).await,
            Self::Glue(decoder) => decoder.decode(bytes).await,
        }
    }

    /// `bytes` as JSON text and the `capture`d fields, when this decoder writes text straight from the bytes
    /// (Schema Registry Avro records); `None` when it does not, or the value is not a record.
    pub(crate) async fn decode_quoted(
        &self,
        bytes: &[u8],
        capture: &Capture,
    ) -> Result<Option<QuotedRecord>, DecodeError> {
        match self {
            Self::Avro(decoder) => decoder.decode_quoted(bytes, capture).await,
            Self::Plain(_) | Self::Protobuf(_) | Self::JsonSchema(_) | Self::Glue(_) => Ok(None),
        }
    }

    /// True when `decode_quoted` can give text for this decoder's records.
    pub(crate) fn writes_quoted(&self) -> bool {
        matches!(self, Self::Avro(_))
    }
}

fn decode_plain(format: Format, bytes: &[u8]) -> Result<Value, DecodeError> {
    Ok(match format {
        Format::Json => serde_json::from_slice(bytes)?,
        Format::String => Value::String(std::str::from_utf8(bytes)?.to_owned()),
        Format::Bytes => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        format @ (Format::Avro | Format::Protobuf | Format::JsonSchema | Format::Glue) => {
            return Err(DecodeError::NotConfluentFramed {
                format: format.as_str(),
                reason: "no Schema Registry client was set up".into(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn decodes_each_plain_format() {
        let json = Decoder::Plain(Format::Json);
        assert_eq!(
            json.decode(Some(br#"{"a":[1,2.5]}"#)).await.unwrap(),
            json!({"a": [1, 2.5]})
        );
        assert_eq!(json.decode(None).await.unwrap(), Value::Null);
        let string = Decoder::Plain(Format::String);
        assert_eq!(string.decode(Some("é".as_bytes())).await.unwrap(), json!("é"));
        let bytes = Decoder::Plain(Format::Bytes);
        assert_eq!(bytes.decode(Some(&[0, 255])).await.unwrap(), json!("AP8="));
    }

    #[tokio::test]
    async fn bad_bytes_are_errors_not_panics() {
        let json = Decoder::Plain(Format::Json);
        assert!(matches!(json.decode(Some(b"{nope")).await, Err(DecodeError::Json(_))));
        let string = Decoder::Plain(Format::String);
        assert!(matches!(
            string.decode(Some(&[0xff, 0xfe])).await,
            Err(DecodeError::Utf8(_))
        ));
    }
}
