//! Loading and validating the worker file and the connector files.
//!
//! Every error names the file, the key path and, where the YAML parser knows it, the line and column.
//! YAML is read with `serde_norway`, the maintained fork of `serde_yaml`: it keeps serde_yaml's precise
//! `path: message at line L column C` errors, which `validate` prints as they are.

pub mod aws_connector;
mod connector;
pub mod flat;
mod interpolate;
mod worker;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

pub use connector::{
    ConnectorDocument, ConnectorName, DeadLetterQueueConfig, ErrorLogConfig, ErrorTolerance, ErrorsConfig,
};
pub use interpolate::{
    client_settings, has_provider_placeholder, install_provider, interpolate, interpolate_providers, ExternalProvider,
    Interpolated, InterpolationError, Secret, HIDDEN,
};
pub use worker::{
    AssumeRoleConfig, AwsConfig, BasicAuth, KafkaConfig, LogFormat, OAuthConfig, RegistryOAuthConfig, RestConfig,
    RestartPolicy, SaslConfig, SaslMechanism, SchemaRegistryConfig, SecurityProtocol, TlsConfig, WorkerConfig,
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

/// The largest configuration document: far more than any worker or connector needs.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// The deepest nesting of flow collections (`[...]`, `{...}`) in a document. The YAML parser's cost grows with the
/// square of this depth (20,000 levels took 7 s, 100,000 over two minutes), and no configuration needs more than
/// a handful.
pub const MAX_FLOW_NESTING: usize = 64;

fn read(file: &Path) -> Result<String, ConfigError> {
    std::fs::File::open(file)
        .and_then(|opened| interpolate::read_at_most(opened, MAX_DOCUMENT_BYTES as u64))
        .map_err(|error| ConfigError::new(file, format!("cannot read: {error}")))
}

/// Refuses a document over [`MAX_DOCUMENT_BYTES`] or nested deeper than [`MAX_FLOW_NESTING`], in one linear pass,
/// before the parser sees it.
fn check_limits(text: &str) -> Result<(), String> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(format!("the document is larger than {MAX_DOCUMENT_BYTES} bytes"));
    }
    match flow_nesting_beyond(text, MAX_FLOW_NESTING) {
        Some(line) => Err(format!(
            "flow collections (`[`, `{{`) nested more than {MAX_FLOW_NESTING} levels deep at line {line}"
        )),
        None => Ok(()),
    }
}

/// The line at which flow collections open deeper than `limit`, if they do. A `[` or `{` counts where a flow
/// collection can start (first on a line, or after `:`, `-`, `,`, `?` or another opening bracket), not inside a
/// plain scalar such as `a[b` or `a [b`, a quoted string or a comment.
fn flow_nesting_beyond(text: &str, limit: usize) -> Option<usize> {
    let can_start = |significant: char| matches!(significant, '\n' | ':' | '-' | ',' | '[' | '{' | '?');
    let mut depth = 0usize;
    let mut line = 1;
    // The character before this one, and the last one that was not a blank (`\n` at the start of a line).
    let mut previous = '\n';
    let mut significant = '\n';
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '#' if previous.is_whitespace() => {
                for skipped in chars.by_ref() {
                    if skipped == '\n' {
                        line += 1;
                        break;
                    }
                }
                previous = '\n';
                significant = '\n';
                continue;
            }
            '"' | '\'' if can_start(significant) => {
                let mut escaped = false;
                for inner in chars.by_ref() {
                    match inner {
                        '\n' => line += 1,
                        '\\' if c == '"' && !escaped => {
                            escaped = true;
                            continue;
                        }
                        // A doubled `''` inside single quotes reads as a close and a reopen, which ends the same.
                        quote if quote == c && !escaped => break,
                        _ => {}
                    }
                    escaped = false;
                }
            }
            '[' | '{' if can_start(significant) => {
                depth += 1;
                if depth > limit {
                    return Some(line);
                }
            }
            // Part of a plain scalar: what follows it is too.
            '[' | '{' => {
                previous = c;
                significant = 'a';
                continue;
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = c;
        if c == '\n' || !c.is_whitespace() {
            significant = c;
        }
    }
    None
}

