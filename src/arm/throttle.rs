//! ARM's request budgets, per principal and subscription, one for reads and one for writes
//! (docs/ARM.md: reads 250 refilled 25/s, writes 200 refilled 10/s). A request over budget is a
//! 429 CloudError with `Retry-After`; every answered request reports what is left in
//! `x-ms-ratelimit-remaining-subscription-{reads,writes}`.
//!
//! The counting is governor's keyed GCRA limiter, which behaves as a token bucket: `bucket`
//! requests at once, then one more every `1 / per_second` seconds. The only state kept here is
//! when to sweep the keys of idle principals out of the limiters (see [`Limiter::sweep`]).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use uuid::Uuid;

use super::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub bucket: f64,
    pub per_second: f64,
}

/// The slowest refill a budget may have: one request per hour.
const MIN_PER_SECOND: f64 = 1.0 / 3600.0;
/// The fastest refill a budget may have.
const MAX_PER_SECOND: f64 = 1e9;
/// The longest a bucket may take to refill completely, in seconds (10 years): governor keeps
/// time in u64 nanoseconds, which this keeps far from overflowing.
const MAX_REFILL_SECONDS: f64 = 10.0 * 365.0 * 86_400.0;

impl std::str::FromStr for Budget {
    type Err = String;
    /// `BUCKET:PER_SECOND`, e.g. `250:25`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (b, r) = s
            .split_once(':')
            .ok_or_else(|| format!("'{s}' is not BUCKET:PER_SECOND, e.g. 250:25"))?;
        let bucket: f64 = b.parse().map_err(|_| format!("bucket '{b}' is not a number"))?;
        let per_second: f64 = r.parse().map_err(|_| format!("refill '{r}' is not a number"))?;
        // Written so that NaN fails every comparison and is refused.
        if !(bucket >= 1.0 && per_second > 0.0) {
            return Err(
                "the bucket must hold at least 1 request and refill faster than 0 per second (finite numbers)"
                    .into(),
            );
        }
        if !((MIN_PER_SECOND..=MAX_PER_SECOND).contains(&per_second)
            && bucket / per_second <= MAX_REFILL_SECONDS)
        {
            return Err("the refill must be between 1 per hour (0.000278) and 1e9 per second, \
                        and refilling the whole bucket must take at most 10 years"
                .into());
        }
        Ok(Budget { bucket, per_second })
    }
}

impl Budget {
    /// The governor quota of this budget: a burst of `bucket` whole requests, one request back
    /// every `1 / per_second`. Values the parser refuses (the fields are public) are brought
    /// into its range rather than trusted, so no budget can panic or overflow.
    fn quota(self) -> Quota {
        let per_second = if self.per_second.is_nan() {
            MIN_PER_SECOND
        } else {
            self.per_second.clamp(MIN_PER_SECOND, MAX_PER_SECOND)
        };
        // `as` saturates, and turns NaN into 0.
        let burst = (self.bucket.floor() as u32).min((MAX_REFILL_SECONDS * per_second) as u32);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs_f64(1.0 / per_second).max(Duration::from_nanos(1));
        Quota::with_period(period).unwrap_or(Quota::per_second(NonZeroU32::MIN)).allow_burst(burst)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleConfig {
    pub reads: Budget,
    pub writes: Budget,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            reads: Budget { bucket: 250.0, per_second: 25.0 },
            writes: Budget { bucket: 200.0, per_second: 10.0 },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Read,
    Write,
}

impl Kind {
    /// The header that reports what is left of the budget. ARM names the scope the request was
    /// counted against: a subscription, or (for paths without one) the tenant.
    pub fn header(self, subscription: Option<Uuid>) -> &'static str {
        match (self, subscription.is_some()) {
            (Kind::Read, true) => "x-ms-ratelimit-remaining-subscription-reads",
            (Kind::Write, true) => "x-ms-ratelimit-remaining-subscription-writes",
            (Kind::Read, false) => "x-ms-ratelimit-remaining-tenant-reads",
            (Kind::Write, false) => "x-ms-ratelimit-remaining-tenant-writes",
        }
    }

    /// How the 429's message names the budget.
    fn budget_name(self) -> &'static str {
        match self {
            Kind::Read => "subscription reads",
            Kind::Write => "subscription writes",
        }
    }
}

