//! Kafka clients built from the worker configuration, in one place, so that security settings and
//! `consumer`/`producer` overrides apply the same way to every connector.

mod active_topics;
mod client_errors;
pub mod committed;
pub mod consumer;
pub mod msk_iam;
pub mod offsets;
pub mod peek;

use std::collections::BTreeMap;

use rdkafka::admin::AdminClient;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

pub use active_topics::ActiveTopics;
pub use client_errors::{FatalClientError, ProducerErrors};
pub use msk_iam::SigningContext;

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
pub(crate) fn client_config(
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
        if let Some(username) = &sasl.username {
            config.set("sasl.username", username.value());
        }
        if let Some(password) = &sasl.password {
            config.set("sasl.password", password.expose());
        }
        if let Some(oauth) = &sasl.oauth {
            config.set("sasl.oauthbearer.method", "oidc");
            config.set("sasl.oauthbearer.token.endpoint.url", oauth.token_endpoint_url.value());
            config.set("sasl.oauthbearer.client.id", oauth.client_id.value());
            config.set("sasl.oauthbearer.client.secret", oauth.client_secret.expose());
            if let Some(scope) = &oauth.scope {
                config.set("sasl.oauthbearer.scope", scope.value());
            }
            if !oauth.extensions.is_empty() {
                let extensions: Vec<String> = oauth
                    .extensions
                    .iter()
                    .map(|(name, value)| format!("{name}={}", value.value()))
                    .collect();
                config.set("sasl.oauthbearer.extensions", extensions.join(","));
            }
        }
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

/// `config` for a connector's consumer, made a static member of its group when the worker is (cluster mode): a
/// restarted worker then gets its partitions back without a rebalance, if it is back within the session timeout.
pub(crate) fn group_member(mut config: ClientConfig, worker: &crate::config::WorkerConfig) -> ClientConfig {
    if let Some(id) = worker.static_member_id() {
        config.set("group.instance.id", id);
    }
    config
}

/// An admin client, its first token set when the cluster takes MSK IAM (nobody polls an admin client's main queue).
pub(crate) fn admin_client(config: &ClientConfig) -> Result<AdminClient<SigningContext>, String> {
    let admin: AdminClient<SigningContext> = config
        .create_with_context(SigningContext)
        .map_err(|error| format!("cannot create a Kafka admin client: {error}"))?;
    msk_iam::prime(admin.inner())?;
    Ok(admin)
}

/// A consumer for lookups (metadata, committed offsets) rather than reading, its first token set likewise.
pub(crate) fn lookup_consumer(config: &ClientConfig) -> Result<BaseConsumer<SigningContext>, String> {
    let consumer: BaseConsumer<SigningContext> = config
        .create_with_context(SigningContext)
        .map_err(|error| format!("cannot create a Kafka client: {error}"))?;
    msk_iam::prime(consumer.client())?;
    Ok(consumer)
}

/// The cluster's id, as Kafka Connect's `GET /` shows it. Blocking: asks the cluster.
pub(crate) fn cluster_id(kafka: &KafkaConfig) -> Result<String, String> {
    let consumer = lookup_consumer(&client_config(kafka, ClientRole::Consumer, &BTreeMap::new(), &[], &[]))?;
    consumer
        .client()
        .fetch_cluster_id(std::time::Duration::from_secs(10))
        .ok_or_else(|| "Kafka did not give its cluster id".to_owned())
}

/// Runs a blocking client call (a transaction's round trips, a metadata request) without stalling the other tasks
/// of a multi-threaded runtime.
pub(crate) fn blocking<T>(call: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(call),
        _ => call(),
    }
}
