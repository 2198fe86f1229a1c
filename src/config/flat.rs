//! Kafka Connect's form of a connector configuration, a flat map of strings, and its mapping to the nested
//! document that connector files use.
//!
//! The mapping, both ways:
//! - `connector.class` is the type (`eventbridge-sink`, or a class name such as `EventBridgeSinkConnector`);
//!   `name` is the name; `tasks.max` is accepted (one task runs) and kept as written.
//! - Every other key is a setting of `config:`, nested at its dots: `batch.max_entries=10` is
//!   `config: {batch: {max_entries: 10}}`. Connect's own spellings are kept where ebconnect has the same setting:
//!   `topics.regex`, `consumer.override.<librdkafka key>`, `producer.override.<librdkafka key>`.
//! - `errors.*` as Kafka Connect spells it: `errors.tolerance`, `errors.deadletterqueue.topic.name`,
//!   `errors.deadletterqueue.context.headers.enable`, `errors.deadletterqueue.topic.replication.factor`,
//!   `errors.log.enable`, `errors.log.include.messages`.
//! - `transforms=a,b` names the chain; `transforms.a.type=mask` and `transforms.a.<setting>=...` give each step.
//! - A value is text: numbers and booleans as written, a list of plain strings comma-separated (`topics=a,b`),
//!   and anything else (patterns, maps with dotted keys, lists of maps) as JSON text.
//!
//! Reading a flat map goes through [`Coercing`], a deserializer that reads each text as the type the setting asks
//! for, so that the same serde definitions check both forms and every error names the flat key.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::ConnectorType;

/// Connect's `Map<String, String>` of a connector's configuration.
pub(crate) type FlatConfig = BTreeMap<String, String>;

const CLASS: &str = "connector.class";
const TASKS_MAX: &str = "tasks.max";

/// Flat keys that Kafka Connect spells differently from the nested document, as (flat, nested path).
const ERRORS_KEYS: [(&str, &[&str]); 6] = [
    ("errors.tolerance", &["errors", "tolerance"]),
    (
        "errors.deadletterqueue.topic.name",
        &["errors", "deadletterqueue", "topic"],
    ),
    (
        "errors.deadletterqueue.context.headers.enable",
        &["errors", "deadletterqueue", "context_headers"],
    ),
    (
        "errors.deadletterqueue.topic.replication.factor",
        &["errors", "deadletterqueue", "replication_factor"],
    ),
    ("errors.log.enable", &["errors", "log", "enable"]),
    ("errors.log.include.messages", &["errors", "log", "include_messages"]),
];

/// Settings that hold a map of client library keys, which have dots of their own: `consumer.override.<key>`.
const CLIENT_MAPS: [(&str, &str); 2] = [
    ("consumer.override.", "consumer_override"),
    ("producer.override.", "producer_override"),
];

/// Connect's spelling of a setting whose nested name has an underscore.
const RENAMED: [(&str, &str); 1] = [("topics.regex", "topics_regex")];

/// A flat configuration that does not map to a document; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct FlatError(pub String);

/// Kafka Connect's `Map<String, String>` from JSON: numbers and booleans are taken as their text, as Kafka
/// Connect's JSON reader takes them.
pub(crate) fn string_map(value: &Value) -> Result<FlatConfig, String> {
    let object = value.as_object().ok_or("config: must be a map of strings")?;
    object
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key.clone(), text.clone())),
            Value::Number(_) | Value::Bool(_) => Ok((key.clone(), value.to_string())),
            _ => Err(format!(
                "{key}: must be a string, a number or a boolean (write lists and maps as JSON text)"
            )),
        })
        .collect()
}

/// The connector type a `connector.class` names: the type's name, ebconnect's class name, or its simple form.
/// A name with dots must be the whole class name, so that another vendor's class of the same simple name (the AWS
/// connector's `software.amazon.event.kafkaconnector.EventBridgeSinkConnector`) is not taken for ebconnect's.
pub(crate) fn connector_type(class: &str) -> Option<ConnectorType> {
    let class = class.trim();
    ConnectorType::ALL.into_iter().find(|kind| {
        let simple = kind.class().rsplit('.').next().unwrap_or_default();
        kind.as_str() == class
            || kind.class() == class
            || (!class.contains('.') && (simple == class || simple.trim_end_matches("Connector") == class))
    })
}

