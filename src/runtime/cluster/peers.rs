//! The status topic: each worker publishes its connectors' states under its own key, every `status_interval` and
//! whenever one changes, and removes its key on an orderly stop. Every worker reads all of them, so that any worker
//! answers status for the whole cluster. A worker not heard from for `worker_timeout` is shown as gone.
//!
//! Each run of a worker publishes under an instance id of its own, so that a second live worker with the same
//! `worker_id` shows: their reports would overwrite each other, and static membership fences one of them.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, Timestamp};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::kafka::SigningContext;
use crate::runtime::status::StatusRegistry;
use crate::telemetry::{emit, ClusterRecordRejected, ClusterStatusTopicFailed, ClusterWorkerIdInUse};

const KEY_PREFIX: &str = "worker-";
/// A gone worker is shown for this long, then forgotten: a replaced pod's name does not come back.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
const POLL: Duration = Duration::from_millis(200);
/// Reports under this worker's id from another instance count as a second live worker only when written this long
/// after this one started: the last reports of the run before a restart are older, give or take the hosts' clocks.
const SAME_ID_GRACE: Duration = Duration::from_secs(2);

/// One connector as one worker reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reported {
    pub(crate) state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) trace: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    worker_id: String,
    /// This run of the worker; empty in the reports of workers from before it was published.
    #[serde(default)]
    instance: String,
    connectors: BTreeMap<String, Reported>,
}

#[derive(Debug, Clone)]
struct Heard {
    at: SystemTime,
    connectors: BTreeMap<String, Reported>,
}

/// A connector on one worker, as status shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Instance {
    pub(crate) worker_id: String,
    pub(crate) reported: Reported,
}

/// What every other worker last said; shared with the REST API.
#[derive(Clone)]
pub(crate) struct Peers {
    me: String,
    /// This run of the worker: its process id and when it started.
    instance: String,
    started: SystemTime,
    worker_timeout: Duration,
    heard: Arc<RwLock<BTreeMap<String, Heard>>>,
    /// Set once another live worker is seen publishing under this worker's id: why this worker is not ready.
    same_id: Arc<RwLock<Option<String>>>,
}

impl Peers {
    pub(crate) fn new(me: String, worker_timeout: Duration) -> Self {
        let started = SystemTime::now();
        let since_epoch = started.duration_since(UNIX_EPOCH).unwrap_or_default();
        Self {
            me,
            instance: format!("{}@{}", std::process::id(), since_epoch.as_nanos()),
            started,
            worker_timeout,
            heard: Arc::default(),
            same_id: Arc::default(),
        }
    }

    /// Another live worker uses this worker's id, and what was seen of it.
    pub(crate) fn same_id(&self) -> Option<String> {
        self.same_id
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Notes a report published under this worker's id by another instance after this one started.
    fn check_same_id(&self, at: SystemTime, report: &Report) {
        let after_start = at
            .duration_since(self.started)
            .is_ok_and(|since| since >= SAME_ID_GRACE);
        if report.worker_id != self.me || report.instance == self.instance || !after_start {
            return;
        }
        let mut same_id = self.same_id.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if same_id.is_none() {
            let at = chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let problem =
                format!(
                "worker_id `{}` is also used by another running worker (instance {}, which reported at {at}); give \
                 each worker its own worker_id",
                self.me,
                if report.instance.is_empty() { "of an older version" } else { &report.instance },
            );
            emit(ClusterWorkerIdInUse { problem: &problem });
            *same_id = Some(problem);
        }
    }

    /// The connector on every other worker that reports it, by worker id. A worker gone quiet shows UNASSIGNED,
    /// with when it was last heard from.
    pub(crate) fn instances(&self, connector: &str) -> Vec<Instance> {
        let now = SystemTime::now();
        let heard = self.heard.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        heard
            .iter()
            .filter(|(worker, _)| **worker != self.me)
            .filter_map(|(worker, heard)| {
                let reported = heard.connectors.get(connector)?;
                let silent = now.duration_since(heard.at).unwrap_or_default();
                if silent > FORGET_AFTER {
                    return None;
                }
                let reported = if silent > self.worker_timeout {
                    Reported {
                        state: "UNASSIGNED".into(),
                        trace: Some(format!(
                            "worker {worker} has not reported for {}s (cluster.worker_timeout: {}s); it is gone",
                            silent.as_secs(),
                            self.worker_timeout.as_secs()
                        )),
                    }
                } else {
                    reported.clone()
                };
                Some(Instance {
                    worker_id: worker.clone(),
                    reported,
                })
            })
            .collect()
    }

    /// The workers still heard from whose instance of `connector` is in another state than `wanted`.
    pub(crate) fn live_not_in(&self, connector: &str, wanted: &str) -> Vec<String> {
        self.instances(connector)
            .into_iter()
            .filter(|instance| instance.reported.state != "UNASSIGNED" && instance.reported.state != wanted)
            .map(|instance| instance.worker_id)
            .collect()
    }

    fn hear(&self, key: &str, at: SystemTime, report: Option<Report>) {
        if let Some(report) = &report {
            self.check_same_id(at, report);
        }
        let mut heard = self.heard.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        match report {
            Some(report) => {
                heard.insert(
                    report.worker_id,
                    Heard {
                        at,
                        connectors: report.connectors,
                    },
                );
            }
            None => {
                heard.remove(key);
            }
        }
    }
}

/// Reads every worker's reports, from the topic's start, until `stop`. Blocking: run on a thread of its own.
pub(crate) fn follow(consumer: BaseConsumer<SigningContext>, topic: &str, peers: Peers, stop: CancellationToken) {
    let assigned = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|error| error.to_string())
        .and_then(|metadata| {
            let mut partitions = TopicPartitionList::new();
            for described in metadata.topics().iter().filter(|described| described.name() == topic) {
                for partition in described.partitions() {
                    partitions
                        .add_partition_offset(topic, partition.id(), Offset::Beginning)
                        .map_err(|error| error.to_string())?;
                }
            }
            consumer.assign(&partitions).map_err(|error| error.to_string())
        });
    if let Err(error) = assigned {
        emit(ClusterStatusTopicFailed {
            topic,
            error: &format!("cannot read the status topic: {error}"),
        });
        return;
    }
    while !stop.is_cancelled() {
        let Some(Ok(message)) = consumer.poll(POLL) else {
            continue;
        };
        let Some(key) = message.key().and_then(|key| std::str::from_utf8(key).ok()) else {
            continue;
        };
        let Some(worker) = key.strip_prefix(KEY_PREFIX) else {
            continue;
        };
        let at = match message.timestamp() {
            Timestamp::CreateTime(millis) | Timestamp::LogAppendTime(millis) => {
                UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or_default())
            }
            Timestamp::NotAvailable => SystemTime::now(),
        };
        match message.payload().map(serde_json::from_slice::<Report>) {
            None => peers.hear(worker, at, None),
            Some(Ok(report)) => peers.hear(worker, at, Some(report)),
            Some(Err(error)) => emit(ClusterRecordRejected {
                topic,
                offset: message.offset(),
                error: &format!("{key}: {error}"),
            }),
        }
    }
}

