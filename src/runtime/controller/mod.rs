//! The one owner of the running connectors. The REST API and the file watcher send it commands; it starts, stops,
//! pauses, resumes and restarts supervisors, writes connector files, and re-reads the connector directories, one
//! command at a time, so that no two changes to one connector race.
//!
//! Without `cluster:`, pause and stop act on this worker only: each worker reads the same files. In cluster mode every
//! change (a write, a delete, a target state, a restart) is only written to the config topic; every worker, this one
//! too, applies it as it reads the topic (`cluster::ConfigLog`), in the topic's order, so that the last write wins
//! everywhere and no worker applies two changes in different orders. A paused connector is stopped in an orderly
//! way (in-flight work settled, offsets committed) and shown as PAUSED; for a sink in file mode, its partitions go
//! to the other workers of the group meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::runtime::cluster::ConfigUpdate;
mod cluster;

pub(crate) use self::cluster::ClusterLink;
use self::cluster::{Answer, Written};
use super::status::{ConnectorState, StatusRegistry};
use super::supervisor::Supervisor;
use crate::aws::secrets::AwsSecrets;
use crate::config::{self, ConfigError, ConnectorName, ConnectorType, WorkerConfig};
use crate::connector_state::Target;
use crate::connectors;
use crate::connectors::ConnectorConfig;
use crate::kafka::committed::OffsetChange;
use crate::rate_limit::RateLimits;
use crate::telemetry::{emit, ConnectorFileRejected, ConnectorRemoved, SecretChanged};

/// What the API reads, published on every change.
pub(crate) type ConnectorView = Arc<RwLock<Published>>;

#[derive(Default)]
pub(crate) struct Published {
    /// The configuration of every connector this worker runs (or holds paused or stopped).
    pub(crate) connectors: BTreeMap<ConnectorName, Arc<ConnectorConfig>>,
    /// Cluster mode: the config topic's connectors this worker cannot load (FAILED here), with their type where
    /// the document names one.
    pub(crate) unloadable: BTreeMap<ConnectorName, Option<ConnectorType>>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ControlError {
    #[error("Connector {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the worker is shutting down")]
    ShuttingDown,
    /// A service the operation needs (Kafka) did not do it.
    #[error("{0}")]
    Failed(String),
}

pub(crate) enum Action {
    Pause,
    Resume,
    Stop,
    Restart,
    Delete,
}

pub(crate) enum Command {
    Act {
        name: String,
        action: Action,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    /// Writes a connector file from a document (nested, or Kafka Connect's `{name, config}`), then runs it. `name`
    /// is set for `PUT /connectors/{name}/config`; `create` for `POST /connectors`, which refuses an existing name.
    /// A new connector starts in `initial` (default: running); an existing one keeps its state.
    Write {
        name: Option<String>,
        document: serde_json::Value,
        create: bool,
        initial: Option<Target>,
        reply: oneshot::Sender<Result<(Arc<ConnectorConfig>, bool), ControlError>>,
    },
    /// Alters a stopped connector's committed offsets; no changes resets them all (KIP-875).
    ChangeOffsets {
        name: String,
        changes: Vec<OffsetChange>,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
}

/// Sends commands to the controller.
#[derive(Clone)]
pub(crate) struct ControlHandle {
    commands: mpsc::Sender<Command>,
}

impl ControlHandle {
    pub(crate) async fn act(&self, name: &str, action: Action) -> Result<(), ControlError> {
        self.ask(|reply| Command::Act {
            name: name.to_owned(),
            action,
            reply,
        })
        .await
    }

    /// Returns the connector as loaded, and whether it is new.
    pub(crate) async fn write(
        &self,
        name: Option<&str>,
        document: serde_json::Value,
        create: bool,
        initial: Option<Target>,
    ) -> Result<(Arc<ConnectorConfig>, bool), ControlError> {
        self.ask(|reply| Command::Write {
            name: name.map(str::to_owned),
            document,
            create,
            initial,
            reply,
        })
        .await
    }

    pub(crate) async fn change_offsets(&self, name: &str, changes: Vec<OffsetChange>) -> Result<(), ControlError> {
        self.ask(|reply| Command::ChangeOffsets {
            name: name.to_owned(),
            changes,
            reply,
        })
        .await
    }

    /// Sends a command and waits for its answer.
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, ControlError>>) -> Command,
    ) -> Result<T, ControlError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| ControlError::ShuttingDown)?;
        answer.await.map_err(|_| ControlError::ShuttingDown)?
    }
}