/// The nested document of a flat configuration: `{name, type, config, transforms, errors}`, with every value still
/// text for [`Coercing`] to read. `name` is the connector's name when the map has none.
pub(crate) fn to_document(name: &str, flat: &FlatConfig) -> Result<(ConnectorType, Value), FlatError> {
    if let Some(named) = flat.get("name") {
        if named != name {
            return Err(FlatError(format!(
                "name: the config names connector `{named}`, not `{name}`"
            )));
        }
    }
    let class = flat
        .get(CLASS)
        .ok_or_else(|| FlatError(format!("{CLASS}: required (e.g. `eventbridge-sink`)")))?;
    let kind = connector_type(class).ok_or_else(|| {
        FlatError(format!(
            "{CLASS}: no connector `{class}`; the types are {}",
            ConnectorType::ALL.map(|kind| kind.as_str()).join(", ")
        ))
    })?;
    if let Some(tasks) = flat.get(TASKS_MAX) {
        if !tasks.trim().parse::<u32>().is_ok_and(|tasks| tasks >= 1) {
            return Err(FlatError(format!(
                "{TASKS_MAX}: `{tasks}` is not a whole number of at least 1"
            )));
        }
    }
    let mut document = Map::new();
    document.insert("name".into(), Value::String(name.to_owned()));
    document.insert("type".into(), Value::String(kind.as_str().to_owned()));
    let mut config = Tree::default();
    let mut errors = Tree::default();
    let transforms = transform_chain(flat)?;
    for (key, value) in flat {
        if matches!(key.as_str(), "name" | CLASS | TASKS_MAX) || key == "transforms" || key.starts_with("transforms.") {
            continue;
        }
        if key.starts_with("errors.") {
            let (_, path) = ERRORS_KEYS
                .iter()
                .find(|(flat_key, _)| flat_key == key)
                .ok_or_else(|| unknown_errors_key(key))?;
            errors.insert(key, &path[1..], value)?;
            continue;
        }
        if let Some((prefix, setting)) = CLIENT_MAPS.iter().find(|(prefix, _)| key.starts_with(prefix)) {
            config.insert_client_setting(key, setting, &key[prefix.len()..], value)?;
            continue;
        }
        let nested = RENAMED
            .iter()
            .find(|(flat_key, _)| flat_key == key)
            .map_or(key.as_str(), |(_, nested)| nested);
        let path: Vec<&str> = nested.split('.').collect();
        if path.iter().any(|segment| segment.is_empty()) {
            return Err(FlatError(format!("{key}: a key has no empty parts between its dots")));
        }
        config.insert(key, &path, value)?;
    }
    document.insert("config".into(), config.into_value());
    if !transforms.is_empty() {
        document.insert("transforms".into(), Value::Array(transforms));
    }
    if !errors.is_empty() {
        document.insert("errors".into(), errors.into_value());
    }
    Ok((kind, Value::Object(document)))
}

/// The flat name of a key of `config` as the reference writes it (`topics_regex` is `topics.regex`).
pub(crate) fn flat_name(nested: &str) -> String {
    RENAMED
        .iter()
        .find(|(_, name)| *name == nested)
        .map_or_else(|| nested.to_owned(), |(flat_key, _)| (*flat_key).to_owned())
}

/// Kafka Connect's name of an `errors` setting given by its nested path (`["errors", "deadletterqueue", "topic"]`).
pub(crate) fn errors_flat_key(path: &[&str]) -> Option<String> {
    ERRORS_KEYS
        .iter()
        .find(|(_, nested)| *nested == path)
        .map(|(flat_key, _)| (*flat_key).to_owned())
}

