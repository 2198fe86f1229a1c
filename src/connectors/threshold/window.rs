//! The counting state of `threshold-alert`, free of Kafka so that every rule can be tested alone: which windows a
//! record falls in, the watermark, when a window closes, which records are late, and which offset of each partition
//! may be committed.
//!
//! Times are epoch milliseconds. A window covers `[start, start + size)`; starts are multiples of `hop` (tumbling
//! windows have `hop == size`). The watermark is, over the partitions that have records and are not idle, the
//! smallest of (largest event time seen − `delay`). A window closes when the watermark reaches its end plus
//! `allowed_lateness`. When every partition is idle, the watermark moves on with the wall clock, so that a quiet
//! stream still closes its windows.
//!
//! Offsets: a partition may be committed up to the smallest offset of its records still in an open window, or past
//! its last record if none is. The commit carries the watermark up to which windows were closed and emitted
//! (`closed_through`); after a restart, records that fall only in windows closed before are known to have been
//! counted, and are not counted again into a partial window.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The group a record is counted in: the values of the `group_by` paths, in order.
pub(crate) type GroupKey = Vec<Value>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowSpec {
    pub(crate) size_ms: i64,
    pub(crate) hop_ms: i64,
}

impl WindowSpec {
    /// The starts of the windows that contain `time`, oldest first.
    pub(crate) fn starts(&self, time: i64) -> Vec<i64> {
        let last = time.div_euclid(self.hop_ms) * self.hop_ms;
        let mut starts = Vec::new();
        let mut start = last;
        while start + self.size_ms > time {
            starts.push(start);
            start -= self.hop_ms;
        }
        starts.reverse();
        starts
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Threshold {
    pub(crate) count: u64,
    /// `>=` rather than `>`.
    pub(crate) inclusive: bool,
}

impl Threshold {
    pub(crate) fn is_met(&self, count: u64) -> bool {
        if self.inclusive {
            count >= self.count
        } else {
            count > self.count
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) window: WindowSpec,
    pub(crate) threshold: Threshold,
    pub(crate) allowed_lateness_ms: i64,
    pub(crate) watermark_delay_ms: i64,
    pub(crate) idle_timeout: Duration,
    pub(crate) emit_early: bool,
}

/// A (window, group) over the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Alert {
    pub(crate) window_start: i64,
    pub(crate) window_end: i64,
    pub(crate) group: GroupKey,
    pub(crate) count: u64,
    /// False for an early alert (`emit: early`), sent when the threshold is first met.
    pub(crate) is_final: bool,
}

/// What became of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Counted in at least one open window; early alerts, if any, go out now.
    Counted(Vec<Alert>),
    /// Every window it falls in has closed in this run: a late record.
    Late,
    /// Every window it falls in was closed and emitted before a restart: it was counted then.
    AlreadyCounted,
}

#[derive(Debug, Default)]
struct Aggregate {
    count: u64,
    alerted_early: bool,
}

#[derive(Debug)]
struct PartitionClock {
    max_event_ms: Option<i64>,
    last_seen: Instant,
    /// The next offset to read; what may be committed when no open window holds a record of this partition.
    next_offset: Option<i64>,
    /// From the last commit's metadata: windows ending (plus lateness) at or before this were already emitted.
    closed_through: i64,
}

/// One open window, over all groups.
#[derive(Debug, Default)]
struct OpenWindow {
    groups: HashMap<GroupKey, Aggregate>,
    /// The smallest offset of each partition's records in this window.
    min_offsets: HashMap<i32, i64>,
}

pub(crate) struct Windows {
    settings: Settings,
    /// Open windows by start.
    open: BTreeMap<i64, OpenWindow>,
    partitions: HashMap<i32, PartitionClock>,
    /// Windows whose end plus lateness is at or before this have closed (in this run, or before it, by the
    /// restored `closed_through`).
    closed_through: i64,
    last_record: Option<Instant>,
    /// The watermark reached by the wall clock while everything was idle.
    idle_watermark: Option<i64>,
}

impl Windows {
    pub(crate) fn new(settings: Settings) -> Self {
        Self {
            settings,
            open: BTreeMap::new(),
            partitions: HashMap::new(),
            closed_through: i64::MIN,
            last_record: None,
            idle_watermark: None,
        }
    }

