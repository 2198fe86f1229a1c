//! `type: topic-processor`: the user-facing settings under `config:`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConnectorName, Interpolated, InvalidSetting, WorkerConfig};
use crate::connectors::settings::{OffsetReset, Processing};
use crate::schema::{Format, FormatConfig, OutputFormat, OutputFormatConfig};

/// Kafka topics through the connector's transforms (mask, filter, dedupe, ...) to one output topic, keeping each
/// record's key, headers and timestamp: the reference's Topic Actions ("Mask fields", "Deduplicate topic").
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorConfig {
    /// The input topics. With `dedupe`, key them by the dedupe key so that duplicates meet in one partition, and
    /// so in one worker.
    pub(crate) topics: Vec<String>,
    /// Default: `connect-<name>`.
    #[serde(default)]
    pub(crate) group_id: Option<String>,
    /// Where a new group starts: `earliest` (default) or `latest`.
    #[serde(default)]
    pub(crate) auto_offset_reset: OffsetReset,
    /// How input values are decoded for the transforms: `json` (default), `avro`, `protobuf`, `json_schema`,
    /// `glue` or `string`.
    #[serde(default = "default_value_format")]
    pub(crate) value: FormatConfig,
    pub(crate) output: ProcessorOutput,
    /// `exactly_once` (default): output records and input offsets are committed in one Kafka transaction, and a
    /// `read_committed` consumer of the output sees each input record's result once, across crashes and
    /// rebalances. `at_least_once`: an idempotent producer, offsets committed after the output is acknowledged.
    #[serde(default = "Processing::exactly_once")]
    pub(crate) processing: Processing,
    /// How often a transaction is committed (or, at least once, offsets are): the output's latency for a
    /// `read_committed` consumer. Default: 100ms.
    #[serde(default = "default_commit_interval", with = "humantime_serde")]
    pub(crate) commit_interval: Duration,
    #[serde(default, with = "crate::config::client_settings")]
    pub(crate) consumer_override: BTreeMap<String, Interpolated>,
    #[serde(default, with = "crate::config::client_settings")]
    pub(crate) producer_override: BTreeMap<String, Interpolated>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProcessorOutput {
    pub(crate) topic: String,
    /// How values are written: `format: json` (default), or `avro`, `protobuf` or `json_schema` with `schema_file`
    /// or `subject`, through the worker's Schema Registry.
    #[serde(default)]
    pub(crate) value: OutputFormatConfig,
}

fn default_value_format() -> FormatConfig {
    FormatConfig::new(Format::Json)
}

fn default_commit_interval() -> Duration {
    Duration::from_millis(100)
}

impl ProcessorConfig {
    pub(crate) fn group_id(&self, name: &ConnectorName) -> String {
        self.group_id.clone().unwrap_or_else(|| format!("connect-{name}"))
    }

    /// Rules serde cannot express. Each message names the key.
    pub(crate) fn check(&self, worker: Option<&WorkerConfig>) -> Result<(), InvalidSetting> {
        if self.topics.is_empty() {
            return Err(InvalidSetting::new("config.topics", "name at least one topic"));
        }
        if self.topics.contains(&self.output.topic) {
            return Err(InvalidSetting::new(
                "config.output.topic",
                format!(
                    "`{}` is also an input topic: the processor would read its own output",
                    self.output.topic
                ),
            ));
        }
        if self.output.topic.is_empty() {
            return Err(InvalidSetting::new("config.output.topic", "must not be empty"));
        }
        let registry = worker.map(|worker| worker.schema_registry.as_ref());
        self.value.check("config.value", registry)?;
        if matches!(self.value.format, Format::Bytes) {
            return Err(InvalidSetting::new(
                "config.value.format",
                "`bytes` has no fields to transform; use json, string or a Schema Registry format",
            ));
        }
        self.output.value.check("config.output.value")?;
        if self.output.value.format != OutputFormat::Json && registry.is_some_and(|registry| registry.is_none()) {
            return Err(InvalidSetting::new(
                "config.output.value.format",
                format!(
                    "`{:?}` needs the worker file's schema_registry",
                    self.output.value.format
                ),
            ));
        }
        if self.commit_interval < Duration::from_millis(10) {
            return Err(InvalidSetting::new("config.commit_interval", "must be at least 10ms"));
        }
        Ok(())
    }
}