/// A nested document whose `config:` names some settings by their flat keys (`batch.max_entries: 5`,
/// `consumer.override.client.id: x`, `topics.regex: ...`), with those nested as the flat form nests them; `None`
/// when it names none so.
pub(crate) fn expand_dotted_keys(document: &Value) -> Result<Option<Value>, FlatError> {
    let Some(config) = document.get("config").and_then(Value::as_object) else {
        return Ok(None);
    };
    if !config.keys().any(|key| key.contains('.')) {
        return Ok(None);
    }
    let conflict = |key: &str| {
        FlatError(format!(
            "config.{key}: conflicts with another key that sets the same setting"
        ))
    };
    // The nested keys first, then each dotted one into them: `batch.max_entries` beside `batch: {linger}` is one
    // `batch`.
    let mut expanded: Map<String, Value> = config
        .iter()
        .filter(|(key, _)| !key.contains('.'))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    for (key, value) in config.iter().filter(|(key, _)| key.contains('.')) {
        let (path, client_key): (Vec<&str>, Option<&str>) =
            match CLIENT_MAPS.iter().find(|(prefix, _)| key.starts_with(prefix)) {
                Some((prefix, setting)) => (vec![*setting], Some(&key[prefix.len()..])),
                None => {
                    let nested = RENAMED
                        .iter()
                        .find(|(flat_key, _)| flat_key == key)
                        .map_or(key.as_str(), |(_, nested)| nested);
                    (nested.split('.').collect(), None)
                }
            };
        if path.iter().any(|segment| segment.is_empty()) || client_key == Some("") {
            return Err(FlatError(format!(
                "config.{key}: a key has no empty parts between its dots"
            )));
        }
        let mut at = &mut expanded;
        for segment in &path[..path.len() - 1] {
            match at
                .entry((*segment).to_owned())
                .or_insert_with(|| Value::Object(Map::new()))
            {
                Value::Object(map) => at = map,
                _ => return Err(conflict(key)),
            }
        }
        let last = path[path.len() - 1];
        match client_key {
            Some(client_key) => match at.entry(last.to_owned()).or_insert_with(|| Value::Object(Map::new())) {
                Value::Object(map) => {
                    if map.insert(client_key.to_owned(), value.clone()).is_some() {
                        return Err(conflict(key));
                    }
                }
                _ => return Err(conflict(key)),
            },
            None => {
                if at.insert(last.to_owned(), value.clone()).is_some() {
                    return Err(conflict(key));
                }
            }
        }
    }
    let mut document = document.clone();
    document["config"] = Value::Object(expanded);
    Ok(Some(document))
}

fn unknown_errors_key(key: &str) -> FlatError {
    FlatError(format!(
        "{key}: not a setting; the errors settings are {}",
        ERRORS_KEYS.map(|(flat_key, _)| flat_key).join(", ")
    ))
}

