//! Confluent wire format (magic byte 0, a big-endian 4-byte schema id, then the Avro body) decoded through the
//! Schema Registry: schema_registry_converter fetches each writer schema once and caches it, and `avro` decodes the
//! body against it.

use std::sync::Arc;
use std::time::Duration;

use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::json::JsonDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::avro_common::AvroSchema;
use schema_registry_converter::error::SRCError;
use serde_json::Value;

use super::avro::{decode_to_json, decode_to_quoted_json, AvroJsonOptions, Capture, QuotedRecord};
use super::DecodeError;
use crate::config::SchemaRegistryConfig;

#[derive(Debug, thiserror::Error)]
#[error("cannot configure the Schema Registry client for {url}: {reason}")]
pub(crate) struct RegistrySetupError {
    pub(crate) url: String,
    pub(crate) reason: String,
}

/// A registry client, shared by the key and value decoders of a connector.
pub(crate) fn settings(config: &SchemaRegistryConfig) -> Result<SrSettings, RegistrySetupError> {
    let failed = |reason: String| RegistrySetupError {
        url: config.url.as_written().to_owned(),
        reason,
    };
    let mut builder = SrSettings::new_builder(config.url.value().trim_end_matches('/').to_owned());
    builder.set_timeout(Duration::from_secs(30));
    if let Some(auth) = &config.basic_auth {
        builder.set_basic_authorization(auth.username.value(), Some(auth.password.expose()));
    }
    if let Some(token) = &config.bearer_token {
        builder.set_token_authorization(token.expose());
    }
    if let Some(oauth) = &config.oauth {
        if let Some(cluster) = &oauth.logical_cluster {
            builder.add_header("target-sr-cluster", cluster.value());
        }
        if let Some(pool) = &oauth.identity_pool_id {
            builder.add_header("Confluent-Identity-Pool-Id", pool.value());
        }
        let token_client = http_client(config)
            .map_err(failed)?
            .build()
            .map_err(|error| failed(error.to_string()))?;
        builder.with_middleware(super::oauth::BearerTokens::new(oauth, token_client));
    }
    builder
        .build_with(http_client(config).map_err(failed)?)
        .map_err(|error| failed(error.error))
}

/// The HTTP client's builder: the system's CAs, and those of `ca_location`.
fn http_client(config: &SchemaRegistryConfig) -> Result<reqwest::ClientBuilder, String> {
    let builder = reqwest::Client::builder();
    let Some(ca) = &config.ca_location else {
        return Ok(builder);
    };
    let pem = std::fs::read(ca.value()).map_err(|error| {
        format!(
            "schema_registry.ca_location: cannot read `{}`: {error}",
            ca.as_written()
        )
    })?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
        format!(
            "schema_registry.ca_location: `{}` holds no PEM certificates: {error}",
            ca.as_written()
        )
    })?;
    if certificates.is_empty() {
        return Err(format!(
            "schema_registry.ca_location: `{}` holds no PEM certificates",
            ca.as_written()
        ));
    }
    Ok(builder.tls_certs_merge(certificates))
}

/// Decodes Confluent-framed Avro to JSON.
pub(crate) struct AvroRecordDecoder {
    decoder: AvroDecoder,
    options: AvroJsonOptions,
}

impl std::fmt::Debug for AvroRecordDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroRecordDecoder")
            .field("options", &self.options)
            .finish()
    }
}

/// A registry client error with its cause.
pub(crate) fn describe(error: &SRCError) -> String {
    match &error.cause {
        Some(cause) => format!("{}: {cause}", error.error),
        None => error.error.clone(),
    }
}

impl AvroRecordDecoder {
    pub(crate) fn new(settings: SrSettings, options: AvroJsonOptions) -> Arc<Self> {
        Arc::new(Self {
            decoder: AvroDecoder::new(settings),
            options,
        })
    }

    pub(crate) async fn decode(&self, bytes: &[u8]) -> Result<Value, DecodeError> {
        let (schema_id, body, schema) = self.writer_schema(bytes).await?;
        decode_to_json(body, &schema.parsed, self.options).map_err(|error| DecodeError::Avro {
            schema_id,
            reason: error.to_string(),
        })
    }

