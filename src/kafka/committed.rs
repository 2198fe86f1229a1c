//! `GET /connectors/{name}/offsets`: a sink's committed offsets, read from its consumer group, in Kafka Connect's
//! shape (`{"partition": {"kafka_topic", "kafka_partition"}, "offset": {"kafka_offset"}}`). The source connectors
//! keep no offsets (SQS deletes what was written; the receiver answers each request), so theirs is empty.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

use super::{client_config, ClientRole};
use crate::config::{ConnectorConfig, WorkerConfig};
use crate::connectors::ConnectorSettings;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Blocking: asks the cluster.
pub fn connector_offsets(connector: &ConnectorConfig, worker: &WorkerConfig) -> Result<Vec<Value>, String> {
    let ConnectorSettings::EventbridgeSink(sink) = &connector.settings else {
        return Ok(Vec::new());
    };
    let group = sink.group_id(&connector.name);
    let consumer: BaseConsumer = client_config(
        &worker.kafka,
        ClientRole::Consumer,
        &sink.consumer_override,
        &[],
        &[("group.id", group.as_str()), ("enable.auto.commit", "false")],
    )
    .create()
    .map_err(|error| format!("cannot create a Kafka client: {error}"))?;
    let metadata = consumer
        .fetch_metadata(None, TIMEOUT)
        .map_err(|error| format!("Kafka does not answer: {error}"))?;
    let pattern = match &sink.topics_regex {
        Some(pattern) => Some(regex::Regex::new(pattern).map_err(|error| error.to_string())?),
        None => None,
    };
    let mut partitions = TopicPartitionList::new();
    for topic in metadata.topics() {
        let wanted = match &pattern {
            Some(pattern) => pattern.is_match(topic.name()),
            None => sink.topics.iter().any(|name| name == topic.name()),
        };
        if wanted {
            for partition in topic.partitions() {
                partitions.add_partition(topic.name(), partition.id());
            }
        }
    }
    let committed = consumer
        .committed_offsets(partitions, TIMEOUT)
        .map_err(|error| format!("cannot read the committed offsets of group {group}: {error}"))?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|element| match element.offset() {
            Offset::Offset(offset) => Some(json!({
                "partition": {"kafka_topic": element.topic(), "kafka_partition": element.partition()},
                "offset": {"kafka_offset": offset},
            })),
            _ => None,
        })
        .collect())
}
