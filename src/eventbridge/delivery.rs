//! Delivering one batch: rate limit, PutEvents, then again for just the entries that failed in a retryable way,
//! with backoff, until each entry is delivered or rejected, the retry limits for unclear answers are reached, or
//! the connector stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::adaptive::{Observation, RequestSlots};
use super::entry::Entry;
use super::retry::RetryPolicy;
use super::service::{EntryOutcome, PutEventsService, RequestError};
use crate::backoff::full_jitter;
use crate::rate_limit::RateLimit;
use crate::telemetry::{
    emit, ConnectorMetrics, PutEventsCompleted, PutEventsFailing, PutEventsRetrying, PutEventsSplit, RateLimitWaited,
};

/// The final fate of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settled {
    Delivered { event_id: String },
    Rejected { code: String, message: String },
}

/// Why a batch could not be settled; the connector fails, and its unsettled records are read again after restart.
/// Throttling and outages are never among these: they are waited out.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum DeliveryError {
    #[error("{0}")]
    Fatal(String),
    #[error(
        "{entries} entries with no clear answer after {attempts} attempts over {elapsed:?}; last error: {last_error}"
    )]
    RetriesExhausted {
        entries: usize,
        attempts: u32,
        elapsed: std::time::Duration,
        last_error: String,
    },
}

/// What came of a batch: each item with its fate, and, if the batch could not be finished, why. Items in
/// `unsettled` were neither delivered nor rejected.
#[derive(Debug)]
pub(crate) struct Delivery<T> {
    pub(crate) settled: Vec<(T, Settled)>,
    pub(crate) unsettled: Vec<T>,
    pub(crate) error: Option<DeliveryError>,
    /// Sends, the first included; 1 when everything went through at once.
    pub(crate) attempts: u32,
}

/// The longest wait before sending again entries that EventBridge answered as throttled or failed in passing. It
/// answered, so it is up: a longer wait would only delay the unlucky entries (each batch backs off alone, so it
/// does not slow the sender as a whole; that is the rate limit's work).
const ENTRY_RETRY_CEILING: Duration = Duration::from_secs(1);

/// Where a batch goes: PutEvents ([`PutEventsService`]), or in the unit tests below a script of the answers
/// EventBridge gives under faults it will not produce on demand (throttle storms, unclear answers).
pub(crate) trait SendEntries: Send + Sync {
    fn send<'a>(
        &'a self,
        entries: &'a [&'a Entry],
    ) -> futures::future::BoxFuture<'a, Result<Vec<EntryOutcome>, RequestError>>;
}

impl SendEntries for PutEventsService {
    fn send<'a>(
        &'a self,
        entries: &'a [&'a Entry],
    ) -> futures::future::BoxFuture<'a, Result<Vec<EntryOutcome>, RequestError>> {
        Box::pin(PutEventsService::send(self, entries))
    }
}

pub(crate) struct Deliverer<S = PutEventsService> {
    pub(crate) metrics: ConnectorMetrics,
    pub(crate) service: S,
    pub(crate) retry: RetryPolicy,
    pub(crate) rate_limit: Option<Arc<RateLimit>>,
    /// Requests out at once (`request.max_in_flight`). A batch holds a slot only while its request is out, never
    /// while it waits to retry, so that throttled batches do not hold up the others.
    pub(crate) slots: Arc<RequestSlots>,
    /// Cancelled on shutdown: requests already out are waited for, nothing is sent again, and what is not settled
    /// is handed back unsettled (read again on the next start).
    pub(crate) stopping: CancellationToken,
    /// Shared by the connector's batches, so that an outage is warned of once a minute rather than once a batch.
    pub(crate) outage_warning: OutageWarning,
}

/// Requests of one batch that fail in a row, not throttled, before the connector warns of it.
const OUTAGE_WARNING_AFTER: u32 = 3;

/// When the connector last warned that its requests keep failing: every batch in flight fails alike in an outage,
/// and one line a minute says it.
#[derive(Debug, Default)]
pub(crate) struct OutageWarning {
    last: std::sync::Mutex<Option<Instant>>,
}

impl OutageWarning {
    const INTERVAL: Duration = Duration::from_secs(60);

