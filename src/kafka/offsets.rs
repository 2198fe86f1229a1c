//! Which offsets may be committed: per partition, only the contiguous prefix of settled records.
//!
//! A record is tracked when it is read and settled when its fate is final (delivered, or dead-lettered). The
//! committable offset of a partition is the lowest offset still unsettled, or one past the highest settled when
//! nothing is pending. A later record's success never moves the commit past an earlier record that is in flight or
//! failed, the flaw of a commit-latest-offset design.
//!
//! Partitions are tracked per assignment: a record read before its partition was revoked carries the old
//! generation, and settling it after the partition came back does nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// A partition, by topic and number.
pub(crate) type TopicPartition = (String, i32);

/// A tracked record: enough to settle it later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ticket {
    /// Shared with the tracker's entry for the topic: a sink tracks every record it reads, and an owned name per
    /// record was an allocation and a copy each time it was tracked, checked and settled.
    topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    generation: u64,
}

#[derive(Debug, Default)]
struct PartitionState {
    generation: u64,
    pending: BTreeSet<i64>,
    /// The first offset read in this assignment.
    first: Option<i64>,
    /// One past the highest offset read.
    next: Option<i64>,
    /// The last offset committed (or reported as committed).
    committed: Option<i64>,
}

impl PartitionState {
    fn committable(&self) -> Option<i64> {
        self.pending.first().copied().or(self.next)
    }
}

/// A topic's partitions in the current assignment, keyed by number, with the name its tickets share.
#[derive(Debug)]
struct TopicState {
    name: Arc<str>,
    partitions: HashMap<i32, PartitionState>,
}

#[derive(Debug, Default)]
pub(crate) struct OffsetTracker {
    /// By topic and then partition, so that a record's state is found from its borrowed topic name.
    topics: HashMap<Arc<str>, TopicState>,
    next_generation: u64,
}

impl OffsetTracker {
    /// Starts tracking a read record.
    pub(crate) fn track(&mut self, topic: &str, partition: i32, offset: i64) -> Ticket {
        let topic_state = match self.topics.get_mut(topic) {
            Some(topic_state) => topic_state,
            None => {
                let name: Arc<str> = Arc::from(topic);
                self.topics.entry(Arc::clone(&name)).or_insert(TopicState {
                    name,
                    partitions: HashMap::new(),
                })
            }
        };
        let next_generation = &mut self.next_generation;
        let state = topic_state.partitions.entry(partition).or_insert_with(|| {
            *next_generation += 1;
            PartitionState {
                generation: *next_generation,
                ..PartitionState::default()
            }
        });
        state.pending.insert(offset);
        state.first.get_or_insert(offset);
        state.next = Some(state.next.map_or(offset + 1, |next| next.max(offset + 1)));
        Ticket {
            topic: Arc::clone(&topic_state.name),
            partition,
            offset,
            generation: state.generation,
        }
    }

    fn state(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.topics.get(topic)?.partitions.get(&partition)
    }

    fn state_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionState> {
        self.topics.get_mut(topic)?.partitions.get_mut(&partition)
    }

