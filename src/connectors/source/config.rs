//! `type: eventbridge-source`: the user-facing settings under `config:`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{ConnectorName, Interpolated, InvalidSetting, WorkerConfig};
use crate::json_path::JsonPath;
use crate::pattern::Pattern;
use crate::schema::{OutputFormat, OutputFormatConfig};

/// Reads events that an EventBridge rule delivers to an SQS queue and writes them to a Kafka topic.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// An existing queue that a rule on the bus targets. Exactly one of `queue_url` and `provision`.
    #[serde(default)]
    pub(crate) queue_url: Option<Interpolated>,
    /// Create the rule, the queue (with a redrive dead-letter queue), the queue policy and the target, or bring them
    /// up to date; safe to repeat.
    #[serde(default)]
    pub(crate) provision: Option<ProvisionConfig>,
    /// The Kafka topic the events are written to.
    pub(crate) topic: String,
    /// The record key: a JSON path into the event, e.g. `$.detail.userIdentity.principalId`. A string is used as it
    /// is, another value as its JSON; an event where the path selects nothing gets a null key. Default: `$.id`.
    #[serde(default = "default_key")]
    pub(crate) key: JsonPath,
    /// How the event is written as the record value: `format: json` (default), or `format: avro` with
    /// `schema_file` or `subject`, through the worker's Schema Registry.
    #[serde(default)]
    pub(crate) value: OutputFormatConfig,
    /// Envelope fields copied into record headers. Default: `[id, source, detail-type, time]`.
    #[serde(default = "default_headers")]
    pub(crate) headers: Vec<EnvelopeField>,
    /// Long-poll wait of one receive, up to 20s. Default: 20s.
    #[serde(default = "default_wait_time", with = "humantime_serde")]
    pub(crate) wait_time: Duration,
    /// Receive loops sharing the queue. More workers with the same connector also share it. Default: 1.
    #[serde(default = "default_pollers")]
    pub(crate) pollers: usize,
    /// How long a received message stays hidden from other pollers; extended while its write to Kafka is pending.
    /// Default: 30s.
    #[serde(default = "default_visibility_timeout", with = "humantime_serde")]
    pub(crate) visibility_timeout: Duration,
    /// librdkafka settings for this connector's producer, like Kafka Connect's `producer.override.*`.
    #[serde(default, with = "crate::config::client_settings")]
    pub(crate) producer_override: BTreeMap<String, Interpolated>,
}

fn default_key() -> JsonPath {
    JsonPath::root().child("id")
}

fn default_headers() -> Vec<EnvelopeField> {
    vec![
        EnvelopeField::Id,
        EnvelopeField::Source,
        EnvelopeField::DetailType,
        EnvelopeField::Time,
    ]
}

fn default_wait_time() -> Duration {
    Duration::from_secs(20)
}

fn default_pollers() -> usize {
    1
}

fn default_visibility_timeout() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub(crate) enum EnvelopeField {
    #[serde(rename = "id")]
    Id,
    #[serde(rename = "source")]
    Source,
    #[serde(rename = "detail-type")]
    DetailType,
    #[serde(rename = "time")]
    Time,
    #[serde(rename = "account")]
    Account,
    #[serde(rename = "region")]
    Region,
}

impl EnvelopeField {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Source => "source",
            Self::DetailType => "detail-type",
            Self::Time => "time",
            Self::Account => "account",
            Self::Region => "region",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProvisionConfig {
    /// The bus the rule listens on. Default: `default`.
    #[serde(default = "default_bus")]
    pub(crate) event_bus: String,
    /// Default: `ebconnect-<connector name>`.
    #[serde(default)]
    pub(crate) rule_name: Option<String>,
    /// The rule's event pattern, as a YAML map or JSON text.
    pub(crate) event_pattern: Value,
    /// Default: `ebconnect-<connector name>`; its dead-letter queue is `<queue_name>-dlq`.
    #[serde(default)]
    pub(crate) queue_name: Option<String>,
    /// Receives after which SQS moves a message to the dead-letter queue. Default: 5.
    #[serde(default = "default_max_receive_count")]
    pub(crate) max_receive_count: u32,
}

fn default_bus() -> String {
    "default".into()
}

fn default_max_receive_count() -> u32 {
    5
}

impl ProvisionConfig {
    pub(crate) fn rule_name(&self, connector: &ConnectorName) -> String {
        self.rule_name
            .clone()
            .unwrap_or_else(|| format!("ebconnect-{connector}"))
    }

    pub(crate) fn queue_name(&self, connector: &ConnectorName) -> String {
        self.queue_name
            .clone()
            .unwrap_or_else(|| format!("ebconnect-{connector}"))
    }

    /// The pattern as JSON text, checked.
    pub(crate) fn pattern_text(&self) -> Result<String, InvalidSetting> {
        let pattern = match &self.event_pattern {
            Value::String(text) => Pattern::parse(text).map(|_| text.clone()),
            other => Pattern::from_value(other).map(|_| other.to_string()),
        };
        pattern.map_err(|error| InvalidSetting::new("config.provision.event_pattern", error.to_string()))
    }
}

impl SourceConfig {
    /// Rules serde cannot express. Each message names the key.
    pub(crate) fn check(&self, worker: Option<&WorkerConfig>) -> Result<(), InvalidSetting> {
        self.value.check("config.value")?;
        if self.value.format == OutputFormat::Avro && worker.is_some_and(|worker| worker.schema_registry.is_none()) {
            return Err(InvalidSetting::new(
                "config.value.format",
                "`avro` needs the worker file's schema_registry",
            ));
        }
        match (&self.queue_url, &self.provision) {
            (None, None) => {
                return Err(InvalidSetting::new(
                    "config",
                    "one of `queue_url` and `provision` is required",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(InvalidSetting::new(
                    "config",
                    "`queue_url` and `provision` exclude each other",
                ))
            }
            (None, Some(provision)) => {
                provision.pattern_text()?;
                if provision.max_receive_count == 0 || provision.max_receive_count > 1000 {
                    return Err(InvalidSetting::new(
                        "config.provision.max_receive_count",
                        "must be 1 to 1000",
                    ));
                }
            }
            (Some(_), None) => {}
        }
        if self.wait_time > Duration::from_secs(20) {
            return Err(InvalidSetting::new("config.wait_time", "SQS long polls at most 20s"));
        }
        if !(1..=64).contains(&self.pollers) {
            return Err(InvalidSetting::new("config.pollers", "must be 1 to 64"));
        }
        if self.visibility_timeout < Duration::from_secs(2) || self.visibility_timeout > Duration::from_secs(43_200) {
            return Err(InvalidSetting::new("config.visibility_timeout", "must be 2s to 12h"));
        }
        if self.key.is_multi() {
            return Err(InvalidSetting::new(
                "config.key",
                format!("`{}` must select one value", self.key),
            ));
        }
        if self.topic.is_empty() {
            return Err(InvalidSetting::new("config.topic", "must not be empty"));
        }
        Ok(())
    }
}