    /// Whether a warning is due now, which then counts as given.
    fn due(&self) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < Self::INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// Where a batch's retry loop stands between rounds.
#[derive(Default)]
struct RetryState {
    /// Sends, the first included.
    attempts: u32,
    /// Answers that left entries' fate unclear, and since when: these count toward the retry limits.
    uncertain_attempts: u32,
    uncertain_since: Option<Instant>,
    /// Rounds in a row in which no entry went through. A round in which some did says EventBridge is taking
    /// entries, at its rate, so the next round goes out after a short wait; only a round that moved nothing waits
    /// longer each time.
    rounds_without_progress: u32,
    /// Requests in a row that failed as a whole (5xx, timeout, connection, request throttling): an outage, waited
    /// out with waits growing up to `max_backoff`. Entries EventBridge answered as throttled wait at most
    /// `ENTRY_RETRY_CEILING`.
    request_failures: u32,
    /// Of those, the ones that were not throttling, in a row: the endpoint not reached, or failing.
    outage_requests: u32,
}

/// What one round of a batch came to.
enum Round<T> {
    /// Some entries are to be sent again; `transient` when every reason passes by itself (throttling, outages).
    Retry {
        pending: Vec<T>,
        last_error: String,
        transient: bool,
    },
    Done,
    Fatal(Vec<T>, String),
    /// The service took the request as too large: the entries, to be sent in smaller requests.
    TooLarge(Vec<T>, String),
}

impl<S: SendEntries> Deliverer<S> {
    /// Delivers `items`, the first request sent in `slot`. Throttling, internal failures, 5xx and lost connections
    /// are retried for as long as the connector runs: they pass, and a record is never given up for them. Only
    /// answers that leave an entry's fate unclear count toward `retry.max_attempts` and `retry.max_duration`. A
    /// request the service finds too large is split in halves, sent one after the other; an entry that alone is
    /// too large is rejected, for the errors policy.
    pub(crate) async fn deliver<T: AsRef<Entry> + AsMut<Entry>>(
        &self,
        items: Vec<T>,
        slot: OwnedSemaphorePermit,
    ) -> Delivery<T> {
        // Most batches go in one request: its results become these, not a copy (a sink holds hundreds of requests
        // in flight, each with its batch's results).
        let mut done = Delivery {
            settled: Vec::new(),
            unsettled: Vec::new(),
            error: None,
            attempts: 0,
        };
        let mut slot = Some(slot);
        // The batch, or the halves of one found too large, last to be sent first.
        let mut batches = vec![items];
        while let Some(batch) = batches.pop() {
            // The first batch goes in the slot it came with; a half waits for one, unless sending has ended.
            let slot = match slot.take() {
                Some(slot) => slot,
                None if done.error.is_some() || self.stopping.is_cancelled() => {
                    done.unsettled.extend(batch);
                    continue;
                }
                None => match self.next_slot(Duration::ZERO).await {
                    Some(slot) => slot,
                    None => {
                        done.unsettled.extend(batch);
                        continue;
                    }
                },
            };
            let (delivery, too_large) = self.deliver_batch(batch, slot).await;
            if done.settled.is_empty() {
                done.settled = delivery.settled;
            } else {
                done.settled.extend(delivery.settled);
            }
            done.unsettled.extend(delivery.unsettled);
            done.error = done.error.or(delivery.error);
            done.attempts += delivery.attempts;
            match too_large {
                Some((mut batch, reason)) if batch.len() > 1 => {
                    let second = batch.split_off(batch.len() / 2);
                    batches.push(second);
                    batches.push(batch);
                    emit(PutEventsSplit {
                        metrics: &self.metrics,
                        reason: &reason,
                    });
                }
                Some((batch, reason)) => done.settled.extend(batch.into_iter().map(|item| {
                    let message = format!("the entry alone makes a request too large for EventBridge: {reason}");
                    let code = "RequestEntityTooLarge".to_owned();
                    (item, Settled::Rejected { code, message })
                })),
                None => {}
            }
        }
        done
    }

