//! A Kafka record as every connector sees it, owned, with its position.

use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::Timestamp;

/// Where a record sits: what an offset commit and a dead-letter header name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Position {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimestampType {
    NotAvailable,
    CreateTime,
    LogAppendTime,
}

impl TimestampType {
    /// Kafka's Java names, which the AWS connector's envelope uses.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::NotAvailable => "NoTimestampType",
            Self::CreateTime => "CreateTime",
            Self::LogAppendTime => "LogAppendTime",
        }
    }
}

/// Whether a record read from Kafka carries its message's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageHeaders {
    Copied,
    /// Left out: nothing that reads the record looks at them.
    Skipped,
}

#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) position: Position,
    /// Milliseconds since the epoch.
    pub(crate) timestamp: Option<i64>,
    pub(crate) timestamp_type: TimestampType,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    pub(crate) fn from_message(message: &BorrowedMessage<'_>) -> Self {
        Self::from_message_reading(message, MessageHeaders::Copied)
    }

    /// The record, with its headers only if the reader looks at them: librdkafka parses a message's headers when
    /// asked for them, even when there are none, which cost a sink that never reads them 2% of its CPU.
    pub(crate) fn from_message_reading(message: &BorrowedMessage<'_>, headers: MessageHeaders) -> Self {
        let (timestamp, timestamp_type) = match message.timestamp() {
            Timestamp::NotAvailable => (None, TimestampType::NotAvailable),
            Timestamp::CreateTime(ms) => (Some(ms), TimestampType::CreateTime),
            Timestamp::LogAppendTime(ms) => (Some(ms), TimestampType::LogAppendTime),
        };
        let headers = match headers {
            MessageHeaders::Skipped => Vec::new(),
            MessageHeaders::Copied => message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|header| (header.key.to_owned(), header.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        };
        Self {
            position: Position {
                topic: message.topic().to_owned(),
                partition: message.partition(),
                offset: message.offset(),
            },
            timestamp,
            timestamp_type,
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

    /// The record without its key, value and headers, for a record held only to be reported by its position: a
    /// sink holds thousands of records in flight, each already turned into its entry.
    pub(crate) fn without_payload(self) -> Self {
        Self {
            key: None,
            value: None,
            headers: Vec::new(),
            ..self
        }
    }

    /// The record's headers, to write it again elsewhere, followed by `more` text headers.
    pub(crate) fn headers_and(&self, more: &[(&str, &str)]) -> OwnedHeaders {
        let mut headers = OwnedHeaders::new_with_capacity(self.headers.len() + more.len());
        for (key, value) in &self.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        for (key, value) in more {
            headers = headers.insert(Header {
                key,
                value: Some(*value),
            });
        }
        headers
    }

    pub(crate) fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| value.as_deref())
    }
}

/// Where in the pipeline a record failed; the names are Kafka Connect's `__connect.errors.stage` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
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
    pub(crate) const ALL: [Stage; 6] = [
        Self::KeyConverter,
        Self::ValueConverter,
        Self::HeaderConverter,
        Self::Transformation,
        Self::TaskPut,
        Self::KafkaProduce,
    ];

    pub(crate) fn as_str(self) -> &'static str {
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
pub(crate) struct RecordFailure {
    pub(crate) stage: Stage,
    /// A stable name for the kind of error, e.g. `DecodeError` or the PutEvents error code `MalformedDetail`;
    /// written to `__connect.errors.exception.class.name`.
    pub(crate) error_kind: String,
    pub(crate) message: String,
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