/// Publishes this worker's connector states every `interval` and on each change, until `stop`; then removes them.
pub(crate) async fn publish(
    producer: FutureProducer<SigningContext>,
    topic: String,
    peers: Peers,
    status: StatusRegistry,
    interval: Duration,
    stop: CancellationToken,
) {
    let key = format!("{KEY_PREFIX}{}", peers.me);
    let changed = status.changes();
    let mut ticker = tokio::time::interval(interval);
    loop {
        let stopping = tokio::select! {
            () = stop.cancelled() => true,
            _ = ticker.tick() => false,
            () = changed.notified() => false,
        };
        let payload = (!stopping).then(|| {
            let connectors = status
                .all()
                .into_iter()
                .map(|(name, status)| {
                    (
                        name.to_string(),
                        Reported {
                            state: status.state.as_str().to_owned(),
                            trace: status.trace,
                        },
                    )
                })
                .collect();
            serde_json::to_string(&Report {
                worker_id: peers.me.clone(),
                instance: peers.instance.clone(),
                connectors,
            })
            .unwrap_or_default()
        });
        let mut record = FutureRecord::<String, String>::to(&topic).key(&key);
        if let Some(payload) = &payload {
            record = record.payload(payload);
        }
        if let Err((error, _)) = producer.send(record, Duration::from_secs(10)).await {
            emit(ClusterStatusTopicFailed {
                topic: &topic,
                error: &format!("cannot write this worker's states: {error}"),
            });
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(worker: &str, state: &str) -> Report {
        Report {
            worker_id: worker.into(),
            instance: format!("{worker}-1"),
            connectors: [(
                "sink".to_owned(),
                Reported {
                    state: state.into(),
                    trace: None,
                },
            )]
            .into(),
        }
    }

    #[test]
    fn a_quiet_worker_is_shown_gone_then_forgotten_and_a_removed_one_at_once() {
        let peers = Peers::new("me".into(), Duration::from_secs(10));
        let now = SystemTime::now();
        peers.hear("me", now, Some(report("me", "RUNNING")));
        peers.hear("live", now - Duration::from_secs(2), Some(report("live", "PAUSED")));
        peers.hear("quiet", now - Duration::from_secs(30), Some(report("quiet", "RUNNING")));
        peers.hear(
            "old",
            now - FORGET_AFTER - Duration::from_secs(1),
            Some(report("old", "RUNNING")),
        );
        peers.hear("left", now, Some(report("left", "RUNNING")));
        peers.hear("left", now, None);
        let shown: Vec<(String, String)> = peers
            .instances("sink")
            .into_iter()
            .map(|instance| (instance.worker_id, instance.reported.state))
            .collect();
        assert_eq!(
            shown,
            [
                ("live".to_owned(), "PAUSED".to_owned()),
                ("quiet".into(), "UNASSIGNED".into())
            ]
        );
        let quiet = &peers.instances("sink")[1];
        let trace = quiet.reported.trace.as_deref().unwrap_or_default();
        assert!(trace.starts_with("worker quiet has not reported for 30s"), "{trace}");
        assert!(peers.instances("other").is_empty());
        // Only live workers hold up an offset change; a gone one cannot.
        assert_eq!(peers.live_not_in("sink", "STOPPED"), ["live"]);
        assert!(peers.live_not_in("sink", "PAUSED").is_empty());
    }

    #[test]
    fn another_worker_reporting_under_this_ones_id_after_its_start_is_a_problem() {
        let peers = Peers::new("me".into(), Duration::from_secs(10));
        let started = peers.started;
        let mine = Report {
            instance: peers.instance.clone(),
            ..report("me", "RUNNING")
        };
        // Its own reports, the last ones of the run before a restart, and another worker's are no problem.
        peers.hear("me", started + Duration::from_secs(30), Some(mine));
        peers.hear("me", started - Duration::from_secs(1), Some(report("me", "RUNNING")));
        peers.hear(
            "other",
            started + Duration::from_secs(30),
            Some(report("other", "RUNNING")),
        );
        assert_eq!(peers.same_id(), None);
        peers.hear("me", started + Duration::from_secs(30), Some(report("me", "RUNNING")));
        let problem = peers.same_id().unwrap_or_default();
        assert!(
            problem.starts_with(
                "worker_id `me` is also used by another running worker (instance me-1, which reported at "
            ),
            "{problem}"
        );
    }
}
