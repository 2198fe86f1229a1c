//! The worker: one supervisor per connector, and an orderly shutdown on SIGTERM or SIGINT.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::aws::secrets::AwsSecrets;
use crate::config::{SaslMechanism, WorkerConfig};
use crate::connectors::ConnectorConfig;
use crate::kafka::msk_iam::{self, MskIamError, MskIamSigner};
use crate::runtime::cluster::{self, ClusterError};
use crate::runtime::controller::{self, ClusterLink, Controller, SecretRefresh};
use crate::runtime::readiness::Readiness;
use crate::runtime::rest::{self, ApiState};
use crate::runtime::status::{ConnectorState, StatusRegistry};
use crate::telemetry::log_levels::LogLevels;
use crate::telemetry::metrics::{metrics, Summary};
use crate::telemetry::{
    emit, ClusterJoined, ConnectorSummary, MskIamSigning, RestUnauthenticated, ShutdownTimedOut, TlsHostnameUnverified,
};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("the REST API cannot listen on {address}: {source}")]
    RestListen {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("shutdown did not finish within {timeout:?}; unfinished connectors: {unfinished:?}")]
    ShutdownTimedOut { timeout: Duration, unfinished: Vec<String> },
    #[error(transparent)]
    MskIam(#[from] MskIamError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

pub struct Worker {
    config: Arc<WorkerConfig>,
    connectors: Vec<ConnectorConfig>,
    status: StatusRegistry,
    paths: Option<Vec<PathBuf>>,
    log_levels: Option<LogLevels>,
    secrets: Option<SecretRefresh>,
}

impl Worker {
    pub fn new(config: WorkerConfig, connectors: Vec<ConnectorConfig>) -> Self {
        Self {
            config: Arc::new(config),
            connectors,
            status: StatusRegistry::default(),
            paths: None,
            log_levels: None,
            secrets: None,
        }
    }

    /// The connector files came from these paths: re-read them every `reload_interval`, and write connectors
    /// created through the API to the first directory among them.
    pub fn watching(mut self, paths: Vec<PathBuf>) -> Self {
        self.paths = Some(paths);
        self
    }

    /// The process's log filter, for `/admin/loggers`; without it those paths answer 404.
    pub fn with_log_levels(mut self, levels: LogLevels) -> Self {
        self.log_levels = Some(levels);
        self
    }

    /// The store that resolved the `${aws-secretsmanager:}`/`${aws-ssm:}` placeholders of `worker_file` and the
    /// connector files: read its secrets again every `aws.secrets_refresh_interval` and restart what uses a changed
    /// one.
    pub fn with_secrets(mut self, store: Arc<AwsSecrets>, worker_file: PathBuf) -> Self {
        self.secrets = Some(SecretRefresh {
            store,
            worker_file,
            interval: self.config.aws.secrets_refresh_interval,
        });
        self
    }

    pub fn status(&self) -> StatusRegistry {
        self.status.clone()
    }

    /// Runs every connector until `shutdown` is cancelled, then gives them `shutdown_timeout` to stop in order:
    /// stop taking input, finish or hand back in-flight work, commit.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let address = self.config.rest.listen;
        if self.config.rest.basic_auth.is_none() && !address.ip().is_loopback() {
            emit(RestUnauthenticated { address });
        }
        if self.config.kafka.tls.as_ref().is_some_and(|tls| !tls.verify_hostname) {
            emit(TlsHostnameUnverified);
        }
        let msk_iam = self
            .config
            .kafka
            .sasl
            .as_ref()
            .is_some_and(|sasl| sasl.mechanism == SaslMechanism::AwsMskIam);
        if msk_iam {
            let config = self.config.clone();
            let signer = tokio::task::spawn_blocking(move || MskIamSigner::start(&config))
                .await
                .map_err(|error| MskIamError::Start(error.to_string()))??;
            emit(MskIamSigning {
                region: signer.region(),
            });
            msk_iam::install(signer);
        }
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| WorkerError::RestListen { address, source })?;
        let mut controller = Controller::new(
            self.config.clone(),
            self.status.clone(),
            shutdown.clone(),
            self.paths.clone(),
            self.secrets,
        );
        let (control, commands) = controller::channel();
        let mut readiness = Readiness::new(&self.config);
        let mut peers = None;
        let mut status_publisher = None;
        if let Some(settings) = &self.config.cluster {
            let joined = cluster::join(&self.config, settings).await?;
            emit(ClusterJoined {
                group_id: &settings.group_id,
                config_topic: joined.writer.topic(),
                connectors: joined.snapshot.documents.len(),
            });
            readiness = readiness.in_cluster(joined.health.clone(), joined.peers.clone());
            let cluster_peers = joined.peers.clone();
            peers = Some(cluster_peers.clone());
            let following = joined.follow(self.status.clone(), shutdown.clone());
            status_publisher = Some(following.publisher);
            let link = ClusterLink::new(
                following.writer,
                cluster_peers,
                settings.files,
                following.snapshot,
                following.updates,
            );
            controller = controller.in_cluster(link);
        }
        let api = ApiState {
            worker_id: self.config.worker_id(),
            worker: self.config.clone(),
            status: self.status.clone(),
            connectors: controller.view(),
            control,
            readiness,
            peers,
            cluster_id: Default::default(),
            log_levels: self.log_levels.clone(),
        };
        let rest = tokio::spawn(rest::serve(listener, api, shutdown.clone()));
        let reload = Some(self.config.reload_interval).filter(|interval| self.paths.is_some() && !interval.is_zero());
        let expected = self.connectors.iter().map(|connector| connector.name.clone()).collect();
        let service_manager = tokio::spawn(super::systemd::notify_service_manager(
            self.status.clone(),
            expected,
            shutdown.clone(),
        ));
        let mut controller = tokio::spawn(controller.run(self.connectors, commands, reload));
        if !self.config.summary_interval.is_zero() {
            tokio::spawn(summaries(
                self.status.clone(),
                self.config.summary_interval,
                shutdown.clone(),
            ));
        }

        shutdown.cancelled().await;
        // STOPPING=1 goes out before the connectors are waited for.
        let _ = service_manager.await;

        let timeout = self.config.shutdown_timeout;
        if tokio::time::timeout(timeout, &mut controller).await.is_ok() {
            // The API ends with the shutdown token; a failure there does not change how the connectors stopped.
            let _ = rest.await;
            // This worker's states leave the status topic, so that the others stop showing them at once.
            if let Some(publisher) = status_publisher {
                let _ = tokio::time::timeout(Duration::from_secs(5), publisher).await;
            }
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
        controller.abort();
        Err(WorkerError::ShutdownTimedOut { timeout, unfinished })
    }
}

/// Logs each connector's one-line summary every `interval`: rates since the last line, errors so far, lag.
async fn summaries(status: StatusRegistry, interval: Duration, shutdown: CancellationToken) {
    let mut last: BTreeMap<String, Summary> = BTreeMap::new();
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let seconds = interval.as_secs_f64();
        for (name, connector) in status.all() {
            let now = metrics().summary(name.as_str());
            let before = last.insert(name.to_string(), now).unwrap_or_default();
            emit(ConnectorSummary {
                connector: name.as_str(),
                state: connector.state.as_str(),
                read_per_second: now.read.saturating_sub(before.read) as f64 / seconds,
                written_per_second: now.written.saturating_sub(before.written) as f64 / seconds,
                retried_per_second: now.retried.saturating_sub(before.retried) as f64 / seconds,
                errors: now.errors,
                max_lag: now.max_lag,
            });
        }
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
