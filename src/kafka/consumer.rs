//! A consumer whose offsets are explicit state: an [`OffsetTracker`] shared with the rebalance callback, so that
//! a revoked partition gets its settled prefix committed before it goes to another worker.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::offsets::{OffsetTracker, TopicPartition};
use super::{ActiveTopics, FatalClientError};
use crate::telemetry::{emit, ConsumerLagReported, OffsetCommitFailed, OffsetsCommitted};

/// Shared by the connector loop and the rebalance callback.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedTracker(Arc<Mutex<OffsetTracker>>);

impl SharedTracker {
    pub(crate) fn lock(&self) -> MutexGuard<'_, OffsetTracker> {
        // The tracker is plain data with no invariant a panic mid-update could break badly enough to matter more
        // than stopping the connector would.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether a consumer has completed a join of its group: set by its context when a rebalance hands it an
/// assignment, which librdkafka does after each completed join, an empty assignment included.
#[derive(Debug, Clone, Default)]
pub(crate) struct GroupJoin(Arc<AtomicBool>);

impl GroupJoin {
    pub(crate) fn completed(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn is_completed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A consumer context that notes its consumer's [`GroupJoin`], for [`leave_group`].
pub(crate) trait NotesGroupJoin {
    fn group_join(&self) -> &GroupJoin;
}

pub(crate) struct TrackingContext {
    pub(crate) connector: String,
    pub(crate) tracker: SharedTracker,
    pub(crate) topics: ActiveTopics,
    pub(crate) fatal: FatalClientError,
    pub(crate) join: GroupJoin,
}

impl NotesGroupJoin for TrackingContext {
    fn group_join(&self) -> &GroupJoin {
        &self.join
    }
}

impl ClientContext for TrackingContext {
    crate::msk_iam_tokens!();

    /// librdkafka's client-level errors (broker down, authentication refused), which it retries by itself.
    fn error(&self, error: KafkaError, reason: &str) {
        self.fatal.report(&self.connector, &error, reason);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let partitions: Vec<(String, i32, i64)> = statistics
            .topics
            .iter()
            .flat_map(|(topic, stats)| {
                stats
                    .partitions
                    .values()
                    // librdkafka reports -1 for its internal partition and where the lag is not known yet.
                    .filter(|partition| partition.partition >= 0 && partition.consumer_lag >= 0)
                    .map(move |partition| (topic.clone(), partition.partition, partition.consumer_lag))
            })
            .collect();
        emit(ConsumerLagReported {
            connector: &self.connector,
            partitions: &partitions,
        });
    }
}

impl ConsumerContext for TrackingContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let partitions: Vec<TopicPartition> = revoked
            .elements()
            .iter()
            .map(|element| (element.topic().to_owned(), element.partition()))
            .collect();
        let offsets = self.tracker.lock().revoke(&partitions);
        // In-flight records of these partitions are abandoned: the next owner reads them again from here.
        commit(&self.connector, consumer, &offsets, CommitMode::Sync, "revoke");
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            for element in assigned.elements() {
                self.topics.record(element.topic());
            }
            self.join.completed();
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => self.tracker.lock().committed(&confirmed(offsets)),
            Err(error) => {
                emit(OffsetCommitFailed {
                    connector: &self.connector,
                    error: &error.to_string(),
                });
                // Send every committable offset again next time, not only the ones that moved.
                self.tracker.lock().forget_commits();
            }
        }
    }
}

/// The offsets of a commit the broker answered that it took, partition by partition.
fn confirmed(offsets: &TopicPartitionList) -> BTreeMap<TopicPartition, i64> {
    offsets
        .elements()
        .iter()
        .filter(|element| element.error().is_ok())
        .filter_map(|element| match element.offset() {
            Offset::Offset(offset) => Some(((element.topic().to_owned(), element.partition()), offset)),
            _ => None,
        })
        .collect()
}

/// Commits `offsets` (each the next offset to read). A synchronous commit that succeeded is noted in the tracker
/// at once; an asynchronous one when the broker confirms it (`commit_callback`), so that a commit lost on the way
/// (its member fenced, a rebalance under way) is not taken for done, and the commit on revoke or stop sends it
/// again.
pub(crate) fn commit<C: Consumer<TrackingContext>>(
    connector: &str,
    consumer: &C,
    offsets: &BTreeMap<TopicPartition, i64>,
    mode: CommitMode,
    reason: &str,
) -> bool {
    let mut list = TopicPartitionList::with_capacity(offsets.len());
    for ((topic, partition), offset) in offsets {
        if let Err(error) = list.add_partition_offset(topic, *partition, Offset::Offset(*offset)) {
            emit(OffsetCommitFailed {
                connector,
                error: &error.to_string(),
            });
            return false;
        }
    }
    let committed = commit_list(connector, consumer, &list, mode, reason);
    if committed && matches!(mode, CommitMode::Sync) {
        consumer.context().tracker.lock().committed(offsets);
    }
    committed
}