/// `transforms=a,b` with `transforms.a.type=...`: the chain as the document writes it, `[{<type>: {...}}, ...]`.
fn transform_chain(flat: &FlatConfig) -> Result<Vec<Value>, FlatError> {
    let names: Vec<&str> = flat
        .get("transforms")
        .map(|names| {
            names
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut seen = BTreeSet::new();
    for name in &names {
        if !seen.insert(*name) {
            return Err(FlatError(format!("transforms: `{name}` is named twice")));
        }
    }
    for key in flat.keys().filter_map(|key| key.strip_prefix("transforms.")) {
        let name = key.split('.').next().unwrap_or(key);
        if !names.contains(&name) {
            return Err(FlatError(format!(
                "transforms.{key}: `{name}` is not in `transforms` ({})",
                names.join(",")
            )));
        }
    }
    names
        .iter()
        .map(|name| {
            let prefix = format!("transforms.{name}.");
            let kind = flat
                .get(&format!("{prefix}type"))
                .ok_or_else(|| FlatError(format!("{prefix}type: required (e.g. `mask`)")))?;
            let mut settings = Tree::default();
            for (key, value) in flat
                .range(prefix.clone()..)
                .take_while(|(key, _)| key.starts_with(&prefix))
            {
                let setting = &key[prefix.len()..];
                if setting == "type" {
                    continue;
                }
                settings.insert(key, &setting.split('.').collect::<Vec<_>>(), value)?;
            }
            let mut step = Map::new();
            step.insert(kind.trim().to_owned(), settings.into_value());
            Ok(Value::Object(step))
        })
        .collect()
}

/// A nested map being built from flat keys; remembers which key set each branch, to name both in a conflict.
#[derive(Default)]
struct Tree {
    entries: Map<String, Value>,
    set_by: BTreeMap<String, String>,
}

impl Tree {
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn insert(&mut self, key: &str, path: &[&str], value: &str) -> Result<(), FlatError> {
        let conflict = |other: &str| FlatError(format!("{key}: conflicts with `{other}`; give one of them"));
        let mut at = &mut self.entries;
        for (depth, segment) in path.iter().enumerate() {
            let prefix = path[..=depth].join(".");
            let last = depth + 1 == path.len();
            if last {
                if at.contains_key(*segment) {
                    return Err(conflict(self.set_by.get(&prefix).map_or(&prefix, |other| other)));
                }
                at.insert((*segment).to_owned(), Value::String(value.to_owned()));
                self.set_by.insert(prefix, key.to_owned());
                return Ok(());
            }
            let branch = at
                .entry((*segment).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            match branch {
                Value::Object(map) => at = map,
                _ => return Err(conflict(self.set_by.get(&prefix).map_or(&prefix, |other| other))),
            }
            self.set_by.entry(prefix).or_insert_with(|| key.to_owned());
        }
        Ok(())
    }

    fn insert_client_setting(
        &mut self,
        key: &str,
        setting: &str,
        client_key: &str,
        value: &str,
    ) -> Result<(), FlatError> {
        if client_key.is_empty() {
            return Err(FlatError(format!("{key}: names no client setting after the prefix")));
        }
        let map = self
            .entries
            .entry(setting.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        match map {
            Value::Object(map) => {
                map.insert(client_key.to_owned(), Value::String(value.to_owned()));
                Ok(())
            }
            _ => Err(FlatError(format!("{key}: conflicts with `{setting}`"))),
        }
    }

    fn into_value(self) -> Value {
        Value::Object(self.entries)
    }
}

/// Where a typed reading asked for a struct, map, list or scalar (not for any value): the settings with a shape
/// of their own, which flatten key by key. The rest (patterns, free-form values) are shown as JSON text.
#[derive(Debug, Default)]
pub(crate) struct Shapes {
    shaped: RefCell<BTreeSet<Vec<String>>>,
    /// Texts read as a string, and texts read as a comma-separated list.
    leaves: RefCell<BTreeMap<Vec<String>, Leaf>>,
    /// Settings that resolve their own placeholders (`Interpolated`, `Secret`).
    interpolating: RefCell<BTreeSet<Vec<String>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaf {
    Text,
    List,
}

impl Shapes {
    fn mark(&self, path: &[String]) {
        let mut shaped = self.shaped.borrow_mut();
        for depth in 0..=path.len() {
            shaped.insert(path[..depth].to_vec());
        }
    }

    fn mark_leaf(&self, path: &[String], leaf: Leaf) {
        self.leaves.borrow_mut().insert(path.to_vec(), leaf);
    }

    fn has(&self, path: &[String]) -> bool {
        self.shaped.borrow().contains(path)
    }

    fn leaf(&self, path: &[String]) -> Option<Leaf> {
        self.leaves.borrow().get(path).copied()
    }

    fn interpolates(&self, path: &[String]) -> bool {
        self.interpolating.borrow().contains(path)
    }
}

/// The document with the `${env:}` and `${file:}` placeholders resolved in every setting that does not resolve its
/// own (those keep them, to show as written), or `None` if it has none to resolve. `shapes` comes from reading it
/// with a [`Coercing`] deserializer. An error names the setting's path and the variable or file.
pub(crate) fn resolve_placeholders(value: &Value, shapes: &Shapes) -> Result<Option<Value>, (Vec<String>, String)> {
    fn walk(
        value: &mut Value,
        path: &mut Vec<String>,
        shapes: &Shapes,
        changed: &mut bool,
    ) -> Result<(), (Vec<String>, String)> {
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    path.push(key.clone());
                    walk(child, path, shapes, changed)?;
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter_mut().enumerate() {
                    path.push(index.to_string());
                    walk(item, path, shapes, changed)?;
                    path.pop();
                }
            }
            Value::String(text) if crate::config::has_provider_placeholder(text) && !shapes.interpolates(path) => {
                *text =
                    crate::config::interpolate_providers(text).map_err(|error| (path.clone(), error.to_string()))?;
                // As for a setting that resolves its own: what a placeholder stood for never shows.
                crate::redact::record(text);
                *changed = true;
            }
            _ => {}
        }
        Ok(())
    }
    let mut resolved = value.clone();
    let mut changed = false;
    walk(&mut resolved, &mut Vec::new(), shapes, &mut changed)?;
    Ok(changed.then_some(resolved))
}

/// A document read from a flat configuration (every value text), with each text as the type its setting took:
/// a number, a boolean, a list, a map, or text. `shapes` comes from reading it with a [`Coercing`] deserializer.
pub(crate) fn typed(value: &Value, shapes: &Shapes) -> Value {
    fn walk(value: &Value, path: &mut Vec<String>, shapes: &Shapes) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, child)| {
                        path.push(key.clone());
                        let typed = walk(child, path, shapes);
                        path.pop();
                        (key.clone(), typed)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| {
                        path.push(index.to_string());
                        let typed = walk(item, path, shapes);
                        path.pop();
                        typed
                    })
                    .collect(),
            ),
            Value::String(text) => match shapes.leaf(path) {
                Some(Leaf::Text) => value.clone(),
                Some(Leaf::List) => Value::Array(
                    text.split(',')
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .enumerate()
                        .map(|(index, item)| {
                            path.push(index.to_string());
                            let typed = walk(&Value::String(item.to_owned()), path, shapes);
                            path.pop();
                            typed
                        })
                        .collect(),
                ),
                None => infer(text).unwrap_or_else(|| value.clone()),
            },
            other => other.clone(),
        }
    }
    walk(value, &mut Vec::new(), shapes)
}

