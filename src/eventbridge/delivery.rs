//! Delivering one batch: rate limit, PutEvents, then again for just the entries that failed in a retryable way,
//! with backoff, until each entry is delivered or rejected, or the retry limits are reached.

use std::sync::Arc;
use std::time::Instant;

use super::entry::Entry;
use super::retry::{backoff, RetryPolicy};
use super::service::{EntryOutcome, PutEventsService, RequestError};
use crate::rate_limit::RateLimit;
use crate::telemetry::{emit, PutEventsCompleted, PutEventsRetrying, RateLimitWaited};

/// The final fate of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Delivered { event_id: String },
    Rejected { code: String, message: String },
}

/// Why a batch could not be settled; the connector fails, and its unsettled records are read again after restart.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DeliveryError {
    #[error("{0}")]
    Fatal(String),
    #[error("{entries} entries still failing after {attempts} attempts over {elapsed:?}; last error: {last_error}")]
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
pub struct Delivery<T> {
    pub settled: Vec<(T, Settled)>,
    pub unsettled: Vec<T>,
    pub error: Option<DeliveryError>,
    /// Sends, the first included; 1 when everything went through at once.
    pub attempts: u32,
}

pub struct Deliverer {
    pub connector: String,
    pub service: PutEventsService,
    pub retry: RetryPolicy,
    pub rate_limit: Option<Arc<RateLimit>>,
}

impl Deliverer {
    pub async fn deliver<T: AsRef<Entry>>(&self, items: Vec<T>) -> Delivery<T> {
        let started = Instant::now();
        let mut settled = Vec::with_capacity(items.len());
        let mut pending = items;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            if let Some(limit) = &self.rate_limit {
                let waiting = Instant::now();
                limit.acquire(pending.len()).await;
                emit(RateLimitWaited {
                    connector: &self.connector,
                    waited: waiting.elapsed(),
                });
            }
            let entries: Vec<&Entry> = pending.iter().map(AsRef::as_ref).collect();
            let sending = Instant::now();
            let answer = self.service.send(&entries).await;
            emit(PutEventsCompleted {
                connector: &self.connector,
                entries: entries.len(),
                duration: sending.elapsed(),
            });
            let last_error = match answer {
                Ok(outcomes) => {
                    let mut retry = Vec::new();
                    let mut last_error = String::new();
                    for (item, outcome) in pending.into_iter().zip(outcomes) {
                        match outcome {
                            EntryOutcome::Delivered { event_id } => {
                                settled.push((item, Settled::Delivered { event_id }))
                            }
                            EntryOutcome::Rejected { code, message } => {
                                settled.push((item, Settled::Rejected { code, message }))
                            }
                            EntryOutcome::Retryable { code, message } => {
                                last_error = format!("{code}: {message}");
                                retry.push(item);
                            }
                        }
                    }
                    pending = retry;
                    last_error
                }
                Err(RequestError::Retryable(reason)) => reason,
                Err(RequestError::Fatal(reason)) => {
                    return Delivery {
                        settled,
                        unsettled: pending,
                        error: Some(DeliveryError::Fatal(reason)),
                        attempts,
                    }
                }
            };
            if pending.is_empty() {
                return Delivery {
                    settled,
                    unsettled: pending,
                    error: None,
                    attempts,
                };
            }
            let elapsed = started.elapsed();
            let delay = backoff(self.retry.initial_backoff, self.retry.max_backoff, attempts);
            if attempts >= self.retry.max_attempts || elapsed + delay > self.retry.max_duration {
                return Delivery {
                    error: Some(DeliveryError::RetriesExhausted {
                        entries: pending.len(),
                        attempts,
                        elapsed,
                        last_error,
                    }),
                    settled,
                    unsettled: pending,
                    attempts,
                };
            }
            emit(PutEventsRetrying {
                connector: &self.connector,
                entries: pending.len(),
                attempt: attempts,
                delay,
                reason: &last_error,
            });
            tokio::time::sleep(delay).await;
        }
    }
}