struct Managed {
    config: Arc<ConnectorConfig>,
    /// The file's text when it was loaded, to notice edits; in cluster mode, the document's JSON.
    text: String,
    target: Target,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// The secrets read from AWS for the worker file (at `worker_file`) and the connector files, read again every
/// `interval`.
pub(crate) struct SecretRefresh {
    pub(crate) store: Arc<AwsSecrets>,
    pub(crate) worker_file: PathBuf,
    pub(crate) interval: Duration,
}

pub(crate) struct Controller {
    worker: Arc<WorkerConfig>,
    secrets: Option<SecretRefresh>,
    /// Connector files to load again on the next reload although their text is unchanged: a secret they use changed.
    stale: BTreeSet<PathBuf>,
    rate_limits: RateLimits,
    status: StatusRegistry,
    shutdown: CancellationToken,
    /// The `--connectors` paths, re-read on reload; `None` when the connectors were given in memory.
    paths: Option<Vec<PathBuf>>,
    managed: BTreeMap<ConnectorName, Managed>,
    view: ConnectorView,
    /// Files that failed to load, with their text, so each bad version is reported once.
    rejected: BTreeMap<PathBuf, String>,
    /// Cluster mode: where changes are written, and the cluster's state as read.
    cluster: Option<ClusterLink>,
}

impl Controller {
    pub(crate) fn new(
        worker: Arc<WorkerConfig>,
        status: StatusRegistry,
        shutdown: CancellationToken,
        paths: Option<Vec<PathBuf>>,
        secrets: Option<SecretRefresh>,
    ) -> Self {
        Self {
            rate_limits: RateLimits::new(&worker.rate_limits),
            worker,
            secrets: secrets.filter(|secrets| !secrets.interval.is_zero()),
            stale: BTreeSet::new(),
            status,
            shutdown,
            paths,
            managed: BTreeMap::new(),
            view: ConnectorView::default(),
            rejected: BTreeMap::new(),
            cluster: None,
        }
    }

    /// Cluster mode: the connectors come from the config topic (and the files are written to it).
    pub(crate) fn in_cluster(mut self, link: ClusterLink) -> Self {
        self.cluster = Some(link);
        self
    }

    pub(crate) fn view(&self) -> ConnectorView {
        self.view.clone()
    }

