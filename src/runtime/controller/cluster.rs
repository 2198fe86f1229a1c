//! Cluster mode's side of the controller: changes written to the config topic and applied here, the topic's records
//! applied as they are read, the connector files written to it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{Action, ControlError, Controller, Target};
use crate::config::{ClusterFiles, ConfigError, ConnectorName, ConnectorType};
use crate::connectors::{self, ConnectorConfig};
use crate::runtime::cluster::{ConfigRecord, ConfigUpdate, ConfigWriter, Peers, Snapshot};
use crate::runtime::status::ConnectorState;
use crate::telemetry::{emit, ClusterFileWritten, ConnectorRemoved};

/// What the controller keeps in cluster mode.
pub(crate) struct ClusterLink {
    pub(crate) writer: ConfigWriter,
    pub(crate) peers: Peers,
    pub(crate) files: ClusterFiles,
    /// The config topic as read at start; taken when the controller starts.
    pub(crate) snapshot: Option<Snapshot>,
    /// The config topic's records as read since, in order; taken when the controller starts.
    pub(super) updates: Option<mpsc::Receiver<ConfigUpdate>>,
    /// The target states the config topic holds; a connector without one runs.
    targets: BTreeMap<String, Target>,
    /// The config topic's documents this worker cannot load (FAILED here, with the reason): kept so that this
    /// worker's API still pauses, resumes, stops, restarts and deletes them for the cluster, as it does those it
    /// runs, and so that a restart tries loading again.
    unloadable: BTreeMap<String, serde_json::Value>,
    /// Each connector file's text when it was last written to the config topic (or rejected), to notice edits.
    written: BTreeMap<PathBuf, String>,
    /// API calls answered once the record they wrote, at this offset, is read back and applied here: so that what
    /// a client reads after the answer is the cluster's state, in the topic's order.
    pending: Vec<Owed>,
}

/// How long an API call waits for its record to be read back before it is told so.
const READ_BACK: Duration = Duration::from_secs(30);

/// An answer owed, for the record at `offset`, until `deadline`.
struct Owed {
    offset: i64,
    deadline: Instant,
    answer: Answer,
}

/// An answer owed to an API call, given once its record is applied.
pub(super) enum Answer {
    Acted(oneshot::Sender<Result<(), ControlError>>),
    Written {
        name: String,
        /// The document as checked, answered if it is no longer running here once applied.
        loaded: Arc<ConnectorConfig>,
        created: bool,
        reply: oneshot::Sender<Result<(Arc<ConnectorConfig>, bool), ControlError>>,
    },
}

/// What a write through the API did: done (file mode), or written to the config topic at `offset`.
pub(super) enum Written {
    Now(Arc<ConnectorConfig>, bool),
    Later {
        offset: i64,
        name: String,
        loaded: Arc<ConnectorConfig>,
        created: bool,
    },
}

impl ClusterLink {
    pub(crate) fn new(
        writer: ConfigWriter,
        peers: Peers,
        files: ClusterFiles,
        snapshot: Snapshot,
        updates: mpsc::Receiver<ConfigUpdate>,
    ) -> Self {
        Self {
            writer,
            peers,
            files,
            snapshot: Some(snapshot),
            updates: Some(updates),
            targets: BTreeMap::new(),
            unloadable: BTreeMap::new(),
            written: BTreeMap::new(),
            pending: Vec::new(),
        }
    }
}

/// A config topic document as the text a connector is loaded from; the same document gives the same text, so that
/// a record read back after this worker applied it changes nothing.
fn document_text(document: &serde_json::Value) -> String {
    serde_json::to_string_pretty(document).unwrap_or_default()
}

impl Controller {
    /// Writes the action to the config topic; every worker, this one too, applies it as it reads it. Answered once
    /// written, as Kafka Connect answers (a delete: once applied here).
    pub(super) async fn act_in_cluster(
        &mut self,
        key: &ConnectorName,
        action: Action,
        reply: oneshot::Sender<Result<(), ControlError>>,
    ) {
        let Some(link) = &self.cluster else {
            return;
        };
        let name = key.as_str().to_owned();
        let target = |target| ConfigRecord::Target {
            name: name.clone(),
            target: Some(target),
        };
        let records = match action {
            Action::Pause => vec![target(Target::Paused)],
            Action::Resume => vec![target(Target::Running)],
            Action::Stop => vec![target(Target::Stopped)],
            Action::Restart => vec![ConfigRecord::Restart {
                name: name.clone(),
                by: Some(link.writer.worker_id.clone()),
            }],
            Action::Delete => vec![
                ConfigRecord::Target {
                    name: name.clone(),
                    target: None,
                },
                ConfigRecord::Restart {
                    name: name.clone(),
                    by: None,
                },
                ConfigRecord::Connector {
                    name: name.clone(),
                    document: None,
                },
            ],
        };
        let mut last = 0;
        for record in &records {
            match link.writer.write(record).await {
                Ok(offset) => last = offset,
                Err(error) => {
                    let _ = reply.send(Err(ControlError::Failed(error)));
                    return;
                }
            }
        }
        if matches!(action, Action::Delete) {
            self.answer_later(last, Answer::Acted(reply));
        } else {
            let _ = reply.send(Ok(()));
        }
    }

