//! ARM's request budgets: token buckets per principal and subscription, one for reads and one for
//! writes (docs/ARM.md: reads 250 refilled 25/s, writes 200 refilled 10/s). A request over budget
//! is a 429 CloudError with `Retry-After`; every answered request reports what is left in
//! `x-ms-ratelimit-remaining-subscription-{reads,writes}`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;
use uuid::Uuid;

use super::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub bucket: f64,
    pub per_second: f64,
}

impl std::str::FromStr for Budget {
    type Err = String;
    /// `BUCKET:PER_SECOND`, e.g. `250:25`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (b, r) = s
            .split_once(':')
            .ok_or_else(|| format!("'{s}' is not BUCKET:PER_SECOND, e.g. 250:25"))?;
        let bucket: f64 = b.parse().map_err(|_| format!("bucket '{b}' is not a number"))?;
        let per_second: f64 = r.parse().map_err(|_| format!("refill '{r}' is not a number"))?;
        // NaN compares false with everything, so it is refused by name, with the infinities.
        if !bucket.is_finite() || !per_second.is_finite() || bucket < 1.0 || per_second <= 0.0 {
            return Err(
                "the bucket must hold at least 1 request and refill faster than 0 per second (finite numbers)"
                    .into(),
            );
        }
        Ok(Budget { bucket, per_second })
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
    pub fn header(self) -> &'static str {
        match self {
            Kind::Read => "x-ms-ratelimit-remaining-subscription-reads",
            Kind::Write => "x-ms-ratelimit-remaining-subscription-writes",
        }
    }
}

/// Whose budget: (principal, subscription, reads or writes).
type BucketKey = (String, Option<Uuid>, Kind);

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets beyond this many are pruned of the full (idle) ones.
const PRUNE_AT: usize = 10_000;

pub struct Throttle {
    config: Option<ThrottleConfig>,
    buckets: Mutex<HashMap<BucketKey, Bucket>>,
}

impl Throttle {
    /// `None` turns throttling off (benchmarks).
    pub fn new(config: Option<ThrottleConfig>) -> Self {
        Throttle { config, buckets: Mutex::new(HashMap::new()) }
    }

    pub fn enabled(&self) -> bool {
        self.config.is_some()
    }

    /// Take one request from the principal's budget; returns what is left.
    pub fn take(
        &self,
        principal: &str,
        subscription: Option<Uuid>,
        kind: Kind,
    ) -> Result<Option<u64>, ApiError> {
        let Some(config) = self.config else { return Ok(None) };
        let budget = match kind {
            Kind::Read => config.reads,
            Kind::Write => config.writes,
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("throttle lock");
        if buckets.len() > PRUNE_AT {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * budget.per_second
                    < budget.bucket
            });
        }
        let b = buckets
            .entry((principal.to_string(), subscription, kind))
            .or_insert(Bucket { tokens: budget.bucket, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * budget.per_second)
            .min(budget.bucket);
        b.at = now;
        if b.tokens < 1.0 {
            let retry_after = ((1.0 - b.tokens) / budget.per_second).ceil().max(1.0) as u64;
            return Err(ApiError::Throttled {
                budget: match kind {
                    Kind::Read => "subscription reads",
                    Kind::Write => "subscription writes",
                },
                retry_after,
            });
        }
        b.tokens -= 1.0;
        Ok(Some(b.tokens.floor() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // Other principals, subscriptions and kinds have their own buckets.
        assert!(t.take("q", s, Kind::Read).is_ok());
        assert!(t.take("p", None, Kind::Read).is_ok());
        assert!(t.take("p", s, Kind::Write).is_ok());
        assert_eq!(Throttle::new(None).take("p", s, Kind::Read).unwrap(), None);
        assert!("x".parse::<Budget>().is_err());
        assert!("0:1".parse::<Budget>().is_err());
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
