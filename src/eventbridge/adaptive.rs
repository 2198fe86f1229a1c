//! Adaptive request concurrency for PutEvents, in the spirit of Vector's: the number of requests allowed in flight
//! grows while answers come back unthrottled at a steady latency, and shrinks multiplicatively on a throttle or on a
//! rise in latency. The quota is per account and region, shared by every worker and connector that sends to it;
//! each one backs off when the quota throttles it, so together they settle near the quota without talking to each
//! other (additive increase with multiplicative decrease converges to shares that are about equal).
//!
//! The limit starts at `request.initial_in_flight` and doubles each window (slow start) until the first sign of a
//! limit, then grows by one request a window. A throttled window cuts it to 70%, or to the requests the window got
//! through if fewer. A window is one round trip, measured: the decisions follow the service's own pace.
//!
//! The send rate has an AIMD of its own, since the quota counts requests per second, not requests in flight: when
//! latency falls (a quieter service, a closer endpoint), the same concurrency sends faster and would overrun the
//! quota until throttles cut it back. The first throttled window sets a rate limit in requests per second, at
//! `RATE_DECREASE` of what was sent; each throttled window cuts it by as much again, and each window without a
//! throttle in which the limit held a request back raises it by `RATE_INCREASE`. While the rate limit holds
//! requests back, the concurrency does not grow. Until the first throttle there is no rate limit.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

use crate::telemetry::{emit, ConcurrencyAdjusted, ConnectorMetrics};

/// Multiplies the limit on a window with a throttled answer: gentle enough that a connector near the quota does not
/// fall far below it (at 0.5 the average use of a shared quota was about three quarters of it).
const THROTTLE_DECREASE: f64 = 0.7;
/// Multiplies the limit on a window whose mean latency is more than `LATENCY_TOLERANCE` times the baseline.
const LATENCY_DECREASE: f64 = 0.9;
const LATENCY_TOLERANCE: f64 = 2.0;
/// The shortest window, so that a fast local endpoint does not make a decision per answer.
const MIN_WINDOW: Duration = Duration::from_millis(10);
/// Requests per second the rate limit grows by in a window without a throttle in which it held a request back. A
/// fixed step is what makes senders sharing a quota converge to equal shares (a step in proportion to the rate
/// would keep a larger sender larger).
const RATE_INCREASE: f64 = 10.0;
/// Multiplies the rate limit on a window with a throttled answer. Gentler than the concurrency's cut, which the same
/// window makes too: the two together took senders sharing a quota to 79% of it at 0.7, and to 92% at 0.85.
const RATE_DECREASE: f64 = 0.85;
/// The rate limit never falls below one request a second.
const MIN_RATE: f64 = 1.0;
/// The rate limit lets this much of its rate through at once.
const RATE_BURST: Duration = Duration::from_millis(50);

/// What one answered request says about the service.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observation {
    pub(crate) latency: Duration,
    pub(crate) entries: usize,
    /// The request, or any of its entries, was throttled.
    pub(crate) throttled: bool,
}

/// A window's account, when it closes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Decision {
    pub(crate) limit: usize,
    /// Requests per second, once a throttle set it.
    pub(crate) rate_limit: Option<f64>,
    /// Entries answered per second over the window.
    pub(crate) rate: f64,
    /// Throttled answers over all answers in the window.
    pub(crate) throttle_ratio: f64,
}

/// The AIMD controller: plain state, fed observations and the time, so that its convergence can be tested on a
/// simulated quota.
#[derive(Debug)]
pub(crate) struct Controller {
    limit: f64,
    max: f64,
    slow_start: bool,
    /// The mean latency of recent unthrottled windows, in seconds.
    baseline: Option<f64>,
    window_start: Instant,
    answers: u32,
    throttled: u32,
    latency_sum: f64,
    entries: usize,
    /// Every slot was taken at some point in the window: the limit, not the input, held the sender back.
    saturated: bool,
    rate_limit: Option<f64>,
    /// The rate limit delayed a request in the window.
    paced: bool,
}