    /// Starts the connectors given at start-up, then serves commands and, with `paths`, re-reads them every
    /// `reload_interval`, until shutdown; then stops every connector in order.
    pub(crate) async fn run(
        mut self,
        initial: Vec<ConnectorConfig>,
        mut commands: mpsc::Receiver<Command>,
        reload_interval: Option<Duration>,
    ) {
        match self.cluster.as_mut().and_then(|link| link.snapshot.take()) {
            Some(snapshot) => {
                // The files are written to the config topic, and run from there like any other document.
                drop(initial);
                self.resync(snapshot).await;
                self.sync_files().await;
            }
            None => {
                for connector in initial {
                    let text = std::fs::read_to_string(&connector.file).unwrap_or_default();
                    self.start(connector, text, Target::Running);
                }
            }
        }
        let ticker = |interval: Duration| {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker
        };
        let mut reload = reload_interval.map(ticker);
        let mut refresh = self.secrets.as_ref().map(|secrets| ticker(secrets.interval));
        let mut updates = self.cluster.as_mut().and_then(|link| link.updates.take());
        let mut expiry = self.cluster.as_ref().map(|_| ticker(Duration::from_secs(1)));
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                command = commands.recv() => match command {
                    Some(command) => self.handle(command).await,
                    None => break,
                },
                Some(update) = async {
                    match updates.as_mut() {
                        Some(updates) => updates.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    match update {
                        ConfigUpdate::Record { record, offset } => {
                            self.apply(record).await;
                            self.settle(Some(offset));
                        }
                        ConfigUpdate::Recreated(snapshot) => {
                            // The offsets awaited were the old topic's.
                            self.settle(None);
                            self.resync(snapshot).await;
                        }
                    }
                }
                _ = async { match reload.as_mut() { Some(ticker) => ticker.tick().await, None => std::future::pending().await } } => {
                    self.reload().await;
                }
                _ = async { match refresh.as_mut() { Some(ticker) => ticker.tick().await, None => std::future::pending().await } } => {
                    self.refresh_secrets().await;
                }
                _ = async { match expiry.as_mut() { Some(ticker) => ticker.tick().await, None => std::future::pending().await } } => {
                    self.expire_answers();
                }
            }
        }
        // The supervisors see the worker's shutdown token themselves; wait for them here so the worker's timeout
        // covers their orderly stop.
        for managed in self.managed.values_mut() {
            if let Some(task) = managed.task.take() {
                let _ = task.await;
            }
        }
    }

    fn publish(&self) {
        let connectors = self
            .managed
            .iter()
            .map(|(name, managed)| (name.clone(), managed.config.clone()))
            .collect();
        let unloadable = self.unloadable_types();
        *self.view.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Published { connectors, unloadable };
    }

    /// Starts (or, paused or stopped, only registers) a connector; returns its configuration as the API shows it.
    fn start(&mut self, connector: ConnectorConfig, text: String, target: Target) -> Arc<ConnectorConfig> {
        let name = connector.name.clone();
        let config = Arc::new(connector);
        let mut managed = Managed {
            config: config.clone(),
            text,
            target,
            stop: self.shutdown.child_token(),
            task: None,
        };
        match target {
            Target::Running => self.spawn(&mut managed),
            Target::Paused => self.status.set(&name, ConnectorState::Paused, None, 0),
            Target::Stopped => self.status.set(&name, ConnectorState::Stopped, None, 0),
        }
        self.managed.insert(name, managed);
        self.publish();
        config
    }

    fn spawn(&self, managed: &mut Managed) {
        let connector = managed.config.clone();
        let worker = self.worker.clone();
        let rate_limits = self.rate_limits.clone();
        self.status.set(&connector.name, ConnectorState::Unassigned, None, 0);
        managed.stop = self.shutdown.child_token();
        let supervisor = Supervisor {
            name: connector.name.clone(),
            kind: connector.kind.as_str(),
            factory: Arc::new(move || connectors::build(&connector, &worker, &rate_limits)),
            policy: self.worker.restart.clone(),
            status: self.status.clone(),
            worker_shutdown: self.shutdown.clone(),
        };
        managed.task = Some(tokio::spawn(supervisor.run(managed.stop.clone())));
    }

