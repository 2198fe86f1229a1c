//! The dedupe set of an exactly-once topic-processor, rebuilt from its output topic rather than kept in a store of
//! its own: every output record the dedupe admitted carries its key in a header (`ebconnect.dedupe.key`), and the
//! committed output is, by the transaction, exactly what was admitted. Reading the records of the last `window` back
//! (`read_committed`, from the offsets their timestamps give) yields the set as of the last commit, whichever
//! worker wrote them. A changelog topic would hold the same, at the cost of a second write per record.
//!
//! The window is read by the wall clock: a backfill of records stamped more than `window` ago is deduplicated
//! within a run, and across a restart only against keys written in the last `window`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use super::DEDUPE_KEY_HEADER;
use crate::kafka::msk_iam;
use crate::telemetry::{emit, KafkaClientError};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// How long reading back may take: other workers' open transactions hold a `read_committed` reader back until they
/// end, which a live worker does within its commit interval and a dead one's coordinator within the transaction
/// timeout (60s by default).
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// The reader's client context: the partition ends it asks for (`enable.partition.eof`) also reach the error
/// callback, where they are not errors.
struct ReaderContext {
    connector: String,
}

impl ClientContext for ReaderContext {
    crate::msk_iam_tokens!();

    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            emit(KafkaClientError {
                connector: &self.connector,
                error: &error.to_string(),
                reason,
            });
        }
    }
}

impl ConsumerContext for ReaderContext {}

/// The (key, timestamp) of every committed output record of `topic` stamped within `window` of now.
pub(super) fn read(
    connector: &str,
    config: &ClientConfig,
    topic: &str,
    window: Duration,
) -> Result<Vec<(String, i64)>, String> {
    let consumer: BaseConsumer<ReaderContext> = config
        .create_with_context(ReaderContext {
            connector: connector.to_owned(),
        })
        .map_err(|error| format!("cannot create a Kafka client: {error}"))?;
    msk_iam::prime(consumer.client())?;
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|error| format!("Kafka does not answer: {error}"))?;
    let partitions: Vec<i32> = match metadata.topics().first() {
        Some(found) if found.error().is_none() => found.partitions().iter().map(|partition| partition.id()).collect(),
        // Not there yet: nothing was written.
        _ => return Ok(Vec::new()),
    };
    let assignment = starts_within(&consumer, topic, &partitions, window)?;
    let total = assignment.count();
    if total == 0 {
        return Ok(Vec::new());
    }
    consumer.assign(&assignment).map_err(|error| error.to_string())?;
    let started = Instant::now();
    let mut keys = Vec::new();
    let mut at_end = HashSet::new();
    while at_end.len() < total {
        if started.elapsed() > READ_TIMEOUT {
            return Err(format!(
                "the committed end was not reached in {READ_TIMEOUT:?} ({} keys read): a transaction stays open",
                keys.len()
            ));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => {
                let key = message.headers().and_then(|headers| {
                    headers
                        .iter()
                        .filter(|header| header.key == DEDUPE_KEY_HEADER)
                        .last()
                        .and_then(|header| header.value)
                        .and_then(|value| std::str::from_utf8(value).ok())
                        .map(str::to_owned)
                });
                if let (Some(key), Some(timestamp)) = (key, message.timestamp().to_millis()) {
                    keys.push((key, timestamp));
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition))) => {
                return Ok(keys);
            }
            Some(Err(error)) => return Err(format!("reading back: {error}")),
        }
    }
    Ok(keys)
}

/// Each partition's first offset stamped within `window` of now; partitions with nothing that recent are left out.
fn starts_within<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
    window: Duration,
) -> Result<TopicPartitionList, String> {
    let since = chrono::Utc::now().timestamp_millis() - i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let mut by_time = TopicPartitionList::new();
    for partition in partitions {
        by_time
            .add_partition_offset(topic, *partition, Offset::Offset(since))
            .map_err(|error| error.to_string())?;
    }
    let starts = consumer
        .offsets_for_times(by_time, METADATA_TIMEOUT)
        .map_err(|error| format!("cannot find the offsets of the last {window:?}: {error}"))?;
    let mut assignment = TopicPartitionList::new();
    for element in starts.elements() {
        // `End`: nothing that recent in this partition.
        if let Offset::Offset(offset) = element.offset() {
            assignment
                .add_partition_offset(topic, element.partition(), Offset::Offset(offset))
                .map_err(|error| error.to_string())?;
        }
    }
    Ok(assignment)
}