impl Controller {
    pub(crate) fn new(initial: usize, max: usize, now: Instant) -> Self {
        let max = max.max(1) as f64;
        Self {
            limit: (initial.max(1) as f64).min(max),
            max,
            slow_start: true,
            baseline: None,
            window_start: now,
            answers: 0,
            throttled: 0,
            latency_sum: 0.0,
            entries: 0,
            saturated: false,
            rate_limit: None,
            paced: false,
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit as usize
    }

    pub(crate) fn saturated(&mut self) {
        self.saturated = true;
    }

    /// Requests per second, once a throttle set a limit.
    pub(crate) fn rate_limit(&self) -> Option<f64> {
        self.rate_limit
    }

    pub(crate) fn paced(&mut self) {
        self.paced = true;
    }

    /// Counts an answer; when it closes the window, the new limit and the window's account.
    pub(crate) fn observe(&mut self, observation: Observation, now: Instant) -> Option<Decision> {
        self.answers += 1;
        self.throttled += u32::from(observation.throttled);
        self.latency_sum += observation.latency.as_secs_f64();
        self.entries += observation.entries;
        let elapsed = now.saturating_duration_since(self.window_start);
        let window = self
            .baseline
            .map_or(MIN_WINDOW, Duration::from_secs_f64)
            .max(MIN_WINDOW);
        if elapsed < window {
            return None;
        }
        let mean_latency = self.latency_sum / f64::from(self.answers);
        let decision_rate = self.entries as f64 / elapsed.as_secs_f64();
        let throttle_ratio = f64::from(self.throttled) / f64::from(self.answers);
        if self.throttled > 0 {
            // A window is about one round trip, so the answers it accepted are about the requests in flight the
            // service took: far over the quota (after slow start met a bucket that was full), that, not a
            // fraction of the limit, is where to go back to.
            let accepted = f64::from(self.answers - self.throttled);
            self.limit = (self.limit * THROTTLE_DECREASE).min(accepted).max(1.0);
            self.slow_start = false;
            // Not cut to what the window got through, as the limit is: the throttles of one window fall on whoever
            // came last to an empty bucket, and a rate set from them would keep that sender low for long.
            let sent_rate = f64::from(self.answers) / elapsed.as_secs_f64();
            let rate = self.rate_limit.unwrap_or(sent_rate) * RATE_DECREASE;
            self.rate_limit = Some(rate.max(MIN_RATE));
        } else if self
            .baseline
            .is_some_and(|baseline| mean_latency > baseline * LATENCY_TOLERANCE)
        {
            self.limit = (self.limit * LATENCY_DECREASE).max(1.0);
            self.slow_start = false;
        } else {
            self.baseline = Some(match self.baseline {
                Some(baseline) => baseline * 0.8 + mean_latency * 0.2,
                None => mean_latency,
            });
            // Held back by the rate limit, the slots were taken by requests waiting their turn: more would not send
            // more.
            if self.saturated && !self.paced {
                let grown = if self.slow_start {
                    self.limit * 2.0
                } else {
                    self.limit + 1.0
                };
                self.limit = grown.min(self.max);
            }
            if self.paced {
                self.rate_limit = self.rate_limit.map(|rate| rate + RATE_INCREASE);
            }
        }
        self.window_start = now;
        self.answers = 0;
        self.throttled = 0;
        self.latency_sum = 0.0;
        self.entries = 0;
        self.saturated = false;
        self.paced = false;
        Some(Decision {
            limit: self.limit(),
            rate_limit: self.rate_limit,
            rate: decision_rate,
            throttle_ratio,
        })
    }
}

/// The request slots of one connector: `request.max_in_flight` of them when fixed, or as many as the controller
/// allows when adaptive.
pub(crate) struct RequestSlots {
    semaphore: Arc<Semaphore>,
    adaptive: Option<Adaptive>,
}

struct Adaptive {
    /// One lock for the controller and the slot counts, which change together: answers come back on several
    /// threads at once.
    pool: Mutex<Pool>,
    metrics: ConnectorMetrics,
}

struct Pool {
    controller: Controller,
    /// The slots the semaphore holds now, taken or not.
    size: usize,
    /// Slots to remove as soon as they are returned: a decrease while they were taken.
    debt: usize,
    /// When the next request would go if requests went exactly at the rate limit; one may go up to `RATE_BURST`
    /// earlier.
    next_send: Instant,
}

impl RequestSlots {
    pub(crate) fn fixed(max_in_flight: usize) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(max_in_flight)),
            adaptive: None,
        }
    }

    pub(crate) fn adaptive(initial_in_flight: usize, max_in_flight: usize, metrics: ConnectorMetrics) -> Self {
        let controller = Controller::new(initial_in_flight, max_in_flight, now());
        let size = controller.limit();
        Self {
            semaphore: Arc::new(Semaphore::new(size)),
            adaptive: Some(Adaptive {
                pool: Mutex::new(Pool {
                    controller,
                    size,
                    debt: 0,
                    next_send: now(),
                }),
                metrics,
            }),
        }
    }

    pub(crate) fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        let acquired = self.semaphore.clone().try_acquire_owned().ok();
        if acquired.is_none() || self.semaphore.available_permits() == 0 {
            self.note_saturated();
        }
        acquired
    }

    pub(crate) async fn acquire(&self) -> Result<OwnedSemaphorePermit, AcquireError> {
        let acquired = self.semaphore.clone().acquire_owned().await;
        if self.semaphore.available_permits() == 0 {
            self.note_saturated();
        }
        acquired
    }

    /// Waits for this request's turn under the adaptive rate limit, once a throttle has set one. A token bucket
    /// (as a theoretical arrival time): requests go out at the rate, with a burst of `RATE_BURST` of it, so that
    /// requests that merely come together are not held back and counted as the limit binding.
    pub(crate) async fn pace(&self) {
        let Some(adaptive) = &self.adaptive else {
            return;
        };
        let turn = {
            let mut pool = adaptive.pool();
            let Some(rate) = pool.controller.rate_limit() else {
                return;
            };
            let interval = Duration::from_secs_f64(1.0 / rate);
            let burst = RATE_BURST.max(interval);
            let now = now();
            let arrival = pool.next_send.max(now);
            pool.next_send = arrival + interval;
            let turn = arrival.checked_sub(burst).unwrap_or(now).max(now);
            if turn > now {
                pool.controller.paced();
            }
            turn
        };
        tokio::time::sleep_until(turn.into()).await;
    }

    fn note_saturated(&self) {
        if let Some(adaptive) = &self.adaptive {
            adaptive.pool().controller.saturated();
        }
    }

    /// Gives back the slot of an answered request: the controller counts the answer, and the slots follow its
    /// limit. The slot comes here rather than being dropped because a dropped slot goes straight to a waiting
    /// request, so that while the sender waits for slots (the only time the limit matters) none would ever be free
    /// to remove.
    pub(crate) fn release(&self, slot: OwnedSemaphorePermit, observation: Observation) {
        let Some(adaptive) = &self.adaptive else {
            return;
        };
        let mut pool = adaptive.pool();
        if let Some(decision) = pool.controller.observe(observation, now()) {
            let size = std::mem::replace(&mut pool.size, decision.limit);
            if decision.limit > size {
                // Slots still owed to an earlier decrease are kept rather than added: an added slot goes at once to
                // a waiting request, past the limit, before the debt can take it back.
                let grown = decision.limit - size;
                let kept = pool.debt.min(grown);
                pool.debt -= kept;
                self.semaphore.add_permits(grown - kept);
            } else {
                pool.debt += size - decision.limit;
            }
            emit(ConcurrencyAdjusted {
                metrics: &adaptive.metrics,
                limit: decision.limit,
                rate_limit: decision.rate_limit,
                rate: decision.rate,
                throttle_ratio: decision.throttle_ratio,
            });
        }
        if pool.debt > 0 {
            slot.forget();
            pool.debt -= 1 + self.semaphore.forget_permits(pool.debt - 1);
        }
    }
}

