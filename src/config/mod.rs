//! Loading and validating the worker file and the connector files.
//!
//! Every error names the file, the key path and, where the YAML parser knows it, the line and column.
//! YAML is read with `serde_norway`, the maintained fork of `serde_yaml`: it keeps serde_yaml's precise
//! `path: message at line L column C` errors, which `validate` prints as they are.

mod connector;
mod interpolate;
mod worker;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use connector::{
    ConnectorDocument, ConnectorName, DeadLetterQueueConfig, ErrorLogConfig, ErrorTolerance, ErrorsConfig,
};
pub use interpolate::{client_settings, interpolate, Interpolated, InterpolationError, Secret, HIDDEN};
pub use worker::{
    AssumeRoleConfig, AwsConfig, BasicAuth, KafkaConfig, LogFormat, RestConfig, RestartPolicy, SaslConfig,
    SaslMechanism, SchemaRegistryConfig, SecurityProtocol, TlsConfig, WorkerConfig,
};

use crate::connectors::{ConnectorSettings, ConnectorType};
use crate::transform::Chain;

/// A setting written either as a plain string (a shorthand) or as a map of its full form. Unlike an untagged
/// enum, a mistake inside the map keeps its precise error (unknown key, wrong type, position).
#[derive(Debug)]
pub enum StringOrMap<T> {
    String(String),
    Map(T),
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for StringOrMap<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = StringOrMap<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a map")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(StringOrMap::String(text.to_owned()))
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(StringOrMap::Map)
            }
        }

        deserializer.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

/// A problem with one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub fn new(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            message: message.into(),
        }
    }
}

fn read(file: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(file).map_err(|error| ConfigError::new(file, format!("cannot read: {error}")))
}

fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, ConfigError> {
    serde_norway::from_str(text).map_err(|error| ConfigError::new(file, error.to_string()))
}

pub fn load_worker(file: &Path) -> Result<WorkerConfig, ConfigError> {
    let worker: WorkerConfig = parse(file, &read(file)?)?;
    let kafka = &worker.kafka;
    if kafka.security_protocol.uses_sasl() && kafka.sasl.is_none() {
        return Err(ConfigError::new(
            file,
            format!(
                "kafka.security_protocol is `{}` but kafka.sasl (mechanism, username, password) is missing",
                kafka.security_protocol.as_librdkafka()
            ),
        ));
    }
    if !kafka.security_protocol.uses_sasl() && kafka.sasl.is_some() {
        return Err(ConfigError::new(
            file,
            "kafka.sasl is set but kafka.security_protocol is neither `sasl_plaintext` nor `sasl_ssl`",
        ));
    }
    let rest = &worker.rest;
    if rest.basic_auth.is_none() && !rest.allow_unauthenticated && !rest.listen.ip().is_loopback() {
        return Err(ConfigError::new(
            file,
            format!(
                "rest.basic_auth: required when rest.listen is {}, which is not a loopback address: anyone who \
                 reaches the port could create connectors (set rest.allow_unauthenticated: true to accept that)",
                rest.listen
            ),
        ));
    }
    Ok(worker)
}

/// One validated connector file.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    pub name: ConnectorName,
    pub kind: ConnectorType,
    pub errors: ErrorsConfig,
    /// The checked transform chain.
    pub transforms: Chain,
    /// The transforms as written, for the REST API.
    pub transforms_written: crate::transform::Transforms,
    pub settings: ConnectorSettings,
    pub file: PathBuf,
}

/// Reads a connector file in two passes: the first finds `type`, the second reads the whole file as that type's
/// document, so that every error keeps serde's key path and position (a flattened or internally tagged enum
/// would lose both).
pub fn load_connector(file: &Path, worker: Option<&WorkerConfig>) -> Result<ConnectorConfig, ConfigError> {
    let text = read(file)?;
    load_connector_text(file, &text, worker)
}

/// Checks a connector document given as text (YAML or JSON), e.g. by the REST API; returns its type.
pub fn check_document(text: &str, worker: Option<&WorkerConfig>) -> Result<ConnectorType, String> {
    load_connector_text(Path::new("request body"), text, worker)
        .map(|connector| connector.kind)
        .map_err(|error| error.message)
}

fn load_connector_text(file: &Path, text: &str, worker: Option<&WorkerConfig>) -> Result<ConnectorConfig, ConfigError> {
    #[derive(serde::Deserialize)]
    struct TypeOnly {
        #[serde(rename = "type")]
        kind: ConnectorType,
    }
    let TypeOnly { kind } = parse(file, text)?;
    let document =
        crate::connectors::parse_document(kind, text).map_err(|error| ConfigError::new(file, error.to_string()))?;
    document
        .errors
        .check()
        .map_err(|message| ConfigError::new(file, message))?;
    if !kind.has_record_pipeline() {
        let errors = &document.errors;
        if !document.transforms.0.is_empty() {
            return Err(ConfigError::new(
                file,
                format!(
                    "transforms: a {} writes records as sent and runs no transforms",
                    kind.as_str()
                ),
            ));
        }
        if errors.tolerance != ErrorTolerance::None || errors.deadletterqueue.is_some() || errors.log.enable {
            return Err(ConfigError::new(
                file,
                format!(
                    "errors: a {} answers every failed record to its sender; `errors` does not apply",
                    kind.as_str()
                ),
            ));
        }
    }
    crate::connectors::check(&document.config, worker).map_err(|message| ConfigError::new(file, message))?;
    let transforms = Chain::new(&document.transforms.0).map_err(|message| ConfigError::new(file, message))?;
    Ok(ConnectorConfig {
        name: document.name,
        kind,
        errors: document.errors,
        transforms,
        transforms_written: document.transforms,
        settings: document.config,
        file: file.to_owned(),
    })
}

/// The connector files named by `paths`: each a file, or a directory whose `*.yaml` and `*.yml` files are read.
pub fn connector_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ConfigError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|error| ConfigError::new(path, format!("cannot list directory: {error}")))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| is_yaml(path))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

pub fn is_yaml(path: &Path) -> bool {
    path.is_file() && matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// Loads every connector file, collecting all errors rather than stopping at the first, and rejects two files
/// that claim the same name.
pub fn load_connectors(paths: &[PathBuf], worker: Option<&WorkerConfig>) -> (Vec<ConnectorConfig>, Vec<ConfigError>) {
    let files = match connector_files(paths) {
        Ok(files) => files,
        Err(error) => return (Vec::new(), vec![error]),
    };
    let mut loaded: Vec<ConnectorConfig> = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match load_connector(&file, worker) {
            Ok(connector) => {
                if let Some(first) = loaded.iter().find(|other| other.name == connector.name) {
                    errors.push(ConfigError::new(
                        &file,
                        format!(
                            "name: connector `{}` is already defined in {}",
                            connector.name,
                            first.file.display()
                        ),
                    ));
                } else {
                    loaded.push(connector);
                }
            }
            Err(error) => errors.push(error),
        }
    }
    (loaded, errors)
}