    /// One batch, retried until each entry is settled or the loop must stop; a batch the service finds too large
    /// comes back whole, with the reason.
    async fn deliver_batch<T: AsRef<Entry> + AsMut<Entry>>(
        &self,
        items: Vec<T>,
        mut slot: OwnedSemaphorePermit,
    ) -> (Delivery<T>, Option<(Vec<T>, String)>) {
        let mut settled = Vec::with_capacity(items.len());
        let mut pending = items;
        let mut state = RetryState::default();
        loop {
            state.attempts += 1;
            let settled_before = settled.len();
            let (last_error, transient) = match self.round(pending, slot, &mut settled, &mut state).await {
                Round::Retry {
                    pending: retry,
                    last_error,
                    transient,
                } => {
                    pending = retry;
                    (last_error, transient)
                }
                Round::Done => return (finished(settled, Vec::new(), None, state.attempts), None),
                Round::Fatal(pending, reason) => {
                    let error = Some(DeliveryError::Fatal(reason));
                    return (finished(settled, pending, error, state.attempts), None);
                }
                Round::TooLarge(pending, reason) => {
                    return (
                        finished(settled, Vec::new(), None, state.attempts),
                        Some((pending, reason)),
                    )
                }
            };
            if self.stopping.is_cancelled() {
                return (finished(settled, pending, None, state.attempts), None);
            }
            if settled.len() > settled_before {
                state.rounds_without_progress = 0;
            }
            let delay = self.next_delay(&mut state);
            if !transient {
                if let Some(error) = self.exhausted(&mut state, delay, pending.len(), &last_error) {
                    return (finished(settled, pending, Some(error), state.attempts), None);
                }
            }
            if state.outage_requests >= OUTAGE_WARNING_AFTER && self.outage_warning.due() {
                emit(PutEventsFailing {
                    metrics: &self.metrics,
                    failed_requests: state.outage_requests,
                    reason: &last_error,
                });
            }
            emit(PutEventsRetrying {
                metrics: &self.metrics,
                entries: pending.len(),
                attempt: state.attempts,
                delay,
                reason: &last_error,
                transient,
            });
            // Waiting, the entries let go of the blocks their details were cut from: the entries read with them
            // have mostly settled, and the blocks can be freed.
            for item in &mut pending {
                item.as_mut().detail.hold_alone();
            }
            match self.next_slot(delay).await {
                Some(acquired) => slot = acquired,
                None => return (finished(settled, pending, None, state.attempts), None),
            }
        }
    }

    /// Sends `pending` once (after the rate limit), settles what the answer settles, and says what is left.
    async fn round<T: AsRef<Entry>>(
        &self,
        pending: Vec<T>,
        slot: OwnedSemaphorePermit,
        settled: &mut Vec<(T, Settled)>,
        state: &mut RetryState,
    ) -> Round<T> {
        if let Some(limit) = &self.rate_limit {
            let waiting = Instant::now();
            limit.acquire(pending.len()).await;
            emit(RateLimitWaited {
                metrics: &self.metrics,
                waited: waiting.elapsed(),
            });
        }
        self.slots.pace().await;
        let entries: Vec<&Entry> = pending.iter().map(AsRef::as_ref).collect();
        let sending = Instant::now();
        let answer = self.service.send(&entries).await;
        let latency = sending.elapsed();
        let throttled = match &answer {
            Ok(outcomes) => outcomes.iter().any(EntryOutcome::is_throttled),
            Err(error) => matches!(error, RequestError::Throttled(_)),
        };
        let observation = Observation {
            latency,
            entries: entries.len(),
            throttled,
        };
        self.slots.release(slot, observation);
        emit(PutEventsCompleted {
            metrics: &self.metrics,
            entries: entries.len(),
            duration: latency,
        });
        let outcomes = match answer {
            Ok(outcomes) => outcomes,
            Err(RequestError::Transient(reason)) => {
                state.request_failures += 1;
                state.outage_requests += 1;
                return Round::Retry {
                    pending,
                    last_error: reason,
                    transient: true,
                };
            }
            Err(RequestError::Throttled(reason)) => {
                state.request_failures += 1;
                state.outage_requests = 0;
                return Round::Retry {
                    pending,
                    last_error: reason,
                    transient: true,
                };
            }
            Err(RequestError::Uncertain(reason)) => {
                state.request_failures += 1;
                state.outage_requests = 0;
                return Round::Retry {
                    pending,
                    last_error: reason,
                    transient: false,
                };
            }
            Err(RequestError::Fatal(reason)) => return Round::Fatal(pending, reason),
            Err(RequestError::TooLarge(reason)) => return Round::TooLarge(pending, reason),
        };
        state.request_failures = 0;
        state.outage_requests = 0;
        let mut retry = Vec::new();
        let mut last_error = String::new();
        let mut transient = true;
        for (item, outcome) in pending.into_iter().zip(outcomes) {
            match outcome {
                EntryOutcome::Delivered { event_id } => settled.push((item, Settled::Delivered { event_id })),
                EntryOutcome::Rejected { code, message } => settled.push((item, Settled::Rejected { code, message })),
                EntryOutcome::Retryable {
                    code,
                    message,
                    transient: passes,
                } => {
                    last_error = format!("{code}: {message}");
                    transient &= passes;
                    retry.push(item);
                }
            }
        }
        if retry.is_empty() {
            return Round::Done;
        }
        Round::Retry {
            pending: retry,
            last_error,
            transient,
        }
    }

