//! A consumer-group connector's committed offsets, in Kafka Connect's shape
//! (`{"partition": {"kafka_topic", "kafka_partition"}, "offset": {"kafka_offset"}}`): read for
//! `GET /connectors/{name}/offsets`, altered and reset for `PATCH` and `DELETE` (KIP-875). The sink and
//! threshold-alert keep their offsets in their consumer group. The source connectors keep none (SQS deletes what was
//! written; the receiver answers each request), so theirs is empty and cannot be changed.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

use super::{admin_client, client_config, lookup_consumer, ClientRole, SigningContext};
use crate::config::{Interpolated, WorkerConfig};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A partition's new committed offset; `None` removes it, so the group starts there from `auto_offset_reset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetChange {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: Option<i64>,
}

/// The consumer group a connector reads with, and what it reads; each connector type that reads Kafka says
/// (`connectors::ConnectorSettings::consumer_group`).
#[derive(Debug, Clone)]
pub(crate) struct Group<'a> {
    pub(crate) id: String,
    pub(crate) topics: &'a [String],
    pub(crate) topics_regex: Option<&'a str>,
    pub(crate) overrides: &'a BTreeMap<String, Interpolated>,
}

fn consumer(group: &Group<'_>, worker: &WorkerConfig) -> Result<BaseConsumer<SigningContext>, String> {
    lookup_consumer(&client_config(
        &worker.kafka,
        ClientRole::Consumer,
        group.overrides,
        &[],
        &[("group.id", group.id.as_str()), ("enable.auto.commit", "false")],
    ))
}

/// Every partition of the topics the group reads.
fn partitions(group: &Group<'_>, consumer: &BaseConsumer<SigningContext>) -> Result<TopicPartitionList, String> {
    let metadata = consumer
        .fetch_metadata(None, TIMEOUT)
        .map_err(|error| format!("Kafka does not answer: {error}"))?;
    let pattern = match group.topics_regex {
        Some(pattern) => Some(regex::Regex::new(pattern).map_err(|error| error.to_string())?),
        None => None,
    };
    let mut partitions = TopicPartitionList::new();
    for topic in metadata.topics() {
        let wanted = match &pattern {
            Some(pattern) => pattern.is_match(topic.name()),
            None => group.topics.iter().any(|name| name == topic.name()),
        };
        if wanted {
            for partition in topic.partitions() {
                partitions.add_partition(topic.name(), partition.id());
            }
        }
    }
    Ok(partitions)
}

/// The group's committed offsets, as (topic, partition, offset).
fn committed(group: &Group<'_>, consumer: &BaseConsumer<SigningContext>) -> Result<Vec<(String, i32, i64)>, String> {
    let committed = consumer
        .committed_offsets(partitions(group, consumer)?, TIMEOUT)
        .map_err(|error| format!("cannot read the committed offsets of group {}: {error}", group.id))?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|element| match element.offset() {
            Offset::Offset(offset) => Some((element.topic().to_owned(), element.partition(), offset)),
            _ => None,
        })
        .collect())
}

/// The group's committed offsets in Kafka Connect's shape. Blocking: asks the cluster.
pub(crate) fn group_offsets(group: &Group<'_>, worker: &WorkerConfig) -> Result<Vec<Value>, String> {
    let consumer = consumer(group, worker)?;
    Ok(committed(group, &consumer)?
        .into_iter()
        .map(|(topic, partition, offset)| {
            json!({
                "partition": {"kafka_topic": topic, "kafka_partition": partition},
                "offset": {"kafka_offset": offset},
            })
        })
        .collect())
}

/// Sets or removes committed offsets; `changes` empty removes them all. The group must have no members (the
/// connector stopped on every worker), or Kafka refuses. Blocking: asks the cluster.
pub(crate) fn change_offsets(group: &Group<'_>, worker: &WorkerConfig, changes: &[OffsetChange]) -> Result<(), String> {
    let consumer = consumer(group, worker)?;
    let removed = changes.is_empty() || changes.iter().any(|change| change.offset.is_none());
    // Kafka removes a group's offsets only all at once: those that stay are committed again afterwards.
    let mut kept: Vec<(String, i32, i64)> = Vec::new();
    if removed {
        if !changes.is_empty() {
            kept = committed(group, &consumer)?;
            kept.retain(|(topic, partition, _)| {
                !changes
                    .iter()
                    .any(|change| change.topic == *topic && change.partition == *partition)
            });
        }
        delete_group(&group.id, worker)?;
    }
    kept.extend(changes.iter().filter_map(|change| {
        change
            .offset
            .map(|offset| (change.topic.clone(), change.partition, offset))
    }));
    if kept.is_empty() {
        return Ok(());
    }
    let mut commits = TopicPartitionList::new();
    for (topic, partition, offset) in &kept {
        commits
            .add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .map_err(|error| format!("{topic}/{partition}: {error}"))?;
    }
    consumer
        .commit(&commits, CommitMode::Sync)
        .map_err(|error| format!("cannot commit offsets for group {}: {error}", group.id))
}

fn delete_group(group: &str, worker: &WorkerConfig) -> Result<(), String> {
    let admin = admin_client(&client_config(
        &worker.kafka,
        ClientRole::Consumer,
        &BTreeMap::new(),
        &[],
        &[],
    ))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start a runtime for the admin call: {error}"))?;
    let options = AdminOptions::new().request_timeout(Some(TIMEOUT));
    let results = runtime
        .block_on(admin.delete_groups(&[group], &options))
        .map_err(|error| format!("cannot remove the offsets of group {group}: {error}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
            Err((_, RDKafkaErrorCode::NonEmptyGroup)) => {
                return Err(format!(
                    "group {group} has active members: stop the connector on every worker first"
                ))
            }
            Err((_, code)) => return Err(format!("cannot remove the offsets of group {group}: {code}")),
        }
    }
    Ok(())
}
