//! A connector's life: started, stopped, failed and restarted, its state, its periodic summary, its file.

use std::time::Duration;
use tracing::{error, info, warn};

use super::metrics::{metrics, StateLabels};
use super::{count_error, InternalEvent};

pub struct ConnectorStarted<'a> {
    pub(crate) connector: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) attempt: u32,
}

impl InternalEvent for ConnectorStarted<'_> {
    fn emit(self) {
        info!(
            connector = self.connector,
            kind = self.kind,
            attempt = self.attempt,
            "connector started"
        );
    }
}

pub struct ConnectorStopped<'a> {
    pub(crate) connector: &'a str,
}

impl InternalEvent for ConnectorStopped<'_> {
    fn emit(self) {
        info!(connector = self.connector, "connector stopped");
    }
}

pub struct ConnectorFailed<'a> {
    pub(crate) connector: &'a str,
    pub(crate) error: &'a str,
    pub(crate) consecutive_failures: u32,
}

impl InternalEvent for ConnectorFailed<'_> {
    fn emit(self) {
        count_error(self.connector, "connector", "failed");
        error!(
            connector = self.connector,
            error = self.error,
            consecutive_failures = self.consecutive_failures,
            "connector failed"
        );
    }
}

pub struct ConnectorRestartScheduled<'a> {
    pub(crate) connector: &'a str,
    pub(crate) delay: Duration,
}

impl InternalEvent for ConnectorRestartScheduled<'_> {
    fn emit(self) {
        count_error(self.connector, "connector", "restart_scheduled");
        warn!(connector = self.connector, delay = ?self.delay, "connector will be restarted");
    }
}

pub struct ConnectorGaveUp<'a> {
    pub(crate) connector: &'a str,
    pub(crate) max_restarts: u32,
}

impl InternalEvent for ConnectorGaveUp<'_> {
    fn emit(self) {
        count_error(self.connector, "connector", "gave_up");
        error!(
            connector = self.connector,
            max_restarts = self.max_restarts,
            "connector failed too often in a row; it stays FAILED until restarted"
        );
    }
}

/// A connector entered a state.
pub struct ConnectorStateChanged<'a> {
    pub(crate) connector: &'a str,
    pub(crate) state: crate::connector_state::ConnectorState,
}

impl InternalEvent for ConnectorStateChanged<'_> {
    fn emit(self) {
        for state in crate::connector_state::ConnectorState::ALL {
            metrics()
                .connector_state
                .get_or_create(&StateLabels {
                    connector: self.connector.to_owned(),
                    state: state.as_str().to_owned(),
                })
                .set(i64::from(state == self.state));
        }
    }
}

/// The periodic one-line account of a connector.
pub struct ConnectorSummary<'a> {
    pub(crate) connector: &'a str,
    pub(crate) state: &'a str,
    pub(crate) read_per_second: f64,
    pub(crate) written_per_second: f64,
    /// PutEvents entries sent again per second: how hard EventBridge is throttling.
    pub(crate) retried_per_second: f64,
    pub(crate) errors: u64,
    pub(crate) max_lag: Option<i64>,
}

impl InternalEvent for ConnectorSummary<'_> {
    fn emit(self) {
        info!(
            connector = self.connector,
            state = self.state,
            read_per_second = format!("{:.1}", self.read_per_second),
            written_per_second = format!("{:.1}", self.written_per_second),
            retried_per_second = format!("{:.1}", self.retried_per_second),
            errors = self.errors,
            max_lag = self.max_lag,
            "summary"
        );
    }
}

/// A connector file that does not load; the running version of its connector, if any, is kept.
pub struct ConnectorFileRejected<'a> {
    pub(crate) file: &'a str,
    pub(crate) error: &'a str,
}

impl InternalEvent for ConnectorFileRejected<'_> {
    fn emit(self) {
        count_error("", "config", "file_rejected");
        metrics().config_rejections.inc();
        error!(
            file = self.file,
            error = self.error,
            "connector file rejected; the running version is kept"
        );
    }
}

/// A connector was removed (its file deleted, or `DELETE /connectors/{name}`).
pub struct ConnectorRemoved<'a> {
    pub(crate) connector: &'a str,
}

impl InternalEvent for ConnectorRemoved<'_> {
    fn emit(self) {
        for state in crate::connector_state::ConnectorState::ALL {
            metrics().connector_state.remove(&StateLabels {
                connector: self.connector.to_owned(),
                state: state.as_str().to_owned(),
            });
        }
        info!(connector = self.connector, "connector removed");
    }
}
