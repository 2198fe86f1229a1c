//! The cluster's two topics: created compacted when missing, refused when they exist with settings that would lose
//! the cluster's state (deleted by retention) or its order (more than one partition of the config topic).

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;

use super::ClusterError;
use crate::kafka::{blocking, SigningContext};

const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a topic just created may take to be known to every broker.
const SETTLING: Duration = Duration::from_secs(10);

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
    // Another worker starting at the same time may have just created it: until every broker knows it, its settings
    // and partitions are not to be read yet.
    let deadline = Instant::now() + SETTLING;
    let (policy, count) = loop {
        match settings(admin, topic.name, &options).await {
            Ok((Some(policy), count)) if count > 0 => break (policy, count),
            Ok(_) | Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Ok((None, _)) => return Err(fail("Kafka does not give its cleanup.policy".into())),
            Ok((_, count)) => return Err(fail(format!("it has {count} partitions"))),
            Err(problem) => return Err(fail(problem)),
        }
    };
    if policy != "compact" {
        return Err(fail(format!(
            "its cleanup.policy is `{policy}`; it must be `compact`, or retention deletes connectors and states"
        )));
    }
    if let Some(wanted) = topic.partitions {
        if count != wanted {
            return Err(fail(format!(
                "it has {count} partitions; it must have {wanted}, so that every worker reads its records in one \
                 order"
            )));
        }
    }
    Ok(())
}

/// The topic's `cleanup.policy` (none while a topic just created is not fully known) and partition count.
async fn settings(
    admin: &AdminClient<SigningContext>,
    topic: &str,
    options: &AdminOptions,
) -> Result<(Option<String>, i32), String> {
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], options)
        .await
        .map_err(|error| format!("cannot read its settings: {error}"))?;
    let resource = described
        .into_iter()
        .next()
        .ok_or("Kafka did not describe it")?
        .map_err(|code| format!("cannot read its settings: {code}"))?;
    let policy = resource.get("cleanup.policy").and_then(|entry| entry.value.clone());
    Ok((policy, partition_count(admin, topic)?))
}

fn partition_count(admin: &AdminClient<SigningContext>, topic: &str) -> Result<i32, String> {
    let metadata = blocking(|| admin.inner().fetch_metadata(Some(topic), TIMEOUT))
        .map_err(|error| format!("cannot read its partitions: {error}"))?;
    let count = metadata
        .topics()
        .iter()
        .find(|described| described.name() == topic)
        .map_or(0, |described| described.partitions().len());
    i32::try_from(count).map_err(|_| format!("{count} partitions"))
}