    /// Forgets everything (the partitions were revoked); the records are read again from the commit.
    pub(crate) fn reset(&mut self) {
        self.open.clear();
        self.partitions.clear();
        self.closed_through = i64::MIN;
        self.last_record = None;
        self.idle_watermark = None;
    }

    /// A partition was assigned; `closed_through` comes from its committed offset's metadata.
    pub(crate) fn assign(&mut self, partition: i32, closed_through: Option<i64>, now: Instant) {
        let closed_through = closed_through.unwrap_or(i64::MIN);
        self.partitions.insert(
            partition,
            PartitionClock {
                max_event_ms: None,
                last_seen: now,
                next_offset: None,
                closed_through,
            },
        );
        self.closed_through = self.closed_through.max(closed_through);
    }

    fn closes_at(&self, start: i64) -> i64 {
        start
            .saturating_add(self.settings.window.size_ms)
            .saturating_add(self.settings.allowed_lateness_ms)
    }

    /// Counts a record of `partition` at `offset` with event time `time` in `group`.
    pub(crate) fn add(&mut self, partition: i32, offset: i64, time: i64, group: GroupKey, now: Instant) -> Outcome {
        let watermark = self.watermark(now);
        let clock = self.partitions.entry(partition).or_insert(PartitionClock {
            max_event_ms: None,
            last_seen: now,
            next_offset: None,
            closed_through: i64::MIN,
        });
        clock.last_seen = now;
        clock.next_offset = Some(clock.next_offset.map_or(offset + 1, |next| next.max(offset + 1)));
        clock.max_event_ms = Some(clock.max_event_ms.map_or(time, |max| max.max(time)));
        let restored = clock.closed_through;
        self.last_record = Some(now);
        self.idle_watermark = None;

        let mut counted = false;
        let mut late = false;
        let mut alerts = Vec::new();
        for start in self.settings.window.starts(time) {
            let closes_at = self.closes_at(start);
            if closes_at <= restored {
                continue;
            }
            if closes_at <= self.closed_through || watermark.is_some_and(|mark| closes_at <= mark) {
                late = true;
                continue;
            }
            counted = true;
            let window = self.open.entry(start).or_default();
            let min = window.min_offsets.entry(partition).or_insert(offset);
            *min = (*min).min(offset);
            let aggregate = window.groups.entry(group.clone()).or_default();
            aggregate.count += 1;
            if self.settings.emit_early && !aggregate.alerted_early && self.settings.threshold.is_met(aggregate.count) {
                aggregate.alerted_early = true;
                alerts.push(Alert {
                    window_start: start,
                    window_end: start + self.settings.window.size_ms,
                    group: group.clone(),
                    count: aggregate.count,
                    is_final: false,
                });
            }
        }
        match (counted, late) {
            (true, _) => Outcome::Counted(alerts),
            (false, true) => Outcome::Late,
            (false, false) => Outcome::AlreadyCounted,
        }
    }

    /// A record of `partition` that was not counted (filtered out, or handed to the errors policy) still moves the
    /// partition's position, and its event time, when it has one, the partition's clock: a partition whose records
    /// are all filtered out must not hold the watermark back. A record without a time does not count as activity,
    /// so a partition of such records becomes idle.
    pub(crate) fn skip(&mut self, partition: i32, offset: i64, time: Option<i64>, now: Instant) {
        let clock = self.partitions.entry(partition).or_insert(PartitionClock {
            max_event_ms: None,
            last_seen: now,
            next_offset: None,
            closed_through: i64::MIN,
        });
        clock.next_offset = Some(clock.next_offset.map_or(offset + 1, |next| next.max(offset + 1)));
        if let Some(time) = time {
            clock.last_seen = now;
            clock.max_event_ms = Some(clock.max_event_ms.map_or(time, |max| max.max(time)));
        }
    }