    /// As `decode`, to the JSON text and the `capture`d fields (see `decode_to_quoted_json`).
    pub(crate) async fn decode_quoted(
        &self,
        bytes: &[u8],
        capture: &Capture,
    ) -> Result<Option<QuotedRecord>, DecodeError> {
        let (schema_id, body, schema) = self.writer_schema(bytes).await?;
        decode_to_quoted_json(body, &schema.parsed, self.options, capture).map_err(|error| DecodeError::Avro {
            schema_id,
            reason: error.to_string(),
        })
    }

    /// The schema id the record names, its body, and the writer schema, which the registry client fetches and
    /// caches; the body is then decoded here, straight to JSON.
    async fn writer_schema<'b>(&self, bytes: &'b [u8]) -> Result<(u32, &'b [u8], Arc<AvroSchema>), DecodeError> {
        let (schema_id, body) = confluent_header(bytes, "Avro")?;
        let schema = self.decoder.get_schema(schema_id).await.map_err(|error| {
            classified(schema_id, &error, |schema_id, reason| DecodeError::Avro {
                schema_id,
                reason,
            })
        })?;
        Ok((schema_id, body, schema))
    }
}

/// The schema id of Confluent's framing (magic byte 0, a big-endian 4-byte id) and what follows it.
pub(crate) fn confluent_header<'a>(bytes: &'a [u8], format: &'static str) -> Result<(u32, &'a [u8]), DecodeError> {
    let not_framed = |reason: String| DecodeError::NotConfluentFramed { format, reason };
    match bytes {
        [0, a, b, c, d, body @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        [] => Err(not_framed("the record is empty".into())),
        [first, ..] if *first != 0 => Err(not_framed(format!(
            "the first byte is {first:#04x}, not the magic byte 0x00"
        ))),
        _ => Err(not_framed(format!(
            "{} bytes are too few for the 5-byte header",
            bytes.len()
        ))),
    }
}

/// A registry client's error: the registry could not be asked (not the record's fault), or the record is bad.
pub(crate) fn classified(
    schema_id: u32,
    error: &SRCError,
    record_error: impl FnOnce(u32, String) -> DecodeError,
) -> DecodeError {
    if error.retriable {
        DecodeError::RegistryUnavailable {
            schema_id,
            reason: describe(error),
        }
    } else {
        record_error(schema_id, describe(error))
    }
}

/// Decodes Confluent-framed JSON Schema: the JSON after the header, its schema fetched (and cached) from the
/// registry, and, with `validate`, checked against it.
pub(crate) struct JsonSchemaRecordDecoder {
    decoder: JsonDecoder,
    validate: bool,
}

impl std::fmt::Debug for JsonSchemaRecordDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchemaRecordDecoder")
            .field("validate", &self.validate)
            .finish_non_exhaustive()
    }
}

impl JsonSchemaRecordDecoder {
    pub(crate) fn new(settings: SrSettings, validate: bool) -> Arc<Self> {
        Arc::new(Self {
            decoder: JsonDecoder::new(settings),
            validate,
        })
    }

    pub(crate) async fn decode(&self, bytes: &[u8]) -> Result<Value, DecodeError> {
        let (schema_id, body) = confluent_header(bytes, "JSON Schema")?;
        let record_error = |schema_id, reason| DecodeError::JsonSchema { schema_id, reason };
        let value: Value = serde_json::from_slice(body)
            .map_err(|error| record_error(schema_id, format!("not valid JSON: {error}")))?;
        // Fetched even when not validating: an id the registry does not know is a record error.
        let schema = self
            .decoder
            .get_schema(schema_id)
            .await
            .map_err(|error| classified(schema_id, &error, record_error))?;
        if self.validate {
            self.decoder
                .validate(&schema, &value)
                .map_err(|error| record_error(schema_id, describe(&error)))?;
        }
        Ok(value)
    }
}
