//! `type: threshold-alert`: the user-facing settings under `config:`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Interpolated, InvalidSetting, WorkerConfig};
use crate::connectors::settings::{OffsetReset, Processing, TimeConfig};
use crate::json_path::JsonPath;
use crate::pattern::Pattern;
use crate::schema::{Format, FormatConfig, OutputFormat};

/// Counts records per window and group, and writes one record for each (window, group) over a threshold: the
/// detection step of the reference scenario ("a principal calling S3 more than 10 times in a minute").
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// The input topics. Key them by the group (e.g. the source's `key: $.detail.userIdentity.principalId`) so
    /// that a group's records meet in one partition, and so in one worker.
    pub(crate) topics: Vec<String>,
    /// Default: `connect-<name>`.
    #[serde(default)]
    pub(crate) group_id: Option<String>,
    /// Where a new group starts: `earliest` (default) or `latest`.
    #[serde(default)]
    pub(crate) auto_offset_reset: OffsetReset,
    /// How input values are decoded: `json` (default) or `avro`.
    #[serde(default = "default_value_format")]
    pub(crate) value: FormatConfig,
    /// An event pattern the (transformed) value must match to be counted, e.g. `{eventSource: [s3.amazonaws.com]}`.
    #[serde(default)]
    pub(crate) filter: Option<Value>,
    /// Event time: `record_timestamp` (default), or `{json_path: $.eventTime}` (RFC 3339 text or epoch
    /// milliseconds).
    #[serde(default)]
    pub(crate) event_time: TimeConfig,
    /// Window length, e.g. `1m`.
    #[serde(with = "humantime_serde")]
    pub(crate) window: Duration,
    /// For hopping windows: how far apart window starts are. Default: `window` (tumbling windows).
    #[serde(default, with = "humantime_serde")]
    pub(crate) hop: Option<Duration>,
    /// The output field names and the JSON paths that give them; a group is one combination of their values.
    pub(crate) group_by: BTreeMap<String, JsonPath>,
    pub(crate) threshold: ThresholdSetting,
    /// How long after its end a window waits for late records. Default: 0s.
    #[serde(default, with = "humantime_serde")]
    pub(crate) allowed_lateness: Duration,
    /// The watermark trails the largest event time seen by this much. Default: 0s.
    #[serde(default, with = "humantime_serde")]
    pub(crate) watermark_delay: Duration,
    /// A partition without records for this long stops holding the watermark back; when all are, the watermark
    /// follows the wall clock. Default: 30s.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub(crate) idle_timeout: Duration,
    /// What happens to a record whose windows all closed: `dlq` (default; through `errors`, which then needs a
    /// dead-letter topic and `tolerance: all`) or `drop` (counted in `ebconnect_records_skipped_total` and logged).
    #[serde(default)]
    pub(crate) late_records: LateRecords,
    /// `final` (default): one record when the window closes. `early`: also one when the threshold is first met.
    #[serde(default)]
    pub(crate) emit: Emit,
    pub(crate) output: OutputConfig,
    /// `at_least_once` (default): after a crash a closed window may be written again (with the same count).
    /// `exactly_once`: the alerts of each closing and the input offsets with it are committed in one Kafka
    /// transaction, so a `read_committed` consumer sees each window once.
    #[serde(default = "Processing::at_least_once")]
    pub(crate) processing: Processing,
    /// How often the input offsets are committed. Default: 5s.
    #[serde(default = "default_commit_interval", with = "humantime_serde")]
    pub(crate) commit_interval: Duration,
    #[serde(default, with = "crate::config::client_settings")]
    pub(crate) consumer_override: BTreeMap<String, Interpolated>,
    #[serde(default, with = "crate::config::client_settings")]
    pub(crate) producer_override: BTreeMap<String, Interpolated>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ThresholdSetting {
    pub(crate) count: u64,
    /// `>` (default) or `>=`.
    #[serde(default)]
    pub(crate) op: Comparison,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub(crate) enum Comparison {
    #[default]
    #[serde(rename = ">")]
    Greater,
    #[serde(rename = ">=")]
    AtLeast,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LateRecords {
    #[default]
    Dlq,
    Drop,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Emit {
    #[default]
    Final,
    Early,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutputConfig {
    pub(crate) topic: String,
    /// `json` (default) or `avro`, with a schema generated from `group_by` and registered under `<topic>-value`.
    #[serde(default = "default_output_format")]
    pub(crate) format: OutputFormat,
}

fn default_value_format() -> FormatConfig {
    FormatConfig::new(Format::Json)
}

fn default_output_format() -> OutputFormat {
    OutputFormat::Json
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_commit_interval() -> Duration {
    Duration::from_secs(5)
}

impl ThresholdConfig {
    pub(crate) fn group_id(&self, name: &crate::config::ConnectorName) -> String {
        self.group_id.clone().unwrap_or_else(|| format!("connect-{name}"))
    }

    pub(crate) fn hop(&self) -> Duration {
        self.hop.unwrap_or(self.window)
    }

    pub(crate) fn filter_pattern(&self) -> Result<Option<Pattern>, InvalidSetting> {
        self.filter
            .as_ref()
            .map(|filter| match filter {
                Value::String(text) => Pattern::parse(text),
                other => Pattern::from_value(other),
            })
            .transpose()
            .map_err(|error| InvalidSetting::new("config.filter", error.to_string()))
    }

    /// Rules serde cannot express. Each message names the key.
    pub(crate) fn check(&self, worker: Option<&WorkerConfig>) -> Result<(), InvalidSetting> {
        if self.topics.is_empty() {
            return Err(InvalidSetting::new("config.topics", "name at least one topic"));
        }
        self.value
            .check("config.value", worker.map(|worker| worker.schema_registry.as_ref()))?;
        if matches!(self.value.format, Format::Bytes) {
            return Err(InvalidSetting::new(
                "config.value.format",
                "`bytes` has no fields to count by; use json or avro",
            ));
        }
        self.filter_pattern()?;
        if matches!(self.event_time, TimeConfig::None) {
            return Err(InvalidSetting::new(
                "config.event_time",
                "`none` gives no time; use record_timestamp or {json_path: ...}",
            ));
        }
        if self.window < Duration::from_millis(1) {
            return Err(InvalidSetting::new("config.window", "must be at least 1ms"));
        }
        let hop = self.hop();
        if hop.is_zero() || hop > self.window || !self.window.as_millis().is_multiple_of(hop.as_millis().max(1)) {
            return Err(InvalidSetting::new(
                "config.hop",
                "must be positive, at most `window`, and divide it",
            ));
        }
        if self.group_by.is_empty() {
            return Err(InvalidSetting::new("config.group_by", "name at least one field"));
        }
        for (name, path) in &self.group_by {
            if path.is_multi() {
                return Err(InvalidSetting::new(
                    format!("config.group_by.{name}"),
                    format!("`{path}` must select one value"),
                ));
            }
            if reserved(name) {
                return Err(InvalidSetting::new(
                    format!("config.group_by.{name}"),
                    "the name is taken by an output field",
                ));
            }
        }
        if self.output.topic.is_empty() {
            return Err(InvalidSetting::new("config.output.topic", "must not be empty"));
        }
        if matches!(self.output.format, OutputFormat::Protobuf | OutputFormat::JsonSchema) {
            return Err(InvalidSetting::new(
                "config.output.format",
                "a threshold-alert writes `json`, or `avro` with the schema it generates",
            ));
        }
        if self.output.format == OutputFormat::Avro {
            if worker.is_some_and(|worker| worker.schema_registry.is_none()) {
                return Err(InvalidSetting::new(
                    "config.output.format",
                    "`avro` needs the worker file's schema_registry",
                ));
            }
            if let Some(name) = self.group_by.keys().find(|name| !is_avro_name(name)) {
                return Err(InvalidSetting::new(
                    format!("config.group_by.{name}"),
                    "an Avro field name is letters, digits and `_`, not starting with a digit",
                ));
            }
        }
        Ok(())
    }
}

fn reserved(name: &str) -> bool {
    matches!(name, "window_start" | "window_end" | "event_count" | "final")
}

fn is_avro_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