/// A connector document sent over the API (JSON or YAML) as a JSON value, within the size and nesting limits.
pub fn parse_untrusted(text: &str) -> Result<serde_json::Value, String> {
    check_limits(text)?;
    serde_norway::from_str(text).map_err(|error| error.to_string())
}

fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, ConfigError> {
    check_limits(text).map_err(|message| ConfigError::new(file, message))?;
    serde_norway::from_str(text).map_err(|error| ConfigError::new(file, error.to_string()))
}

/// The worker file's `aws` section alone, for reading the rest of the file, whose settings may take secrets from AWS
/// with these credentials. `None` when the file or the section does not read: [`load_worker`] then says why, with
/// the line.
pub fn load_worker_aws(file: &Path) -> Option<AwsConfig> {
    let text = read(file).ok()?;
    let written: serde_json::Value = parse(file, &text).ok()?;
    match written.get("aws") {
        Some(aws) => AwsConfig::deserialize(aws).ok(),
        None => Some(AwsConfig::default()),
    }
}

pub fn load_worker(file: &Path) -> Result<WorkerConfig, ConfigError> {
    let text = read(file)?;
    // As a connector file is read (see `read_nested`): placeholders resolved where a setting takes its text as
    // written, and read from the text, for errors with their line, when there are none.
    let written: serde_json::Value = parse(file, &text)?;
    let shapes = flat::Shapes::default();
    let _ = WorkerConfig::deserialize(flat::Coercing::new(written.clone(), Some(&shapes)));
    let resolved = flat::resolve_placeholders(&written, &shapes)
        .map_err(|(path, message)| ConfigError::new(file, format!("{}: {message}", path.join("."))))?;
    let worker: WorkerConfig = match resolved {
        Some(resolved) => WorkerConfig::deserialize(flat::Coercing::new(resolved, None))
            .map_err(|error| ConfigError::new(file, error.to_string()))?,
        None => parse(file, &text)?,
    };
    let kafka = &worker.kafka;
    match &kafka.sasl {
        None if kafka.security_protocol.uses_sasl() => {
            return Err(ConfigError::new(
                file,
                format!(
                    "kafka.security_protocol is `{}` but kafka.sasl (mechanism, and its credentials) is missing",
                    kafka.security_protocol.as_librdkafka()
                ),
            ));
        }
        Some(sasl) if kafka.security_protocol.uses_sasl() => sasl
            .check(kafka.security_protocol)
            .map_err(|message| ConfigError::new(file, message))?,
        _ => {}
    }
    if let Some(tls) = &kafka.tls {
        if !kafka.security_protocol.uses_tls() {
            return Err(ConfigError::new(
                file,
                format!(
                    "kafka.tls is set but kafka.security_protocol is `{}`: use `ssl` or `sasl_ssl`",
                    kafka.security_protocol.as_librdkafka()
                ),
            ));
        }
        tls.check().map_err(|message| ConfigError::new(file, message))?;
    }
    if !kafka.security_protocol.uses_sasl() && kafka.sasl.is_some() {
        return Err(ConfigError::new(
            file,
            "kafka.sasl is set but kafka.security_protocol is neither `sasl_plaintext` nor `sasl_ssl`",
        ));
    }
    if let Some(registry) = &worker.schema_registry {
        registry.check().map_err(|message| ConfigError::new(file, message))?;
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
    pub settings: ConnectorSettings,
    /// The configuration in Kafka Connect's form, as written (no defaults filled in), secrets included: show it
    /// only through [`ConnectorConfig::shown_config`].
    pub written: flat::FlatConfig,
    pub file: PathBuf,
}

impl ConnectorConfig {
    /// The configuration in Kafka Connect's form, as written, with its secrets hidden.
    pub fn shown_config(&self) -> flat::FlatConfig {
        let typed = serde_json::json!({"config": self.settings, "errors": self.errors});
        flat::shown(&self.written, &typed)
    }
}

/// Reads a connector file, nested (`type:` and `config:` sections) or in Kafka Connect's flat form.
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
    let written: serde_json::Value = parse(file, text)?;
    let flat_form = is_flat(&written);
    let (document, written) = if flat_form {
        read_flat(&written, worker).map_err(|message| ConfigError::new(file, message))?
    } else {
        read_nested(file, text, &written)?
    };
    let fail = |message: String| {
        let message = if flat_form {
            flat::in_flat_terms(&message)
        } else {
            message
        };
        ConfigError::new(file, message)
    };
    document.errors.check().map_err(fail)?;
    let kind = document.kind;
    if !kind.has_record_pipeline() {
        let errors = &document.errors;
        if !document.transforms.0.is_empty() {
            return Err(fail(format!(
                "transforms: a {} writes records as sent and runs no transforms",
                kind.as_str()
            )));
        }
        if errors.tolerance != ErrorTolerance::None || errors.deadletterqueue.is_some() || errors.log.enable {
            return Err(fail(format!(
                "errors: a {} answers every failed record to its sender; `errors` does not apply",
                kind.as_str()
            )));
        }
    }
    crate::connectors::check(&document.config, worker).map_err(fail)?;
    let transforms = Chain::new(&document.transforms.0).map_err(fail)?;
    Ok(ConnectorConfig {
        name: document.name,
        kind,
        errors: document.errors,
        transforms,
        settings: document.config,
        written,
        file: file.to_owned(),
    })
}