    fn next_delay(&self, state: &mut RetryState) -> Duration {
        state.rounds_without_progress += 1;
        if state.request_failures > 0 {
            full_jitter(
                self.retry.initial_backoff,
                self.retry.max_backoff,
                state.request_failures,
            )
        } else {
            let ceiling = self.retry.max_backoff.min(ENTRY_RETRY_CEILING);
            full_jitter(self.retry.initial_backoff, ceiling, state.rounds_without_progress)
        }
    }

    /// Counts an unclear answer; past `retry.max_attempts` or `retry.max_duration`, the error to give up with.
    fn exhausted(
        &self,
        state: &mut RetryState,
        delay: Duration,
        entries: usize,
        last_error: &str,
    ) -> Option<DeliveryError> {
        state.uncertain_attempts += 1;
        let elapsed = state.uncertain_since.get_or_insert_with(Instant::now).elapsed();
        (state.uncertain_attempts >= self.retry.max_attempts || elapsed + delay > self.retry.max_duration).then(|| {
            DeliveryError::RetriesExhausted {
                entries,
                attempts: state.uncertain_attempts,
                elapsed,
                last_error: last_error.to_owned(),
            }
        })
    }

    /// A request slot after `delay`, or `None` once the connector stops.
    async fn next_slot(&self, delay: Duration) -> Option<OwnedSemaphorePermit> {
        let wait_then_acquire = async {
            tokio::time::sleep(delay).await;
            self.slots.acquire().await.ok()
        };
        tokio::select! {
            acquired = wait_then_acquire => acquired,
            () = self.stopping.cancelled() => None,
        }
    }
}

fn finished<T>(
    settled: Vec<(T, Settled)>,
    unsettled: Vec<T>,
    error: Option<DeliveryError>,
    attempts: u32,
) -> Delivery<T> {
    Delivery {
        settled,
        unsettled,
        error,
        attempts,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;
    use crate::eventbridge::Detail;

    /// Answers each send with the next scripted answer (the same one over and over once one is left), and
    /// records how many entries each send carried.
    struct Script {
        answers: Mutex<VecDeque<Answer>>,
        sent: Mutex<Vec<usize>>,
    }

    #[derive(Clone)]
    enum Answer {
        /// Per entry, in order: `d` delivered, `t` throttled, `u` unclear, `r` rejected.
        Entries(&'static str),
        Request(RequestError),
        /// HTTP 413 for a request of more than this many entries; the others are delivered.
        TooLargeOver(usize),
    }

    impl Script {
        fn new(answers: Vec<Answer>) -> Self {
            Self {
                answers: Mutex::new(answers.into()),
                sent: Mutex::new(Vec::new()),
            }
        }

        fn sent(&self) -> Vec<usize> {
            self.sent.lock().unwrap().clone()
        }
    }

    impl SendEntries for Script {
        fn send<'a>(
            &'a self,
            entries: &'a [&'a Entry],
        ) -> futures::future::BoxFuture<'a, Result<Vec<EntryOutcome>, RequestError>> {
            self.sent.lock().unwrap().push(entries.len());
            let mut answers = self.answers.lock().unwrap();
            let answer = if answers.len() > 1 {
                answers.pop_front().unwrap()
            } else {
                answers[0].clone()
            };
            let outcome = match answer {
                Answer::Request(error) => Err(error),
                Answer::TooLargeOver(most) if entries.len() > most => {
                    Err(RequestError::TooLarge("HTTP 413: Request Entity Too Large".into()))
                }
                Answer::TooLargeOver(_) => Ok(entries
                    .iter()
                    .map(|entry| EntryOutcome::Delivered {
                        event_id: entry.source.to_string(),
                    })
                    .collect()),
                Answer::Entries(fates) => Ok(entries
                    .iter()
                    .zip(fates.chars().cycle())
                    .map(|(entry, fate)| match fate {
                        'd' => EntryOutcome::Delivered {
                            event_id: entry.source.to_string(),
                        },
                        't' => EntryOutcome::Retryable {
                            code: "ThrottlingException".into(),
                            message: "Rate exceeded".into(),
                            transient: true,
                        },
                        'u' => EntryOutcome::Retryable {
                            code: "Unknown".into(),
                            message: "no result".into(),
                            transient: false,
                        },
                        _ => EntryOutcome::Rejected {
                            code: "MalformedDetail".into(),
                            message: "Detail is malformed.".into(),
                        },
                    })
                    .collect()),
            };
            Box::pin(async move { outcome })
        }
    }

