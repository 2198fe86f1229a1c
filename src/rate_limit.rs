//! Shared rate limits. EventBridge's PutEvents quota is per account and region, so connectors that put to the same
//! account name the same group and share one limiter: requests per second and entries per second.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitConfig {
    /// PutEvents requests per second. Default: no limit.
    #[serde(default)]
    pub(crate) requests_per_second: Option<NonZeroU32>,
    /// Entries per second, summed over requests (the unit of EventBridge's PutEvents quota). Default: no limit.
    #[serde(default)]
    pub(crate) entries_per_second: Option<NonZeroU32>,
}

#[derive(Debug)]
pub(crate) struct RateLimit {
    requests: Option<DefaultDirectRateLimiter>,
    entries: Option<(DefaultDirectRateLimiter, NonZeroU32)>,
}

impl RateLimit {
    pub(crate) fn new(config: &RateLimitConfig) -> Self {
        // A burst of one second's worth: the limiter may send a second's quota at once after an idle second, which
        // is what a per-second quota allows.
        Self {
            requests: config
                .requests_per_second
                .map(|rate| RateLimiter::direct(Quota::per_second(rate))),
            entries: config
                .entries_per_second
                .map(|rate| (RateLimiter::direct(Quota::per_second(rate)), rate)),
        }
    }

    /// Waits until a request of `entries` entries may be sent; returns how long it waited.
    pub(crate) async fn acquire(&self, entries: usize) -> Duration {
        let started = Instant::now();
        if let Some(requests) = &self.requests {
            requests.until_ready().await;
        }
        if let Some((limiter, rate)) = &self.entries {
            // A batch larger than a second's quota (a tiny configured rate) is let through one second's worth at
            // a time rather than refused.
            let mut left = u32::try_from(entries).unwrap_or(u32::MAX);
            while let Some(step) = NonZeroU32::new(left.min(rate.get())) {
                if limiter.until_n_ready(step).await.is_err() {
                    break;
                }
                left -= step.get();
            }
        }
        started.elapsed()
    }
}

/// The worker's rate limit groups, built once and handed to every connector.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateLimits(Arc<HashMap<String, Arc<RateLimit>>>);

impl RateLimits {
    pub(crate) fn new(groups: &BTreeMap<String, RateLimitConfig>) -> Self {
        Self(Arc::new(
            groups
                .iter()
                .map(|(name, config)| (name.clone(), Arc::new(RateLimit::new(config))))
                .collect(),
        ))
    }

    pub(crate) fn get(&self, group: &str) -> Option<Arc<RateLimit>> {
        self.0.get(group).cloned()
    }
}
