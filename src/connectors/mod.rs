//! The connector types, and the one registry that maps a `type:` to its settings and its running task.
//! Adding a connector type touches this file and the type's own module, nothing else.

mod common;
mod file;
pub mod preview;
pub mod processor;
pub mod receiver;
pub mod settings;
pub mod sink;
pub mod source;
pub mod threshold;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use crate::config::ConnectorType;
pub use crate::kafka::ActiveTopics;
pub use file::{
    check_document, connector_files, import_connect, is_yaml, load_connector, load_connector_text, load_connectors,
    ConnectorConfig,
};

use crate::config::{ConnectorDocument, ConnectorName, ErrorsConfig, InvalidSetting, WorkerConfig};
use crate::rate_limit::RateLimits;
use crate::transform::Chain;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a running connector is given.
pub(crate) struct ConnectorContext {
    /// Cancelled on shutdown: stop taking input, settle or hand back in-flight work, commit, return `Ok`.
    pub(crate) shutdown: CancellationToken,
    /// Marked once the connector has moved records: a run that did is counted as healthy, however short.
    pub(crate) progress: Progress,
    /// The topics the connector reads or writes records of, kept across its restarts.
    pub(crate) topics: ActiveTopics,
    /// Marked once the connector has built its parts and takes work: only then is it RUNNING.
    pub(crate) started: Started,
    /// The whole worker's shutdown, cancelled with `shutdown` when the worker stops but not when only this
    /// connector does.
    pub(crate) worker_shutdown: CancellationToken,
}

impl ConnectorContext {
    /// Whether the connector stops while its worker goes on (paused, stopped, deleted, restarted): its consumer
    /// then leaves its group, which a static member does not do when it closes, so that the group can empty (as
    /// KIP-875's offset changes need) and its partitions move at once.
    pub(crate) fn stops_alone(&self) -> bool {
        self.shutdown.is_cancelled() && !self.worker_shutdown.is_cancelled()
    }
}

/// Tells the supervisor that the attempt has started: its clients are made, its queue provisioned, its port bound.
/// Until then the connector is not RUNNING, so that the worker is not ready (`GET /ready`, systemd's `READY=1`)
/// while a connector may still fail to start.
#[derive(Clone)]
pub(crate) struct Started(Arc<dyn Fn() + Send + Sync>);

impl Started {
    pub(crate) fn new(on_start: impl Fn() + Send + Sync + 'static) -> Self {
        Self(Arc::new(on_start))
    }

    pub(crate) fn mark(&self) {
        (self.0)();
    }
}

/// Whether a connector's run has moved records; shared between the run and its supervisor.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress(Arc<AtomicBool>);