    fn states(&self) -> impl Iterator<Item = (&TopicState, i32, &PartitionState)> {
        self.topics.values().flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(move |(partition, state)| (topic, *partition, state))
        })
    }

    /// Whether the record's partition is still assigned as it was when the record was read: a record of a revoked
    /// partition is read again by its next owner, so there is no point sending it.
    pub(crate) fn is_current(&self, ticket: &Ticket) -> bool {
        self.state(&ticket.topic, ticket.partition)
            .is_some_and(|state| state.generation == ticket.generation)
    }

    /// Marks a record settled. Returns false for a record of an earlier assignment (nothing changes).
    pub(crate) fn settle(&mut self, ticket: &Ticket) -> bool {
        match self.state_mut(&ticket.topic, ticket.partition) {
            Some(state) if state.generation == ticket.generation => state.pending.remove(&ticket.offset),
            _ => false,
        }
    }

    /// Whether the settled prefix of some partition moved past where its reading started: records were finished
    /// for good, not only some behind one that is stuck.
    pub(crate) fn has_advanced(&self) -> bool {
        self.states()
            .any(|(_, _, state)| matches!((state.first, state.committable()), (Some(first), Some(now)) if now > first))
    }

    /// Records still unsettled, across all partitions.
    pub(crate) fn pending(&self) -> usize {
        self.states().map(|(_, _, state)| state.pending.len()).sum()
    }

    /// The offsets to commit now: for each partition whose committable offset moved since the last commit.
    pub(crate) fn to_commit(&self) -> BTreeMap<TopicPartition, i64> {
        self.states()
            .filter_map(|(topic, partition, state)| {
                let committable = state.committable()?;
                (state.committed != Some(committable)).then(|| ((topic.name.to_string(), partition), committable))
            })
            .collect()
    }

    /// Notes that `offsets` were committed.
    pub(crate) fn committed(&mut self, offsets: &BTreeMap<TopicPartition, i64>) {
        for ((topic, partition), offset) in offsets {
            if let Some(state) = self.state_mut(topic, *partition) {
                state.committed = Some(*offset);
            }
        }
    }

    /// Forgets what was committed, so that the next commit carries every committable offset (after a commit
    /// that was reported as sent failed later).
    pub(crate) fn forget_commits(&mut self) {
        for topic in self.topics.values_mut() {
            for state in topic.partitions.values_mut() {
                state.committed = None;
            }
        }
    }

    /// Forgets revoked partitions and returns what should be committed for them before they go.
    pub(crate) fn revoke(&mut self, revoked: &[TopicPartition]) -> BTreeMap<TopicPartition, i64> {
        revoked
            .iter()
            .filter_map(|key| {
                let (topic, partition) = key;
                let topic_state = self.topics.get_mut(topic.as_str())?;
                let state = topic_state.partitions.remove(partition)?;
                if topic_state.partitions.is_empty() {
                    self.topics.remove(topic.as_str());
                }
                let committable = state.committable()?;
                (state.committed != Some(committable)).then(|| (key.clone(), committable))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commits(tracker: &OffsetTracker) -> Vec<(i32, i64)> {
        tracker
            .to_commit()
            .into_iter()
            .map(|((_, partition), offset)| (partition, offset))
            .collect()
    }

    #[test]
    fn a_record_read_before_its_partition_was_revoked_is_not_current() {
        let mut tracker = OffsetTracker::default();
        let before = tracker.track("t", 0, 5);
        let other = tracker.track("t", 1, 7);
        assert!(tracker.is_current(&before));
        tracker.revoke(&[("t".to_owned(), 0)]);
        assert!(!tracker.is_current(&before));
        assert!(tracker.is_current(&other));
        // Assigned again: a record read now is current, the one from before still is not.
        let after = tracker.track("t", 0, 5);
        assert!(tracker.is_current(&after));
        assert!(!tracker.is_current(&before));
    }

    #[test]
    fn commits_only_the_contiguous_settled_prefix() {
        let mut tracker = OffsetTracker::default();
        let tickets: Vec<Ticket> = (10..15).map(|offset| tracker.track("t", 0, offset)).collect();
        assert_eq!(commits(&tracker), [(0, 10)]);
        // 11..=14 succeed, 10 is still in flight: nothing past 10.
        for ticket in &tickets[1..] {
            assert!(tracker.settle(ticket));
        }
        assert_eq!(commits(&tracker), [(0, 10)]);
        assert!(!tracker.has_advanced());
        assert!(tracker.settle(&tickets[0]));
        assert_eq!(commits(&tracker), [(0, 15)]);
        assert!(tracker.has_advanced());
        assert_eq!(tracker.pending(), 0);
    }

    #[test]
    fn a_failed_record_holds_the_commit_forever() {
        let mut tracker = OffsetTracker::default();
        let failed = tracker.track("t", 1, 5);
        let later = tracker.track("t", 1, 6);
        tracker.settle(&later);
        assert_eq!(commits(&tracker), [(1, 5)]);
        drop(failed);
        assert_eq!(commits(&tracker), [(1, 5)]);
    }

    #[test]
    fn does_not_repeat_a_commit() {
        let mut tracker = OffsetTracker::default();
        let ticket = tracker.track("t", 0, 0);
        tracker.settle(&ticket);
        let offsets = tracker.to_commit();
        tracker.committed(&offsets);
        assert!(tracker.to_commit().is_empty());
    }

    #[test]
    fn settling_after_revocation_changes_nothing() {
        let mut tracker = OffsetTracker::default();
        let settled = tracker.track("t", 0, 0);
        let stale = tracker.track("t", 0, 1);
        tracker.settle(&settled);
        let revoked = tracker.revoke(&[("t".to_owned(), 0)]);
        assert_eq!(revoked.into_iter().collect::<Vec<_>>(), [(("t".to_owned(), 0), 1)]);
        // The partition comes back and is read again from the committed offset.
        let again = tracker.track("t", 0, 1);
        assert!(
            !tracker.settle(&stale),
            "a ticket of the old assignment must not settle the new one"
        );
        assert_eq!(commits(&tracker), [(0, 1)]);
        assert!(tracker.settle(&again));
        assert_eq!(commits(&tracker), [(0, 2)]);
    }
}
