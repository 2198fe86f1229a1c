//! The worker: one supervisor per connector, and an orderly shutdown on SIGTERM or SIGINT.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{ConnectorConfig, WorkerConfig};
use crate::connectors;
use crate::rate_limit::RateLimits;
use crate::runtime::rest::{self, ApiState};
use crate::runtime::status::{ConnectorState, StatusRegistry};
use crate::runtime::supervisor::Supervisor;
use crate::telemetry::{emit, ShutdownTimedOut};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("the REST API cannot listen on {address}: {source}")]
    RestListen {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("shutdown did not finish within {timeout:?}; unfinished connectors: {unfinished:?}")]
    ShutdownTimedOut { timeout: Duration, unfinished: Vec<String> },
}

pub struct Worker {
    config: Arc<WorkerConfig>,
    connectors: Vec<ConnectorConfig>,
    status: StatusRegistry,
}

impl Worker {
    pub fn new(config: WorkerConfig, connectors: Vec<ConnectorConfig>) -> Self {
        Self {
            config: Arc::new(config),
            connectors,
            status: StatusRegistry::default(),
        }
    }

    pub fn status(&self) -> StatusRegistry {
        self.status.clone()
    }

    /// Runs every connector until `shutdown` is cancelled, then gives them `shutdown_timeout` to stop in order:
    /// stop taking input, finish or hand back in-flight work, commit.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let address = self.config.rest.listen;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| WorkerError::RestListen { address, source })?;
        let api = ApiState {
            worker_id: self.config.worker_id(),
            status: self.status.clone(),
            connectors: Arc::new(
                self.connectors
                    .iter()
                    .map(|connector| (connector.name.clone(), connector.clone()))
                    .collect(),
            ),
        };
        let rest = tokio::spawn(rest::serve(listener, api, shutdown.clone()));
        let mut supervisors = JoinSet::new();
        let rate_limits = RateLimits::new(&self.config.rate_limits);
        for connector in self.connectors {
            let rate_limits = rate_limits.clone();
            self.status.set(&connector.name, ConnectorState::Unassigned, None, 0);
            let worker = self.config.clone();
            let kind = connector.kind.as_str();
            let name = connector.name.clone();
            let connector = Arc::new(connector);
            let supervisor = Supervisor {
                name: name.clone(),
                kind,
                factory: Arc::new(move || connectors::build(&connector, &worker, &rate_limits)),
                policy: self.config.restart.clone(),
                status: self.status.clone(),
            };
            supervisors.spawn(supervisor.run(shutdown.clone()));
        }

        // Supervisors end on their own only when a connector gave up; the worker keeps serving the others.
        shutdown.cancelled().await;

        let timeout = self.config.shutdown_timeout;
        let drained = tokio::time::timeout(timeout, async { while supervisors.join_next().await.is_some() {} }).await;
        if drained.is_ok() {
            // The API ends with the shutdown token; a failure there does not change how the connectors stopped.
            let _ = rest.await;
            return Ok(());
        }
        let unfinished: Vec<String> = self
            .status
            .all()
            .into_iter()
            .filter(|(_, status)| status.state == ConnectorState::Running)
            .map(|(name, _)| name.to_string())
            .collect();
        emit(ShutdownTimedOut {
            timeout,
            unfinished: unfinished.clone(),
        });
        supervisors.abort_all();
        Err(WorkerError::ShutdownTimedOut { timeout, unfinished })
    }
}

/// Cancels the returned token on the first SIGTERM or SIGINT.
pub fn shutdown_on_signal(timeout: Duration) -> std::io::Result<CancellationToken> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        emit(crate::telemetry::ShutdownRequested { signal: name, timeout });
        cancel.cancel();
    });
    Ok(token)
}
