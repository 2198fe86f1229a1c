//! Cluster mode (`cluster:` in the worker file), as Kafka Connect's distributed mode: the connectors and their
//! target states live in a compacted config topic that every worker of the cluster reads in one order and applies;
//! each worker's connector states go to a compacted status topic that every worker reads, so that any worker
//! answers for all. Kafka is the only coordination: no leader, no election. Which worker does which part of a
//! connector's work is left to what shares it already: a consumer group (sink, threshold-alert, topic-processor),
//! SQS (a source's pollers run on every worker), a load balancer (a receiver listens on every worker).

mod config_log;
mod peers;
mod records;
mod topics;

use std::time::Duration;

use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::config_log::ConfigLog;
pub(crate) use self::config_log::{ConfigUpdate, Snapshot, TopicHealth};
pub(crate) use self::peers::{Instance, Peers, Reported};
pub(crate) use self::records::ConfigRecord;
use self::topics::StateTopic;
use super::status::StatusRegistry;
use crate::config::{ClusterConfig, WorkerConfig};
use crate::kafka::{admin_client, client_config, lookup_consumer, ClientRole, SigningContext};

/// How long a start may take to read the config topic to its end.
const READ_AT_START: Duration = Duration::from_secs(60);
/// How long a write may wait for room in the producer's queue.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{setting} `{topic}`: {problem}")]
    Topic {
        setting: &'static str,
        topic: String,
        problem: String,
    },
    #[error("cluster: {0}")]
    Client(String),
    #[error("cluster.config_topic: {0}")]
    Read(String),
}

/// The writing side of cluster mode, held by the controller.
pub(crate) struct ConfigWriter {
    producer: FutureProducer<SigningContext>,
    topic: String,
    health: TopicHealth,
    pub(crate) worker_id: String,
}

impl ConfigWriter {
    /// Writes a record and waits until Kafka has it (all in-sync replicas), so that every worker will read it;
    /// returns its offset. While the topic cannot be read, nothing is written: the write would not reach the other
    /// workers either.
    pub(crate) async fn write(&self, record: &ConfigRecord) -> Result<i64, String> {
        if let Some(problem) = self.health.problem() {
            return Err(format!("nothing was changed: {problem}"));
        }
        let key = record.key();
        let value = record.value();
        let mut message = FutureRecord::<String, String>::to(&self.topic).key(&key);
        if let Some(value) = &value {
            message = message.payload(value);
        }
        self.producer
            .send(message, QUEUE_TIMEOUT)
            .await
            .map(|delivery| delivery.offset)
            .map_err(|(error, _)| format!("cannot write to the config topic {}: {error}", self.topic))
    }

    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }
}

/// A worker joined to its cluster: the state read at start, and the parts that keep it current.
pub(crate) struct Joined {
    pub(crate) snapshot: Snapshot,
    pub(crate) writer: ConfigWriter,
    pub(crate) health: TopicHealth,
    pub(crate) peers: Peers,
    log: ConfigLog,
    status_reader: BaseConsumer<SigningContext>,
    status_producer: FutureProducer<SigningContext>,
    status_topic: String,
    status_interval: Duration,
}

/// The parts of a joined worker that run on their own: returned by `Joined::follow`.
pub(crate) struct Following {
    pub(crate) snapshot: Snapshot,
    pub(crate) updates: mpsc::Receiver<ConfigUpdate>,
    pub(crate) writer: ConfigWriter,
    /// Ends once this worker's states are removed from the status topic, after `stop`.
    pub(crate) publisher: JoinHandle<()>,
}

impl Joined {
    /// Follows the config topic (its records go to `Following::updates`, in order) and the status topic on threads
    /// of their own, and publishes this worker's states, until `stop`.
    pub(crate) fn follow(self, status: StatusRegistry, stop: CancellationToken) -> Following {
        let log = self.log;
        let config_stop = stop.clone();
        let (sender, updates) = mpsc::channel(64);
        std::thread::spawn(move || log.follow(sender, config_stop));
        let (reader, peers, topic, status_stop) = (
            self.status_reader,
            self.peers.clone(),
            self.status_topic.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || peers::follow(reader, &topic, peers, status_stop));
        let publisher = tokio::spawn(peers::publish(
            self.status_producer,
            self.status_topic,
            self.peers,
            status,
            self.status_interval,
            stop,
        ));
        Following {
            snapshot: self.snapshot,
            updates,
            writer: self.writer,
            publisher,
        }
    }
}

/// Creates or checks the two topics, then reads the config topic to its end.
pub(crate) async fn join(worker: &WorkerConfig, cluster: &ClusterConfig) -> Result<Joined, ClusterError> {
    let config_topic = cluster.config_topic();
    let status_topic = cluster.status_topic();
    let admin = admin_client(&client_config(
        &worker.kafka,
        ClientRole::Consumer,
        &Default::default(),
        &[],
        &[],
    ))
    .map_err(ClusterError::Client)?;
    topics::ensure(
        &admin,
        &StateTopic {
            setting: "cluster.config_topic",
            name: &config_topic,
            partitions: Some(1),
        },
        cluster.replication_factor,
    )
    .await?;
    topics::ensure(
        &admin,
        &StateTopic {
            setting: "cluster.status_topic",
            name: &status_topic,
            partitions: None,
        },
        cluster.replication_factor,
    )
    .await?;
    let producer = || -> Result<FutureProducer<SigningContext>, ClusterError> {
        let mut config = client_config(
            &worker.kafka,
            ClientRole::Producer,
            &Default::default(),
            &[],
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                // A write the cluster cannot take is answered within the API call, not five minutes later.
                ("message.timeout.ms", "30000"),
                // Kafka would create a missing topic with its defaults, not compacted: a lost config topic is
                // created again by a worker's start, with the right settings, or by the operator.
                ("allow.auto.create.topics", "false"),
            ],
        );
        config.set("client.id", format!("ebconnect-cluster-{}", worker.worker_id()));
        config
            .create_with_context(SigningContext)
            .map_err(|error| ClusterError::Client(format!("cannot create a Kafka producer: {error}")))
    };
    let reader = || {
        lookup_consumer(&client_config(
            &worker.kafka,
            ClientRole::Consumer,
            &Default::default(),
            &[],
            &[
                // librdkafka wants a group to assign partitions; nothing joins it or commits to it.
                ("group.id", &format!("ebconnect-cluster-reader-{}", worker.worker_id())),
                ("enable.auto.commit", "false"),
                // A recreated topic is read from its start.
                ("auto.offset.reset", "earliest"),
            ],
        ))
        .map_err(ClusterError::Client)
    };
    let health = TopicHealth::default();
    let mut log = ConfigLog::new(reader()?, config_topic.clone(), health.clone());
    let snapshot = tokio::task::spawn_blocking(move || log.read_all(READ_AT_START).map(|snapshot| (snapshot, log)))
        .await
        .map_err(|error| ClusterError::Read(error.to_string()))?;
    let (snapshot, log) = snapshot.map_err(ClusterError::Read)?;
    Ok(Joined {
        snapshot,
        writer: ConfigWriter {
            producer: producer()?,
            topic: config_topic,
            health: health.clone(),
            worker_id: worker.worker_id(),
        },
        health,
        peers: Peers::new(worker.worker_id(), cluster.worker_timeout),
        log,
        status_reader: reader()?,
        status_producer: producer()?,
        status_topic,
        status_interval: cluster.status_interval,
    })
}