    /// The current watermark, or `None` before any record.
    pub(crate) fn watermark(&self, now: Instant) -> Option<i64> {
        let idle = self.settings.idle_timeout;
        let delay = self.settings.watermark_delay_ms;
        let active: Vec<Option<i64>> = self
            .partitions
            .values()
            .filter(|clock| now.duration_since(clock.last_seen) < idle)
            .map(|clock| clock.max_event_ms)
            .collect();
        if !active.is_empty() {
            // A partition that has not delivered a record yet, and is not idle, holds the watermark back.
            return active
                .into_iter()
                .collect::<Option<Vec<i64>>>()?
                .into_iter()
                .min()
                .map(|max| max.saturating_sub(delay));
        }
        // Everything is idle: event time is taken to move on with the wall clock since the last record.
        let newest = self
            .partitions
            .values()
            .filter_map(|clock| clock.max_event_ms)
            .max()?
            .saturating_sub(delay);
        let quiet = self.last_record.map_or(Duration::ZERO, |last| now.duration_since(last));
        let advanced = newest.saturating_add(i64::try_from(quiet.as_millis()).unwrap_or(i64::MAX));
        Some(self.idle_watermark.map_or(advanced, |mark| mark.max(advanced)))
    }

    /// Closes the windows the watermark has passed; returns the final alerts of those over the threshold.
    pub(crate) fn advance(&mut self, now: Instant) -> Vec<Alert> {
        let Some(watermark) = self.watermark(now) else {
            return Vec::new();
        };
        if self
            .last_record
            .is_some_and(|last| now.duration_since(last) >= self.settings.idle_timeout)
        {
            self.idle_watermark = Some(watermark);
        }
        self.close_through(watermark)
    }

    /// Closes the windows that close at or before `watermark` (`i64::MAX`: all of them, as at the end of a
    /// preview); returns the final alerts of those over the threshold.
    pub(crate) fn close_through(&mut self, watermark: i64) -> Vec<Alert> {
        let mut alerts = Vec::new();
        while let Some((&start, _)) = self.open.first_key_value() {
            if self.closes_at(start) > watermark {
                break;
            }
            let Some(window) = self.open.remove(&start) else {
                break;
            };
            let mut closed: Vec<(GroupKey, Aggregate)> = window
                .groups
                .into_iter()
                .filter(|(_, aggregate)| self.settings.threshold.is_met(aggregate.count))
                .collect();
            closed.sort_by(|left, right| {
                left.0
                    .iter()
                    .map(Value::to_string)
                    .cmp(right.0.iter().map(Value::to_string))
            });
            alerts.extend(closed.into_iter().map(|(group, aggregate)| Alert {
                window_start: start,
                window_end: start + self.settings.window.size_ms,
                group,
                count: aggregate.count,
                is_final: true,
            }));
        }
        self.closed_through = self.closed_through.max(watermark);
        alerts
    }

    /// The count of `group` in each open window that covers `time`, by window start.
    pub(crate) fn counts(&self, time: i64, group: &GroupKey) -> Vec<(i64, u64)> {
        self.settings
            .window
            .starts(time)
            .into_iter()
            .filter_map(|start| {
                let aggregate = self.open.get(&start)?.groups.get(group)?;
                Some((start, aggregate.count))
            })
            .collect()
    }

