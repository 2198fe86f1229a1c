//! `type: eventbridge-sink`: the user-facing settings under `config:`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConnectorName, Interpolated, InvalidSetting, StringOrMap, WorkerConfig};
use crate::connectors::settings::{OffsetReset, TimeConfig};
use crate::eventbridge::retry::RetryPolicy;
use crate::json_path::JsonPath;
use crate::schema::{Format, FormatConfig};

/// PutEvents accepts at most 10 entries per request.
pub(crate) const MAX_ENTRIES_PER_REQUEST: usize = 10;

/// Reads Kafka topics and puts every record on an EventBridge bus.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Topics to read. Exactly one of `topics` and `topics_regex` is required.
    #[serde(default)]
    pub(crate) topics: Vec<String>,
    /// A regular expression; every matching topic is read, including topics created later.
    #[serde(default)]
    pub(crate) topics_regex: Option<String>,
    /// Consumer group. Default: `connect-<name>`, as Kafka Connect names sink groups.
    #[serde(default)]
    pub(crate) group_id: Option<String>,
    /// Where a group without committed offsets starts: `earliest` (default) or `latest`.
    #[serde(default)]
    pub(crate) auto_offset_reset: OffsetReset,
    /// librdkafka settings for this connector's consumer, like Kafka Connect's `consumer.override.*`.
    #[serde(default, with = "crate::config::client_settings")]
    pub(crate) consumer_override: BTreeMap<String, Interpolated>,
    /// librdkafka settings for this connector's dead-letter producer, like `producer.override.*`.
    #[serde(default, with = "crate::config::client_settings")]
    pub(crate) producer_override: BTreeMap<String, Interpolated>,
    /// How record keys are decoded. Default: `{format: string}`.
    #[serde(default = "default_key_format")]
    pub(crate) key: FormatConfig,
    /// How record values are decoded. Default: `{format: json}`.
    #[serde(default = "default_value_format")]
    pub(crate) value: FormatConfig,
    /// The bus: a name (`default`, `audit-bus`) or an ARN (required for a bus in another account).
    pub(crate) event_bus: String,
    /// A global endpoint's id, e.g. `abcde.veo`: events then go through the endpoint.
    #[serde(default)]
    pub(crate) endpoint_id: Option<String>,
    /// The event's `source`. Default: `kafka-connect.<name>`.
    #[serde(default)]
    pub(crate) source: Option<String>,
    /// What the event's `detail` holds: `envelope` (default; the AWS connector's
    /// `{topic, partition, offset, timestamp, timestampType, headers, key, value}`) or `value` (the decoded value).
    #[serde(default)]
    pub(crate) detail: DetailShape,
    /// The event's `detail-type`. Default: `kafka-connect-${topic}`, as the AWS connector does.
    #[serde(default)]
    pub(crate) detail_type: DetailTypeConfig,
    /// The event's `resources`: ARNs, each given literally or as `{json_path: ...}` into the value.
    #[serde(default)]
    pub(crate) resources: Vec<ResourceConfig>,
    /// The event's `time`: `record_timestamp` (default), `none` (EventBridge stamps it), or
    /// `{json_path: $.eventTime}` (an RFC 3339 string in the value).
    #[serde(default)]
    pub(crate) time: TimeConfig,
    /// A Kafka header whose value becomes the event's `TraceHeader` (an X-Ray trace header).
    #[serde(default)]
    pub(crate) trace_header: Option<String>,
    #[serde(default)]
    pub(crate) batch: BatchConfig,
    #[serde(default)]
    pub(crate) request: RequestConfig,
    #[serde(default)]
    pub(crate) retry: RetryPolicy,
    /// The name of a rate limit group in the worker's `rate_limits`. Connectors naming the same group share one
    /// limiter, as they share the account's PutEvents quota. Default: no limit.
    #[serde(default)]
    pub(crate) rate_limit: Option<String>,
    /// Claim-check offloading to S3 of events too large for PutEvents, as the AWS connector offers. Default: off,
    /// and an entry over `batch.max_bytes` is a record error.
    #[serde(default)]
    pub(crate) offload: Option<OffloadConfig>,
    /// At most this many records between the consumer and settled PutEvents; the consumer pauses when full.
    /// Default: 5000, above the 3,200 entries that 320 requests of 10 carry, and about 15 MiB of records.
    #[serde(default = "default_max_buffered_records")]
    pub(crate) max_buffered_records: usize,
    /// How often settled offsets are committed. Default: 5s.
    #[serde(default = "default_commit_interval", with = "humantime_serde")]
    pub(crate) commit_interval: Duration,
}

