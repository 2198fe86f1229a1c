//! Deduplication: a record whose key (the value at a JSON path) was seen within `window` of its timestamp is dropped.
//! EventBridge, SQS and a crashed producer all deliver at least once, so the same CloudTrail event can reach Kafka
//! twice; its `eventID` (or the envelope's `id`) names it.
//!
//! Time is the record's timestamp, not the wall clock, so that reading the same records again decides the same way.
//! The first sighting counts: a duplicate does not extend its key's window. The seen set is bounded by `max_keys`;
//! past it the oldest keys go first, each early eviction counted, since a duplicate of an evicted key passes.
//!
//! The set lives in the process, shared by the clones of one run of a connector; each run starts with an empty one,
//! since it reads again what the last run did not settle. A key is only as good as its record's fate: the source
//! forgets the key of a message it leaves for SQS to deliver again ([`Dedupe::forget`]), and a `topic-processor`
//! with exactly-once processing replaces the set on each start and rebalance with the keys its committed output
//! holds ([`Dedupe::restore`]), so it survives a crash too.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json_path::JsonPath;
use crate::telemetry::{emit, DuplicateDropped, SeenKeyEvicted};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// The JSON path of the value naming the event, e.g. `$.detail.eventID` or `$.id`. A record where it selects
    /// nothing passes.
    pub(crate) key: JsonPath,
    /// How long after its first sighting (by record timestamp) a key's duplicates are dropped, e.g. `10m`.
    #[serde(with = "humantime_serde")]
    pub(crate) window: Duration,
    /// The most keys remembered; past it the oldest are forgotten first. Default: 1000000.
    #[serde(default = "default_max_keys")]
    pub(crate) max_keys: usize,
}

fn default_max_keys() -> usize {
    1_000_000
}

#[derive(Debug, Clone)]
pub struct Dedupe {
    key: JsonPath,
    window_ms: i64,
    max_keys: usize,
    seen: Arc<Mutex<Seen>>,
}

/// Each remembered key with the timestamp of its first sighting, and the keys in the order they were first seen.
#[derive(Debug, Default)]
struct Seen {
    first_seen: HashMap<String, i64>,
    /// May hold keys forgotten and seen again since; an entry counts only while its time is the key's in `first_seen`.
    order: VecDeque<(i64, String)>,
    /// The latest timestamp seen: keys first seen more than `window` before it can no longer match anything newer.
    latest: i64,
}

/// What the transform decided about a record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// First seen (or seen again after its window): the record passes, and this is its key.
    Admitted(String),
    /// The value has no key at the path: the record passes.
    Unkeyed,
    /// A duplicate: the record is dropped.
    Duplicate,
}

impl Dedupe {
    pub(crate) fn new(config: &DedupeConfig) -> Result<Self, String> {
        if config.key.is_multi() {
            return Err(format!("key: `{}` must select one value", config.key));
        }
        if config.window.is_zero() {
            return Err("window: must be longer than 0s".into());
        }
        if config.max_keys == 0 {
            return Err("max_keys: must be at least 1".into());
        }
        Ok(Self {
            key: config.key.clone(),
            window_ms: i64::try_from(config.window.as_millis()).unwrap_or(i64::MAX),
            max_keys: config.max_keys,
            seen: Arc::default(),
        })
    }

    pub(crate) fn window(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.window_ms).unwrap_or(u64::MAX))
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The key `value` is deduplicated by: a string as it is, any other value as its JSON text.
    fn key_of(&self, value: &Value) -> Option<String> {
        match self.key.select_one(value)? {
            Value::Null => None,
            Value::String(text) => Some(text.clone()),
            other => Some(other.to_string()),
        }
    }

    pub(crate) fn judge(&self, connector: &str, value: &Value, timestamp: i64) -> Verdict {
        let Some(key) = self.key_of(value) else {
            return Verdict::Unkeyed;
        };
        let mut seen = self.seen();
        seen.latest = seen.latest.max(timestamp);
        let evicted = seen.forget(self.window_ms, self.max_keys);
        if evicted > 0 {
            emit(SeenKeyEvicted {
                connector,
                count: evicted,
            });
        }
        if let Some(first) = seen.first_seen.get(&key) {
            if timestamp.abs_diff(*first) <= self.window_ms.unsigned_abs() {
                emit(DuplicateDropped { connector });
                return Verdict::Duplicate;
            }
        }
        seen.remember(key.clone(), timestamp);
        Verdict::Admitted(key)
    }

    /// Forgets `key`, whose record was not settled after all (its write failed), so that the record delivered
    /// again is not taken for a duplicate of itself.
    pub(crate) fn forget(&self, key: &str) {
        self.seen().first_seen.remove(key);
    }

    /// The same settings with nothing seen: a connector's run starts from its input's committed position, so what
    /// an earlier run admitted but never settled must not count.
    pub(crate) fn fresh(&self) -> Self {
        Self {
            seen: Arc::default(),
            ..self.clone()
        }
    }

    /// Replaces what was seen with `keys` (key, timestamp of its first sighting), as a restart rebuilds it.
    pub(crate) fn restore(&self, keys: impl IntoIterator<Item = (String, i64)>) {
        let mut seen = self.seen();
        *seen = Seen::default();
        let mut keys: Vec<(String, i64)> = keys.into_iter().collect();
        keys.sort_by_key(|(_, timestamp)| *timestamp);
        for (key, timestamp) in keys {
            seen.latest = seen.latest.max(timestamp);
            if !seen.first_seen.contains_key(&key) {
                seen.remember(key, timestamp);
            }
        }
        seen.forget(self.window_ms, self.max_keys);
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.seen().first_seen.len()
    }
}