    /// Stops a running connector in order, within the worker's shutdown timeout.
    async fn halt(&self, managed: &mut Managed) {
        managed.stop.cancel();
        if let Some(mut task) = managed.task.take() {
            if tokio::time::timeout(self.worker.shutdown_timeout, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Act { name, action, reply } => {
                let Some(key) = self.key(&name).or_else(|| self.unloadable(&name)) else {
                    let _ = reply.send(Err(ControlError::NotFound(name)));
                    return;
                };
                if self.cluster.is_some() {
                    return self.act_in_cluster(&key, action, reply).await;
                }
                // Pause, resume, stop and restart are answered first (Kafka Connect answers 202 Accepted), since
                // stopping may take a while; a delete is answered once the file is gone.
                if matches!(action, Action::Delete) {
                    self.act(&key, action).await;
                    let _ = reply.send(Ok(()));
                } else {
                    let _ = reply.send(Ok(()));
                    self.act(&key, action).await;
                }
            }
            Command::Write {
                name,
                document,
                create,
                initial,
                reply,
            } => match self.write(name, document, create, initial).await {
                Ok(Written::Now(config, created)) => {
                    let _ = reply.send(Ok((config, created)));
                }
                Ok(Written::Later {
                    offset,
                    name,
                    loaded,
                    created,
                }) => self.answer_later(
                    offset,
                    Answer::Written {
                        name,
                        loaded,
                        created,
                        reply,
                    },
                ),
                Err(error) => {
                    let _ = reply.send(Err(error));
                }
            },
            Command::ChangeOffsets { name, changes, reply } => {
                let _ = reply.send(self.change_offsets(&name, changes).await);
            }
        }
    }

    /// The connector's key, found by its name as the API and the config topic give it.
    fn key(&self, name: &str) -> Option<ConnectorName> {
        self.managed.keys().find(|key| key.as_str() == name).cloned()
    }

    async fn act(&mut self, name: &ConnectorName, action: Action) {
        let Some(mut managed) = self.managed.remove(name) else {
            return;
        };
        match action {
            Action::Pause | Action::Stop => {
                self.halt(&mut managed).await;
                let (target, state) = match action {
                    Action::Pause => (Target::Paused, ConnectorState::Paused),
                    _ => (Target::Stopped, ConnectorState::Stopped),
                };
                managed.target = target;
                self.status.set(name, state, None, 0);
            }
            Action::Resume => {
                if managed.target != Target::Running {
                    managed.target = Target::Running;
                    self.spawn(&mut managed);
                }
            }
            Action::Restart => {
                self.halt(&mut managed).await;
                managed.target = Target::Running;
                self.spawn(&mut managed);
            }
            Action::Delete => {
                self.halt(&mut managed).await;
                // In cluster mode the connector lives in the config topic, which the delete was written to.
                let removed = match self.cluster {
                    Some(_) => Ok(()),
                    None => std::fs::remove_file(&managed.config.file),
                };
                if let Err(error) = removed {
                    emit(ConnectorFileRejected {
                        file: &managed.config.file.display().to_string(),
                        error: &format!("cannot remove the file: {error}"),
                    });
                }
                self.status.remove(name);
                emit(ConnectorRemoved {
                    connector: name.as_str(),
                });
                self.publish();
                return;
            }
        }
        self.managed.insert(name.clone(), managed);
        self.publish();
    }

    /// Offsets change only while the connector is stopped, as Kafka Connect requires; commands run one at a time,
    /// so it cannot be resumed meanwhile.
    async fn change_offsets(&self, name: &str, changes: Vec<OffsetChange>) -> Result<(), ControlError> {
        let managed = self
            .key(name)
            .and_then(|key| self.managed.get(&key))
            .ok_or_else(|| ControlError::NotFound(name.to_owned()))?;
        if managed.target != Target::Stopped {
            return Err(ControlError::Invalid(format!(
                "Connectors must be in the STOPPED state before their offsets can be modified. This can be done \
                 for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"
            )));
        }
        if let Some(link) = &self.cluster {
            let running = link.peers.live_not_in(name, ConnectorState::Stopped.as_str());
            if !running.is_empty() {
                return Err(ControlError::Conflict(format!(
                    "Connector {name} is not yet STOPPED on worker(s) {}; try again once every worker reports it \
                     stopped",
                    running.join(", ")
                )));
            }
        }
        let connector = managed.config.clone();
        let worker = self.worker.clone();
        let change = move || match connector.settings.consumer_group(&connector.name) {
            Some(group) => crate::kafka::committed::change_offsets(&group, &worker, &changes),
            None => Err(format!(
                "a {} keeps no offsets: it has nothing to alter or reset",
                connector.kind.as_str()
            )),
        };
        tokio::task::spawn_blocking(change)
            .await
            .map_err(|panic| ControlError::Failed(panic.to_string()))?
            .map_err(ControlError::Failed)
    }

    /// The directory new connector files go to: the first directory among the `--connectors` paths.
    fn directory(&self) -> Option<&Path> {
        self.paths
            .as_ref()?
            .iter()
            .map(PathBuf::as_path)
            .find(|path| path.is_dir())
    }

    async fn write(
        &mut self,
        name: Option<String>,
        mut value: serde_json::Value,
        create: bool,
        initial: Option<Target>,
    ) -> Result<Written, ControlError> {
        let object = value
            .as_object_mut()
            .ok_or_else(|| ControlError::Invalid("the body must be an object".into()))?;
        match (&name, object.get("name").and_then(|named| named.as_str())) {
            (Some(path_name), Some(named)) if path_name != named => {
                return Err(ControlError::Invalid(format!(
                    "the body names connector `{named}`, the path `{path_name}`"
                )))
            }
            (Some(path_name), None) => {
                object.insert("name".into(), serde_json::Value::String(path_name.clone()));
            }
            (None, None) => return Err(ControlError::Invalid("the body has no `name`".into())),
            _ => {}
        }
        let connector_name = object
            .get("name")
            .and_then(|named| named.as_str())
            .unwrap_or_default()
            .to_owned();
        let existing = self
            .key(&connector_name)
            .and_then(|key| self.managed.get(&key))
            .map(|managed| (managed.config.file.clone(), managed.target));
        if create && existing.is_some() {
            return Err(ControlError::Conflict(format!(
                "Connector {connector_name} already exists"
            )));
        }
        if self.cluster.is_some() {
            return self
                .write_in_cluster(&connector_name, value, existing.is_none(), initial)
                .await;
        }
        let file = match &existing {
            Some((file, _)) => file.clone(),
            None => self
                .directory()
                .ok_or_else(|| {
                    ControlError::Conflict("the worker was not started with a connectors directory to write to".into())
                })?
                .join(format!("{connector_name}.yaml")),
        };
        if existing.is_none() && file.exists() {
            return Err(ControlError::Conflict(format!(
                "{} exists but holds another connector",
                file.display()
            )));
        }
        let text = serde_norway::to_string(&value)
            .map_err(|error| ControlError::Invalid(format!("cannot write the document as YAML: {error}")))?;
        // Checked as the file it will become, next to it, then moved into place in one step.
        let staged = file.with_extension("yaml.new");
        std::fs::write(&staged, &text)
            .map_err(|error| ControlError::Conflict(format!("cannot write {}: {error}", staged.display())))?;
        let loaded = match connectors::load_connector(&staged, Some(&self.worker)) {
            Ok(loaded) => loaded,
            Err(error) => {
                let _ = std::fs::remove_file(&staged);
                return Err(ControlError::Invalid(error.message));
            }
        };
        std::fs::rename(&staged, &file)
            .map_err(|error| ControlError::Conflict(format!("cannot write {}: {error}", file.display())))?;
        let loaded = ConnectorConfig { file, ..loaded };
        self.rejected.remove(&loaded.file);
        let target = existing
            .as_ref()
            .map_or(initial.unwrap_or(Target::Running), |(_, target)| *target);
        if let Some(mut managed) = self.managed.remove(&loaded.name) {
            self.halt(&mut managed).await;
        }
        let created = existing.is_none();
        Ok(Written::Now(self.start(loaded, text, target), created))
    }

    /// Reads the AWS secrets again. A changed one used by the worker file reloads it and restarts every connector; one
    /// used by connector files reloads those files. A worker file that no longer loads is reported and the running
    /// configuration kept.
    async fn refresh_secrets(&mut self) {
        let Some(secrets) = &self.secrets else {
            return;
        };
        let store = secrets.store.clone();
        let worker_file = secrets.worker_file.clone();
        let Ok(changed) = tokio::task::spawn_blocking(move || store.refresh()).await else {
            return;
        };
        if changed.is_empty() {
            return;
        }
        for reference in &changed {
            emit(SecretChanged { reference });
        }
        let uses_changed = |text: &str| changed.iter().any(|reference| text.contains(reference.as_str()));
        let worker_uses_changed = std::fs::read_to_string(&worker_file).is_ok_and(|text| uses_changed(&text));
        let mut restart_all = false;
        if worker_uses_changed {
            match config::load_worker(&worker_file) {
                Ok(worker) => {
                    self.worker = Arc::new(worker);
                    restart_all = true;
                }
                Err(error) => self.report(&error),
            }
        }
        let stale: Vec<PathBuf> = self
            .managed
            .values()
            .filter(|managed| restart_all || uses_changed(&managed.text))
            .map(|managed| managed.config.file.clone())
            .collect();
        self.stale.extend(stale);
        self.reload().await;
    }

    /// Re-reads the connector paths: a new file starts its connector, an edited one restarts it, a removed one
    /// stops it. A file that does not load is reported, and the running version, if any, is kept.
    async fn reload(&mut self) {
        if self.cluster.is_some() {
            return self.reload_in_cluster().await;
        }
        let Some(paths) = self.paths.clone() else {
            return;
        };
        let files = match connectors::connector_files(&paths) {
            Ok(files) => files,
            Err(error) => return self.report(&error),
        };
        let mut seen = Vec::new();
        for file in &files {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            let current = self.managed.values().find(|managed| &managed.config.file == file);
            if current.is_some_and(|managed| managed.text == text) && !self.stale.contains(file) {
                seen.push(file.clone());
                continue;
            }
            if self.rejected.get(file) == Some(&text) {
                seen.push(file.clone());
                continue;
            }
            match connectors::load_connector(file, Some(&self.worker)) {
                Err(error) => {
                    self.report(&error);
                    self.rejected.insert(file.clone(), text);
                    seen.push(file.clone());
                }
                Ok(loaded) => {
                    let clash = self
                        .managed
                        .get(&loaded.name)
                        .is_some_and(|other| &other.config.file != file);
                    if clash {
                        self.report(&ConfigError::new(
                            file,
                            format!("name: connector `{}` is already defined in another file", loaded.name),
                        ));
                        self.rejected.insert(file.clone(), text);
                        seen.push(file.clone());
                        continue;
                    }
                    self.rejected.remove(file);
                    let previous = self
                        .managed
                        .iter()
                        .find(|(_, managed)| &managed.config.file == file)
                        .map(|(name, managed)| (name.clone(), managed.target));
                    let mut target = Target::Running;
                    if let Some((name, previous_target)) = previous {
                        target = previous_target;
                        if let Some(mut managed) = self.managed.remove(&name) {
                            self.halt(&mut managed).await;
                        }
                        if name != loaded.name {
                            self.status.remove(&name);
                        }
                    }
                    self.start(loaded, text, target);
                    seen.push(file.clone());
                }
            }
        }
        let gone: Vec<ConnectorName> = self
            .managed
            .iter()
            .filter(|(_, managed)| !seen.contains(&managed.config.file))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some(mut managed) = self.managed.remove(&name) {
                self.halt(&mut managed).await;
            }
            self.status.remove(&name);
            emit(ConnectorRemoved {
                connector: name.as_str(),
            });
        }
        self.rejected.retain(|file, _| files.contains(file));
        self.stale.clear();
        self.publish();
    }

    fn report(&self, error: &ConfigError) {
        emit(ConnectorFileRejected {
            file: &error.file.display().to_string(),
            error: &error.message,
        });
    }
}

/// A controller with its command channel.
pub(crate) fn channel() -> (ControlHandle, mpsc::Receiver<Command>) {
    let (commands, receiver) = mpsc::channel(64);
    (ControlHandle { commands }, receiver)
}
