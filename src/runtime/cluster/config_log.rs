//! Reading the config topic: to its end at start (the cluster's state, folded into a `Snapshot`), then record by
//! record, each handed to the controller in the topic's order. The topic's health is checked as it goes, for
//! readiness: while it cannot be read, the worker keeps running what it has; when it is back, having been
//! recreated, it is read again from its start.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::records::ConfigRecord;
use crate::connector_state::Target;
use crate::kafka::SigningContext;
use crate::telemetry::{emit, ClusterRecordRejected, ClusterTopicRecovered, ClusterTopicUnreadable};

const POLL: Duration = Duration::from_millis(200);
const CHECK_EVERY: Duration = Duration::from_secs(1);
const WATERMARKS_TIMEOUT: Duration = Duration::from_secs(5);

/// What the controller is handed as the config topic is read.
pub(crate) enum ConfigUpdate {
    Record {
        record: ConfigRecord,
        offset: i64,
    },
    /// The topic came back after it could not be read, with fewer records than were read (deleted and created
    /// again): this is all it holds now.
    Recreated(Snapshot),
}

/// The cluster's state as the config topic holds it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Snapshot {
    pub(crate) documents: BTreeMap<String, Value>,
    pub(crate) targets: BTreeMap<String, Target>,
}

impl Snapshot {
    fn fold(&mut self, record: ConfigRecord) {
        match record {
            ConfigRecord::Connector { name, document } => match document {
                Some(document) => {
                    self.documents.insert(name, document);
                }
                None => {
                    self.documents.remove(&name);
                }
            },
            ConfigRecord::Target { name, target } => match target {
                Some(target) => {
                    self.targets.insert(name, target);
                }
                None => {
                    self.targets.remove(&name);
                }
            },
            // A restart asked before this worker read the topic was done by the workers running then.
            ConfigRecord::Restart { .. } => {}
        }
    }
}

/// Why the config topic cannot be read, if it cannot; shared with readiness.
#[derive(Debug, Clone, Default)]
pub(crate) struct TopicHealth(Arc<Mutex<Option<String>>>);

impl TopicHealth {
    pub(crate) fn problem(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn set(&self, problem: Option<String>) {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = problem;
    }
}

pub(crate) struct ConfigLog {
    consumer: BaseConsumer<SigningContext>,
    topic: String,
    /// The offset of the next record to read.
    position: i64,
    health: TopicHealth,
}

impl ConfigLog {
    pub(crate) fn new(consumer: BaseConsumer<SigningContext>, topic: String, health: TopicHealth) -> Self {
        Self {
            consumer,
            topic,
            position: 0,
            health,
        }
    }

    fn end(&self) -> Result<(i64, i64), String> {
        self.consumer
            .fetch_watermarks(&self.topic, 0, WATERMARKS_TIMEOUT)
            .map_err(|error| format!("cannot read the config topic {}: {error}", self.topic))
    }

    fn assign_from_start(&mut self) -> Result<(), String> {
        let mut partitions = TopicPartitionList::new();
        partitions
            .add_partition_offset(&self.topic, 0, Offset::Beginning)
            .map_err(|error| error.to_string())?;
        self.consumer
            .assign(&partitions)
            .map_err(|error| format!("cannot read the config topic {}: {error}", self.topic))?;
        self.position = 0;
        Ok(())
    }

    /// Reads from the topic's start to its end as of now, within `timeout`.
    pub(crate) fn read_all(&mut self, timeout: Duration) -> Result<Snapshot, String> {
        self.assign_from_start()?;
        let (_, end) = self.end()?;
        let deadline = Instant::now() + timeout;
        let mut snapshot = Snapshot::default();
        while self.position < end {
            if Instant::now() > deadline {
                return Err(format!(
                    "the config topic {} was not read to its end (offset {end}) within {timeout:?}; read to {}",
                    self.topic, self.position
                ));
            }
            if let Some((record, _)) = self.next()? {
                snapshot.fold(record);
            }
        }
        Ok(snapshot)
    }

    /// The next record and its offset, if one comes within a poll; a record that does not parse is reported and
    /// skipped.
    fn next(&mut self) -> Result<Option<(ConfigRecord, i64)>, String> {
        let Some(message) = self.consumer.poll(POLL) else {
            return Ok(None);
        };
        let message = message.map_err(|error| format!("cannot read the config topic {}: {error}", self.topic))?;
        self.position = message.offset() + 1;
        match ConfigRecord::parse(message.key(), message.payload()) {
            Ok(record) => Ok(Some((record, message.offset()))),
            Err(error) => {
                emit(ClusterRecordRejected {
                    topic: &self.topic,
                    offset: message.offset(),
                    error: &error,
                });
                Ok(None)
            }
        }
    }

    /// Hands every record to the controller, in order, until `stop`. Blocking: run on a thread of its own.
    pub(crate) fn follow(mut self, updates: mpsc::Sender<ConfigUpdate>, stop: CancellationToken) {
        let mut checked = Instant::now();
        let mut recreated = false;
        while !stop.is_cancelled() {
            if checked.elapsed() >= CHECK_EVERY {
                checked = Instant::now();
                match self.check() {
                    Ok(true) => recreated = true,
                    Ok(false) => {}
                    Err(problem) => {
                        if self.health.problem().is_none() {
                            emit(ClusterTopicUnreadable {
                                topic: &self.topic,
                                error: &problem,
                            });
                        }
                        self.health.set(Some(problem));
                        continue;
                    }
                }
            }
            if recreated {
                match self.read_all(Duration::from_secs(30)) {
                    Ok(snapshot) => {
                        recreated = false;
                        if updates.blocking_send(ConfigUpdate::Recreated(snapshot)).is_err() {
                            return;
                        }
                    }
                    Err(problem) => self.health.set(Some(problem)),
                }
                continue;
            }
            match self.next() {
                Ok(Some((record, offset))) => {
                    if updates.blocking_send(ConfigUpdate::Record { record, offset }).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                // Seen again by the next check, which decides whether the topic is gone.
                Err(_) => {}
            }
        }
    }

    /// Whether the topic answers; `Ok(true)` when it came back after being unreadable with fewer records than
    /// were read (deleted and created again), so that it must be read from its start.
    fn check(&mut self) -> Result<bool, String> {
        let (_, end) = self.end()?;
        if self.health.problem().is_none() {
            return Ok(false);
        }
        self.health.set(None);
        emit(ClusterTopicRecovered { topic: &self.topic });
        Ok(end < self.position)
    }
}
