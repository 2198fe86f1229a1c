//! What the config topic holds, one record per key so that compaction keeps the latest of each: a connector's
//! document (`connector-<name>`), its target state (`target-state-<name>`, Kafka Connect's key), and a restart
//! request (`restart-<name>`). A null value deletes the key: a connector deleted, a target state or restart request
//! forgotten (a deleted connector's keys all get one, so that compaction keeps nothing of it).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::connector_state::Target;

const CONNECTOR: &str = "connector-";
const TARGET: &str = "target-state-";
const RESTART: &str = "restart-";

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ConfigRecord {
    /// The document as written (nested or Kafka Connect's flat form), placeholders unresolved; `None`: deleted.
    Connector {
        name: String,
        document: Option<Value>,
    },
    Target {
        name: String,
        target: Option<Target>,
    },
    /// Restart the connector on every worker; `by` names the worker that asked, which restarted it already.
    /// `None`: the request forgotten, with its connector.
    Restart {
        name: String,
        by: Option<String>,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectorValue {
    document: Value,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetValue {
    state: Target,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartValue {
    requested_by: String,
}

impl ConfigRecord {
    pub(crate) fn key(&self) -> String {
        match self {
            Self::Connector { name, .. } => format!("{CONNECTOR}{name}"),
            Self::Target { name, .. } => format!("{TARGET}{name}"),
            Self::Restart { name, .. } => format!("{RESTART}{name}"),
        }
    }

    /// The record's value; `None` for a tombstone.
    pub(crate) fn value(&self) -> Option<String> {
        let value = match self {
            Self::Connector { document, .. } => serde_json::to_value(ConnectorValue {
                document: document.clone()?,
            }),
            Self::Target { target, .. } => serde_json::to_value(TargetValue { state: (*target)? }),
            Self::Restart { by, .. } => serde_json::to_value(RestartValue {
                requested_by: by.clone()?,
            }),
        };
        value.ok().map(|value| value.to_string())
    }

    /// Reads a record of the config topic; the error names what is wrong with it.
    pub(crate) fn parse(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Self, String> {
        let key = key.ok_or("the record has no key")?;
        let key = std::str::from_utf8(key).map_err(|_| "the key is not UTF-8".to_owned())?;
        let json = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).map_err(|error| format!("{key}: {error}"));
        if let Some(name) = key.strip_prefix(CONNECTOR) {
            let document = match value {
                None => None,
                Some(bytes) => Some(
                    serde_json::from_value::<ConnectorValue>(json(bytes)?)
                        .map_err(|error| format!("{key}: {error}"))?
                        .document,
                ),
            };
            return Ok(Self::Connector {
                name: name.to_owned(),
                document,
            });
        }
        if let Some(name) = key.strip_prefix(TARGET) {
            let target = match value {
                None => None,
                Some(bytes) => Some(
                    serde_json::from_value::<TargetValue>(json(bytes)?)
                        .map_err(|error| format!("{key}: {error}"))?
                        .state,
                ),
            };
            return Ok(Self::Target {
                name: name.to_owned(),
                target,
            });
        }
        if let Some(name) = key.strip_prefix(RESTART) {
            let by = match value {
                None => None,
                Some(bytes) => {
                    let restart: RestartValue =
                        serde_json::from_value(json(bytes)?).map_err(|error| format!("{key}: {error}"))?;
                    Some(restart.requested_by)
                }
            };
            return Ok(Self::Restart {
                name: name.to_owned(),
                by,
            });
        }
        Err(format!(
            "unknown key `{key}`: expected `{CONNECTOR}<name>`, `{TARGET}<name>` or `{RESTART}<name>`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(record: ConfigRecord) {
        let value = record.value();
        let parsed = ConfigRecord::parse(Some(record.key().as_bytes()), value.as_deref().map(str::as_bytes));
        assert_eq!(parsed, Ok(record));
    }

    #[test]
    fn every_record_reads_back_as_written() {
        round_trip(ConfigRecord::Connector {
            name: "to-bus".into(),
            document: Some(json!({"name": "to-bus", "type": "eventbridge-sink"})),
        });
        round_trip(ConfigRecord::Connector {
            name: "to-bus".into(),
            document: None,
        });
        round_trip(ConfigRecord::Target {
            name: "a-b".into(),
            target: Some(Target::Paused),
        });
        round_trip(ConfigRecord::Target {
            name: "a".into(),
            target: None,
        });
        round_trip(ConfigRecord::Restart {
            name: "a".into(),
            by: Some("w1".into()),
        });
        round_trip(ConfigRecord::Restart {
            name: "a".into(),
            by: None,
        });
    }

    #[test]
    fn a_bad_record_is_named() {
        let error = ConfigRecord::parse(Some(b"task-x-0"), Some(b"{}")).unwrap_err();
        assert!(error.contains("unknown key `task-x-0`"), "{error}");
        let error = ConfigRecord::parse(Some(b"target-state-x"), Some(br#"{"state": "SLEEPING"}"#)).unwrap_err();
        assert!(
            error.starts_with("target-state-x: unknown variant `SLEEPING`"),
            "{error}"
        );
        let error = ConfigRecord::parse(None, Some(b"{}")).unwrap_err();
        assert_eq!(error, "the record has no key");
    }
}