/// The flat form of a nested connector document as written (not with defaults filled in). `shapes` comes from
/// reading the same document with a [`Coercing`] deserializer.
pub(crate) fn from_document(document: &Value, shapes: &Shapes) -> FlatConfig {
    let mut flat = FlatConfig::new();
    let Some(document) = document.as_object() else {
        return flat;
    };
    if let Some(name) = document.get("name").and_then(Value::as_str) {
        flat.insert("name".into(), name.to_owned());
    }
    if let Some(kind) = document.get("type").and_then(Value::as_str) {
        flat.insert(CLASS.into(), kind.to_owned());
    }
    if let Some(Value::Object(config)) = document.get("config") {
        for (key, value) in config {
            if let Some((prefix, _)) = CLIENT_MAPS.iter().find(|(_, setting)| setting == key) {
                if let Value::Object(settings) = value {
                    for (client_key, setting) in settings {
                        flat.insert(format!("{prefix}{client_key}"), scalar_text(setting));
                    }
                    continue;
                }
            }
            let flat_key = RENAMED
                .iter()
                .find(|(_, nested)| nested == key)
                .map_or(key.as_str(), |(flat_key, _)| flat_key);
            flatten(&mut flat, flat_key, &["config".into(), key.clone()], value, shapes);
        }
    }
    if let Some(Value::Array(steps)) = document.get("transforms") {
        let mut names = Vec::new();
        for (index, step) in steps.iter().enumerate() {
            let Some((kind, settings)) = step.as_object().and_then(|step| step.iter().next()) else {
                continue;
            };
            let mut name = kind.clone();
            let mut repeat = 1;
            while names.contains(&name) {
                repeat += 1;
                name = format!("{kind}_{repeat}");
            }
            flat.insert(format!("transforms.{name}.type"), kind.clone());
            if let Value::Object(settings) = settings {
                for (key, value) in settings {
                    let path = ["transforms".into(), index.to_string(), kind.clone(), key.clone()];
                    flatten(&mut flat, &format!("transforms.{name}.{key}"), &path, value, shapes);
                }
            }
            names.push(name);
        }
        flat.insert("transforms".into(), names.join(","));
    }
    if let Some(errors) = document.get("errors") {
        for (flat_key, path) in ERRORS_KEYS {
            if let Some(value) = path[1..].iter().try_fold(errors, |at, segment| at.get(segment)) {
                flat.insert(flat_key.to_owned(), scalar_text(value));
            }
        }
    }
    flat
}

fn flatten(flat: &mut FlatConfig, key: &str, path: &[String], value: &Value, shapes: &Shapes) {
    let shaped = shapes.has(path);
    match value {
        Value::Null => {}
        Value::Object(map) if shaped && !map.is_empty() && map.keys().all(|key| plain_key(key)) => {
            for (child, value) in map {
                let mut deeper = path.to_vec();
                deeper.push(child.clone());
                flatten(flat, &format!("{key}.{child}"), &deeper, value, shapes);
            }
        }
        Value::Array(items) if shaped && !items.is_empty() && items.iter().all(list_item) => {
            let items: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            flat.insert(key.to_owned(), items.join(","));
        }
        Value::String(text) if shaped || infer(text).as_ref() == Some(value) => {
            flat.insert(key.to_owned(), text.clone());
        }
        Value::Bool(_) | Value::Number(_) => {
            flat.insert(key.to_owned(), value.to_string());
        }
        _ => {
            flat.insert(key.to_owned(), value.to_string());
        }
    }
}

/// A key that can stand between dots: a flat key is split at every dot.
fn plain_key(key: &str) -> bool {
    !key.is_empty() && !key.contains('.')
}

/// A string that reads back the same as one item of a comma-separated list.
fn list_item(item: &Value) -> bool {
    item.as_str().is_some_and(|text| {
        !text.is_empty() && !text.contains(',') && text.trim() == text && !text.starts_with(['[', '{', '"'])
    })
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// What a text is when the setting takes any value: JSON for a list, a map or a quoted string, a boolean or a
/// number when it reads as one, else the text itself.
fn infer(text: &str) -> Option<Value> {
    let trimmed = text.trim_start();
    if trimmed.starts_with(['[', '{', '"']) {
        return serde_json::from_str(text).ok();
    }
    Some(match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => match serde_json::from_str::<serde_json::Number>(text) {
            Ok(number) if text.trim() == text => Value::Number(number),
            _ => Value::String(text.to_owned()),
        },
    })
}

