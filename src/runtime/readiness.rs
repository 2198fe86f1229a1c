//! `GET /ready`: the worker is ready when every connector is RUNNING (or PAUSED or STOPPED, as the operator asked)
//! and the services they depend on answer: Kafka (a metadata request) and, when configured, the Schema Registry.
//! In cluster mode, the config topic must be readable too, and no other running worker may use this worker's id.
//! AWS is not probed here: a connector that cannot reach it fails, and its state says so.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use schema_registry_converter::async_impl::schema_registry::{get_all_subjects, SrSettings};
use serde::Serialize;

use super::cluster::{Peers, TopicHealth};
use super::status::StatusRegistry;
use crate::config::WorkerConfig;
use crate::kafka::{client_config, ClientRole, SigningContext};

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The probes. The Kafka client is made on the first probe, so that a worker nobody asks holds no extra connection.
#[derive(Clone)]
pub(crate) struct Readiness {
    kafka_config: ClientConfig,
    kafka: Arc<OnceLock<Result<Arc<BaseConsumer<SigningContext>>, String>>>,
    registry: Option<Result<SrSettings, String>>,
    /// Cluster mode: whether the config topic can be read.
    config_topic: Option<TopicHealth>,
    /// Cluster mode: whether another worker uses this one's id.
    peers: Option<Peers>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReadinessReport {
    pub(crate) ready: bool,
    /// Why not, one line each.
    pub(crate) problems: Vec<String>,
}

impl Readiness {
    pub(crate) fn new(worker: &WorkerConfig) -> Self {
        let kafka_config = client_config(&worker.kafka, ClientRole::Consumer, &Default::default(), &[], &[]);
        let registry = worker
            .schema_registry
            .as_ref()
            .map(|registry| crate::schema::registry::settings(registry).map_err(|error| error.to_string()));
        Self {
            kafka_config,
            kafka: Arc::default(),
            registry,
            config_topic: None,
            peers: None,
        }
    }

    pub(crate) fn in_cluster(mut self, health: TopicHealth, peers: Peers) -> Self {
        self.config_topic = Some(health);
        self.peers = Some(peers);
        self
    }

    pub(crate) async fn check(&self, status: &StatusRegistry) -> ReadinessReport {
        let mut problems: Vec<String> = status
            .all()
            .into_iter()
            .filter(|(_, status)| !status.state.is_settled())
            .map(|(name, status)| format!("connector {name} is {}", status.state.as_str()))
            .collect();
        if let Some(problem) = self.config_topic.as_ref().and_then(TopicHealth::problem) {
            problems.push(problem);
        }
        if let Some(problem) = self.peers.as_ref().and_then(Peers::same_id) {
            problems.push(problem);
        }
        let kafka = self
            .kafka
            .get_or_init(|| crate::kafka::lookup_consumer(&self.kafka_config).map(Arc::new));
        match kafka {
            Ok(client) => {
                let client = client.clone();
                let answer = tokio::task::spawn_blocking(move || {
                    // The probe lives as long as the worker: polling serves the token refreshes MSK IAM asks for.
                    let _ = client.poll(Duration::ZERO);
                    client.fetch_metadata(None, PROBE_TIMEOUT)
                })
                .await;
                match answer {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => problems.push(format!("Kafka does not answer: {error}")),
                    Err(error) => problems.push(format!("the Kafka probe failed: {error}")),
                }
            }
            Err(error) => problems.push(error.clone()),
        }
        match &self.registry {
            None => {}
            Some(Err(error)) => problems.push(error.clone()),
            Some(Ok(settings)) => {
                if let Err(error) = tokio::time::timeout(PROBE_TIMEOUT, get_all_subjects(settings))
                    .await
                    .map_err(|_| "timed out".to_owned())
                    .and_then(|answer| answer.map_err(|error| error.error))
                {
                    problems.push(format!("the Schema Registry does not answer: {error}"));
                }
            }
        }
        ReadinessReport {
            ready: problems.is_empty(),
            problems,
        }
    }
}