/// Commits `list` as it is (offsets and metadata), and reports how that went.
pub(crate) fn commit_list<X: ConsumerContext, C: Consumer<X>>(
    connector: &str,
    consumer: &C,
    list: &TopicPartitionList,
    mode: CommitMode,
    reason: &str,
) -> bool {
    if list.count() == 0 {
        return true;
    }
    match consumer.commit(list, mode) {
        Ok(()) => {
            emit(OffsetsCommitted {
                connector,
                partitions: list.count(),
                reason,
            });
            true
        }
        Err(error) => {
            emit(OffsetCommitFailed {
                connector,
                error: &error.to_string(),
            });
            false
        }
    }
}

/// How long a consumer that has not yet joined its group is served before it leaves: past the 3 s a broker holds a
/// first join by default (`group.initial.rebalance.delay.ms`).
const JOIN_WAIT: Duration = Duration::from_secs(10);

/// Leaves the consumer's group now rather than on close: unsubscribing sends the LeaveGroup that a static member
/// skips when it closes. The revocation is served (by reading) until the assignment is empty, or for a few seconds.
///
/// A consumer still joining is first served until its join completes (for at most `JOIN_WAIT`). Its LeaveGroup
/// would otherwise queue behind its JoinGroup, which the broker answers only when the rebalance completes;
/// librdkafka gives the LeaveGroup 5 s, and the member then stays in the group until `session.timeout.ms`. Meanwhile
/// the group cannot empty (offsets cannot change), and each later join waits for that member, so that a consumer
/// closed during it is left behind the same way.
pub(crate) async fn leave_group<C: ConsumerContext + NotesGroupJoin + 'static>(
    consumer: &rdkafka::consumer::StreamConsumer<C>,
) {
    serve_while(consumer, JOIN_WAIT, || !consumer.context().group_join().is_completed()).await;
    consumer.unsubscribe();
    serve_while(consumer, Duration::from_secs(5), || {
        consumer.assignment().is_ok_and(|assignment| assignment.count() > 0)
    })
    .await;
}

/// Reads, which also serves the consumer's rebalances, while `waiting` holds, for at most `limit`; what is read is
/// dropped.
async fn serve_while<C: ConsumerContext + 'static>(
    consumer: &rdkafka::consumer::StreamConsumer<C>,
    limit: Duration,
    waiting: impl Fn() -> bool,
) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline && waiting() {
        let _ = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await;
    }
}

/// A consumer error that no retry by librdkafka will fix.
pub(crate) fn is_fatal(error: &KafkaError) -> bool {
    let code = match error {
        KafkaError::MessageConsumption(code) | KafkaError::Global(code) => *code,
        KafkaError::MessageConsumptionFatal(_) => return true,
        _ => return false,
    };
    matches!(
        code,
        RDKafkaErrorCode::Fatal
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::Authentication
            | RDKafkaErrorCode::InvalidGroupId
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit the broker answered is noted for the partitions it took, and only then; after one that failed,
    /// the next commit carries every offset again.
    #[test]
    fn a_commit_is_noted_when_the_broker_confirms_it() {
        let context = TrackingContext {
            connector: "c".into(),
            tracker: SharedTracker::default(),
            topics: ActiveTopics::default(),
            fatal: FatalClientError::default(),
            join: GroupJoin::default(),
        };
        let ticket = context.tracker.lock().track("t", 0, 4);
        context.tracker.lock().settle(&ticket);
        let due = || context.tracker.lock().to_commit();
        let expected = BTreeMap::from([(("t".to_owned(), 0), 5)]);
        assert_eq!(due(), expected);

        let mut list = TopicPartitionList::new();
        list.add_partition_offset("t", 0, Offset::Offset(5)).unwrap();
        context.commit_callback(Ok(()), &list);
        assert!(due().is_empty(), "confirmed, so not sent again");

        let lost = KafkaError::ConsumerCommit(RDKafkaErrorCode::RebalanceInProgress);
        context.commit_callback(Err(lost), &list);
        assert_eq!(due(), expected, "lost, so sent again");
    }
}