/// Whose budget: the principal and the subscription (the kind picks the limiter).
type Key = (String, Option<Uuid>);

/// Fewer keys than this are never swept: small maps cost nothing worth a sweep.
const SWEEP_AT: usize = 10_000;

/// One budget (reads or writes) for every key.
struct Limiter<C: Clock> {
    limiter: RateLimiter<Key, DefaultKeyedStateStore<Key>, C, StateInformationMiddleware>,
    /// The number of keys at which the next sweep runs.
    sweep_at: AtomicUsize,
}

impl<C: Clock> Limiter<C> {
    fn new(budget: Budget, clock: C) -> Self {
        Limiter {
            limiter: RateLimiter::dashmap_with_clock(budget.quota(), clock).with_middleware(),
            sweep_at: AtomicUsize::new(SWEEP_AT),
        }
    }

    /// Take one request: what is left, or how long until the next one is allowed.
    fn take(&self, key: &Key) -> Result<u32, Duration> {
        let outcome = self.limiter.check_key(key);
        self.sweep();
        outcome
            .map(|state| state.remaining_burst_capacity())
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Forget keys whose budget has refilled completely: they behave exactly like keys never
    /// seen, so without this every principal and subscription ever seen would stay in memory.
    /// A sweep visits every key, so the next one waits until the map has doubled (at least
    /// [`SWEEP_AT`] keys): a constant cost per request on average, even when most keys are busy.
    fn sweep(&self) {
        let at = self.sweep_at.load(Ordering::Relaxed);
        let len = self.limiter.len();
        if len <= at {
            return;
        }
        // One caller sweeps; the others go on.
        if self
            .sweep_at
            .compare_exchange(at, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let next = self.limiter.len().saturating_mul(2).max(SWEEP_AT);
        self.sweep_at.store(next, Ordering::Release);
    }
}

pub struct Throttle<C: Clock = DefaultClock> {
    /// `None` when throttling is off.
    limiters: Option<(Limiter<C>, Limiter<C>)>,
}

impl Throttle {
    /// `None` turns throttling off (benchmarks).
    pub fn new(config: Option<ThrottleConfig>) -> Self {
        Self::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Throttle<C> {
    fn with_clock(config: Option<ThrottleConfig>, clock: C) -> Self {
        Throttle {
            limiters: config
                .map(|c| (Limiter::new(c.reads, clock.clone()), Limiter::new(c.writes, clock))),
        }
    }

    pub fn enabled(&self) -> bool {
        self.limiters.is_some()
    }

    /// Take one request from the principal's budget; returns what is left.
    pub fn take(
        &self,
        principal: &str,
        subscription: Option<Uuid>,
        kind: Kind,
    ) -> Result<Option<u64>, ApiError> {
        let Some((reads, writes)) = &self.limiters else { return Ok(None) };
        let limiter = match kind {
            Kind::Read => reads,
            Kind::Write => writes,
        };
        match limiter.take(&(principal.to_string(), subscription)) {
            Ok(left) => Ok(Some(u64::from(left))),
            Err(wait) => Err(ApiError::Throttled {
                budget: kind.budget_name(),
                // Whole seconds, rounded up: retrying at the announced time succeeds.
                retry_after: (wait.as_secs_f64().ceil() as u64).max(1),
            }),
        }
    }

    /// Keys held by the (reads, writes) limiters.
    #[cfg(test)]
    fn keys(&self) -> (usize, usize) {
        self.limiters.as_ref().map_or((0, 0), |(r, w)| (r.limiter.len(), w.limiter.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remaining_header_names_the_scope_counted() {
        let s = Some(Uuid::nil());
        assert_eq!(Kind::Read.header(s), "x-ms-ratelimit-remaining-subscription-reads");
        assert_eq!(Kind::Write.header(s), "x-ms-ratelimit-remaining-subscription-writes");
        assert_eq!(Kind::Read.header(None), "x-ms-ratelimit-remaining-tenant-reads");
        assert_eq!(Kind::Write.header(None), "x-ms-ratelimit-remaining-tenant-writes");
    }
    use governor::clock::FakeRelativeClock;

    fn budgets(reads: &str, writes: &str) -> Option<ThrottleConfig> {
        Some(ThrottleConfig { reads: reads.parse().unwrap(), writes: writes.parse().unwrap() })
    }

    #[test]
    fn buckets_drain_and_say_when_to_retry() {
        let t = Throttle::new(Some(ThrottleConfig {
            reads: Budget { bucket: 3.0, per_second: 0.5 },
            writes: "2:1".parse().unwrap(),
        }));
        let s = Some(Uuid::nil());
        assert_eq!(t.take("p", s, Kind::Read).unwrap(), Some(2));
        assert_eq!(t.take("p", s, Kind::Read).unwrap(), Some(1));
        assert_eq!(t.take("p", s, Kind::Read).unwrap(), Some(0));
        let e = t.take("p", s, Kind::Read).unwrap_err();
        assert_eq!(e.code(), "SubscriptionRequestsThrottled");
        assert!(matches!(e, ApiError::Throttled { retry_after: 2, .. }));
        assert!(e.to_string().contains("subscription reads"), "{e}");
        // Other principals, subscriptions and kinds have their own buckets.
        assert!(t.take("q", s, Kind::Read).is_ok());
        assert!(t.take("p", None, Kind::Read).is_ok());
        assert!(t.take("p", s, Kind::Write).is_ok());
        assert_eq!(Throttle::new(None).take("p", s, Kind::Read).unwrap(), None);
        assert!("x".parse::<Budget>().is_err());
        assert!("0:1".parse::<Budget>().is_err());
        assert!("5:0".parse::<Budget>().is_err());
        assert!("5:0.00001".parse::<Budget>().is_err());
        assert!("5:NaN".parse::<Budget>().is_err());
        assert!("NaN:5".parse::<Budget>().is_err());
        assert!("5:inf".parse::<Budget>().is_err());
        assert!("1e12:0.001".parse::<Budget>().is_err(), "a bucket that takes ages to refill");
        assert!("0.5:1".parse::<Budget>().is_err());
        assert_eq!("2.5:0.5".parse(), Ok(Budget { bucket: 2.5, per_second: 0.5 }));
    }

    #[test]
    fn budgets_refill_at_their_rate_up_to_the_bucket() {
        let clock = FakeRelativeClock::default();
        let t = Throttle::with_clock(budgets("2:1", "1:0.25"), clock.clone());
        let s = Some(Uuid::nil());
        assert_eq!(t.take("p", s, Kind::Read).unwrap(), Some(1));
        assert_eq!(t.take("p", s, Kind::Read).unwrap(), Some(0));
        assert!(t.take("p", s, Kind::Read).is_err());
        clock.advance(Duration::from_millis(1000));
        assert_eq!(t.take("p", s, Kind::Read).unwrap(), Some(0), "one request back per second");
        // A long pause refills the bucket, never beyond it.
        clock.advance(Duration::from_secs(60));
        assert_eq!(t.take("p", s, Kind::Read).unwrap(), Some(1));

        assert_eq!(t.take("p", s, Kind::Write).unwrap(), Some(0));
        match t.take("p", s, Kind::Write).unwrap_err() {
            ApiError::Throttled { retry_after, budget } => {
                assert_eq!((retry_after, budget), (4, "subscription writes"))
            }
            other => panic!("{other:?}"),
        }
        clock.advance(Duration::from_millis(2500));
        match t.take("p", s, Kind::Write).unwrap_err() {
            ApiError::Throttled { retry_after, .. } => {
                assert_eq!(retry_after, 2, "1.5 s, rounded up")
            }
            other => panic!("{other:?}"),
        }
        clock.advance(Duration::from_millis(1500));
        assert_eq!(t.take("p", s, Kind::Write).unwrap(), Some(0));
    }

    #[test]
    fn fractional_and_out_of_range_budgets_are_usable() {
        let s = Some(Uuid::nil());
        // A bucket of 2.5 admits two requests at once.
        let t = Throttle::new(Some(ThrottleConfig {
            reads: Budget { bucket: 2.5, per_second: 1.0 },
            // Built directly, past what the parser accepts: brought into range, never a panic.
            writes: Budget { bucket: -3.0, per_second: 0.0 },
        }));
        assert_eq!(t.take("p", s, Kind::Read).unwrap(), Some(1));
        assert_eq!(t.take("p", s, Kind::Read).unwrap(), Some(0));
        assert!(t.take("p", s, Kind::Read).is_err());
        assert_eq!(t.take("p", s, Kind::Write).unwrap(), Some(0));
        let e = t.take("p", s, Kind::Write).unwrap_err();
        assert!(matches!(e, ApiError::Throttled { retry_after: 3600, .. }), "one per hour: {e:?}");
        for absurd in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300, 1e-300] {
            let budget = Budget { bucket: 1e300, per_second: absurd };
            let t = Throttle::new(Some(ThrottleConfig { reads: budget, writes: budget }));
            assert!(t.take("p", s, Kind::Read).is_ok());
        }
    }

    #[test]
    fn idle_keys_are_swept_busy_ones_kept() {
        let clock = FakeRelativeClock::default();
        let t = Throttle::with_clock(budgets("5:1", "5:1"), clock.clone());
        let busy = Some(Uuid::from_u128(1));
        // One principal spends most of its budget (4 of 5, refilled in 4 s).
        for _ in 0..4 {
            t.take("busy", busy, Kind::Read).unwrap();
        }
        // Many principals make one request each (refilled in 1 s), then go idle; up to the
        // threshold, nothing is swept.
        for i in 1..SWEEP_AT {
            t.take(&format!("p{i}"), None, Kind::Read).unwrap();
        }
        assert_eq!(t.keys(), (SWEEP_AT, 0));
        // Once their budgets have refilled, the next new key past the threshold sweeps them.
        clock.advance(Duration::from_secs(3));
        t.take("newcomer", None, Kind::Read).unwrap();
        assert_eq!(t.keys(), (2, 0), "only the busy principal and the newcomer are kept");
        // The busy principal's spent budget survived the sweep: 1 left + 3 refilled, minus this one.
        assert_eq!(t.take("busy", busy, Kind::Read).unwrap(), Some(3));
        // A swept principal starts afresh, exactly as if it had been kept.
        assert_eq!(t.take("p1", None, Kind::Read).unwrap(), Some(4));
    }

    #[test]
    fn a_map_of_busy_keys_is_not_swept_on_every_request() {
        let clock = FakeRelativeClock::default();
        let t = Throttle::with_clock(budgets("5:1", "5:1"), clock.clone());
        for i in 0..=SWEEP_AT {
            t.take(&format!("p{i}"), None, Kind::Read).unwrap();
        }
        // All keys are busy: the sweep kept them and moved the next one to twice as many.
        let (limiter, _) = t.limiters.as_ref().unwrap();
        assert_eq!(limiter.sweep_at.load(Ordering::Relaxed), 2 * (SWEEP_AT + 1));
        assert_eq!(t.keys().0, SWEEP_AT + 1);
    }

    #[test]
    fn concurrent_requests_never_overspend_a_budget() {
        // A frozen clock: nothing refills, so exactly `bucket` requests may pass.
        let t = std::sync::Arc::new(Throttle::with_clock(
            budgets("50:1", "50:1"),
            FakeRelativeClock::default(),
        ));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    (0..40).filter(|_| t.take("p", None, Kind::Write).is_ok()).count()
                })
            })
            .collect();
        let passed: usize = threads.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(passed, 50);
    }

    /// ARM's budgets as a plain token bucket in whole nanoseconds of credit: the behaviour the
    /// hand-written buckets had, which governor's GCRA must reproduce exactly.
    struct TokenBucket {
        credit: u64,
        capacity: u64,
        period: u64,
        last: u64,
    }

    impl TokenBucket {
        fn take(&mut self, now: u64) -> Result<u64, u64> {
            self.credit = (self.credit + (now - self.last)).min(self.capacity);
            self.last = now;
            if self.credit >= self.period {
                self.credit -= self.period;
                Ok(self.credit / self.period)
            } else {
                // Whole seconds, rounded up, at least one.
                Err((self.period - self.credit).div_ceil(1_000_000_000).max(1))
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn governor_answers_like_a_token_bucket(
            bucket in 1u32..20,
            period_ms in 1u64..5_000,
            steps in proptest::collection::vec(0u64..3_000, 1..60),
        ) {
            let clock = FakeRelativeClock::default();
            let budget = Budget { bucket: f64::from(bucket), per_second: 1000.0 / period_ms as f64 };
            let t = Throttle::with_clock(Some(ThrottleConfig { reads: budget, writes: budget }), clock.clone());
            let period = period_ms * 1_000_000;
            let mut model = TokenBucket {
                credit: u64::from(bucket) * period,
                capacity: u64::from(bucket) * period,
                period,
                last: 0,
            };
            let mut now = 0;
            for advance_ms in steps {
                clock.advance(Duration::from_millis(advance_ms));
                now += advance_ms * 1_000_000;
                let expected = model.take(now);
                let actual = match t.take("p", None, Kind::Read) {
                    Ok(left) => Ok(left.unwrap_or(u64::MAX)),
                    Err(ApiError::Throttled { retry_after, .. }) => Err(retry_after),
                    Err(other) => panic!("{other:?}"),
                };
                proptest::prop_assert_eq!(actual, expected, "at {} ms", now / 1_000_000);
            }
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn a_budget_flag_is_a_usable_budget_or_an_error(text in prop_oneof![
                ".{0,16}",
                "(-?[0-9]{1,4}(\\.[0-9]{1,2})?|NaN|nan|inf|-inf|infinity|1e400):(-?[0-9]{1,4}(\\.[0-9]{1,2})?|NaN|inf|-inf|0)",
            ]) {
                if let Ok(b) = text.parse::<Budget>() {
                    prop_assert!(b.bucket.is_finite() && b.bucket >= 1.0, "{text:?} → {b:?}");
                    prop_assert!(b.per_second.is_finite() && b.per_second > 0.0, "{text:?} → {b:?}");
                    // A fresh bucket serves at least one request.
                    let t = Throttle::new(Some(ThrottleConfig { reads: b, writes: b }));
                    prop_assert!(t.take("p", None, Kind::Read).is_ok());
                }
            }

            #[test]
            fn a_drained_bucket_says_when_to_retry(bucket in 1u32..20, per_second in 1u32..=10) {
                // 0.1 to 1 request per second: draining takes microseconds, refilling seconds.
                let b = Budget { bucket: f64::from(bucket), per_second: f64::from(per_second) / 10.0 };
                let t = Throttle::new(Some(ThrottleConfig { reads: b, writes: b }));
                let mut served = 0;
                let e = loop {
                    match t.take("p", None, Kind::Write) {
                        Ok(_) => served += 1,
                        Err(e) => break e,
                    }
                    // Only a guard against a bucket that never runs dry; at most 1 request/s
                    // refills, so a slow machine may squeeze one or two more in.
                    prop_assert!(served <= bucket + 100, "the bucket never runs dry");
                };
                prop_assert!(served >= bucket, "a full bucket serves {bucket}, served {served}");
                prop_assert_eq!(e.status().as_u16(), 429);
                let ApiError::Throttled { retry_after, .. } = e else {
                    return Err(TestCaseError::fail("not a throttling error"));
                };
                // Waiting that long refills at least one request, and not much more than that.
                let refilled = retry_after as f64 * b.per_second;
                prop_assert!(refilled >= 1.0 - 1e-9 && retry_after >= 1, "{retry_after}s at {}/s", b.per_second);
                prop_assert!(retry_after == 1 || refilled <= 1.0 + b.per_second + 1e-9, "{retry_after}s at {}/s", b.per_second);
            }
        }
    }

    #[test]
    fn non_finite_budgets_are_refused() {
        for text in ["NaN:25", "250:NaN", "inf:25", "250:inf", "1e400:1"] {
            assert!(text.parse::<Budget>().is_err(), "{text}");
        }
    }
}