    /// The deliverer takes anything that holds an entry, as the sink's records do; here the entry itself.
    impl AsRef<Entry> for Entry {
        fn as_ref(&self) -> &Entry {
            self
        }
    }

    impl AsMut<Entry> for Entry {
        fn as_mut(&mut self) -> &mut Entry {
            self
        }
    }

    fn entries(count: usize) -> Vec<Entry> {
        (0..count)
            .map(|n| Entry {
                source: format!("entry-{n}").into(),
                detail_type: "test".into(),
                detail: Detail::from_value(&serde_json::json!({"n": n})),
                time: None,
                resources: Vec::new(),
                trace_header: None,
            })
            .collect()
    }

    fn deliverer(script: Script) -> Deliverer<Script> {
        Deliverer {
            metrics: ConnectorMetrics::new("unit"),
            service: script,
            retry: RetryPolicy {
                max_attempts: 3,
                ..RetryPolicy::default()
            },
            rate_limit: None,
            slots: Arc::new(RequestSlots::fixed(1)),
            stopping: CancellationToken::new(),
            outage_warning: OutageWarning::default(),
        }
    }

    #[test]
    fn an_outage_is_warned_of_once_a_minute() {
        let warning = OutageWarning::default();
        assert!(warning.due());
        assert!(!warning.due(), "a second warning at once");
        let a_minute_ago = Instant::now().checked_sub(OutageWarning::INTERVAL).unwrap();
        *warning.last.lock().unwrap() = Some(a_minute_ago);
        assert!(warning.due());
        assert!(!warning.due());
    }

    async fn deliver(deliverer: &Deliverer<Script>, items: Vec<Entry>) -> Delivery<Entry> {
        let slot = deliverer.slots.acquire().await.unwrap();
        deliverer.deliver(items, slot).await
    }

