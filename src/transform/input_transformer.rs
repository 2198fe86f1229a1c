//! EventBridge's input transformer: `input_paths_map` names values picked from the event by JSON path, and
//! `input_template` places them.
//!
//! - A template that is not JSON (`<instance> is in state <status>`) gives a string; values are placed as text.
//! - In a JSON template, a placeholder inside a string (`"in <state>"`) is placed as text, escaped for JSON; one
//!   outside a string (`{"state": <state>}`) is placed as JSON (a string gets its quotes). A placeholder cannot be an
//!   object key.
//! - Predefined variables: `<aws.events.event>` and `<aws.events.event.json>` (the whole record value),
//!   `<aws.events.rule-name>` (the connector's name), `<aws.events.rule-arn>` (`rule_arn`, default empty), and
//!   `<aws.events.event.ingestion-time>` (the record's timestamp, RFC 3339).
//! - A path that selects nothing gives `null` outside a string and an empty text inside one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Context, TransformError};
use crate::json_path::JsonPath;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputTransformerConfig {
    /// Up to 100 names, each a JSON path into the record value (`$.detail.state`). Names may not start with `aws.`.
    #[serde(default)]
    pub(crate) input_paths_map: BTreeMap<String, JsonPath>,
    /// At most 8192 characters.
    pub(crate) input_template: String,
    /// The value of `<aws.events.rule-arn>`. Default: empty.
    #[serde(default)]
    pub(crate) rule_arn: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    /// A placeholder, and whether it stands inside a JSON string.
    Placeholder {
        name: String,
        quoted: bool,
    },
}

#[derive(Debug, Clone)]
pub struct InputTransformer {
    paths: BTreeMap<String, JsonPath>,
    pieces: Vec<Piece>,
    json: bool,
    rule_arn: String,
}

const PREDEFINED: &[&str] = &[
    "aws.events.event",
    "aws.events.event.json",
    "aws.events.rule-name",
    "aws.events.rule-arn",
    "aws.events.event.ingestion-time",
];

/// Splits a template into text and placeholders, noting for each placeholder whether it is inside a JSON string.
fn split(template: &str, known: &dyn Fn(&str) -> bool) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut in_string = false;
    let mut chars = template.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        match c {
            '\\' if in_string => {
                text.push(c);
                if let Some((_, escaped)) = chars.next() {
                    text.push(escaped);
                }
            }
            '"' => {
                in_string = !in_string;
                text.push(c);
            }
            '<' => {
                let rest = &template[index + 1..];
                match rest.find('>').map(|end| &rest[..end]) {
                    Some(name) if known(name) => {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                        pieces.push(Piece::Placeholder {
                            name: name.to_owned(),
                            quoted: in_string,
                        });
                        for _ in 0..=name.chars().count() {
                            chars.next();
                        }
                    }
                    _ => text.push(c),
                }
            }
            other => text.push(other),
        }
    }
    pieces.push(Piece::Text(text));
    pieces.retain(|piece| piece != &Piece::Text(String::new()));
    pieces
}

