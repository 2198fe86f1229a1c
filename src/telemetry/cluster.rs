//! Cluster mode's events: joining, the config and status topics' records and health, connector files written.

use tracing::{error, info, warn};

use super::{count_error, InternalEvent};

/// The worker read its cluster's config topic to its end and runs what it holds.
pub struct ClusterJoined<'a> {
    pub(crate) group_id: &'a str,
    pub(crate) config_topic: &'a str,
    pub(crate) connectors: usize,
}

impl InternalEvent for ClusterJoined<'_> {
    fn emit(self) {
        info!(
            group_id = self.group_id,
            config_topic = self.config_topic,
            connectors = self.connectors,
            "joined the cluster"
        );
    }
}

/// A record of the config or status topic that cannot be read; it is skipped.
pub struct ClusterRecordRejected<'a> {
    pub(crate) topic: &'a str,
    pub(crate) offset: i64,
    pub(crate) error: &'a str,
}

impl InternalEvent for ClusterRecordRejected<'_> {
    fn emit(self) {
        count_error("", "cluster", "record_rejected");
        error!(
            topic = self.topic,
            offset = self.offset,
            error = self.error,
            "a record of the cluster's topic cannot be read; skipped"
        );
    }
}

/// Another running worker publishes its states under this worker's id: the worker is not ready until restarted
/// with an id of its own.
pub struct ClusterWorkerIdInUse<'a> {
    pub(crate) problem: &'a str,
}

impl InternalEvent for ClusterWorkerIdInUse<'_> {
    fn emit(self) {
        count_error("", "cluster", "worker_id_in_use");
        error!(problem = self.problem, "another worker uses this worker's id");
    }
}

/// The config topic cannot be read: the worker keeps running what it has, and is not ready.
pub struct ClusterTopicUnreadable<'a> {
    pub(crate) topic: &'a str,
    pub(crate) error: &'a str,
}

impl InternalEvent for ClusterTopicUnreadable<'_> {
    fn emit(self) {
        count_error("", "cluster", "config_topic_unreadable");
        warn!(
            topic = self.topic,
            error = self.error,
            "the config topic cannot be read; connectors keep running as they are"
        );
    }
}

pub struct ClusterTopicRecovered<'a> {
    pub(crate) topic: &'a str,
}

impl InternalEvent for ClusterTopicRecovered<'_> {
    fn emit(self) {
        info!(topic = self.topic, "the config topic can be read again");
    }
}

/// The status topic could not be written (this worker's states; the next publication tries again) or read (the other
/// workers' states, which status then shows as they last were).
pub struct ClusterStatusTopicFailed<'a> {
    pub(crate) topic: &'a str,
    pub(crate) error: &'a str,
}

impl InternalEvent for ClusterStatusTopicFailed<'_> {
    fn emit(self) {
        count_error("", "cluster", "status_topic_failed");
        warn!(topic = self.topic, error = self.error, "the status topic failed");
    }
}

/// A connector file was written to the config topic (at start, or changed since).
pub struct ClusterFileWritten<'a> {
    pub(crate) file: &'a str,
    pub(crate) connector: &'a str,
}

impl InternalEvent for ClusterFileWritten<'_> {
    fn emit(self) {
        info!(
            file = self.file,
            connector = self.connector,
            "connector file written to the config topic"
        );
    }
}
