//! Reads a few records of a topic without a trace: partitions assigned by hand (no group joined), a throwaway
//! group id, nothing committed. For `ebconnect preview --topic`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::{client_config, lookup_consumer, ClientRole, SigningContext};
use crate::config::{Interpolated, KafkaConfig};
use crate::record::Record;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PeekError {
    #[error("{0}")]
    Client(String),
    #[error("Kafka does not answer: {0}")]
    Metadata(#[source] KafkaError),
    #[error("topic `{0}` does not exist")]
    NoTopic(String),
    #[error("reading `{topic}`: {source}")]
    Read {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("reading `{topic}`: {read} of the records up to the end were read in {waited:?}")]
    Timeout {
        topic: String,
        read: usize,
        waited: Duration,
    },
}

/// Where to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// The first `limit` records, by timestamp.
    FromBeginning { limit: usize },
    /// The last `limit` records, by timestamp.
    Latest { limit: usize },
}

/// The records, in timestamp order (then partition and offset), of the topic as it is now: records written while
/// it reads are not waited for.
pub(crate) fn peek(
    kafka: &KafkaConfig,
    overrides: &BTreeMap<String, Interpolated>,
    topic: &str,
    peek: Peek,
    timeout: Duration,
) -> Result<Vec<Record>, PeekError> {
    let group = format!("ebconnect-preview-{}", uuid::Uuid::new_v4());
    let consumer = lookup_consumer(&client_config(
        kafka,
        ClientRole::Consumer,
        overrides,
        &[],
        &[
            ("group.id", group.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
        ],
    ))
    .map_err(PeekError::Client)?;
    let (assignment, ends) = starts(&consumer, topic, peek)?;
    let mut unfinished: Vec<i32> = ends.keys().copied().collect();
    let mut records = Vec::new();
    if !unfinished.is_empty() {
        consumer
            .assign(&assignment)
            .map_err(|source| read_error(topic, source))?;
    }
    let began = Instant::now();
    while !unfinished.is_empty() {
        if began.elapsed() > timeout {
            return Err(PeekError::Timeout {
                topic: topic.to_owned(),
                read: records.len(),
                waited: timeout,
            });
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        // The end of a partition is known by its offset, or by reaching its end (the offsets before it may be
        // transaction markers or compacted away).
        let record = match message {
            Ok(message) => Record::from_message(&message),
            Err(KafkaError::PartitionEOF(partition)) => {
                unfinished.retain(|unfinished| *unfinished != partition);
                continue;
            }
            Err(source) => return Err(read_error(topic, source)),
        };
        let position = &record.position;
        let end = ends.get(&position.partition).copied().unwrap_or(i64::MIN);
        if position.offset + 1 >= end {
            unfinished.retain(|unfinished| *unfinished != position.partition);
        }
        if position.offset < end {
            records.push(record);
        }
    }
    records.sort_by_key(|record| (record.timestamp, record.position.partition, record.position.offset));
    let limit = match peek {
        Peek::FromBeginning { limit } | Peek::Latest { limit } => limit,
    };
    if records.len() > limit {
        match peek {
            Peek::FromBeginning { .. } => records.truncate(limit),
            Peek::Latest { .. } => {
                records.drain(..records.len() - limit);
            }
        }
    }
    Ok(records)
}

fn read_error(topic: &str, source: KafkaError) -> PeekError {
    PeekError::Read {
        topic: topic.to_owned(),
        source,
    }
}

/// Where each partition is read from, and the offset it is read up to (its end now), for the partitions that have
/// records to read.
fn starts(
    consumer: &BaseConsumer<SigningContext>,
    topic: &str,
    peek: Peek,
) -> Result<(TopicPartitionList, BTreeMap<i32, i64>), PeekError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(PeekError::Metadata)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|found| found.name() == topic && found.error().is_none())
        .flat_map(|found| found.partitions().iter().map(|partition| partition.id()))
        .collect();
    if partitions.is_empty() {
        return Err(PeekError::NoTopic(topic.to_owned()));
    }
    let mut assignment = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
            .map_err(|source| read_error(topic, source))?;
        let limit = match peek {
            Peek::FromBeginning { limit } | Peek::Latest { limit } => i64::try_from(limit).unwrap_or(i64::MAX),
        };
        let start = match peek {
            Peek::FromBeginning { .. } => low,
            Peek::Latest { .. } => high.saturating_sub(limit).max(low),
        };
        let end = match peek {
            Peek::FromBeginning { .. } => high.min(low.saturating_add(limit)),
            Peek::Latest { .. } => high,
        };
        if start < end {
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(start))
                .map_err(|source| read_error(topic, source))?;
            ends.insert(partition, end);
        }
    }
    Ok((assignment, ends))
}