fn default_key_format() -> FormatConfig {
    FormatConfig::new(Format::String)
}

fn default_value_format() -> FormatConfig {
    FormatConfig::new(Format::Json)
}

fn default_max_buffered_records() -> usize {
    5_000
}

fn default_commit_interval() -> Duration {
    Duration::from_secs(5)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DetailShape {
    #[default]
    Envelope,
    Value,
}

/// `detail_type: "text with ${topic}"`, or rules tried in order: `json_path`, then `by_topic`, then `default`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DetailTypeConfig {
    /// A string in the value, e.g. `$.eventName`.
    pub(crate) json_path: Option<JsonPath>,
    /// A fixed detail-type per topic.
    pub(crate) by_topic: BTreeMap<String, String>,
    /// A template; `${topic}` is replaced by the record's topic.
    pub(crate) default: String,
}

impl Default for DetailTypeConfig {
    fn default() -> Self {
        Self {
            json_path: None,
            by_topic: BTreeMap::new(),
            default: "kafka-connect-${topic}".to_owned(),
        }
    }
}

impl<'de> Deserialize<'de> for DetailTypeConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Rules {
            #[serde(default)]
            json_path: Option<JsonPath>,
            #[serde(default)]
            by_topic: BTreeMap<String, String>,
            #[serde(default)]
            default: Option<String>,
        }
        Ok(match StringOrMap::<Rules>::deserialize(deserializer)? {
            StringOrMap::String(template) => Self {
                default: template,
                ..Self::default()
            },
            StringOrMap::Map(rules) => Self {
                json_path: rules.json_path,
                by_topic: rules.by_topic,
                default: rules.default.unwrap_or_else(|| Self::default().default),
            },
        })
    }
}

/// An ARN given literally, or a path into the value (a `[*]` path may give several).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum ResourceConfig {
    Literal(String),
    Path { json_path: JsonPath },
}