    pub(super) fn answer_later(&mut self, offset: i64, answer: Answer) {
        if let Some(link) = self.cluster.as_mut() {
            link.pending.push(Owed {
                offset,
                deadline: Instant::now() + READ_BACK,
                answer,
            });
        }
    }

    /// Tells the API calls whose record has not been read back within `READ_BACK` (the config topic became
    /// unreadable right after the write) that it was written but is not applied yet.
    pub(super) fn expire_answers(&mut self) {
        let Some(link) = self.cluster.as_mut() else {
            return;
        };
        let now = Instant::now();
        let (expired, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut link.pending)
            .into_iter()
            .partition(|owed| owed.deadline <= now);
        link.pending = waiting;
        for owed in expired {
            let failure = ControlError::Failed(format!(
                "written to the config topic at offset {}, but not read back within {READ_BACK:?}: each worker \
                 applies it when it reads it",
                owed.offset
            ));
            match owed.answer {
                Answer::Acted(reply) => {
                    let _ = reply.send(Err(failure));
                }
                Answer::Written { reply, .. } => {
                    let _ = reply.send(Err(failure));
                }
            }
        }
    }

    /// Gives the answers owed for records up to `applied`; `None`: all of them.
    pub(super) fn settle(&mut self, applied: Option<i64>) {
        let Some(link) = self.cluster.as_mut() else {
            return;
        };
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut link.pending)
            .into_iter()
            .partition(|owed| applied.is_none_or(|applied| owed.offset <= applied));
        link.pending = waiting;
        for Owed { answer, .. } in due {
            match answer {
                Answer::Acted(reply) => {
                    let _ = reply.send(Ok(()));
                }
                Answer::Written {
                    name,
                    loaded,
                    created,
                    reply,
                } => {
                    let config = self
                        .key(&name)
                        .and_then(|key| self.managed.get(&key))
                        .map_or(loaded, |managed| managed.config.clone());
                    let _ = reply.send(Ok((config, created)));
                }
            }
        }
    }

    /// Applies a record of the config topic.
    pub(super) async fn apply(&mut self, record: ConfigRecord) {
        match record {
            ConfigRecord::Connector { name, document } => self.apply_document(&name, document).await,
            ConfigRecord::Target { name, target } => self.apply_target(&name, target).await,
            // A forgotten request asks nothing.
            ConfigRecord::Restart { by: None, .. } => {}
            ConfigRecord::Restart { name, by: Some(_) } => {
                if let Some(key) = self.key(&name) {
                    self.restart_if_running(&key).await;
                } else if let Some(document) = self.unloadable_document(&name) {
                    self.apply_document(&name, Some(document)).await;
                }
            }
        }
    }

    /// Restarts the connector unless the cluster wants it paused or stopped.
    async fn restart_if_running(&mut self, key: &ConnectorName) {
        if self
            .managed
            .get(key)
            .is_some_and(|managed| managed.target == Target::Running)
        {
            self.act(key, Action::Restart).await;
        }
    }

    /// Loads a document of the config topic as the connector `name`; the error names the topic and connector.
    fn load_document(&self, name: &str, text: &str) -> Result<ConnectorConfig, ConfigError> {
        let topic = self.cluster.as_ref().map_or("", |link| link.writer.topic());
        let origin = PathBuf::from(format!("config topic {topic}, connector {name}"));
        let loaded = connectors::load_connector_text(&origin, text, Some(&self.worker))?;
        if loaded.name.as_str() != name {
            return Err(ConfigError::new(
                &origin,
                format!("name: the document names connector `{}`", loaded.name),
            ));
        }
        Ok(loaded)
    }

    /// Runs a document of the config topic (or removes its connector, `None`); an unchanged one is left running.
    /// A document that does not load is reported, and the running version kept; with none running, the connector is
    /// FAILED here with the reason, so that every worker's status shows which worker cannot run it and why.
    async fn apply_document(&mut self, name: &str, document: Option<serde_json::Value>) {
        let key = self.key(name);
        let Some(document) = document else {
            match key {
                Some(key) => self.act(&key, Action::Delete).await,
                None => self.forget_rejected(name),
            }
            return;
        };
        let text = document_text(&document);
        if key
            .as_ref()
            .and_then(|key| self.managed.get(key))
            .is_some_and(|managed| managed.text == text)
        {
            return;
        }
        let loaded = match self.load_document(name, &text) {
            Ok(loaded) => loaded,
            Err(error) => {
                self.report(&error);
                if key.is_none() {
                    if let Some(link) = self.cluster.as_mut() {
                        link.unloadable.insert(name.to_owned(), document);
                    }
                    if let Ok(name) = ConnectorName::try_from(name.to_owned()) {
                        self.status
                            .set(&name, ConnectorState::Failed, Some(error.to_string()), 0);
                    }
                    self.publish();
                }
                return;
            }
        };
        if let Some(link) = self.cluster.as_mut() {
            link.unloadable.remove(name);
        }
        let target = self
            .cluster
            .as_ref()
            .and_then(|link| link.targets.get(name).copied())
            .unwrap_or(Target::Running);
        if let Some(mut managed) = key.and_then(|key| self.managed.remove(&key)) {
            self.halt(&mut managed).await;
        }
        self.start(loaded, text, target);
    }

    /// The name of a config topic document this worker cannot load, as the API's actions take it.
    pub(super) fn unloadable(&self, name: &str) -> Option<ConnectorName> {
        self.cluster
            .as_ref()
            .filter(|link| link.unloadable.contains_key(name))
            .and_then(|_| ConnectorName::try_from(name.to_owned()).ok())
    }

    fn unloadable_document(&self, name: &str) -> Option<serde_json::Value> {
        self.cluster.as_ref()?.unloadable.get(name).cloned()
    }

    /// The documents this worker cannot load, each with the type it names (`type`, or `connector.class` in Kafka
    /// Connect's form), for the API's status answers.
    pub(super) fn unloadable_types(&self) -> BTreeMap<ConnectorName, Option<ConnectorType>> {
        let Some(link) = &self.cluster else {
            return BTreeMap::new();
        };
        link.unloadable
            .iter()
            .filter_map(|(name, document)| {
                let named = document
                    .get("type")
                    .or_else(|| document.get("config")?.get("connector.class"))
                    .and_then(serde_json::Value::as_str)
                    .and_then(crate::config::flat::connector_type);
                Some((ConnectorName::try_from(name.clone()).ok()?, named))
            })
            .collect()
    }

    /// A connector deleted that this worker could not load: its FAILED state goes too.
    fn forget_rejected(&mut self, name: &str) {
        if let Some(link) = self.cluster.as_mut() {
            if link.unloadable.remove(name).is_some() {
                self.publish();
            }
        }
        if let Ok(name) = ConnectorName::try_from(name.to_owned()) {
            if self.status.get(&name).is_some() {
                self.status.remove(&name);
                emit(ConnectorRemoved {
                    connector: name.as_str(),
                });
            }
        }
    }

    async fn apply_target(&mut self, name: &str, target: Option<Target>) {
        let Some(link) = self.cluster.as_mut() else {
            return;
        };
        match target {
            Some(target) => link.targets.insert(name.to_owned(), target),
            None => link.targets.remove(name),
        };
        let Some(key) = self.key(name) else {
            return;
        };
        let wanted = target.unwrap_or(Target::Running);
        if self.managed.get(&key).is_some_and(|managed| managed.target == wanted) {
            return;
        }
        let action = match wanted {
            Target::Running => Action::Resume,
            Target::Paused => Action::Pause,
            Target::Stopped => Action::Stop,
        };
        self.act(&key, action).await;
    }

    /// Applies all the config topic holds. A connector this worker runs that the topic lacks (it was deleted and
    /// created again, empty) is written back, with its target state, rather than removed: only a delete removes.
    pub(super) async fn resync(&mut self, snapshot: Snapshot) {
        let Snapshot { documents, targets } = snapshot;
        for (name, target) in &targets {
            self.apply_target(name, Some(*target)).await;
        }
        let lost: Vec<(String, String, Target)> = self
            .managed
            .iter()
            .filter(|(name, _)| !documents.contains_key(name.as_str()))
            .map(|(name, managed)| (name.to_string(), managed.text.clone(), managed.target))
            .collect();
        let gone: Vec<String> = self
            .cluster
            .iter()
            .flat_map(|link| link.unloadable.keys())
            .filter(|name| !documents.contains_key(name.as_str()))
            .cloned()
            .collect();
        for name in gone {
            self.forget_rejected(&name);
        }
        for (name, document) in documents {
            self.apply_document(&name, Some(document)).await;
        }
        let Some(link) = &self.cluster else {
            return;
        };
        for (name, text, target) in lost {
            let Ok(document) = serde_json::from_str(&text) else {
                continue;
            };
            let records = [
                ConfigRecord::Target {
                    name: name.clone(),
                    target: Some(target),
                },
                ConfigRecord::Connector {
                    name: name.clone(),
                    document: Some(document),
                },
            ];
            for record in &records {
                if let Err(error) = link.writer.write(record).await {
                    self.report(&ConfigError::new(
                        Path::new(link.writer.topic()),
                        format!("connector {name} could not be written back: {error}"),
                    ));
                }
            }
        }
    }

    /// Cluster mode with `files: write`: writes each connector file that is new or changed since it was last
    /// written to the config topic. A file that does not load is reported once per version.
    pub(super) async fn sync_files(&mut self) {
        let Some(paths) = self.paths.clone() else {
            return;
        };
        if self
            .cluster
            .as_ref()
            .is_none_or(|link| link.files == ClusterFiles::Ignore)
        {
            return;
        }
        let files = match connectors::connector_files(&paths) {
            Ok(files) => files,
            Err(error) => return self.report(&error),
        };
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            if self
                .cluster
                .as_ref()
                .is_some_and(|link| link.written.get(&file) == Some(&text))
            {
                continue;
            }
            let written = connectors::load_connector(&file, Some(&self.worker)).and_then(|loaded| {
                let document: serde_json::Value =
                    serde_norway::from_str(&text).map_err(|error| ConfigError::new(&file, error.to_string()))?;
                Ok((loaded.name, document))
            });
            let (name, document) = match written {
                Ok(written) => written,
                Err(error) => {
                    self.report(&error);
                    if let Some(link) = self.cluster.as_mut() {
                        link.written.insert(file, text);
                    }
                    continue;
                }
            };
            let unchanged = self
                .managed
                .get(&name)
                .is_some_and(|managed| managed.text == document_text(&document));
            let Some(link) = self.cluster.as_mut() else {
                return;
            };
            if !unchanged {
                let record = ConfigRecord::Connector {
                    name: name.to_string(),
                    document: Some(document),
                };
                if let Err(error) = link.writer.write(&record).await {
                    // Not remembered as written: the next reload tries again.
                    self.report(&ConfigError::new(&file, error));
                    continue;
                }
                emit(ClusterFileWritten {
                    file: &file.display().to_string(),
                    connector: name.as_str(),
                });
            }
            // Run as every worker runs it: when it is read back.
            link.written.insert(file, text);
        }
    }

    /// Checks the document and writes it to the config topic (a new connector's `initial` target state first, as
    /// Kafka Connect does); answered once it is read back and applied here.
    pub(super) async fn write_in_cluster(
        &mut self,
        name: &str,
        document: serde_json::Value,
        created: bool,
        initial: Option<Target>,
    ) -> Result<Written, ControlError> {
        let loaded = self
            .load_document(name, &document_text(&document))
            .map_err(|error| ControlError::Invalid(error.message))?;
        let Some(link) = &self.cluster else {
            return Err(ControlError::ShuttingDown);
        };
        if let Some(initial) = initial.filter(|_| created) {
            let record = ConfigRecord::Target {
                name: name.to_owned(),
                target: Some(initial),
            };
            link.writer.write(&record).await.map_err(ControlError::Failed)?;
        }
        let record = ConfigRecord::Connector {
            name: name.to_owned(),
            document: Some(document),
        };
        let offset = link.writer.write(&record).await.map_err(ControlError::Failed)?;
        Ok(Written::Later {
            offset,
            name: name.to_owned(),
            loaded: Arc::new(loaded),
            created,
        })
    }

    /// Cluster mode: files changed since written go to the config topic; connectors using a changed secret are
    /// loaded again from their documents.
    pub(super) async fn reload_in_cluster(&mut self) {
        self.sync_files().await;
        let stale: Vec<ConnectorName> = self
            .managed
            .iter()
            .filter(|(_, managed)| self.stale.contains(&managed.config.file))
            .map(|(name, _)| name.clone())
            .collect();
        self.stale.clear();
        for name in stale {
            let Some(mut managed) = self.managed.remove(&name) else {
                continue;
            };
            match self.load_document(name.as_str(), &managed.text) {
                Ok(loaded) => {
                    self.halt(&mut managed).await;
                    self.start(loaded, managed.text, managed.target);
                }
                Err(error) => {
                    self.report(&error);
                    self.managed.insert(name, managed);
                }
            }
        }
    }
}