/// The time by tokio's clock, which tests can pause and move.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Adaptive {
    fn pool(&self) -> MutexGuard<'_, Pool> {
        // Plain numbers: a panic mid-update leaves at worst one odd window.
        self.pool.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the senders did each round trip.
    struct Simulated {
        /// Each sender's rate limit after each round.
        rate_limits: Vec<Vec<Option<f64>>>,
        /// The requests each sender sent in each round.
        sent: Vec<Vec<usize>>,
        /// Requests sent and throttled in each round.
        answers: Vec<(u32, u32)>,
    }

    /// Several senders, each with its own controller, share a quota in requests per second behind a latency that
    /// may change from round to round, as several workers share an account's PutEvents quota. Each round trip, each
    /// sends up to its concurrency limit and its rate limit; requests past the quota's tokens for that round trip
    /// are throttled, in an order that changes every round.
    fn simulate(
        senders: usize,
        initial: usize,
        quota: f64,
        latency: impl Fn(usize) -> Duration,
        rounds: usize,
    ) -> Simulated {
        let start = Instant::now();
        let mut controllers: Vec<Controller> = (0..senders).map(|_| Controller::new(initial, 10_000, start)).collect();
        let mut simulated = Simulated {
            rate_limits: vec![Vec::new(); senders],
            sent: vec![Vec::new(); senders],
            answers: Vec::new(),
        };
        let mut seed = 0x5eed_u64;
        let mut now = start;
        for round in 0..rounds {
            let latency = latency(round);
            now += latency;
            let mut tokens = (quota * latency.as_secs_f64()).floor() as i64;
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let first = (seed >> 33) as usize % senders;
            let (mut sent, mut throttled) = (0, 0);
            for offset in 0..senders {
                let sender = (first + offset) % senders;
                let controller = &mut controllers[sender];
                let mut requests = controller.limit();
                controller.saturated();
                if let Some(rate) = controller.rate_limit() {
                    let paced = ((rate * latency.as_secs_f64()) as usize).max(1);
                    if paced < requests {
                        requests = paced;
                        controller.paced();
                    }
                }
                for _ in 0..requests {
                    let throttle = tokens <= 0;
                    tokens -= 1;
                    sent += 1;
                    throttled += u32::from(throttle);
                    let observation = Observation {
                        latency,
                        entries: 10,
                        throttled: throttle,
                    };
                    controller.observe(observation, now);
                }
                simulated.sent[sender].push(requests);
                simulated.rate_limits[sender].push(controller.rate_limit());
            }
            simulated.answers.push((sent, throttled));
        }
        simulated
    }

    fn throttled_share(answers: &[(u32, u32)]) -> f64 {
        let (sent, throttled) = answers
            .iter()
            .fold((0, 0), |(sent, throttled), (s, t)| (sent + s, throttled + t));
        f64::from(throttled) / f64::from(sent)
    }

    /// Each sender's mean requests a round over `rounds`.
    fn shares(sent: &[Vec<usize>], rounds: std::ops::Range<usize>) -> Vec<f64> {
        sent.iter()
            .map(|one| one[rounds.clone()].iter().sum::<usize>() as f64 / rounds.len() as f64)
            .collect()
    }

    fn assert_about_equal(shares: &[f64]) {
        let mean = shares.iter().sum::<f64>() / shares.len() as f64;
        assert!(
            shares.iter().all(|share| (share / mean - 1.0).abs() <= 0.25),
            "shares {shares:?}"
        );
    }

    /// From one request, and from the default start, whose 3 × 32 requests overrun the quota's 60 at once.
    #[test]
    fn senders_sharing_a_quota_converge_to_it_together() {
        let latency = Duration::from_millis(30);
        for initial in [1, 32] {
            // 2,000 requests/s at 30 ms: 60 requests a round trip in all.
            let Simulated { sent, answers, .. } = simulate(3, initial, 2000.0, |_| latency, 2000);
            let settled = 1000..2000;
            let shares = shares(&sent, settled.clone());
            let together: f64 = shares.iter().sum();
            assert!(
                (0.85 * 60.0..=60.0 * 1.05).contains(&together),
                "starting at {initial}: together {together:.1} requests a round trip, of the quota's 60"
            );
            let throttled = throttled_share(&answers[settled]);
            assert!(
                throttled <= 0.05,
                "starting at {initial}: {:.1}% of requests throttled",
                100.0 * throttled
            );
            assert_about_equal(&shares);
        }
    }

    /// The rate limit is what keeps the quota when latency falls: the requests in flight that filled the quota at
    /// 60 ms send three times as fast at 20 ms. After the first throttle each sender has a rate limit, together
    /// near the quota; throttles stay rare across the fall in latency, and the shares stay about equal.
    #[test]
    fn rate_limits_share_the_quota_and_hold_it_when_latency_falls() {
        let latency = |round: usize| Duration::from_millis(if round < 1000 { 60 } else { 20 });
        let Simulated {
            rate_limits,
            sent,
            answers,
            ..
        } = simulate(3, 32, 2000.0, latency, 6000);
        for settled in [500..1000, 4000..6000] {
            let together: f64 = rate_limits
                .iter()
                .map(|one| {
                    one[settled.clone()]
                        .iter()
                        .map(|rate| rate.unwrap_or(f64::INFINITY))
                        .sum::<f64>()
                        / settled.len() as f64
                })
                .sum();
            assert!(
                (0.8 * 2000.0..=1.15 * 2000.0).contains(&together),
                "rounds {settled:?}: rate limits add up to {together:.0} requests/s, of the quota's 2,000"
            );
        }
        assert_about_equal(&shares(&sent, 4000..6000));
        let after_the_fall = throttled_share(&answers[1000..]);
        assert!(
            after_the_fall <= 0.05,
            "{:.1}% of requests throttled after latency fell",
            100.0 * after_the_fall
        );
    }

    /// A sender alone, far under any quota, never meets a throttle and never gets a rate limit: the rate limit
    /// costs nothing until the service asks for it.
    #[test]
    fn no_throttle_no_rate_limit() {
        let Simulated { rate_limits, .. } = simulate(1, 32, 1e9, |_| Duration::from_millis(30), 200);
        assert!(rate_limits[0].iter().all(Option::is_none));
    }

    /// The slots in existence (free or taken) are the controller's limit plus what a decrease still owes, and
    /// once every request is back, the limit: also when it rises again before the owed slots have come back.
    #[tokio::test(start_paused = true)]
    async fn the_pool_follows_the_limit_while_slots_are_taken() {
        let slots = RequestSlots::adaptive(1, 100, ConnectorMetrics::new("pool"));
        let answer = |throttled| Observation {
            latency: Duration::from_millis(10),
            entries: 10,
            throttled,
        };
        let adaptive = slots.adaptive.as_ref().unwrap();
        let limit = || adaptive.pool().controller.limit();
        let owed = || adaptive.pool().debt;
        let existing = |taken: usize| slots.semaphore.available_permits() + taken;
        // Slow start up to 8 slots, every one taken each window.
        for _ in 0..3 {
            let taken: Vec<_> = (0..limit()).map(|_| slots.try_acquire().unwrap()).collect();
            assert!(slots.try_acquire().is_none());
            tokio::time::advance(Duration::from_millis(10)).await;
            for slot in taken {
                slots.release(slot, answer(false));
            }
        }
        assert_eq!((limit(), existing(0)), (8, 8));
        // All 8 out; a throttled answer closes the window (with the 3 answers carried from the last round): 70% of
        // 8, or the 3 that got through.
        let mut taken: Vec<_> = (0..8).map(|_| slots.try_acquire().unwrap()).collect();
        tokio::time::advance(Duration::from_millis(10)).await;
        slots.release(taken.pop().unwrap(), answer(true));
        assert_eq!(limit(), 3);
        assert!(owed() > 0);
        assert_eq!(existing(taken.len()), limit() + owed());
        // Unthrottled windows in which every slot is taken grow it back while slots are still owed.
        for _ in 0..2 {
            assert!(slots.try_acquire().is_none());
            tokio::time::advance(Duration::from_millis(10)).await;
            slots.release(taken.pop().unwrap(), answer(false));
            assert_eq!(
                slots.semaphore.available_permits(),
                0,
                "a slot was free while slots were owed"
            );
            assert_eq!(existing(taken.len()), limit() + owed());
        }
        assert_eq!(limit(), 5);
        for slot in taken {
            slots.release(slot, answer(false));
        }
        assert_eq!((existing(0), owed()), (limit(), 0));
    }

    /// Answers come back on several threads at once; throttled and not, they leave the pool at exactly its limit
    /// with nothing owed (with the counts outside the controller's lock, two releases could both pay one owed slot
    /// and wrap the debt, after which every returned slot was removed).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn slots_released_on_many_threads_leave_the_pool_at_its_limit() {
        let slots = Arc::new(RequestSlots::adaptive(1, 64, ConnectorMetrics::new("threads")));
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..8u64 {
            let slots = slots.clone();
            tasks.spawn(async move {
                for turn in 0..300u64 {
                    let slot = slots.acquire().await.unwrap();
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    let observation = Observation {
                        latency: Duration::from_micros(200),
                        entries: 10,
                        throttled: (task + turn) % 7 == 0,
                    };
                    slots.release(slot, observation);
                }
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.unwrap();
        }
        let pool = slots.adaptive.as_ref().unwrap().pool();
        assert_eq!(pool.debt, 0);
        assert_eq!(pool.size, pool.controller.limit());
        assert_eq!(slots.semaphore.available_permits(), pool.size);
    }

    /// Doubling each round trip: from 1 to 320 in nine, from the default start of 32 in four.
    #[test]
    fn one_sender_grows_to_its_maximum_without_throttles() {
        for (initial, round_trips) in [(1, 9), (32, 4)] {
            let start = Instant::now();
            let mut controller = Controller::new(initial, 320, start);
            let mut limits = Vec::new();
            for round in 1..=400u32 {
                let now = start + Duration::from_millis(30) * round;
                controller.saturated();
                for _ in 0..controller.limit() {
                    let observation = Observation {
                        latency: Duration::from_millis(30),
                        entries: 10,
                        throttled: false,
                    };
                    controller.observe(observation, now);
                }
                limits.push(controller.limit());
            }
            let reached = limits.iter().position(|&limit| limit == 320).map(|at| at + 1);
            assert_eq!(reached, Some(round_trips), "from {initial}: {limits:?}");
            assert!(limits.iter().all(|&limit| limit <= 320));
        }
    }

    #[test]
    fn a_throttle_cuts_the_limit_and_idle_slots_do_not_grow_it() {
        let start = Instant::now();
        let mut controller = Controller::new(1, 100, start);
        let answer = |throttled| Observation {
            latency: Duration::from_millis(20),
            entries: 10,
            throttled,
        };
        // Slow start: 1, 2, 4, 8, 16.
        for round in 1..=4u32 {
            controller.saturated();
            controller.observe(answer(false), start + Duration::from_millis(20) * round);
        }
        assert_eq!(controller.limit(), 16);
        // A window of 16 answers, one throttled: 70% of the limit. The last answer, a round trip on, closes it.
        let mut decision = None;
        for answered in 0..16u64 {
            let at = if answered < 15 { 81 } else { 200 };
            decision = controller.observe(answer(answered == 0), start + Duration::from_millis(at));
        }
        assert_eq!(decision.map(|decision| decision.limit), Some(11));
        // Not saturated: the input, not the limit, held it back, so the limit stays.
        let decision = controller.observe(answer(false), start + Duration::from_millis(300));
        assert_eq!(decision.map(|decision| decision.limit), Some(11));
        // Past slow start, one more a window.
        controller.saturated();
        let decision = controller.observe(answer(false), start + Duration::from_millis(400));
        assert_eq!(decision.map(|decision| decision.limit), Some(12));
        // Latency far above the baseline cuts it too.
        let slow = Observation {
            latency: Duration::from_millis(200),
            ..answer(false)
        };
        let decision = controller.observe(slow, start + Duration::from_millis(500));
        assert_eq!(decision.map(|decision| decision.limit), Some(10));
        // Far over the quota, the limit falls to what got through, not only to 70%.
        let mut decision = None;
        for answered in 0..10u64 {
            let at = if answered < 9 { 501 } else { 600 };
            decision = controller.observe(answer(answered < 8), start + Duration::from_millis(at));
        }
        assert_eq!(decision.map(|decision| decision.limit), Some(2));
    }
}