impl<'de> Deserialize<'de> for ResourceConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Path {
            json_path: JsonPath,
        }
        Ok(match StringOrMap::<Path>::deserialize(deserializer)? {
            StringOrMap::String(text) => Self::Literal(text),
            StringOrMap::Map(Path { json_path }) => Self::Path { json_path },
        })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OffloadConfig {
    /// The bucket offloaded parts are written to (the credentials need `s3:PutObject`). Setting it turns offloading on.
    pub(crate) s3_bucket: String,
    /// Prepended to each object's key, a random UUID. Default: none.
    #[serde(default)]
    pub(crate) s3_prefix: String,
    /// The part of the event to offload: a path into the event that starts with `$.detail.` and ends in a field
    /// name. Default: `$.detail.value` (the record value in the envelope); required with `detail: value`.
    #[serde(default)]
    pub(crate) json_path: Option<JsonPath>,
    /// Offload the part of every event, not only of events over `batch.max_bytes`. Default: false.
    #[serde(default)]
    pub(crate) always: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchConfig {
    /// Entries per PutEvents request, 1 to 10. Default: 10.
    #[serde(default = "default_max_entries")]
    pub(crate) max_entries: usize,
    /// Size limit of one request, counted the way EventBridge counts entry sizes. Default: 262144 (256 KiB);
    /// EventBridge accepts up to 1048576 since January 2026.
    #[serde(default = "default_max_bytes")]
    pub(crate) max_bytes: usize,
    /// How long a partly filled batch waits for more records. Default: 20ms.
    #[serde(default = "default_linger", with = "humantime_serde")]
    pub(crate) linger: Duration,
}

fn default_max_entries() -> usize {
    MAX_ENTRIES_PER_REQUEST
}

fn default_max_bytes() -> usize {
    256 * 1024
}

fn default_linger() -> Duration {
    Duration::from_millis(20)
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_entries: default_max_entries(),
            max_bytes: default_max_bytes(),
            linger: default_linger(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestConfig {
    /// PutEvents requests in flight at once, at most. Default: 320. A PutEvents call takes tens of milliseconds, so
    /// this bounds throughput at about `max_in_flight * 10 / latency` entries per second (320 at 30 ms: ~100,000/s,
    /// the largest regional quota).
    #[serde(default = "default_max_in_flight")]
    pub(crate) max_in_flight: usize,
    /// Adaptive concurrency: the requests in flight grow while EventBridge answers unthrottled at a steady latency,
    /// and shrink on a throttle or a rise in latency, up to `max_in_flight`; workers sharing a quota settle near it
    /// together. `false`: always `max_in_flight`. Default: true.
    #[serde(default = "default_adaptive")]
    pub(crate) adaptive: bool,
    /// Where adaptive concurrency starts, in requests in flight; it doubles each round trip from there until the
    /// first throttle or rise in latency. Default: 32 (the fixed limit of earlier versions), or `max_in_flight` if
    /// lower. From 1, reaching 320 takes nine round trips after every start (a quarter of a second at 30 ms), while
    /// a start that overshoots a busy quota costs one throttled round trip, after which the limit falls to what got
    /// through.
    #[serde(default)]
    pub(crate) initial_in_flight: Option<usize>,
    /// Time limit of one PutEvents call; a call that takes longer is retried. Default: 10s.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub(crate) timeout: Duration,
}

fn default_max_in_flight() -> usize {
    320
}

fn default_adaptive() -> bool {
    true
}

const DEFAULT_INITIAL_IN_FLIGHT: usize = 32;

impl RequestConfig {
    /// The requests in flight adaptive concurrency starts at.
    pub(crate) fn initial_in_flight(&self) -> usize {
        self.initial_in_flight
            .unwrap_or(DEFAULT_INITIAL_IN_FLIGHT.min(self.max_in_flight))
    }

    fn check(&self) -> Result<(), InvalidSetting> {
        if self.max_in_flight == 0 {
            return Err(InvalidSetting::new(
                "config.request.max_in_flight",
                "must be at least 1",
            ));
        }
        let refused = |problem: String| Err(InvalidSetting::new("config.request.initial_in_flight", problem));
        match self.initial_in_flight {
            Some(_) if !self.adaptive => {
                refused("applies only to adaptive concurrency, and `request.adaptive` is false".into())
            }
            Some(0) => refused("must be at least 1".into()),
            Some(initial) if initial > self.max_in_flight => refused(format!(
                "{initial} is more than `request.max_in_flight` ({})",
                self.max_in_flight
            )),
            _ => Ok(()),
        }
    }
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Default for RequestConfig {
    fn default() -> Self {
        Self {
            max_in_flight: default_max_in_flight(),
            adaptive: default_adaptive(),
            initial_in_flight: None,
            timeout: default_request_timeout(),
        }
    }
}

impl SinkConfig {
    /// Rules serde cannot express. Each message names the key.
    pub(crate) fn check(&self, worker: Option<&WorkerConfig>) -> Result<(), InvalidSetting> {
        match (self.topics.is_empty(), &self.topics_regex) {
            (true, None) => {
                return Err(InvalidSetting::new(
                    "config",
                    "one of `topics` and `topics_regex` is required",
                ))
            }
            (false, Some(_)) => {
                return Err(InvalidSetting::new(
                    "config",
                    "`topics` and `topics_regex` exclude each other; give one",
                ))
            }
            (true, Some(pattern)) => {
                regex::Regex::new(pattern)
                    .map_err(|error| InvalidSetting::new("config.topics_regex", error.to_string()))?;
            }
            (false, None) => {}
        }
        if !(1..=MAX_ENTRIES_PER_REQUEST).contains(&self.batch.max_entries) {
            return Err(InvalidSetting::new(
                "config.batch.max_entries",
                format!(
                    "{} is outside 1..={MAX_ENTRIES_PER_REQUEST}, PutEvents' limit",
                    self.batch.max_entries
                ),
            ));
        }
        if !(1024..=1024 * 1024).contains(&self.batch.max_bytes) {
            return Err(InvalidSetting::new(
                "config.batch.max_bytes",
                format!(
                    "{} is outside 1024..=1048576 (EventBridge's request limit is 1 MiB)",
                    self.batch.max_bytes
                ),
            ));
        }
        self.request.check()?;
        if self.max_buffered_records < self.batch.max_entries {
            return Err(InvalidSetting::new(
                "config.max_buffered_records",
                format!(
                    "{} is less than one batch ({})",
                    self.max_buffered_records, self.batch.max_entries
                ),
            ));
        }
        let registry = worker.map(|worker| worker.schema_registry.as_ref());
        self.key.check("config.key", registry)?;
        self.value.check("config.value", registry)?;
        if let (Some(group), Some(worker)) = (&self.rate_limit, worker) {
            if !worker.rate_limits.contains_key(group) {
                return Err(InvalidSetting::new(
                    "config.rate_limit",
                    format!(
                        "no group `{group}` in the worker's rate_limits (has: {})",
                        worker.rate_limits.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        self.offload_path()?;
        if self.retry.max_attempts == 0 {
            return Err(InvalidSetting::new(
                "config.retry.max_attempts",
                "must be at least 1 (the first send counts)",
            ));
        }
        if self.event_bus.is_empty() {
            return Err(InvalidSetting::new("config.event_bus", "must not be empty"));
        }
        Ok(())
    }

    /// The offload path in effect, if offloading is on.
    pub(crate) fn offload_path(&self) -> Result<Option<JsonPath>, InvalidSetting> {
        let Some(offload) = &self.offload else {
            return Ok(None);
        };
        let path = match (&offload.json_path, self.detail) {
            (Some(path), _) => path.clone(),
            (None, DetailShape::Envelope) => "$.detail.value"
                .parse()
                .map_err(|error| InvalidSetting::new("config.offload.json_path", format!("{error}")))?,
            (None, DetailShape::Value) => {
                return Err(InvalidSetting::new(
                    "config.offload.json_path",
                    "required with `detail: value` (e.g. `$.detail.payload`)",
                ))
            }
        };
        let usable = !path.is_multi()
            && path
                .strip_field("detail")
                .and_then(|within| within.split_last_field().map(|_| ()))
                .is_some();
        if !usable {
            return Err(InvalidSetting::new(
                "config.offload.json_path",
                format!("`{path}` must start with `$.detail.`, end in a field name, and have no `[*]`"),
            ));
        }
        Ok(Some(path))
    }

    pub(crate) fn group_id(&self, name: &ConnectorName) -> String {
        self.group_id.clone().unwrap_or_else(|| format!("connect-{name}"))
    }

    pub(crate) fn source(&self, name: &ConnectorName) -> String {
        self.source.clone().unwrap_or_else(|| format!("kafka-connect.{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(extra: &str) -> SinkConfig {
        serde_norway::from_str(&format!("topics: [t]\nevent_bus: bus\n{extra}")).unwrap()
    }

    /// A refusal is a value naming the key, so that a caller (the REST API's validate) need not read it from text.
    #[test]
    fn a_refused_setting_names_its_key() {
        let refused = sink("batch: {max_entries: 11}").check(None).unwrap_err();
        assert_eq!(refused.key, "config.batch.max_entries");
        assert_eq!(refused.problem, "11 is outside 1..=10, PutEvents' limit");
        assert_eq!(
            refused.to_string(),
            "config.batch.max_entries: 11 is outside 1..=10, PutEvents' limit"
        );
        let refused = sink("detail: value\noffload: {s3_bucket: b}").check(None).unwrap_err();
        assert_eq!(refused.key, "config.offload.json_path");
        assert!(sink("").check(None).is_ok());
    }

    #[test]
    fn adaptive_concurrency_starts_at_32_or_max_in_flight_and_a_start_it_cannot_use_is_refused() {
        assert_eq!(sink("").request.initial_in_flight(), 32);
        assert_eq!(sink("request: {max_in_flight: 8}").request.initial_in_flight(), 8);
        let given = sink("request: {initial_in_flight: 300}");
        assert!(given.check(None).is_ok());
        assert_eq!(given.request.initial_in_flight(), 300);
        for (extra, problem) in [
            (
                "request: {initial_in_flight: 400}",
                "400 is more than `request.max_in_flight` (320)",
            ),
            ("request: {initial_in_flight: 0}", "must be at least 1"),
            (
                "request: {initial_in_flight: 4, adaptive: false}",
                "applies only to adaptive concurrency, and `request.adaptive` is false",
            ),
        ] {
            let refused = sink(extra).check(None).unwrap_err();
            assert_eq!(
                (refused.key.as_str(), refused.problem.as_str()),
                ("config.request.initial_in_flight", problem),
                "{extra}"
            );
        }
    }
}
