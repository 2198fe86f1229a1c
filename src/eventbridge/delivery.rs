//! Delivering one batch: rate limit, PutEvents, then again for just the entries that failed in a retryable way,
//! with backoff, until each entry is delivered or rejected, the retry limits for unclear answers are reached, or
//! the connector stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::entry::Entry;
use super::retry::RetryPolicy;
use super::service::{EntryOutcome, PutEventsService, RequestError};
use crate::backoff::full_jitter;
use crate::rate_limit::RateLimit;
use crate::telemetry::{emit, ConnectorMetrics, PutEventsCompleted, PutEventsRetrying, RateLimitWaited};

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
    /// The sink leaves these unsettled in its offset tracker, so they are read again after a restart; the items
    /// come back so that the contract (nothing is lost on the way) is checked where it is made, in the tests below.
    #[cfg_attr(not(test), expect(dead_code, reason = "checked by the delivery tests"))]
    pub(crate) unsettled: Vec<T>,
    pub(crate) error: Option<DeliveryError>,
    /// Sends, the first included; 1 when everything went through at once.
    #[cfg_attr(not(test), expect(dead_code, reason = "checked by the delivery tests"))]
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
    pub(crate) slots: Arc<Semaphore>,
    /// Cancelled on shutdown: requests already out are waited for, nothing is sent again, and what is not settled
    /// is handed back unsettled (read again on the next start).
    pub(crate) stopping: CancellationToken,
}

impl<S: SendEntries> Deliverer<S> {
    /// Delivers `items`, the first request sent in `slot`. Throttling, internal failures, 5xx and lost connections
    /// are retried for as long as the connector runs: they pass, and a record is never given up for them. Only
    /// answers that leave an entry's fate unclear count toward `retry.max_attempts` and `retry.max_duration`.
    pub(crate) async fn deliver<T: AsRef<Entry>>(&self, items: Vec<T>, mut slot: OwnedSemaphorePermit) -> Delivery<T> {
        let mut settled = Vec::with_capacity(items.len());
        let mut pending = items;
        let mut attempts = 0u32;
        let mut uncertain_attempts = 0u32;
        let mut uncertain_since = None;
        // Rounds in a row in which no entry went through. A round in which some did says EventBridge is taking
        // entries, at its rate, so the next round goes out after a short wait; only a round that moved nothing
        // waits longer each time.
        let mut rounds_without_progress = 0u32;
        // Requests in a row that failed as a whole (5xx, timeout, connection, request throttling): an outage,
        // waited out with waits growing up to `max_backoff`. Entries EventBridge answered as throttled wait at most
        // `ENTRY_RETRY_CEILING`.
        let mut request_failures = 0u32;
        loop {
            attempts += 1;
            if let Some(limit) = &self.rate_limit {
                let waiting = Instant::now();
                limit.acquire(pending.len()).await;
                emit(RateLimitWaited {
                    metrics: &self.metrics,
                    waited: waiting.elapsed(),
                });
            }
            let entries: Vec<&Entry> = pending.iter().map(AsRef::as_ref).collect();
            let sending = Instant::now();
            let answer = self.service.send(&entries).await;
            drop(slot);
            emit(PutEventsCompleted {
                metrics: &self.metrics,
                entries: entries.len(),
                duration: sending.elapsed(),
            });
            let settled_before = settled.len();
            let (last_error, transient) = match answer {
                Ok(outcomes) => {
                    let mut retry = Vec::new();
                    let mut last_error = String::new();
                    let mut transient = true;
                    for (item, outcome) in pending.into_iter().zip(outcomes) {
                        match outcome {
                            EntryOutcome::Delivered { event_id } => {
                                settled.push((item, Settled::Delivered { event_id }))
                            }
                            EntryOutcome::Rejected { code, message } => {
                                settled.push((item, Settled::Rejected { code, message }))
                            }
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
                    pending = retry;
                    request_failures = 0;
                    (last_error, transient)
                }
                Err(RequestError::Transient(reason)) => {
                    request_failures += 1;
                    (reason, true)
                }
                Err(RequestError::Uncertain(reason)) => {
                    request_failures += 1;
                    (reason, false)
                }
                Err(RequestError::Fatal(reason)) => {
                    return Delivery {
                        settled,
                        unsettled: pending,
                        error: Some(DeliveryError::Fatal(reason)),
                        attempts,
                    }
                }
            };
            if pending.is_empty() || self.stopping.is_cancelled() {
                return Delivery {
                    settled,
                    unsettled: pending,
                    error: None,
                    attempts,
                };
            }
            if settled.len() > settled_before {
                rounds_without_progress = 0;
            }
            rounds_without_progress += 1;
            let delay = if request_failures > 0 {
                full_jitter(self.retry.initial_backoff, self.retry.max_backoff, request_failures)
            } else {
                let ceiling = self.retry.max_backoff.min(ENTRY_RETRY_CEILING);
                full_jitter(self.retry.initial_backoff, ceiling, rounds_without_progress)
            };
            if !transient {
                uncertain_attempts += 1;
                let since = *uncertain_since.get_or_insert_with(Instant::now);
                let elapsed = since.elapsed();
                if uncertain_attempts >= self.retry.max_attempts || elapsed + delay > self.retry.max_duration {
                    return Delivery {
                        error: Some(DeliveryError::RetriesExhausted {
                            entries: pending.len(),
                            attempts: uncertain_attempts,
                            elapsed,
                            last_error,
                        }),
                        settled,
                        unsettled: pending,
                        attempts,
                    };
                }
            }
            emit(PutEventsRetrying {
                metrics: &self.metrics,
                entries: pending.len(),
                attempt: attempts,
                delay,
                reason: &last_error,
                transient,
            });
            let wait_then_acquire = async {
                tokio::time::sleep(delay).await;
                self.slots.clone().acquire_owned().await.ok()
            };
            let waited = tokio::select! {
                acquired = wait_then_acquire => acquired,
                () = self.stopping.cancelled() => None,
            };
            match waited {
                Some(acquired) => slot = acquired,
                None => {
                    return Delivery {
                        settled,
                        unsettled: pending,
                        error: None,
                        attempts,
                    }
                }
            }
        }
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
                Answer::Entries(fates) => Ok(entries
                    .iter()
                    .zip(fates.chars().cycle())
                    .map(|(entry, fate)| match fate {
                        'd' => EntryOutcome::Delivered {
                            event_id: entry.source.clone(),
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

    /// Shared: the deliverer takes anything that is `AsRef<Entry>`, as the sink's records are.
    fn entries(count: usize) -> Vec<Arc<Entry>> {
        (0..count)
            .map(|n| {
                Arc::new(Entry {
                    source: format!("entry-{n}"),
                    detail_type: "test".into(),
                    detail: Detail::from_value(&serde_json::json!({"n": n})),
                    time: None,
                    resources: Vec::new(),
                    trace_header: None,
                })
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
            slots: Arc::new(Semaphore::new(1)),
            stopping: CancellationToken::new(),
        }
    }

    async fn deliver(deliverer: &Deliverer<Script>, items: Vec<Arc<Entry>>) -> Delivery<Arc<Entry>> {
        let slot = deliverer.slots.clone().acquire_owned().await.unwrap();
        deliverer.deliver(items, slot).await
    }

    fn delivered(delivery: &Delivery<Arc<Entry>>) -> Vec<String> {
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
