//! Loading and validating the worker file, and what connector files share (name, type, errors policy, the flat
//! form, placeholders); reading a connector file as its type is `connectors::file`'s.
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
    ConnectorDocument, ConnectorName, ConnectorType, DeadLetterQueueConfig, ErrorLogConfig, ErrorTolerance,
    ErrorsConfig,
};
pub use interpolate::{
    client_settings, has_provider_placeholder, install_provider, interpolate, interpolate_providers, ExternalProvider,
    Interpolated, InterpolationError, Secret, HIDDEN,
};
pub use worker::{
    AssumeRoleConfig, AwsConfig, BasicAuth, ClusterConfig, ClusterFiles, KafkaConfig, LogFormat, OAuthConfig,
    RegistryOAuthConfig, RestConfig, RestartPolicy, SaslConfig, SaslMechanism, SchemaRegistryConfig, SecurityProtocol,
    ServiceEndpoints, TlsConfig, WorkerConfig,
};

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

/// A setting that a rule beyond its type refuses: the key, as the file spells it (`config.batch.max_entries`,
/// `kafka.sasl.password`), and what is wrong with it. Shown as `key: problem`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub(crate) struct InvalidSetting {
    pub(crate) key: String,
    pub(crate) problem: String,
}

impl InvalidSetting {
    pub(crate) fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// A problem with one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub(crate) file: PathBuf,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub(crate) fn new(file: &Path, message: impl Into<String>) -> Self {
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
pub(crate) const MAX_FLOW_NESTING: usize = 64;

pub(crate) fn read(file: &Path) -> Result<String, ConfigError> {
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
pub(crate) fn parse_untrusted(text: &str) -> Result<serde_json::Value, String> {
    check_limits(text)?;
    serde_norway::from_str(text).map_err(|error| error.to_string())
}

pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, ConfigError> {
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
            .map_err(|invalid| ConfigError::new(file, invalid.to_string()))?,
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
        tls.check()
            .map_err(|invalid| ConfigError::new(file, invalid.to_string()))?;
    }
    if !kafka.security_protocol.uses_sasl() && kafka.sasl.is_some() {
        return Err(ConfigError::new(
            file,
            "kafka.sasl is set but kafka.security_protocol is neither `sasl_plaintext` nor `sasl_ssl`",
        ));
    }
    if let Some(registry) = &worker.schema_registry {
        registry
            .check()
            .map_err(|invalid| ConfigError::new(file, invalid.to_string()))?;
    }
    if let Some(cluster) = &worker.cluster {
        cluster
            .check()
            .map_err(|invalid| ConfigError::new(file, invalid.to_string()))?;
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