/// A value placed as text: strings as they are, anything else as its JSON.
fn as_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl InputTransformer {
    pub(crate) fn new(config: &InputTransformerConfig) -> Result<Self, String> {
        if config.input_paths_map.len() > 100 {
            return Err("input_paths_map: at most 100 entries".into());
        }
        if let Some(reserved) = config.input_paths_map.keys().find(|name| name.starts_with("aws.")) {
            return Err(format!(
                "input_paths_map: `{reserved}` starts with `aws.`, which is reserved"
            ));
        }
        if let Some(bad) = config.input_paths_map.values().find(|path| path.is_multi()) {
            return Err(format!(
                "input_paths_map: `{bad}` selects several values; use a path to one value"
            ));
        }
        if config.input_template.is_empty() || config.input_template.chars().count() > 8192 {
            return Err("input_template: must be 1 to 8192 characters".into());
        }
        let known = |name: &str| config.input_paths_map.contains_key(name) || PREDEFINED.contains(&name);
        let trimmed = config.input_template.trim_start();
        let json = trimmed.starts_with('{') || trimmed.starts_with('[');
        let pieces = split(&config.input_template, &known);
        let transformer = Self {
            paths: config.input_paths_map.clone(),
            pieces,
            json,
            rule_arn: config.rule_arn.clone(),
        };
        if json {
            // Filled with sample values, the template must be valid JSON, or every record would fail.
            let sample = transformer.render(&Value::Object(Default::default()), "rule", None);
            serde_json::from_str::<Value>(&sample).map_err(|error| {
                format!("input_template: not valid JSON once its placeholders are filled ({error}); a placeholder cannot be an object key")
            })?;
        }
        Ok(transformer)
    }

    fn variable(&self, name: &str, event: &Value, rule_name: &str, timestamp: Option<i64>) -> Value {
        match name {
            "aws.events.event" | "aws.events.event.json" => event.clone(),
            "aws.events.rule-name" => Value::String(rule_name.to_owned()),
            "aws.events.rule-arn" => Value::String(self.rule_arn.clone()),
            "aws.events.event.ingestion-time" => timestamp
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|time| Value::String(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
                .unwrap_or(Value::Null),
            _ => self
                .paths
                .get(name)
                .and_then(|path| path.select_one(event))
                .cloned()
                .unwrap_or(Value::Null),
        }
    }

    fn render(&self, event: &Value, rule_name: &str, timestamp: Option<i64>) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Placeholder { name, quoted } => {
                    let value = self.variable(name, event, rule_name, timestamp);
                    if !self.json {
                        out.push_str(&as_text(&value));
                    } else if *quoted {
                        let escaped = Value::String(as_text(&value)).to_string();
                        out.push_str(&escaped[1..escaped.len() - 1]);
                    } else {
                        out.push_str(&value.to_string());
                    }
                }
            }
        }
        out
    }

    /// The new record value.
    pub(crate) fn apply(&self, value: &Value, context: &Context<'_>) -> Result<Value, TransformError> {
        let rendered = self.render(value, context.connector, context.timestamp);
        if !self.json {
            return Ok(Value::String(rendered));
        }
        serde_json::from_str(&rendered).map_err(|error| TransformError {
            transform: "input_transformer",
            message: format!("the template did not give valid JSON for this record: {error}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn transformer(paths: &[(&str, &str)], template: &str) -> Result<InputTransformer, String> {
        InputTransformer::new(&InputTransformerConfig {
            input_paths_map: paths
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.parse().unwrap()))
                .collect(),
            input_template: template.to_owned(),
            rule_arn: "arn:aws:events:us-east-1:123456789012:rule/r".into(),
        })
    }

    fn apply(transformer: &InputTransformer, event: &Value) -> Value {
        let context = Context {
            connector: "audit",
            topic: "t",
            partition: 0,
            offset: 7,
            timestamp: Some(1_700_000_000_000),
        };
        transformer.apply(event, &context).unwrap()
    }

    #[test]
    fn string_templates_place_values_as_text() {
        let event = json!({"detail": {"instance": "i-1", "state": "running", "tags": {"a": 1}}});
        let t = transformer(
            &[
                ("instance", "$.detail.instance"),
                ("state", "$.detail.state"),
                ("tags", "$.detail.tags"),
            ],
            "<instance> is in state \"<state>\" with <tags>",
        )
        .unwrap();
        assert_eq!(apply(&t, &event), json!("i-1 is in state \"running\" with {\"a\":1}"));
    }

    #[test]
    fn json_templates_quote_by_position() {
        let event = json!({"detail": {"instance": "i-1", "count": 3, "who": "say \"hi\"", "tags": {"a": 1}}});
        let t = transformer(
            &[("instance", "$.detail.instance"), ("count", "$.detail.count"), ("who", "$.detail.who"), ("tags", "$.detail.tags"), ("missing", "$.detail.nope")],
            r#"{"id": <instance>, "n": <count>, "text": "<instance> has <count> (<who>)", "tags": <tags>, "gone": <missing>, "also": "[<missing>]", "rule": "<aws.events.rule-name>", "at": <aws.events.event.ingestion-time>}"#,
        )
        .unwrap();
        assert_eq!(
            apply(&t, &event),
            json!({"id": "i-1", "n": 3, "text": "i-1 has 3 (say \"hi\")", "tags": {"a": 1}, "gone": null, "also": "[]",
                   "rule": "audit", "at": "2023-11-14T22:13:20.000Z"})
        );
    }

    #[test]
    fn the_whole_event_can_be_placed() {
        let event = json!({"a": [1, 2]});
        let t = transformer(
            &[],
            r#"{"original": <aws.events.event>, "arn": "<aws.events.rule-arn>"}"#,
        )
        .unwrap();
        assert_eq!(
            apply(&t, &event),
            json!({"original": {"a": [1, 2]}, "arn": "arn:aws:events:us-east-1:123456789012:rule/r"})
        );
    }

    #[test]
    fn bad_settings_are_rejected_at_load() {
        assert!(transformer(&[("aws.mine", "$.a")], "<aws.mine>")
            .unwrap_err()
            .contains("reserved"));
        assert!(transformer(&[("k", "$.a")], r#"{<k>: 1}"#)
            .unwrap_err()
            .contains("object key"));
        assert!(transformer(&[], r#"{"a": }"#).unwrap_err().contains("not valid JSON"));
        assert!(transformer(&[("k", "$.a[*]")], "<k>")
            .unwrap_err()
            .contains("several values"));
    }
}
