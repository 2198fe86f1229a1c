//! The dedupe set of an exactly-once topic-processor, rebuilt from its output topic rather than kept in a store of
//! its own: every output record the dedupe admitted carries its key in a header (`ebconnect.dedupe.key`), and the
//! committed output is, by the transaction, exactly what was admitted. Reading the records of the last `window` back
//! (`read_committed`, from the offsets their timestamps give) yields the set as of the last commit, whichever
//! worker wrote them. A changelog topic would hold the same, at the cost of a second write per record.
//!
//! The window ends at the latest committed output record (or now, if that is earlier): records are judged by their
//! own timestamps, so a backfill of records stamped days ago is deduplicated across a restart as within a run.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
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

/// The (key, timestamp) of every committed output record of `topic` stamped within `window` before its latest one
/// (or before now, if that is earlier).
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
    let Some(latest) = latest_timestamp(&consumer, topic, &partitions)? else {
        return Ok(Vec::new());
    };
    // Not below 0: ListOffsets reads -1 and -2 as the end and the start.
    let since = latest
        .min(chrono::Utc::now().timestamp_millis())
        .saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX))
        .max(0);
    let assignment = starts_since(&consumer, topic, &partitions, since)?;
    let mut keys = Vec::new();
    read_to_end(&consumer, &assignment, |message| {
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
    })
    .map_err(|error| format!("{error} ({} keys read)", keys.len()))?;
    Ok(keys)
}

/// How many offsets from its end a partition's tail is first read for its latest record.
const FIRST_TAIL: i64 = 16;

/// The latest timestamp of the committed records of `partitions`, if they hold any. Each partition's tail is read,
/// and read again from further back while it holds no record: the last offsets of a partition written in
/// transactions are their markers, and records of aborted transactions are skipped.
fn latest_timestamp<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
) -> Result<Option<i64>, String> {
    let mut ranges = Vec::new();
    for &partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
            .map_err(|error| format!("cannot find where partition {partition} ends: {error}"))?;
        if high > low {
            ranges.push((partition, low, high));
        }
    }
    let mut latest = None;
    let mut tail = FIRST_TAIL;
    while !ranges.is_empty() {
        let mut assignment = TopicPartitionList::new();
        for &(partition, low, high) in &ranges {
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(high.saturating_sub(tail).max(low)))
                .map_err(|error| error.to_string())?;
        }
        let mut found = HashSet::new();
        read_to_end(consumer, &assignment, |message| {
            found.insert(message.partition());
            latest = latest.max(message.timestamp().to_millis());
        })?;
        // Read again, further back, where nothing was found and there is more to read.
        ranges.retain(|&(partition, low, high)| !found.contains(&partition) && high.saturating_sub(tail) > low);
        tail = tail.saturating_mul(16);
    }
    Ok(latest)
}

/// Reads the partitions of `assignment`, from the offsets it gives, up to their committed ends, handing each record
/// to `take`.
fn read_to_end<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    assignment: &TopicPartitionList,
    mut take: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), String> {
    let total = assignment.count();
    if total == 0 {
        return Ok(());
    }
    consumer.assign(assignment).map_err(|error| error.to_string())?;
    let started = Instant::now();
    let mut at_end = HashSet::new();
    while at_end.len() < total {
        if started.elapsed() > READ_TIMEOUT {
            return Err(format!(
                "the committed end was not reached in {READ_TIMEOUT:?}: a transaction stays open"
            ));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => take(&message),
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition))) => return Ok(()),
            Some(Err(error)) => return Err(format!("reading back: {error}")),
        }
    }
    Ok(())
}

/// Each partition's first offset stamped at `since` (milliseconds) or later; partitions with nothing that recent are
/// left out.
fn starts_since<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
    since: i64,
) -> Result<TopicPartitionList, String> {
    let mut by_time = TopicPartitionList::new();
    for partition in partitions {
        by_time
            .add_partition_offset(topic, *partition, Offset::Offset(since))
            .map_err(|error| error.to_string())?;
    }
    let starts = consumer
        .offsets_for_times(by_time, METADATA_TIMEOUT)
        .map_err(|error| format!("cannot find the offsets of the records stamped since {since} ms: {error}"))?;
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
