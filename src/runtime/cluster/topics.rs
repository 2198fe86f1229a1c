//! The cluster's two topics: created compacted when missing, refused when they exist with settings that would lose
//! the cluster's state (deleted by retention) or its order (more than one partition of the config topic).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;

use super::ClusterError;
use crate::kafka::SigningContext;

const TIMEOUT: Duration = Duration::from_secs(10);

/// One topic the cluster keeps its state in, and the setting that names it (for errors).
pub(crate) struct StateTopic<'a> {
    pub(crate) setting: &'static str,
    pub(crate) name: &'a str,
    /// Required partition count; `None`: any.
    pub(crate) partitions: Option<i32>,
}

/// Creates the topic if missing; checks it otherwise. `replication_factor` `None`: the broker's default.
pub(crate) async fn ensure(
    admin: &AdminClient<SigningContext>,
    topic: &StateTopic<'_>,
    replication_factor: Option<i16>,
) -> Result<(), ClusterError> {
    let fail = |problem: String| ClusterError::Topic {
        setting: topic.setting,
        topic: topic.name.to_owned(),
        problem,
    };
    let options = AdminOptions::new().request_timeout(Some(TIMEOUT));
    let replication = replication_factor.map_or(TopicReplication::Fixed(-1), |factor| {
        TopicReplication::Fixed(i32::from(factor))
    });
    let new = NewTopic::new(topic.name, topic.partitions.unwrap_or(1), replication).set("cleanup.policy", "compact");
    let created = admin
        .create_topics([&new], &options)
        .await
        .map_err(|error| fail(format!("cannot create it: {error}")))?;
    match created.into_iter().next() {
        Some(Ok(_)) | None | Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => {}
        Some(Err((_, code))) => return Err(fail(format!("cannot create it: {code}"))),
    }
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(topic.name)], &options)
        .await
        .map_err(|error| fail(format!("cannot read its settings: {error}")))?;
    let resource = described
        .into_iter()
        .next()
        .ok_or_else(|| fail("Kafka did not describe it".into()))?
        .map_err(|code| fail(format!("cannot read its settings: {code}")))?;
    let policy = resource
        .get("cleanup.policy")
        .and_then(|entry| entry.value.clone())
        .unwrap_or_default();
    if policy != "compact" {
        return Err(fail(format!(
            "its cleanup.policy is `{policy}`; it must be `compact`, or retention deletes connectors and states"
        )));
    }
    if let Some(wanted) = topic.partitions {
        let count = partition_count(admin, topic.name).map_err(fail)?;
        if count != wanted {
            return Err(fail(format!(
                "it has {count} partitions; it must have {wanted}, so that every worker reads its records in one \
                 order"
            )));
        }
    }
    Ok(())
}

fn partition_count(admin: &AdminClient<SigningContext>, topic: &str) -> Result<i32, String> {
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(|error| format!("cannot read its partitions: {error}"))?;
    let count = metadata
        .topics()
        .iter()
        .find(|described| described.name() == topic)
        .map_or(0, |described| described.partitions().len());
    i32::try_from(count).map_err(|_| format!("{count} partitions"))
}