/// A file in Kafka Connect's form: `{name, config: {connector.class: ..., ...}}`, without `type`.
fn is_flat(written: &serde_json::Value) -> bool {
    written.get("type").is_none()
        && written
            .get("config")
            .and_then(|config| config.get("connector.class"))
            .is_some()
}

type Read = (ConnectorDocument<ConnectorSettings>, flat::FlatConfig);

fn read_flat(written: &serde_json::Value, worker: Option<&WorkerConfig>) -> Result<Read, String> {
    let name = written
        .get("name")
        .and_then(serde_json::Value::as_str)
        .ok_or("name: required, the connector's name")?;
    if let Some(extra) = written
        .as_object()
        .and_then(|top| top.keys().find(|key| !matches!(key.as_str(), "name" | "config")))
    {
        return Err(format!(
            "{extra}: unknown key; a file in Kafka Connect's form has only `name` and `config`"
        ));
    }
    let mut config = flat::string_map(&written["config"])?;
    let (kind, nested, translated) = nested_of_flat(name, &config, worker)?;
    let shapes = flat::Shapes::default();
    // This reading only learns which settings resolve their own placeholders; the one below reports errors.
    let _ = crate::connectors::parse_document(kind, flat::Coercing::new(nested.clone(), Some(&shapes)));
    let nested = flat::resolve_placeholders(&nested, &shapes)
        .map_err(|(path, message)| format!("{}: {message}", flat::key_of(&path, &translated)))?
        .unwrap_or(nested);
    let document = crate::connectors::parse_document(kind, flat::Coercing::new(nested, None))
        .map_err(|error| flat::describe(&error, &translated))?;
    config.insert("name".into(), name.to_owned());
    Ok((document, config))
}

/// The nested document of a flat configuration (every value still text), and the flat configuration it was made
/// from: the AWS connector's configuration runs as the sink it maps to.
fn nested_of_flat(
    name: &str,
    config: &flat::FlatConfig,
    worker: Option<&WorkerConfig>,
) -> Result<(ConnectorType, serde_json::Value, flat::FlatConfig), String> {
    let translated = match config.get("connector.class").map(|class| class.trim()) {
        Some(aws_connector::SINK_CLASS) => aws_connector::translate(config, worker).map_err(|error| error.0)?,
        _ => config.clone(),
    };
    let (kind, nested) = flat::to_document(name, &translated).map_err(|error| error.0)?;
    Ok((kind, nested, translated))
}