    fn delivered(delivery: &Delivery<Entry>) -> Vec<String> {
        let mut ids: Vec<String> = delivery
            .settled
            .iter()
            .filter_map(|(_, fate)| match fate {
                Settled::Delivered { event_id } => Some(event_id.clone()),
                Settled::Rejected { .. } => None,
            })
            .collect();
        ids.sort();
        ids
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_entries_that_failed_are_sent_again() {
        let deliverer = deliverer(Script::new(vec![Answer::Entries("dtdr"), Answer::Entries("d")]));
        let delivery = deliver(&deliverer, entries(4)).await;
        assert_eq!(deliverer.service.sent(), [4, 1]);
        assert_eq!(delivered(&delivery), ["entry-0", "entry-1", "entry-2"]);
        assert_eq!(delivery.settled.len(), 4);
        assert!(delivery.unsettled.is_empty() && delivery.error.is_none());
        assert_eq!(delivery.attempts, 2);
        // Only the entry that waited to be sent again let go of the block its detail was cut from.
        let alone: Vec<&str> = delivery
            .settled
            .iter()
            .filter(|(entry, _)| entry.detail.quoted().is_unique())
            .map(|(entry, _)| &*entry.source)
            .collect();
        assert_eq!(alone, ["entry-1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_too_large_is_sent_again_in_halves() {
        let deliverer = deliverer(Script::new(vec![Answer::TooLargeOver(3)]));
        let delivery = deliver(&deliverer, entries(10)).await;
        assert_eq!(deliverer.service.sent(), [10, 5, 2, 3, 5, 2, 3]);
        let mut expected: Vec<String> = (0..10).map(|n| format!("entry-{n}")).collect();
        expected.sort();
        assert_eq!(delivered(&delivery), expected);
        assert!(delivery.unsettled.is_empty() && delivery.error.is_none());
        assert_eq!(delivery.attempts, 7);
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_too_large_alone_is_rejected_for_the_errors_policy() {
        let deliverer = deliverer(Script::new(vec![Answer::TooLargeOver(0)]));
        let delivery = deliver(&deliverer, entries(2)).await;
        assert_eq!(deliverer.service.sent(), [2, 1, 1]);
        assert!(delivery.error.is_none() && delivery.unsettled.is_empty());
        assert_eq!(delivery.settled.len(), 2);
        for (_, fate) in &delivery.settled {
            assert!(
                matches!(fate, Settled::Rejected { code, message } if code == "RequestEntityTooLarge" && message.contains("413")),
                "{fate:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_storm_is_waited_out_however_long_it_lasts() {
        let mut answers = vec![Answer::Entries("t"); 50];
        answers.extend([
            Answer::Request(RequestError::Transient("503 Service Unavailable".into())),
            Answer::Entries("d"),
        ]);
        let deliverer = deliverer(Script::new(answers));
        let delivery = deliver(&deliverer, entries(3)).await;
        assert_eq!(delivered(&delivery), ["entry-0", "entry-1", "entry-2"]);
        assert!(delivery.error.is_none());
        assert_eq!(
            delivery.attempts, 52,
            "past max_attempts, which counts only unclear answers"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unclear_answers_give_up_at_max_attempts() {
        let deliverer = deliverer(Script::new(vec![Answer::Entries("du"), Answer::Entries("u")]));
        let delivery = deliver(&deliverer, entries(2)).await;
        assert_eq!(delivered(&delivery), ["entry-0"]);
        assert_eq!(delivery.unsettled.len(), 1);
        assert!(
            matches!(
                &delivery.error,
                Some(DeliveryError::RetriesExhausted {
                    entries: 1,
                    attempts: 3,
                    ..
                })
            ),
            "{:?}",
            delivery.error
        );
        assert_eq!(deliverer.service.sent(), [2, 1, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_error_stops_at_once_and_leaves_the_batch_unsettled() {
        let deliverer = deliverer(Script::new(vec![Answer::Request(RequestError::Fatal(
            "ResourceNotFoundException: Event bus missing does not exist.".into(),
        ))]));
        let delivery = deliver(&deliverer, entries(3)).await;
        assert_eq!(delivery.unsettled.len(), 3);
        assert!(delivery.settled.is_empty());
        assert!(matches!(&delivery.error, Some(DeliveryError::Fatal(reason)) if reason.contains("does not exist")));
        assert_eq!(deliverer.service.sent(), [3]);
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_hands_back_what_is_not_settled() {
        let deliverer = deliverer(Script::new(vec![Answer::Entries("dt")]));
        deliverer.stopping.cancel();
        let delivery = deliver(&deliverer, entries(2)).await;
        assert_eq!(delivered(&delivery), ["entry-0"]);
        assert_eq!(delivery.unsettled.len(), 1);
        assert!(delivery.error.is_none());
        assert_eq!(deliverer.service.sent(), [2]);
    }
}
