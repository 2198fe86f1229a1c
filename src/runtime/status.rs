//! What each connector is doing, kept for the status API and readiness.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::Serialize;

use crate::config::ConnectorName;
pub use crate::connector_state::ConnectorState;
use crate::kafka::ActiveTopics;
use crate::redact;
use crate::telemetry::{emit, ConnectorStateChanged};

#[derive(Debug, Clone, Serialize)]
pub struct ConnectorStatus {
    pub state: ConnectorState,
    /// The last error, with its causes, while FAILED or RESTARTING after a failure.
    pub trace: Option<String>,
    /// Failures in a row since the connector last ran for a while.
    pub consecutive_failures: u32,
    #[serde(with = "humantime_serde")]
    pub since: SystemTime,
}

/// Shared, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct StatusRegistry {
    inner: Arc<RwLock<BTreeMap<ConnectorName, ConnectorStatus>>>,
    topics: Arc<RwLock<BTreeMap<ConnectorName, ActiveTopics>>>,
    changed: Arc<tokio::sync::Notify>,
}

impl StatusRegistry {
    pub(crate) fn set(
        &self,
        name: &ConnectorName,
        state: ConnectorState,
        trace: Option<String>,
        consecutive_failures: u32,
    ) {
        let status = ConnectorStatus {
            state,
            // A client library's error may echo a configured value, a secret among them.
            trace: trace.map(|trace| redact::scrub(&trace).into_owned()),
            consecutive_failures,
            since: SystemTime::now(),
        };
        // A poisoned lock only means another thread panicked mid-update of a plain map; the map is still usable.
        let mut map = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.insert(name.clone(), status);
        self.changed.notify_one();
        emit(ConnectorStateChanged {
            connector: name.as_str(),
            state,
        });
    }

    /// Forgets a connector that was removed.
    pub(crate) fn remove(&self, name: &ConnectorName) {
        let mut map = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.remove(name);
        self.changed.notify_one();
        let mut topics = self.topics.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        topics.remove(name);
    }

    /// The connector's active topics, the same handle for each of its runs.
    pub(crate) fn topics(&self, name: &ConnectorName) -> ActiveTopics {
        let mut topics = self.topics.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        topics.entry(name.clone()).or_default().clone()
    }

    /// Notified after each change, for one waiter (the cluster's status publisher).
    pub(crate) fn changes(&self) -> Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    pub fn get(&self, name: &ConnectorName) -> Option<ConnectorStatus> {
        let map = self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(name).cloned()
    }

    pub(crate) fn all(&self) -> BTreeMap<ConnectorName, ConnectorStatus> {
        self.inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}