/// `ebconnect import-connect`: the connector file, nested YAML, for a configuration in Kafka Connect's form (the
/// body of `POST /connectors`, `{name, config}`, or the AWS connector's), checked as the worker would load it.
pub fn import_connect(text: &str, worker: Option<&WorkerConfig>) -> Result<String, String> {
    let value = parse_untrusted(text)?;
    let config = value
        .get("config")
        .filter(|config| config.is_object())
        .ok_or("config: required, the connector's settings as in Kafka Connect ({\"name\": ..., \"config\": {...}})")?;
    let name = value
        .get("name")
        .or_else(|| config.get("name"))
        .and_then(serde_json::Value::as_str)
        .ok_or("name: required")?;
    let (_, written) = read_flat(&serde_json::json!({"name": name, "config": config}), worker)?;
    let (kind, nested, _) = nested_of_flat(name, &written, worker)?;
    let shapes = flat::Shapes::default();
    crate::connectors::parse_document(kind, flat::Coercing::new(nested.clone(), Some(&shapes)))
        .map_err(|error| flat::describe(&error, &written))?;
    let yaml = serde_norway::to_string(&flat::typed(&nested, &shapes))
        .map_err(|error| format!("cannot write the document as YAML: {error}"))?;
    load_connector_text(Path::new("the imported file"), &yaml, worker).map_err(|error| error.message)?;
    Ok(yaml)
}

/// Reads a nested document in two passes: the first finds `type`, the second reads the whole file as that type's
/// document, so that every error keeps serde's key path and position (a flattened or internally tagged enum
/// would lose both).
fn read_nested(file: &Path, text: &str, written: &serde_json::Value) -> Result<Read, ConfigError> {
    #[derive(serde::Deserialize)]
    struct TypeOnly {
        #[serde(rename = "type")]
        kind: ConnectorType,
    }
    let TypeOnly { kind } = parse(file, text)?;
    // Settings named by their flat keys (`batch.max_entries: 5`), as the reference names them, nested first.
    let expanded = flat::expand_dotted_keys(written).map_err(|error| ConfigError::new(file, error.0))?;
    let nested = expanded.as_ref().unwrap_or(written);
    // Read from the parsed value to learn which settings have a shape of their own and which resolve their own
    // placeholders; its errors are reported by the reading that follows.
    let shapes = flat::Shapes::default();
    let _ = crate::connectors::parse_document(kind, flat::Coercing::new(nested.clone(), Some(&shapes)));
    let resolved = flat::resolve_placeholders(nested, &shapes)
        .map_err(|(path, message)| ConfigError::new(file, format!("{}: {message}", path.join("."))))?;
    let document = match resolved.or(expanded.clone()) {
        // Placeholders resolved for the settings that take theirs as written, or keys nested.
        Some(changed) => crate::connectors::parse_document(kind, flat::Coercing::new(changed, None))
            .map_err(|error| ConfigError::new(file, error.to_string()))?,
        // From the text, so that an error names its line and column.
        None => crate::connectors::parse_document(kind, serde_norway::Deserializer::from_str(text))
            .map_err(|error| ConfigError::new(file, error.to_string()))?,
    };
    Ok((document, flat::from_document(nested, &shapes)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused_in_linear_time() {
        let deep = format!("topics: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let started = std::time::Instant::now();
        let refused = check_limits(&deep).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(refused.contains("more than 64 levels deep at line 1"), "{refused}");
        let nested = format!("a:\n  b: {}1{}\n", "[".repeat(65), "]".repeat(65));
        assert!(check_limits(&nested).unwrap_err().contains("at line 2"));
        assert!(check_limits(&format!("a: {}1{}", "{x: ".repeat(64), "}".repeat(64))).is_ok());
    }

    #[test]
    fn brackets_in_scalars_strings_and_comments_do_not_count() {
        let many = "[".repeat(200);
        for text in [
            format!("a: x{many}\n"),
            format!("a: x {many}\n"),
            format!("a: \"{many}\"\n"),
            format!("a: '{many}'\n"),
            format!("a: 'it''s {many}'\n"),
            format!("a: \"\\\" {many}\"\n"),
            format!("a: 1 # {many}\nb: [1, 2]\n"),
            format!("# {many}\n"),
        ] {
            assert_eq!(check_limits(&text), Ok(()), "{text}");
        }
    }

    #[test]
    fn a_document_over_the_size_limit_is_refused() {
        let large = format!("a: \"{}\"\n", "x".repeat(MAX_DOCUMENT_BYTES));
        assert!(check_limits(&large).unwrap_err().contains("larger than 1048576 bytes"));
    }
}
