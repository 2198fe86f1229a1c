//! Connector files: read (nested, or in Kafka Connect's flat form, or the AWS connector's configuration), checked
//! by their type, and turned into the [`ConnectorConfig`] a connector is built from. Here rather than in `config`,
//! because reading a file asks its type (`parse_document`, `check`): `config` knows the shared parts, not the types.

use std::path::{Path, PathBuf};

use crate::config::{
    aws_connector, flat, parse, parse_untrusted, read, ConfigError, ConnectorDocument, ConnectorName, ConnectorType,
    ErrorTolerance, ErrorsConfig, WorkerConfig,
};
use crate::transform::Chain;

use super::ConnectorSettings;

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

/// Reads a connector document given as text; `file` names where it came from, in errors.
pub fn load_connector_text(
    file: &Path,
    text: &str,
    worker: Option<&WorkerConfig>,
) -> Result<ConnectorConfig, ConfigError> {
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
    document.errors.check().map_err(|invalid| fail(invalid.to_string()))?;
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
    super::check(&document.config, worker).map_err(|invalid| fail(invalid.to_string()))?;
    let transforms = Chain::new(&document.transforms.0).map_err(fail)?;
    if transforms.dedupe().is_some() && !kind.can_dedupe() {
        return Err(fail(format!(
            "transforms: `dedupe` runs only in topic-processor and eventbridge-source connectors, not in {}: after a \
             restart or rebalance it reads again records whose keys the dedupe would remember, and drop; deduplicate \
             its input with a topic-processor",
            kind.as_str()
        )));
    }
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
    let _ = super::parse_document(kind, flat::Coercing::new(nested.clone(), Some(&shapes)));
    let nested = flat::resolve_placeholders(&nested, &shapes)
        .map_err(|(path, message)| format!("{}: {message}", flat::key_of(&path, &translated)))?
        .unwrap_or(nested);
    let document = super::parse_document(kind, flat::Coercing::new(nested, None))
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
    super::parse_document(kind, flat::Coercing::new(nested.clone(), Some(&shapes)))
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
    let _ = super::parse_document(kind, flat::Coercing::new(nested.clone(), Some(&shapes)));
    let resolved = flat::resolve_placeholders(nested, &shapes)
        .map_err(|(path, message)| ConfigError::new(file, format!("{}: {message}", path.join("."))))?;
    let document = match resolved.or(expanded.clone()) {
        // Placeholders resolved for the settings that take theirs as written, or keys nested.
        Some(changed) => super::parse_document(kind, flat::Coercing::new(changed, None))
            .map_err(|error| ConfigError::new(file, error.to_string()))?,
        // From the text, so that an error names its line and column.
        None => super::parse_document(kind, serde_norway::Deserializer::from_str(text))
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