impl Seen {
    fn remember(&mut self, key: String, timestamp: i64) {
        self.first_seen.insert(key.clone(), timestamp);
        self.order.push_back((timestamp, key));
    }

    /// Forgets the keys whose window has passed, then the oldest ones beyond `max_keys` (only these count as early,
    /// the number returned: a duplicate of them would pass).
    fn forget(&mut self, window_ms: i64, max_keys: usize) -> u64 {
        let horizon = self.latest.saturating_sub(window_ms);
        let mut early = 0;
        while let Some((timestamp, key)) = self.order.front() {
            let current = self.first_seen.get(key) == Some(timestamp);
            let expired = *timestamp < horizon;
            if current && !expired && self.first_seen.len() < max_keys {
                break;
            }
            if current {
                self.first_seen.remove(key);
                if !expired {
                    early += 1;
                }
            }
            self.order.pop_front();
        }
        early
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dedupe(window_secs: u64, max_keys: usize) -> Dedupe {
        Dedupe::new(&DedupeConfig {
            key: "$.id".parse().unwrap(),
            window: Duration::from_secs(window_secs),
            max_keys,
        })
        .unwrap()
    }

    fn judge(dedupe: &Dedupe, id: &str, at_secs: i64) -> Verdict {
        dedupe.judge("test", &json!({"id": id}), at_secs * 1000)
    }

    #[test]
    fn drops_a_key_seen_within_the_window_of_its_first_sighting() {
        let dedupe = dedupe(600, 100);
        assert_eq!(judge(&dedupe, "a", 0), Verdict::Admitted("a".into()));
        assert_eq!(judge(&dedupe, "a", 300), Verdict::Duplicate);
        assert_eq!(judge(&dedupe, "a", 600), Verdict::Duplicate);
        // The duplicate at 600 did not extend the window: at 601 the key is new again.
        assert_eq!(judge(&dedupe, "a", 601), Verdict::Admitted("a".into()));
        assert_eq!(judge(&dedupe, "b", 601), Verdict::Admitted("b".into()));
        assert_eq!(dedupe.judge("test", &json!({"other": 1}), 0), Verdict::Unkeyed);
        assert_eq!(
            dedupe.judge("test", &json!({"id": 7}), 0),
            Verdict::Admitted("7".into())
        );
    }

    #[test]
    fn a_late_duplicate_within_the_window_is_still_dropped() {
        let dedupe = dedupe(600, 100);
        judge(&dedupe, "a", 1000);
        judge(&dedupe, "b", 1300);
        assert_eq!(judge(&dedupe, "a", 900), Verdict::Duplicate);
    }

    #[test]
    fn memory_is_bounded_oldest_first() {
        let dedupe = dedupe(600, 3);
        for (index, id) in ["a", "b", "c", "d"].into_iter().enumerate() {
            judge(&dedupe, id, i64::try_from(index).unwrap());
        }
        assert_eq!(dedupe.remembered(), 3);
        // `a` was forgotten early, so its duplicate passes; `d` is remembered.
        assert_eq!(judge(&dedupe, "a", 5), Verdict::Admitted("a".into()));
        assert_eq!(judge(&dedupe, "d", 5), Verdict::Duplicate);
    }

    #[test]
    fn expired_keys_are_forgotten() {
        let dedupe = dedupe(10, 100);
        for second in 0..1000 {
            judge(&dedupe, &format!("k{second}"), second);
        }
        assert!(dedupe.remembered() <= 12, "{}", dedupe.remembered());
    }

    #[test]
    fn restore_replaces_the_seen_set() {
        let dedupe = dedupe(600, 100);
        judge(&dedupe, "gone", 0);
        dedupe.restore([("x".to_owned(), 100_000), ("y".to_owned(), 50_000)]);
        assert_eq!(judge(&dedupe, "gone", 101), Verdict::Admitted("gone".into()));
        assert_eq!(judge(&dedupe, "x", 150), Verdict::Duplicate);
        assert_eq!(judge(&dedupe, "y", 120), Verdict::Duplicate);
    }

    #[test]
    fn a_forgotten_key_passes_again_and_a_fresh_set_has_seen_nothing() {
        let dedupe = dedupe(600, 100);
        judge(&dedupe, "a", 0);
        judge(&dedupe, "b", 0);
        dedupe.forget("a");
        assert_eq!(judge(&dedupe, "a", 1), Verdict::Admitted("a".into()));
        let fresh = dedupe.fresh();
        assert_eq!(judge(&fresh, "b", 1), Verdict::Admitted("b".into()));
        assert_eq!(judge(&dedupe, "b", 1), Verdict::Duplicate, "the original keeps its set");
    }

    #[test]
    fn clones_share_what_was_seen() {
        let dedupe = dedupe(600, 100);
        let clone = dedupe.clone();
        judge(&dedupe, "a", 0);
        assert_eq!(judge(&clone, "a", 1), Verdict::Duplicate);
    }
}