    /// For each partition, the offset that may be committed now, with the `closed_through` mark to store with it.
    pub(crate) fn commit_positions(&self) -> (Vec<(i32, i64)>, i64) {
        let positions = self
            .partitions
            .iter()
            .filter_map(|(partition, clock)| {
                let held = self
                    .open
                    .values()
                    .filter_map(|window| window.min_offsets.get(partition))
                    .min()
                    .copied();
                held.or(clock.next_offset).map(|offset| (*partition, offset))
            })
            .collect();
        (positions, self.closed_through)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const MINUTE: i64 = 60_000;

    fn settings(size: i64, hop: i64, count: u64, inclusive: bool) -> Settings {
        Settings {
            window: WindowSpec {
                size_ms: size,
                hop_ms: hop,
            },
            threshold: Threshold { count, inclusive },
            allowed_lateness_ms: 0,
            watermark_delay_ms: 0,
            idle_timeout: Duration::from_secs(3600),
            emit_early: false,
        }
    }

    fn group(name: &str) -> GroupKey {
        vec![json!(name)]
    }

    #[test]
    fn a_window_covers_its_start_but_not_its_end() {
        let tumbling = WindowSpec {
            size_ms: MINUTE,
            hop_ms: MINUTE,
        };
        assert_eq!(tumbling.starts(0), [0]);
        assert_eq!(tumbling.starts(MINUTE - 1), [0]);
        assert_eq!(
            tumbling.starts(MINUTE),
            [MINUTE],
            "an event exactly at the end opens the next window"
        );
        assert_eq!(tumbling.starts(-1), [-MINUTE]);
        let hopping = WindowSpec {
            size_ms: MINUTE,
            hop_ms: 20_000,
        };
        assert_eq!(hopping.starts(65_000), [20_000, 40_000, 60_000]);
        assert_eq!(hopping.starts(60_000), [20_000, 40_000, 60_000]);
    }

    #[test]
    fn greater_than_and_at_least_differ_at_the_threshold() {
        let now = Instant::now();
        for (inclusive, expected) in [(false, 0), (true, 1)] {
            let mut windows = Windows::new(settings(MINUTE, MINUTE, 3, inclusive));
            for offset in 0..3 {
                windows.add(0, offset, 1_000 + offset, group("a"), now);
            }
            windows.add(0, 3, MINUTE, group("b"), now);
            assert_eq!(windows.advance(now).len(), expected, "inclusive: {inclusive}");
        }
    }

    #[test]
    fn a_window_closes_when_the_watermark_passes_its_end_plus_lateness() {
        let now = Instant::now();
        let mut windows = Windows::new(Settings {
            allowed_lateness_ms: 30_000,
            ..settings(MINUTE, MINUTE, 1, false)
        });
        windows.add(0, 0, 10_000, group("a"), now);
        windows.add(0, 1, 20_000, group("a"), now);
        windows.add(0, 2, MINUTE + 29_999, group("b"), now);
        assert!(windows.advance(now).is_empty(), "lateness keeps the first window open");
        assert_eq!(
            windows.add(0, 3, 30_000, group("a"), now),
            Outcome::Counted(vec![]),
            "a record within the lateness still counts"
        );
        windows.add(0, 4, MINUTE + 30_000, group("b"), now);
        let alerts = windows.advance(now);
        assert_eq!(
            alerts,
            [Alert {
                window_start: 0,
                window_end: MINUTE,
                group: group("a"),
                count: 3,
                is_final: true
            }]
        );
        assert_eq!(windows.add(0, 5, 59_000, group("a"), now), Outcome::Late);
    }

    #[test]
    fn hopping_windows_count_a_record_in_each_window_it_falls_in() {
        let now = Instant::now();
        let mut windows = Windows::new(settings(MINUTE, 30_000, 1, false));
        windows.add(0, 0, 40_000, group("a"), now);
        windows.add(0, 1, 50_000, group("a"), now);
        windows.add(0, 2, 3 * MINUTE, group("z"), now);
        let alerts: Vec<(i64, u64)> = windows
            .advance(now)
            .into_iter()
            .map(|alert| (alert.window_start, alert.count))
            .collect();
        assert_eq!(alerts, [(0, 2), (30_000, 2)]);
    }

    #[test]
    fn the_slowest_partition_holds_the_watermark_until_it_is_idle() {
        let start = Instant::now();
        let mut windows = Windows::new(Settings {
            idle_timeout: Duration::from_secs(10),
            ..settings(MINUTE, MINUTE, 0, false)
        });
        windows.assign(0, None, start);
        windows.assign(1, None, start);
        windows.add(0, 0, 5 * MINUTE, group("fast"), start);
        assert_eq!(windows.watermark(start), None, "partition 1 has not spoken yet");
        windows.add(1, 0, 1_000, group("slow"), start);
        assert_eq!(windows.watermark(start), Some(1_000));
        assert!(windows.advance(start).is_empty());
        windows.add(0, 1, 6 * MINUTE, group("fast"), start + Duration::from_secs(9));
        // Partition 1 has been quiet for 11s: it no longer holds the watermark back.
        let later = start + Duration::from_secs(11);
        assert_eq!(windows.watermark(later), Some(6 * MINUTE));
        let closed: Vec<i64> = windows.advance(later).iter().map(|alert| alert.window_start).collect();
        assert_eq!(closed, [0, 5 * MINUTE]);
    }

    #[test]
    fn a_quiet_stream_closes_its_windows_by_the_wall_clock() {
        let start = Instant::now();
        let mut windows = Windows::new(Settings {
            idle_timeout: Duration::from_secs(5),
            ..settings(MINUTE, MINUTE, 0, false)
        });
        windows.add(0, 0, 1_000, group("a"), start);
        assert!(windows.advance(start + Duration::from_secs(4)).is_empty());
        assert!(
            windows.advance(start + Duration::from_secs(30)).is_empty(),
            "1s + 30s is still in the window"
        );
        assert_eq!(windows.advance(start + Duration::from_secs(60)).len(), 1);
    }

    #[test]
    fn commits_stop_at_the_oldest_record_of_an_open_window() {
        let now = Instant::now();
        let mut windows = Windows::new(settings(MINUTE, MINUTE, 100, false));
        windows.add(0, 10, 1_000, group("a"), now);
        windows.add(0, 11, MINUTE + 1_000, group("a"), now);
        windows.skip(1, 7, Some(3 * MINUTE), now);
        let (mut positions, _) = windows.commit_positions();
        positions.sort_unstable();
        assert_eq!(positions, [(0, 10), (1, 8)]);
        windows.add(0, 12, 2 * MINUTE + 1, group("a"), now);
        windows.advance(now);
        let (positions, closed_through) = windows.commit_positions();
        let partition_0 = positions.iter().find(|(partition, _)| *partition == 0).copied();
        assert_eq!(
            partition_0,
            Some((0, 12)),
            "the first two windows closed; offset 12 is in an open one"
        );
        assert_eq!(closed_through, 2 * MINUTE + 1);
    }

    #[test]
    fn after_a_restart_records_of_windows_emitted_before_are_not_counted_again() {
        let now = Instant::now();
        let mut windows = Windows::new(settings(MINUTE, MINUTE, 0, false));
        windows.assign(0, Some(MINUTE), now);
        assert_eq!(windows.add(0, 3, 59_000, group("a"), now), Outcome::AlreadyCounted);
        assert_eq!(windows.add(0, 4, MINUTE + 1, group("a"), now), Outcome::Counted(vec![]));
    }

    #[test]
    fn early_alerts_go_out_at_the_first_crossing_and_the_final_count_at_the_close() {
        let now = Instant::now();
        let mut windows = Windows::new(Settings {
            emit_early: true,
            ..settings(MINUTE, MINUTE, 1, false)
        });
        assert_eq!(windows.add(0, 0, 1, group("a"), now), Outcome::Counted(vec![]));
        let Outcome::Counted(early) = windows.add(0, 1, 2, group("a"), now) else {
            panic!("counted")
        };
        assert_eq!((early[0].count, early[0].is_final), (2, false));
        assert_eq!(windows.add(0, 2, 3, group("a"), now), Outcome::Counted(vec![]));
        windows.add(0, 3, MINUTE, group("b"), now);
        let last = windows.advance(now);
        assert_eq!((last[0].count, last[0].is_final), (3, true));
    }
}