/// A deserialization error with the key path it happened at.
#[derive(Debug)]
pub(crate) struct CoercingError {
    path: Vec<String>,
    message: String,
}

impl CoercingError {
    fn within(mut self, segment: &str) -> Self {
        self.path.insert(0, segment.to_owned());
        self
    }

    /// The path from the document's root, e.g. `["config", "batch", "max_entries"]`.
    pub(crate) fn path(&self) -> &[String] {
        &self.path
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for CoercingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path.join("."), self.message)
        }
    }
}

impl std::error::Error for CoercingError {}

impl de::Error for CoercingError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self {
            path: Vec::new(),
            message: message.to_string(),
        }
    }
}

fn from_json(error: serde_json::Error) -> CoercingError {
    de::Error::custom(error)
}

/// Reads a JSON value, taking text where a setting asks for a number, a boolean, a list (comma-separated or JSON)
/// or a map (JSON), as a flat configuration gives it. Typed values read as themselves.
pub(crate) struct Coercing<'s> {
    value: Value,
    path: Vec<String>,
    shapes: Option<&'s Shapes>,
}

impl<'s> Coercing<'s> {
    pub(crate) fn new(value: Value, shapes: Option<&'s Shapes>) -> Self {
        Self {
            value,
            path: Vec::new(),
            shapes,
        }
    }

    fn child(&self, segment: String, value: Value) -> Self {
        let mut path = self.path.clone();
        path.push(segment);
        Self {
            value,
            path,
            shapes: self.shapes,
        }
    }

    fn shaped(&self) {
        if let Some(shapes) = self.shapes {
            shapes.mark(&self.path);
        }
    }

    /// This value with its `${env:}`/`${file:}` placeholders resolved, for a setting read as a number, a boolean,
    /// a list or a map, where a placeholder can only stand for the value (`max_entries: ${env:BATCH}`).
    fn resolved(mut self) -> Result<Self, CoercingError> {
        if let Value::String(text) = &self.value {
            if crate::config::has_provider_placeholder(text) {
                let resolved = crate::config::interpolate_providers(text).map_err(de::Error::custom)?;
                self.value = Value::String(resolved);
            }
        }
        Ok(self)
    }

    /// Notes how a text was read; called only for a text.
    fn leaf(&self, leaf: Leaf) {
        if let Some(shapes) = self.shapes {
            shapes.mark_leaf(&self.path, leaf);
        }
    }

    fn text_as_json<'de, V: Visitor<'de>>(text: &str, visitor: V) -> Result<V::Value, CoercingError> {
        let parsed: Value = serde_json::from_str(text).map_err(|error| {
            de::Error::custom(format!("`{}` is not valid JSON: {error}", crate::redact::scrub(text)))
        })?;
        de::Deserializer::deserialize_any(parsed, visitor).map_err(from_json)
    }

    fn seq<'de, V: Visitor<'de>>(self, items: Vec<Value>, visitor: V) -> Result<V::Value, CoercingError> {
        let items = items
            .into_iter()
            .enumerate()
            .map(|(index, item)| self.child(index.to_string(), item))
            .collect::<Vec<_>>();
        visitor.visit_seq(Items(items.into_iter(), 0))
    }

    fn map<'de, V: Visitor<'de>>(self, entries: Map<String, Value>, visitor: V) -> Result<V::Value, CoercingError> {
        let entries = entries
            .into_iter()
            .map(|(key, value)| (key.clone(), self.child(key, value)))
            .collect::<Vec<_>>();
        visitor.visit_map(Entries {
            entries: entries.into_iter(),
            pending: None,
        })
    }
}

struct Items<'s>(std::vec::IntoIter<Coercing<'s>>, usize);

impl<'de> SeqAccess<'de> for Items<'_> {
    type Error = CoercingError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, CoercingError> {
        let Some(item) = self.0.next() else {
            return Ok(None);
        };
        let index = self.1;
        self.1 += 1;
        seed.deserialize(item)
            .map(Some)
            .map_err(|error| error.within(&index.to_string()))
    }
}