impl Progress {
    pub(crate) fn made(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub(crate) fn was_made(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// One attempt at running a connector. An `Err` is a failure the supervisor restarts after a backoff.
#[async_trait]
pub(crate) trait Connector: Send {
    async fn run(self: Box<Self>, context: ConnectorContext) -> Result<(), BoxError>;
}

/// The type-specific settings of a connector file.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ConnectorSettings {
    EventbridgeSink(Box<sink::SinkConfig>),
    EventbridgeSource(Box<source::SourceConfig>),
    RestProduceReceiver(Box<receiver::ReceiverConfig>),
    ThresholdAlert(Box<threshold::ThresholdConfig>),
    TopicProcessor(Box<processor::ProcessorConfig>),
}

impl ConnectorSettings {
    /// The consumer group a connector that reads Kafka reads with; `None` for those that only write to it.
    pub(crate) fn consumer_group(&self, name: &ConnectorName) -> Option<crate::kafka::committed::Group<'_>> {
        match self {
            Self::EventbridgeSink(sink) => Some(crate::kafka::committed::Group {
                id: sink.group_id(name),
                topics: &sink.topics,
                topics_regex: sink.topics_regex.as_deref(),
                overrides: &sink.consumer_override,
            }),
            Self::ThresholdAlert(threshold) => Some(crate::kafka::committed::Group {
                id: threshold.group_id(name),
                topics: &threshold.topics,
                topics_regex: None,
                overrides: &threshold.consumer_override,
            }),
            Self::TopicProcessor(processor) => Some(crate::kafka::committed::Group {
                id: processor.group_id(name),
                topics: &processor.topics,
                topics_regex: None,
                overrides: &processor.consumer_override,
            }),
            Self::EventbridgeSource(_) | Self::RestProduceReceiver(_) => None,
        }
    }
}

/// The second pass of `connectors::load_connector`: the whole document, read as the given type's document.
pub(crate) fn parse_document<'de, D: serde::Deserializer<'de>>(
    kind: ConnectorType,
    document: D,
) -> Result<ConnectorDocument<ConnectorSettings>, D::Error> {
    fn read<'de, S: serde::Deserialize<'de>, D: serde::Deserializer<'de>>(
        document: D,
        settings: impl FnOnce(S) -> ConnectorSettings,
    ) -> Result<ConnectorDocument<ConnectorSettings>, D::Error> {
        let document = ConnectorDocument::<S>::deserialize(document)?;
        Ok(ConnectorDocument {
            name: document.name,
            kind: document.kind,
            config: settings(document.config),
            transforms: document.transforms,
            errors: document.errors,
        })
    }
    match kind {
        ConnectorType::EventbridgeSink => read(document, |config| ConnectorSettings::EventbridgeSink(Box::new(config))),
        ConnectorType::EventbridgeSource => read(document, |config| {
            ConnectorSettings::EventbridgeSource(Box::new(config))
        }),
        ConnectorType::RestProduceReceiver => read(document, |config| {
            ConnectorSettings::RestProduceReceiver(Box::new(config))
        }),
        ConnectorType::ThresholdAlert => read(document, |config| ConnectorSettings::ThresholdAlert(Box::new(config))),
        ConnectorType::TopicProcessor => read(document, |config| ConnectorSettings::TopicProcessor(Box::new(config))),
    }
}

/// Rules serde cannot express. Those that need the worker configuration (e.g. that a named rate limit group
/// exists) run only when it is given.
pub(crate) fn check(settings: &ConnectorSettings, worker: Option<&WorkerConfig>) -> Result<(), InvalidSetting> {
    match settings {
        ConnectorSettings::EventbridgeSink(settings) => settings.check(worker),
        ConnectorSettings::EventbridgeSource(settings) => settings.check(worker),
        ConnectorSettings::RestProduceReceiver(settings) => settings.check(),
        ConnectorSettings::ThresholdAlert(settings) => settings.check(worker),
        ConnectorSettings::TopicProcessor(settings) => settings.check(worker),
    }
}

/// Builds a fresh task for one attempt at running `connector`.
pub(crate) fn build(
    connector: &ConnectorConfig,
    worker: &WorkerConfig,
    rate_limits: &RateLimits,
) -> Result<Box<dyn Connector>, BoxError> {
    let parts = ConnectorParts {
        name: connector.name.clone(),
        errors: connector.errors.clone(),
        transforms: connector.transforms.for_run(),
        worker: worker.clone(),
        rate_limits: rate_limits.clone(),
    };
    Ok(match &connector.settings {
        ConnectorSettings::EventbridgeSink(settings) => Box::new(sink::SinkConnector::new(parts, (**settings).clone())),
        ConnectorSettings::EventbridgeSource(settings) => {
            Box::new(source::SourceConnector::new(parts, (**settings).clone()))
        }
        ConnectorSettings::RestProduceReceiver(settings) => {
            Box::new(receiver::ReceiverConnector::new(parts, (**settings).clone()))
        }
        ConnectorSettings::ThresholdAlert(settings) => {
            Box::new(threshold::ThresholdConnector::new(parts, (**settings).clone()))
        }
        ConnectorSettings::TopicProcessor(settings) => {
            Box::new(processor::ProcessorConnector::new(parts, (**settings).clone()))
        }
    })
}

/// What every connector is built from besides its own settings.
#[derive(Debug, Clone)]
pub(crate) struct ConnectorParts {
    pub(crate) name: ConnectorName,
    pub(crate) errors: ErrorsConfig,
    pub(crate) transforms: Chain,
    pub(crate) worker: WorkerConfig,
    /// The worker's shared rate limit groups.
    pub(crate) rate_limits: RateLimits,
}
