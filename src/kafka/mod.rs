//! Kafka clients built from the worker configuration, in one place, so that security settings and
//! `consumer`/`producer` overrides apply the same way to every connector.

mod active_topics;
mod client_errors;
pub mod committed;
pub mod consumer;
pub mod offsets;

use std::collections::BTreeMap;

use rdkafka::ClientConfig;

pub use active_topics::ActiveTopics;
pub use client_errors::{FatalClientError, ProducerErrors};

use crate::config::{Interpolated, KafkaConfig};

/// Which kind of client, and so which worker-level override map applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRole {
    Consumer,
    Producer,
}

/// Settings for a client, in the order they apply: `defaults` (the connector's choice where librdkafka's default
/// does not fit, e.g. a smaller prefetch), connection and security from the worker, the worker's override map for the
/// role, the connector's own overrides (like `consumer.override.*`), then `fixed`, the settings the connector's
/// correctness depends on (e.g. `enable.auto.offset.store=false`), which nothing overrides.
pub fn client_config(
    kafka: &KafkaConfig,
    role: ClientRole,
    connector_overrides: &BTreeMap<String, Interpolated>,
    defaults: &[(&str, &str)],
    fixed: &[(&str, &str)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    config.set("bootstrap.servers", kafka.bootstrap_servers.value());
    config.set("security.protocol", kafka.security_protocol.as_librdkafka());
    if let Some(sasl) = &kafka.sasl {
        config.set("sasl.mechanism", sasl.mechanism.as_librdkafka());
        config.set("sasl.username", sasl.username.value());
        config.set("sasl.password", sasl.password.expose());
    }
    if let Some(tls) = &kafka.tls {
        if let Some(ca) = &tls.ca_location {
            config.set("ssl.ca.location", ca.value());
        }
        if let Some(certificate) = &tls.certificate_location {
            config.set("ssl.certificate.location", certificate.value());
        }
        if let Some(key) = &tls.key_location {
            config.set("ssl.key.location", key.value());
        }
        if let Some(password) = &tls.key_password {
            config.set("ssl.key.password", password.expose());
        }
        let identification = if tls.verify_hostname { "https" } else { "none" };
        config.set("ssl.endpoint.identification.algorithm", identification);
    }
    let worker_overrides = match role {
        ClientRole::Consumer => &kafka.consumer,
        ClientRole::Producer => &kafka.producer,
    };
    for (key, value) in worker_overrides.iter().chain(connector_overrides) {
        config.set(key, value.value());
    }
    for (key, value) in fixed {
        config.set(*key, *value);
    }
    config
}

/// The cluster's id, as Kafka Connect's `GET /` shows it. Blocking: asks the cluster.
pub fn cluster_id(kafka: &KafkaConfig) -> Result<String, String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = client_config(kafka, ClientRole::Consumer, &BTreeMap::new(), &[], &[])
        .create()
        .map_err(|error| format!("cannot create a Kafka client: {error}"))?;
    consumer
        .client()
        .fetch_cluster_id(std::time::Duration::from_secs(10))
        .ok_or_else(|| "Kafka did not give its cluster id".to_owned())
}
