//! AWS Glue Schema Registry records: a header version byte (3), a compression byte (0, or 5 for zlib), the 16-byte
//! UUID of the schema version, then the payload. The schema version is fetched with `GetSchemaVersion` (the worker's
//! AWS credentials, `aws.service_endpoints.glue`) once and cached; the payload is read by the schema's data format,
//! Avro to the same JSON as the Confluent Avro records, JSON as it is, Protobuf to its canonical JSON (the payload
//! starts with its message's index among all the file's messages sorted by full name, as Glue's serializer numbers
//! them). Records that are not Glue-framed go to the `secondary` decoder when there is one, as Glue's deserializer
//! hands them to its secondary deserializer.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use aws_sdk_glue::types::DataFormat;
use serde_json::Value;
use tokio::sync::{OnceCell, RwLock};

use super::avro::{decode_to_json, AvroJsonOptions};
use super::protobuf::{compile_glue_schema, decode_glue_message};
use super::{DecodeError, Decoder};
use crate::aws::{sdk_config, service_config, Service};
use crate::config::AwsConfig;

const HEADER_VERSION: u8 = 3;
const COMPRESSION_NONE: u8 = 0;
const COMPRESSION_ZLIB: u8 = 5;
const HEADER_BYTES: usize = 18;
/// A compressed payload is inflated up to this size: a record over it is refused rather than read whole.
const MAX_INFLATED_BYTES: u64 = 16 * 1024 * 1024;

/// A schema version's definition, parsed for its data format.
enum GlueSchema {
    Avro(apache_avro::Schema),
    Json,
    /// Every message of the file, in Glue's index order.
    Protobuf(Vec<prost_reflect::MessageDescriptor>),
}

pub(crate) struct GlueRecordDecoder {
    aws: AwsConfig,
    client: OnceCell<aws_sdk_glue::Client>,
    options: AvroJsonOptions,
    /// For records without the Glue header.
    secondary: Option<Decoder>,
    /// By schema version; a version Glue does not have, or cannot be read, is kept as its error.
    schemas: RwLock<HashMap<uuid::Uuid, Result<Arc<GlueSchema>, String>>>,
}

impl std::fmt::Debug for GlueRecordDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlueRecordDecoder")
            .field("secondary", &self.secondary)
            .finish_non_exhaustive()
    }
}

impl GlueRecordDecoder {
    pub(crate) fn new(aws: &AwsConfig, options: AvroJsonOptions, secondary: Option<Decoder>) -> Arc<Self> {
        Arc::new(Self {
            aws: aws.clone(),
            client: OnceCell::new(),
            options,
            secondary,
            schemas: RwLock::default(),
        })
    }

    pub(crate) async fn decode(&self, bytes: &[u8]) -> Result<Value, DecodeError> {
        if bytes.first() != Some(&HEADER_VERSION) {
            if let Some(secondary) = &self.secondary {
                return Box::pin(secondary.decode(Some(bytes))).await;
            }
            let reason = match bytes.first() {
                None => "the record is empty".to_owned(),
                Some(first) => format!("the first byte is {first:#04x}, not the header version 3"),
            };
            return Err(DecodeError::NotGlueFramed(reason));
        }
        let [_, compression, id @ ..] = bytes.get(..HEADER_BYTES).unwrap_or_default() else {
            return Err(DecodeError::NotGlueFramed(format!(
                "{} bytes are too few for the 18-byte header",
                bytes.len()
            )));
        };
        let version = uuid::Uuid::from_slice(id).map_err(|error| DecodeError::NotGlueFramed(error.to_string()))?;
        let failed = |reason: String| DecodeError::Glue {
            version: version.to_string(),
            reason,
        };
        let payload = &bytes[HEADER_BYTES..];
        let inflated;
        let payload = match *compression {
            COMPRESSION_NONE => payload,
            COMPRESSION_ZLIB => {
                let mut out = Vec::new();
                flate2::read::ZlibDecoder::new(payload)
                    .take(MAX_INFLATED_BYTES + 1)
                    .read_to_end(&mut out)
                    .map_err(|error| failed(format!("the zlib payload does not inflate: {error}")))?;
                if out.len() as u64 > MAX_INFLATED_BYTES {
                    return Err(failed(format!("the payload inflates past {MAX_INFLATED_BYTES} bytes")));
                }
                inflated = out;
                &inflated
            }
            other => {
                return Err(failed(format!(
                    "compression byte {other} is neither 0 (none) nor 5 (zlib)"
                )))
            }
        };
        match &*self.schema(version).await? {
            GlueSchema::Avro(schema) => {
                decode_to_json(payload, schema, self.options).map_err(|error| failed(error.to_string()))
            }
            GlueSchema::Json => serde_json::from_slice(payload).map_err(|error| failed(format!("not JSON: {error}"))),
            GlueSchema::Protobuf(messages) => decode_glue_message(messages, payload).map_err(failed),
        }
    }

    async fn schema(&self, version: uuid::Uuid) -> Result<Arc<GlueSchema>, DecodeError> {
        let failed = |reason: &String| DecodeError::Glue {
            version: version.to_string(),
            reason: reason.clone(),
        };
        if let Some(known) = self.schemas.read().await.get(&version) {
            return known.as_ref().map(Arc::clone).map_err(failed);
        }
        let client = self
            .client
            .get_or_init(|| async {
                let sdk = sdk_config(&self.aws).await;
                aws_sdk_glue::Client::new(&service_config(&sdk, &self.aws, Service::Glue))
            })
            .await;
        let answer = client
            .get_schema_version()
            .schema_version_id(version.to_string())
            .send()
            .await;
        let schema = match answer {
            Ok(found) => parse(found.data_format(), found.schema_definition()).map(Arc::new),
            Err(error) => {
                let refused = error
                    .as_service_error()
                    .filter(|refusal| refusal.is_entity_not_found_exception() || refusal.is_invalid_input_exception())
                    .map(|refusal| refusal.to_string());
                match refused {
                    Some(reason) => Err(format!("Glue has no such schema version: {reason}")),
                    // Not the record's fault (network, throttling, permissions): asked again for the next record.
                    None => {
                        return Err(DecodeError::GlueUnavailable {
                            version: version.to_string(),
                            reason: crate::error_chain(&error),
                        })
                    }
                }
            }
        };
        self.schemas.write().await.insert(version, schema.clone());
        schema.map_err(|reason| failed(&reason))
    }
}

fn parse(format: Option<&DataFormat>, definition: Option<&str>) -> Result<GlueSchema, String> {
    let definition = definition.ok_or("the schema version has no definition")?;
    match format {
        Some(DataFormat::Avro) => apache_avro::Schema::parse_str(definition)
            .map(GlueSchema::Avro)
            .map_err(|error| format!("the Avro schema does not parse: {error}")),
        Some(DataFormat::Json) => Ok(GlueSchema::Json),
        Some(DataFormat::Protobuf) => compile_glue_schema(definition).map(GlueSchema::Protobuf),
        other => Err(format!(
            "data format {} is not one of AVRO, JSON and PROTOBUF",
            other.map_or("(none)", DataFormat::as_str)
        )),
    }
}
