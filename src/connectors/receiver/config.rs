//! `type: rest-produce-receiver`: the user-facing settings under `config:`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Interpolated, InvalidSetting, Secret};

/// An HTTP endpoint speaking the Confluent REST Produce API v3, for EventBridge API destinations and other HTTP
/// producers. Each request is answered only after Kafka acknowledged its records.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// The address the endpoint listens on, e.g. `0.0.0.0:8082`. An address other than loopback needs `auth`.
    pub(crate) listen: SocketAddr,
    /// The cluster id in request paths (`/kafka/v3/clusters/{cluster_id}/...`) and in responses; a request for
    /// another id gets 404. Default: `ebconnect`.
    #[serde(default = "default_cluster_id")]
    pub(crate) cluster_id: String,
    /// The topics the endpoint writes to. A request for any other topic gets 404 (error code 40403).
    pub(crate) topics: Vec<String>,
    /// Basic auth credentials, as an API destination's connection sends them. Compared in constant time.
    #[serde(default)]
    pub(crate) auth: Option<ReceiverAuth>,
    /// The largest record accepted, measured as its JSON in the request; larger gets 413. Default: 1048576.
    #[serde(default = "default_max_record_bytes")]
    pub(crate) max_record_bytes: usize,
    /// The largest `records:batch` request body; larger gets 413. Default: 16777216.
    #[serde(default = "default_max_batch_bytes")]
    pub(crate) max_batch_bytes: usize,
    /// The most entries in one `records:batch`; more gets 413. Default: 10000.
    #[serde(default = "default_max_batch_entries")]
    pub(crate) max_batch_entries: usize,
    /// Records being written at once, over all requests. A single record beyond that gets 429 so that the caller
    /// retries; the entries of a batch wait for room. Default: 10000.
    #[serde(default = "default_max_in_flight")]
    pub(crate) max_in_flight: usize,
    /// Bytes of request bodies held at once, over all requests: a batch's whole body, or what a single-record or
    /// streaming request may buffer (its length, or at most `max_record_bytes`). A request that does not fit gets
    /// 503 with `Retry-After`. Default: 67108864 (64 MiB).
    #[serde(default = "default_max_buffered_bytes")]
    pub(crate) max_buffered_bytes: usize,
    /// Connections open at once; further ones wait to be accepted. Default: 1024.
    #[serde(default = "default_max_connections")]
    pub(crate) max_connections: usize,
    /// The time a client has to send a request's headers; a slower one is disconnected. Default: 10s.
    #[serde(default = "default_header_timeout", with = "humantime_serde")]
    pub(crate) header_timeout: Duration,
    /// The longest pause while a body is sent; a request whose body stalls that long is ended with 400.
    /// Default: 30s.
    #[serde(default = "default_body_timeout", with = "humantime_serde")]
    pub(crate) body_timeout: Duration,
    /// How long a record may wait for Kafka's acknowledgement (librdkafka's `message.timeout.ms`); one that
    /// times out gets 503. Default: 30s.
    #[serde(default = "default_produce_timeout", with = "humantime_serde")]
    pub(crate) produce_timeout: Duration,
    /// librdkafka settings for this connector's producer, like Kafka Connect's `producer.override.*`.
    #[serde(default, with = "crate::config::client_settings")]
    pub(crate) producer_override: BTreeMap<String, Interpolated>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReceiverAuth {
    pub(crate) api_key: Interpolated,
    pub(crate) api_secret: Secret,
}

fn default_cluster_id() -> String {
    "ebconnect".into()
}

fn default_max_record_bytes() -> usize {
    1 << 20
}

fn default_max_batch_bytes() -> usize {
    16 << 20
}

fn default_max_in_flight() -> usize {
    10_000
}

fn default_max_batch_entries() -> usize {
    10_000
}

fn default_max_buffered_bytes() -> usize {
    64 << 20
}

fn default_max_connections() -> usize {
    1024
}

fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_body_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_produce_timeout() -> Duration {
    Duration::from_secs(30)
}

impl ReceiverConfig {
    /// Rules serde cannot express. Each message names the key.
    pub(crate) fn check(&self) -> Result<(), InvalidSetting> {
        if self.topics.is_empty() {
            return Err(InvalidSetting::new("config.topics", "name at least one topic"));
        }
        if let Some(empty) = self.topics.iter().position(String::is_empty) {
            return Err(InvalidSetting::new(
                format!("config.topics[{empty}]"),
                "must not be empty",
            ));
        }
        if self.cluster_id.is_empty() || self.cluster_id.contains('/') {
            return Err(InvalidSetting::new(
                "config.cluster_id",
                "must be non-empty and hold no `/`",
            ));
        }
        if self.auth.is_none() && !self.listen.ip().is_loopback() {
            return Err(InvalidSetting::new(
                "config.auth",
                format!(
                    "required when listening on {}, or anyone who reaches the port can write to the topics",
                    self.listen
                ),
            ));
        }
        if let Some(auth) = &self.auth {
            if auth.api_key.value().is_empty() || auth.api_secret.expose().is_empty() {
                return Err(InvalidSetting::new(
                    "config.auth",
                    "api_key and api_secret must not be empty",
                ));
            }
        }
        if self.max_buffered_bytes < self.max_batch_bytes || self.max_buffered_bytes > u32::MAX as usize {
            return Err(InvalidSetting::new(
                "config.max_buffered_bytes",
                "must be at least max_batch_bytes, and at most 4294967295",
            ));
        }
        if self.max_connections == 0 || self.max_batch_entries == 0 {
            return Err(InvalidSetting::new(
                "config.max_connections and max_batch_entries",
                "must be at least 1",
            ));
        }
        if self.header_timeout.is_zero() || self.body_timeout.is_zero() {
            return Err(InvalidSetting::new(
                "config.header_timeout and body_timeout",
                "must be longer than 0s",
            ));
        }
        if self.max_record_bytes == 0 || self.max_batch_bytes < self.max_record_bytes {
            return Err(InvalidSetting::new(
                "config.max_batch_bytes",
                "must be at least max_record_bytes, which must be positive",
            ));
        }
        if self.max_in_flight == 0 {
            return Err(InvalidSetting::new("config.max_in_flight", "must be positive"));
        }
        if self.produce_timeout < Duration::from_secs(1) {
            return Err(InvalidSetting::new("config.produce_timeout", "must be at least 1s"));
        }
        Ok(())
    }
}