struct Entries<'s> {
    entries: std::vec::IntoIter<(String, Coercing<'s>)>,
    pending: Option<(String, Coercing<'s>)>,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = CoercingError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, CoercingError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let read = seed.deserialize(key.as_str().into_deserializer());
        self.pending = Some((key, value));
        read.map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, CoercingError> {
        let (key, value) = self
            .pending
            .take()
            .ok_or_else(|| <CoercingError as de::Error>::custom("a value was asked for before its key"))?;
        seed.deserialize(value).map_err(|error| error.within(&key))
    }
}

macro_rules! parse_number {
    ($($method:ident => $visit:ident : $kind:ty,)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CoercingError> {
            let this = self.resolved()?;
            this.shaped();
            match &this.value {
                Value::String(text) => match text.trim().parse::<$kind>() {
                    Ok(number) => visitor.$visit(number),
                    Err(error) => Err(de::Error::custom(format!(
                        "`{text}` is not {} ({error})",
                        if stringify!($kind).starts_with('f') { "a number" } else { "a whole number in range" }
                    ))),
                },
                _ => de::Deserializer::$method(this.value, visitor).map_err(from_json),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Coercing<'_> {
    type Error = CoercingError;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, CoercingError> {
        match std::mem::take(&mut self.value) {
            Value::String(ref text) => match infer(text) {
                Some(Value::String(text)) => visitor.visit_string(text),
                Some(other) => de::Deserializer::deserialize_any(other, visitor).map_err(from_json),
                None => Self::text_as_json(text, visitor),
            },
            Value::Array(items) => self.seq(items, visitor),
            Value::Object(entries) => self.map(entries, visitor),
            other => de::Deserializer::deserialize_any(other, visitor).map_err(from_json),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CoercingError> {
        let this = self.resolved()?;
        this.shaped();
        match &this.value {
            Value::String(text) if text.trim().eq_ignore_ascii_case("true") => visitor.visit_bool(true),
            Value::String(text) if text.trim().eq_ignore_ascii_case("false") => visitor.visit_bool(false),
            Value::String(text) => Err(de::Error::custom(format!("`{text}` is not `true` or `false`"))),
            _ => de::Deserializer::deserialize_bool(this.value, visitor).map_err(from_json),
        }
    }

    parse_number! {
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64,
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CoercingError> {
        self.shaped();
        if self.value.is_string() {
            self.leaf(Leaf::Text);
        }
        match self.value {
            Value::String(text) => visitor.visit_string(text),
            // As YAML reads `source: 123` into a string setting.
            Value::Number(number) => visitor.visit_string(number.to_string()),
            Value::Bool(flag) => visitor.visit_string(flag.to_string()),
            other => de::Deserializer::deserialize_str(other, visitor).map_err(from_json),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CoercingError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CoercingError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CoercingError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CoercingError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CoercingError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CoercingError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CoercingError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, CoercingError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, CoercingError> {
        if let (Some(shapes), crate::config::Interpolated::NAME) = (self.shapes, name) {
            shapes.interpolating.borrow_mut().insert(self.path.clone());
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CoercingError> {
        let mut this = self.resolved()?;
        this.shaped();
        match std::mem::take(&mut this.value) {
            Value::Array(items) => this.seq(items, visitor),
            Value::String(ref text) if text.trim_start().starts_with('[') => Self::text_as_json(text, visitor),
            Value::String(ref text) => {
                this.leaf(Leaf::List);
                let items = text
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| Value::String(item.to_owned()))
                    .collect();
                this.seq(items, visitor)
            }
            other => de::Deserializer::deserialize_seq(other, visitor).map_err(from_json),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, CoercingError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, CoercingError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CoercingError> {
        let mut this = self.resolved()?;
        this.shaped();
        match std::mem::take(&mut this.value) {
            Value::Object(entries) => this.map(entries, visitor),
            Value::String(ref text) if text.trim_start().starts_with('{') => Self::text_as_json(text, visitor),
            Value::String(text) => Err(de::Error::custom(format!(
                "`{}` is not a map: write it as JSON, e.g. {{\"key\": \"value\"}}",
                crate::redact::scrub(&text)
            ))),
            other => de::Deserializer::deserialize_map(other, visitor).map_err(from_json),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, CoercingError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, CoercingError> {
        let this = self.resolved()?;
        this.shaped();
        match this.value {
            Value::String(ref text) if text.trim_start().starts_with('{') => {
                let parsed: Value = serde_json::from_str(text).map_err(from_json)?;
                de::Deserializer::deserialize_enum(parsed, name, variants, visitor).map_err(from_json)
            }
            Value::String(text) => visitor.visit_enum(text.into_deserializer()),
            other => de::Deserializer::deserialize_enum(other, name, variants, visitor).map_err(from_json),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, CoercingError> {
        visitor.visit_unit()
    }
}

/// A reading error of a flat configuration, naming the flat key it happened at.
pub(crate) fn describe(error: &CoercingError, flat: &FlatConfig) -> String {
    match flat_key(error.path(), flat) {
        Some(key) => format!("{key}: {}", error.message()),
        None => error.message().to_owned(),
    }
}

/// The flat key of a path in the nested document, or the path itself.
pub(crate) fn key_of(path: &[String], flat: &FlatConfig) -> String {
    flat_key(path, flat).unwrap_or_else(|| path.join("."))
}

/// The flat key of a path in the nested document.
fn flat_key(path: &[String], flat: &FlatConfig) -> Option<String> {
    let (head, rest) = path.split_first()?;
    match head.as_str() {
        "config" => {
            let (setting, deeper) = rest.split_first()?;
            if let Some((prefix, _)) = CLIENT_MAPS.iter().find(|(_, nested)| nested == setting) {
                if let Some(client_key) = deeper.first() {
                    return Some(format!("{prefix}{client_key}"));
                }
            }
            let setting = RENAMED
                .iter()
                .find(|(_, nested)| nested == setting)
                .map_or(setting.as_str(), |(flat_key, _)| flat_key);
            Some(
                std::iter::once(setting.to_owned())
                    .chain(deeper.iter().cloned())
                    .collect::<Vec<_>>()
                    .join("."),
            )
        }
        "errors" => Some(
            ERRORS_KEYS
                .iter()
                .find(|(_, nested)| nested[1..].iter().zip(rest).all(|(want, have)| want == have) && !rest.is_empty())
                .map_or_else(
                    || format!("errors.{}", rest.join(".")),
                    |(flat_key, _)| (*flat_key).to_owned(),
                ),
        ),
        "transforms" => {
            let index: usize = rest.first()?.parse().ok()?;
            let names = flat.get("transforms")?;
            let name = names
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .nth(index)?;
            // `rest` is [index, type, setting...]: an error at the index is the type's, at the type the step's.
            Some(match rest.len() {
                1 => format!("transforms.{name}.type"),
                2 => format!("transforms.{name}"),
                _ => format!("transforms.{name}.{}", rest[2..].join(".")),
            })
        }
        _ => Some(path.join(".")),
    }
}

/// A check's message, which names nested keys (`config.batch.max_entries: ...`), in flat terms.
pub(crate) fn in_flat_terms(message: &str) -> String {
    message
        .strip_prefix("config.")
        .or_else(|| message.strip_prefix("config: "))
        .map_or_else(|| message.to_owned(), str::to_owned)
}

/// What may be shown of a flat configuration: a value whose key names a password, secret or key, or whose setting
/// is a secret in the typed configuration (`typed`, serialized, which shows secrets as `[hidden]`), is shown as
/// `[hidden]` unless it is a placeholder; everything else as written.
pub(crate) fn shown(written: &FlatConfig, typed: &Value) -> FlatConfig {
    written
        .iter()
        .map(|(key, value)| {
            let placeholder = value.replace("$${", "").contains("${");
            let secret = crate::config::client_settings::is_secret(key)
                || key.ends_with("user.info")
                || nested_path(key)
                    .is_some_and(|path| holds_hidden(path.iter().try_fold(typed, |at, segment| at.get(segment))));
            let shown = if secret && !placeholder {
                crate::config::HIDDEN.to_owned()
            } else {
                value.clone()
            };
            (key.clone(), shown)
        })
        .collect()
}

fn holds_hidden(value: Option<&Value>) -> bool {
    match value {
        Some(Value::String(text)) => text == crate::config::HIDDEN,
        Some(Value::Array(items)) => items.iter().any(|item| holds_hidden(Some(item))),
        Some(Value::Object(map)) => map.values().any(|item| holds_hidden(Some(item))),
        _ => false,
    }
}

/// Where a flat key's value stands in the nested document, for the keys of `config` and `errors`.
fn nested_path(key: &str) -> Option<Vec<String>> {
    if let Some((_, path)) = ERRORS_KEYS.iter().find(|(flat_key, _)| *flat_key == key) {
        return Some(path.iter().map(|segment| (*segment).to_owned()).collect());
    }
    if matches!(key, "name" | CLASS | TASKS_MAX) || key.starts_with("transforms") || key.starts_with("errors.") {
        return None;
    }
    if let Some((prefix, setting)) = CLIENT_MAPS.iter().find(|(prefix, _)| key.starts_with(prefix)) {
        return Some(vec!["config".into(), (*setting).into(), key[prefix.len()..].to_owned()]);
    }
    let key = RENAMED
        .iter()
        .find(|(flat_key, _)| *flat_key == key)
        .map_or(key, |(_, nested)| nested);
    Some(
        std::iter::once("config")
            .chain(key.split('.'))
            .map(str::to_owned)
            .collect(),
    )
}
