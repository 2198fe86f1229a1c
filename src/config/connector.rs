//! The parts of a connector file every connector type shares: its name, its type, and its errors policy.
//! The type's own settings live under `config:` and are defined by the type (see `crate::connectors`); the
//! type names are here, as what a file may say.

use super::InvalidSetting;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectorType {
    /// Kafka topics to an EventBridge bus.
    EventbridgeSink,
    /// An EventBridge bus, through a rule's SQS target, to a Kafka topic.
    EventbridgeSource,
    /// An HTTP endpoint speaking the Confluent REST Produce API v3 (for API destinations) to Kafka topics.
    RestProduceReceiver,
    /// Kafka to Kafka: a record for each (window, group) whose count is over a threshold.
    ThresholdAlert,
    /// Kafka to Kafka: records through the transforms (mask, filter, dedupe) to an output topic, exactly once.
    TopicProcessor,
}

impl ConnectorType {
    pub(crate) const ALL: [ConnectorType; 5] = [
        Self::EventbridgeSink,
        Self::EventbridgeSource,
        Self::RestProduceReceiver,
        Self::ThresholdAlert,
        Self::TopicProcessor,
    ];

    /// Kafka Connect's plugin type: `sink` reads from Kafka, `source` writes to it.
    pub(crate) fn direction(self) -> &'static str {
        match self {
            Self::EventbridgeSink | Self::ThresholdAlert | Self::TopicProcessor => "sink",
            Self::EventbridgeSource | Self::RestProduceReceiver => "source",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventbridgeSink => "eventbridge-sink",
            Self::EventbridgeSource => "eventbridge-source",
            Self::RestProduceReceiver => "rest-produce-receiver",
            Self::ThresholdAlert => "threshold-alert",
            Self::TopicProcessor => "topic-processor",
        }
    }

    /// The class name Kafka Connect's tools show and accept in `connector.class`.
    pub(crate) fn class(self) -> &'static str {
        match self {
            Self::EventbridgeSink => "dev.ebconnect.EventBridgeSinkConnector",
            Self::EventbridgeSource => "dev.ebconnect.EventBridgeSourceConnector",
            Self::RestProduceReceiver => "dev.ebconnect.RestProduceReceiverConnector",
            Self::ThresholdAlert => "dev.ebconnect.ThresholdAlertConnector",
            Self::TopicProcessor => "dev.ebconnect.TopicProcessorConnector",
        }
    }

    /// Whether the `dedupe` transform may run in the connector: where a key is remembered only for a record that
    /// was settled (the topic-processor rebuilds its set from its committed output; the source forgets the key of a
    /// message it leaves for SQS to deliver again).
    pub(crate) fn can_dedupe(self) -> bool {
        matches!(self, Self::TopicProcessor | Self::EventbridgeSource)
    }

    /// Whether the connector runs `transforms` and follows `errors`. The receiver does neither: it answers every
    /// failure to the client that sent the record, and writes what the client sent.
    pub(crate) fn has_record_pipeline(self) -> bool {
        !matches!(self, Self::RestProduceReceiver)
    }
}

/// One file in `connectors/`, with the type's own settings as `S`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorDocument<S> {
    /// Unique within the worker; `[A-Za-z0-9._-]+`. Names the consumer group (`connect-<name>`) and the metrics.
    pub(crate) name: ConnectorName,
    /// The connector type, e.g. `eventbridge-sink`.
    #[serde(rename = "type")]
    pub(crate) kind: ConnectorType,
    /// The type's own settings.
    pub(crate) config: S,
    /// Record transforms, applied in order between decoding and the connector's own work. Default: none.
    #[serde(default)]
    pub(crate) transforms: crate::transform::Transforms,
    /// What happens to a record that cannot be processed. Default: fail the connector.
    #[serde(default)]
    pub(crate) errors: ErrorsConfig,
}

/// A connector name, checked when read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ConnectorName(String);

impl ConnectorName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ConnectorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ConnectorName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if name.is_empty() || name.len() > 200 || !name.chars().all(valid_char) {
            return Err(format!(
                "invalid connector name `{name}`: use 1 to 200 of the characters A-Z a-z 0-9 . _ -"
            ));
        }
        Ok(Self(name))
    }
}

impl<'de> Deserialize<'de> for ConnectorName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Checked inside the visitor, so that the parser adds the key path and position to the error.
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = ConnectorName;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a connector name")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<ConnectorName, E> {
                ConnectorName::try_from(name.to_owned()).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

/// Kafka Connect's `errors.*` settings, nested: `errors.deadletterqueue.topic` is `errors: {deadletterqueue: {topic}}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorsConfig {
    /// `none` (default): a record that cannot be processed fails the connector, and nothing past it is committed.
    /// `all`: the record goes to the dead-letter topic and processing goes on.
    #[serde(default)]
    pub(crate) tolerance: ErrorTolerance,
    /// Required with `tolerance: all`, so that no record is ever dropped silently.
    #[serde(default)]
    pub(crate) deadletterqueue: Option<DeadLetterQueueConfig>,
    #[serde(default)]
    pub(crate) log: ErrorLogConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorTolerance {
    #[default]
    None,
    All,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQueueConfig {
    /// The dead-letter topic (`errors.deadletterqueue.topic.name`).
    pub(crate) topic: String,
    /// Add the `__connect.errors.*` headers (`errors.deadletterqueue.context.headers.enable`). Default: true.
    #[serde(default = "default_true")]
    pub(crate) context_headers: bool,
    /// Create the topic, if it does not exist, with this many replicas before the first dead letter, as Kafka
    /// Connect does (`errors.deadletterqueue.topic.replication.factor`; `-1` is the broker's default). Default: the
    /// topic is not created here (the broker may create it on first write, if it auto-creates topics).
    #[serde(default)]
    pub(crate) replication_factor: Option<i16>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorLogConfig {
    /// Log every record error (`errors.log.enable`). Default: false.
    #[serde(default)]
    pub(crate) enable: bool,
    /// Include the record's topic, partition and offset in the log line (`errors.log.include.messages`).
    /// Default: false.
    #[serde(default)]
    pub(crate) include_messages: bool,
}

fn default_true() -> bool {
    true
}

impl ErrorsConfig {
    /// Rules serde cannot express; each message names the key.
    pub(crate) fn check(&self) -> Result<(), InvalidSetting> {
        if let Some(factor) = self.deadletterqueue.as_ref().and_then(|dlq| dlq.replication_factor) {
            if factor == 0 || factor < -1 {
                return Err(InvalidSetting::new(
                    "errors.deadletterqueue.replication_factor",
                    format!(
                        "{factor} is not a replica count (at least 1, or -1 for \
                     the broker's default)"
                    ),
                ));
            }
        }
        if self.tolerance == ErrorTolerance::All && self.deadletterqueue.is_none() {
            return Err(InvalidSetting::new(
                "errors.deadletterqueue.topic",
                "required with errors.tolerance `all`, or records that fail would be dropped; name a dead-letter \
                 topic (errors.deadletterqueue.topic is not set)",
            ));
        }
        Ok(())
    }
}
