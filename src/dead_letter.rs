//! The `errors` policy every connector applies to a record it cannot process, and the dead-letter writer.
//!
//! With `tolerance: none` a failed record fails the connector; with `all` it is written to the dead-letter
//! topic with its original key, value and headers plus Kafka Connect's `__connect.errors.*` headers, and the record
//! counts as settled only once Kafka acknowledged that write.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::config::{ErrorTolerance, ErrorsConfig};
use crate::record::Record;
use crate::telemetry::{emit, RecordDeadLettered, RecordFailed};

/// Where in the pipeline a record failed; the names are Kafka Connect's `__connect.errors.stage` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    KeyConverter,
    ValueConverter,
    HeaderConverter,
    Transformation,
    /// Handing the record to the external system (PutEvents, for the sink).
    TaskPut,
    /// Writing the record to Kafka (the source connectors).
    KafkaProduce,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Self::KeyConverter,
        Self::ValueConverter,
        Self::HeaderConverter,
        Self::Transformation,
        Self::TaskPut,
        Self::KafkaProduce,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyConverter => "KEY_CONVERTER",
            Self::ValueConverter => "VALUE_CONVERTER",
            Self::HeaderConverter => "HEADER_CONVERTER",
            Self::Transformation => "TRANSFORMATION",
            Self::TaskPut => "TASK_PUT",
            Self::KafkaProduce => "KAFKA_PRODUCE",
        }
    }
}

/// Why one record could not be processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    pub stage: Stage,
    /// A stable name for the kind of error, e.g. `DecodeError` or the PutEvents error code `MalformedDetail`;
    /// written to `__connect.errors.exception.class.name`.
    pub error_kind: String,
    pub message: String,
}

impl std::fmt::Display for RecordFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at stage {}: {}",
            self.error_kind,
            self.stage.as_str(),
            self.message
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// `tolerance: none`: the connector must stop at this record.
    #[error("record {topic}/{partition}@{offset} failed ({failure}); errors.tolerance is `none`, so the connector stops here")]
    NotTolerated {
        topic: String,
        partition: i32,
        offset: i64,
        failure: RecordFailure,
    },
    #[error("writing record {topic}/{partition}@{offset} to dead-letter topic `{dlq_topic}` failed: {reason}")]
    DeadLetterFailed {
        topic: String,
        partition: i32,
        offset: i64,
        dlq_topic: String,
        reason: String,
    },
}

/// A connector's `errors` settings, ready to apply.
#[derive(Clone)]
pub struct ErrorPolicy {
    connector: String,
    config: ErrorsConfig,
    producer: Option<FutureProducer>,
}

impl ErrorPolicy {
    /// `producer_config` is used only when a dead-letter topic is configured.
    pub fn new(
        connector: &str,
        config: ErrorsConfig,
        producer_config: ClientConfig,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let producer = match config.deadletterqueue {
            Some(_) => Some(producer_config.create()?),
            None => None,
        };
        Ok(Self {
            connector: connector.to_owned(),
            config,
            producer,
        })
    }

    /// Settings the dead-letter producer needs to write each record exactly where it was acknowledged.
    pub const PRODUCER_SETTINGS: &'static [(&'static str, &'static str)] =
        &[("enable.idempotence", "true"), ("acks", "all")];

    /// Applies the policy. `Ok` means the record is settled (dead-lettered); `Err` means the connector must stop.
    pub async fn handle(&self, record: &Record, failure: RecordFailure) -> Result<(), PolicyError> {
        let position = &record.position;
        emit(RecordFailed {
            connector: &self.connector,
            log: self.config.log.enable,
            position: self.config.log.include_messages.then_some(position),
            failure: &failure,
        });
        let (ErrorTolerance::All, Some(dlq), Some(producer)) =
            (self.config.tolerance, &self.config.deadletterqueue, &self.producer)
        else {
            return Err(PolicyError::NotTolerated {
                topic: position.topic.clone(),
                partition: position.partition,
                offset: position.offset,
                failure,
            });
        };
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + 10);
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        if dlq.context_headers {
            let partition = position.partition.to_string();
            let offset = position.offset.to_string();
            let context = [
                ("__connect.errors.topic", position.topic.as_str()),
                ("__connect.errors.partition", partition.as_str()),
                ("__connect.errors.offset", offset.as_str()),
                ("__connect.errors.connector.name", self.connector.as_str()),
                ("__connect.errors.task.id", "0"),
                ("__connect.errors.stage", failure.stage.as_str()),
                ("__connect.errors.class.name", "ebconnect"),
                ("__connect.errors.exception.class.name", failure.error_kind.as_str()),
                ("__connect.errors.exception.message", failure.message.as_str()),
            ];
            for (key, value) in context {
                headers = headers.insert(Header {
                    key,
                    value: Some(value),
                });
            }
        }
        let mut dead_letter: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&dlq.topic).headers(headers);
        if let Some(key) = &record.key {
            dead_letter = dead_letter.key(key);
        }
        if let Some(value) = &record.value {
            dead_letter = dead_letter.payload(value);
        }
        if let Some(timestamp) = record.timestamp {
            dead_letter = dead_letter.timestamp(timestamp);
        }
        // The producer's own delivery timeout bounds this; the queue-full wait is bounded by it too.
        match producer.send(dead_letter, Duration::from_secs(30)).await {
            Ok(_) => {
                emit(RecordDeadLettered {
                    connector: &self.connector,
                    dlq_topic: &dlq.topic,
                    failure: &failure,
                });
                Ok(())
            }
            Err((error, _)) => Err(PolicyError::DeadLetterFailed {
                topic: position.topic.clone(),
                partition: position.partition,
                offset: position.offset,
                dlq_topic: dlq.topic.clone(),
                reason: error.to_string(),
            }),
        }
    }
}
