//! Kafka Connect's `ConfigKeyInfo` for every key of a connector type, for `GET /connector-plugins/{type}/config`
//! and `validate`. The keys, defaults and meanings are read from the README's configuration reference, the one
//! place they are written down (a test checks it against the code), so the API and the documentation agree.

use std::sync::LazyLock;

use serde_json::{json, Value};

use crate::config::flat;
use crate::connectors::ConnectorType;

const REFERENCE: &str = include_str!("../../README.md");

/// One key's definition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConfigKey {
    /// The flat key, as `GET .../config` shows it.
    pub(crate) name: String,
    /// Kafka Connect's type name: `STRING`, `INT`, `BOOLEAN`, `LIST` or `PASSWORD`.
    pub(crate) kind: &'static str,
    pub(crate) required: bool,
    pub(crate) default: Option<String>,
    pub(crate) documentation: String,
    /// `Common` for the keys of every connector file, else the type's name.
    pub(crate) group: &'static str,
    pub(crate) order: usize,
}

impl ConfigKey {
    /// A key the reference does not list, submitted to `validate`.
    pub(crate) fn undocumented(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            kind: "STRING",
            required: false,
            default: None,
            documentation: String::new(),
            group: "Common",
            order: 0,
        }
    }

    pub(crate) fn info(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "required": self.required,
            "default_value": self.default,
            "importance": if self.required { "HIGH" } else { "MEDIUM" },
            "documentation": self.documentation,
            "group": self.group,
            "order_in_group": self.order,
            "width": "NONE",
            "display_name": self.name,
            "dependents": [],
        })
    }
}

/// Every key of `kind`: the common keys (`connector.class`, `name`, `tasks.max`, `errors.*`, `transforms`), then
/// the type's own. Read from the reference once per type, on first use.
pub(crate) fn definitions(kind: ConnectorType) -> Vec<ConfigKey> {
    static ALL: LazyLock<Vec<(ConnectorType, Vec<ConfigKey>)>> =
        LazyLock::new(|| ConnectorType::ALL.into_iter().map(|kind| (kind, read(kind))).collect());
    ALL.iter()
        .find(|(known, _)| *known == kind)
        .map(|(_, keys)| keys.clone())
        .unwrap_or_default()
}

fn read(kind: ConnectorType) -> Vec<ConfigKey> {
    let mut keys = vec![
        fixed(
            "connector.class",
            true,
            None,
            "the connector type, e.g. `eventbridge-sink` or its class name",
        ),
        fixed("name", true, None, "the connector's name"),
        fixed(
            "tasks.max",
            false,
            Some("1"),
            "accepted for Kafka Connect's tools; a connector runs one task",
        ),
    ];
    keys.extend(
        table_after("### Connector files")
            .into_iter()
            .filter(|(key, _, _)| key.starts_with("errors.") || key == "transforms")
            .filter(|_| kind.has_record_pipeline())
            .map(|(key, default, meaning)| definition(&errors_key(&key), &default, &meaning, "Common")),
    );
    let section = format!("### `type: {}`", kind.as_str());
    keys.extend(
        table_after(&section)
            .into_iter()
            .filter(|(key, _, _)| !key.ends_with("_override"))
            .map(|(key, default, meaning)| definition(&flat::flat_name(&key), &default, &meaning, kind.as_str())),
    );
    for (order, key) in keys.iter_mut().enumerate() {
        key.order = order + 1;
    }
    keys
}

fn fixed(name: &str, required: bool, default: Option<&str>, documentation: &str) -> ConfigKey {
    ConfigKey {
        name: name.to_owned(),
        kind: "STRING",
        required,
        default: default.map(str::to_owned),
        documentation: documentation.to_owned(),
        group: "Common",
        order: 0,
    }
}

fn errors_key(nested: &str) -> String {
    let path: Vec<&str> = nested.split('.').collect();
    flat::errors_flat_key(&path).unwrap_or_else(|| nested.to_owned())
}

fn definition(name: &str, default: &str, meaning: &str, group: &'static str) -> ConfigKey {
    let required = default == "required";
    let default = match default.strip_prefix('`').and_then(|rest| rest.strip_suffix('`')) {
        Some(value) if !value.contains('`') && !value.contains('<') => Some(value.to_owned()),
        _ => None,
    };
    let kind = if crate::config::client_settings::is_secret(name) || name.ends_with("secret") {
        "PASSWORD"
    } else if name == "topics" || default.as_deref() == Some("[]") {
        "LIST"
    } else if matches!(default.as_deref(), Some("true" | "false")) {
        "BOOLEAN"
    } else if default.as_deref().is_some_and(|value| value.parse::<i64>().is_ok()) {
        "INT"
    } else {
        "STRING"
    };
    ConfigKey {
        name: name.to_owned(),
        kind,
        required,
        default,
        documentation: meaning.replace('`', ""),
        group,
        order: 0,
    }
}

/// The rows of the first table after `heading`: (key, default, meaning), a row naming several keys (`a`, `b`) split
/// into one row each, with its defaults split alike when there are as many.
fn table_after(heading: &str) -> Vec<(String, String, String)> {
    let Some(start) = REFERENCE.find(heading) else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in REFERENCE[start + heading.len()..].lines() {
        if line.starts_with("### ") || line.starts_with("## ") {
            break;
        }
        if !line.starts_with('|') {
            if in_table {
                break;
            }
            continue;
        }
        let cells = cells(line);
        if cells.len() < 3 || cells[0].starts_with("key") || cells[0].starts_with("---") {
            in_table = true;
            continue;
        }
        let names: Vec<&str> = cells[0].split(", ").map(|name| name.trim_matches('`')).collect();
        let defaults: Vec<&str> = cells[1].split(", ").collect();
        let whole_default = cells[1].as_str();
        let mut previous = "";
        for (index, name) in names.iter().enumerate() {
            // `rest.basic_auth.username`, `.password`: a name starting with a dot replaces the previous one's last part.
            let name = match name.strip_prefix('.') {
                Some(last) => match previous.rsplit_once('.') {
                    Some((parent, _)) => format!("{parent}.{last}"),
                    None => last.to_owned(),
                },
                None => (*name).to_owned(),
            };
            let default = if defaults.len() == names.len() {
                defaults[index]
            } else {
                whole_default
            };
            rows.push((name.clone(), default.to_owned(), cells[2].clone()));
            previous = names[index];
        }
    }
    rows
}

/// A table row's cells, split at each `|` that is not escaped as `\|`.
fn cells(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = line.trim().trim_start_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '|' => cells.push(std::mem::take(&mut cell).trim().to_owned()),
            _ => cell.push(c),
        }
    }
    if !cell.trim().is_empty() {
        cells.push(cell.trim().to_owned());
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_its_keys_with_their_defaults() {
        let sink = definitions(ConnectorType::EventbridgeSink);
        let find = |name: &str| sink.iter().find(|key| key.name == name).cloned();
        assert_eq!(find("batch.max_entries").and_then(|key| key.default), Some("10".into()));
        assert_eq!(find("batch.max_entries").map(|key| key.kind), Some("INT"));
        assert!(find("event_bus").is_some_and(|key| key.required));
        assert!(find("topics.regex").is_some());
        assert!(find("errors.deadletterqueue.topic.name").is_some());
        assert_eq!(
            find("retry.max_duration").and_then(|key| key.default),
            Some("5m".into())
        );
        for kind in ConnectorType::ALL {
            assert!(definitions(kind).len() > 5, "{kind:?}");
        }
    }
}
