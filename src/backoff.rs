//! The one backoff schedule of the worker: delays that double from an initial one up to a cap, for restarting a
//! failed connector (`restart.*`) and, with full jitter, for resending to AWS (`retry.*`).

use std::time::Duration;

use rand::Rng;

/// The delay before attempt `attempt` (1-based) after the first failure: `initial * 2^(attempt-1)`, at most `max`.
pub(crate) fn ceiling(initial: Duration, max: Duration, attempt: u32) -> Duration {
    initial
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(31))
        .min(max)
}

/// A random delay up to [`ceiling`] ("full jitter"): it spreads the retries of many throttled entries instead of
/// sending them back in one burst.
pub(crate) fn full_jitter(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let millis = u64::try_from(ceiling(initial, max, attempt).as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let delays: Vec<u64> = (1..=8)
            .map(|attempt| ceiling(Duration::from_secs(1), Duration::from_secs(60), attempt).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(
            ceiling(Duration::from_secs(1), Duration::from_secs(60), u32::MAX),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn jitter_stays_under_the_growing_ceiling() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for attempt in 1..40 {
            let ceiling = (initial * 2u32.pow(attempt.min(20) - 1)).min(max);
            for _ in 0..20 {
                assert!(full_jitter(initial, max, attempt) <= ceiling);
            }
        }
    }
}
