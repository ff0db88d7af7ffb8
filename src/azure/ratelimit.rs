//! Client-side rate limit per subscription, inside ARM's documented buckets.
//!
//! ARM throttles each subscription with token buckets (reads: 250 tokens refilled at 25/s;
//! writes and deletes: 200 tokens refilled at 10/s) and reports what is left in
//! `x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}` (and `-global-` variants).
//! Our buckets are smaller than ARM's so the operator leaves room for everything else using
//! the subscription, and shrink when ARM says the shared bucket runs low. A call that would
//! wait longer than its budget fails fast as throttled instead of stalling a reconcile.
//!
//! This module does not send requests; the ARM pipeline's policy calls it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Which ARM bucket a request draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// GET, HEAD.
    Read,
    /// PUT, PATCH, POST.
    Write,
    /// DELETE.
    Delete,
}

impl RequestKind {
    /// Bucket for an HTTP method.
    #[must_use]
    pub fn from_method(method: &str) -> Self {
        match method.to_ascii_uppercase().as_str() {
            "GET" | "HEAD" => Self::Read,
            "DELETE" => Self::Delete,
            _ => Self::Write,
        }
    }

    fn header_suffixes(self) -> [&'static str; 2] {
        match self {
            Self::Read => [
                "x-ms-ratelimit-remaining-subscription-reads",
                "x-ms-ratelimit-remaining-subscription-global-reads",
            ],
            Self::Write => [
                "x-ms-ratelimit-remaining-subscription-writes",
                "x-ms-ratelimit-remaining-subscription-global-writes",
            ],
            Self::Delete => [
                "x-ms-ratelimit-remaining-subscription-deletes",
                "x-ms-ratelimit-remaining-subscription-global-deletes",
            ],
        }
    }
}

/// Size and refill of one bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BucketConfig {
    /// Maximum burst.
    pub capacity: f64,
    /// Tokens added per second.
    pub refill_per_second: f64,
}

/// Rate-limit settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimitConfig {
    /// Read bucket (ARM: 250, 25/s).
    pub read: BucketConfig,
    /// Write bucket (ARM: 200, 10/s).
    pub write: BucketConfig,
    /// Delete bucket (ARM: 200, 10/s).
    pub delete: BucketConfig,
    /// When ARM reports fewer remaining requests than this, stop until refilled.
    pub low_watermark: u64,
}

impl Default for RateLimitConfig {
    /// 40 % of ARM's documented buckets: the operator is one client among many.
    fn default() -> Self {
        Self {
            read: BucketConfig {
                capacity: 100.0,
                refill_per_second: 10.0,
            },
            write: BucketConfig {
                capacity: 40.0,
                refill_per_second: 4.0,
            },
            delete: BucketConfig {
                capacity: 40.0,
                refill_per_second: 4.0,
            },
            low_watermark: 10,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    config: BucketConfig,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens =
            (self.tokens + elapsed * self.config.refill_per_second).min(self.config.capacity);
        self.last = now;
    }

    fn wait_for_one(&self) -> Duration {
        if self.tokens >= 1.0 || self.config.refill_per_second <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / self.config.refill_per_second)
    }
}

/// Token buckets per (subscription, request kind).
#[derive(Debug, Default)]
pub struct RateLimiter {
    config: RateLimitConfig,
    buckets: Mutex<HashMap<(String, RequestKind), Bucket>>,
}

impl RateLimiter {
    /// A limiter with these buckets.
    #[must_use]
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn with_bucket<R>(
        &self,
        subscription: &str,
        kind: RequestKind,
        f: impl FnOnce(&mut Bucket) -> R,
    ) -> R {
        let config = match kind {
            RequestKind::Read => self.config.read,
            RequestKind::Write => self.config.write,
            RequestKind::Delete => self.config.delete,
        };
        let now = Instant::now();
        // A poisoned lock only means another thread panicked mid-update of plain numbers.
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = map
            .entry((subscription.to_ascii_lowercase(), kind))
            .or_insert_with(|| Bucket {
                tokens: config.capacity,
                last: now,
                config,
            });
        bucket.refill(now);
        f(bucket)
    }

    /// Take a token now, or say how long until one is available.
    pub fn try_acquire(&self, subscription: &str, kind: RequestKind) -> Result<(), Duration> {
        self.with_bucket(subscription, kind, |b| {
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                Ok(())
            } else {
                Err(b.wait_for_one())
            }
        })
    }

    /// Take a token, waiting at most `max_wait`; otherwise return how long it would take.
    pub async fn acquire(
        &self,
        subscription: &str,
        kind: RequestKind,
        max_wait: Duration,
    ) -> Result<(), Duration> {
        let deadline = Instant::now() + max_wait;
        loop {
            match self.try_acquire(subscription, kind) {
                Ok(()) => return Ok(()),
                Err(wait) => {
                    let now = Instant::now();
                    if now + wait > deadline {
                        return Err(wait);
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Adapt to what ARM reports is left in the subscription's shared bucket: never hold more
    /// tokens than half of what remains above the low watermark. Below the watermark the
    /// bucket goes into debt (down to minus its capacity), so the next request waits for the
    /// refill to repay it: the closer ARM is to empty, the slower we go.
    pub fn observe_remaining(&self, subscription: &str, kind: RequestKind, remaining: u64) {
        let low = self.config.low_watermark;
        self.with_bucket(subscription, kind, |b| {
            #[allow(clippy::cast_precision_loss)] // header values are far below 2^52
            let allowed = (remaining as f64 - low as f64) / 2.0;
            b.tokens = b.tokens.min(allowed).max(-b.config.capacity);
        });
    }

    /// Read the `x-ms-ratelimit-remaining-*` headers of an ARM answer and adapt.
    pub fn observe_headers<'a>(
        &self,
        subscription: &str,
        kind: RequestKind,
        header: impl Fn(&str) -> Option<&'a str>,
    ) {
        let remaining = kind
            .header_suffixes()
            .iter()
            .filter_map(|name| header(name).and_then(|v| v.trim().parse::<u64>().ok()))
            .min();
        if let Some(r) = remaining {
            self.observe_remaining(subscription, kind, r);
        }
    }

    /// Tokens currently available (for tests and diagnostics).
    #[must_use]
    pub fn available(&self, subscription: &str, kind: RequestKind) -> f64 {
        self.with_bucket(subscription, kind, |b| b.tokens)
    }
}

/// The subscription of an ARM request path (`/subscriptions/{id}/…`), lower-cased.
#[must_use]
pub fn subscription_of_path(path: &str) -> Option<String> {
    let mut it = path.split('/').filter(|s| !s.is_empty());
    while let Some(seg) = it.next() {
        if seg.eq_ignore_ascii_case("subscriptions") {
            return it.next().map(str::to_ascii_lowercase);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> RateLimitConfig {
        RateLimitConfig {
            read: BucketConfig {
                capacity: 3.0,
                refill_per_second: 1.0,
            },
            write: BucketConfig {
                capacity: 2.0,
                refill_per_second: 0.5,
            },
            delete: BucketConfig {
                capacity: 2.0,
                refill_per_second: 0.5,
            },
            low_watermark: 10,
        }
    }

    /// A burst larger than the bucket must be refused, with the refill time as the delay.
    #[tokio::test(start_paused = true)]
    async fn burst_beyond_capacity_is_refused_with_the_refill_delay() {
        let rl = RateLimiter::new(small());
        for i in 0..3 {
            assert_eq!(rl.try_acquire("sub", RequestKind::Read), Ok(()), "read {i}");
        }
        assert_eq!(
            rl.try_acquire("sub", RequestKind::Read),
            Err(Duration::from_secs(1))
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(rl.try_acquire("sub", RequestKind::Read), Ok(()));
    }

    /// Buckets are per subscription (case-insensitive) and per kind.
    #[tokio::test(start_paused = true)]
    async fn buckets_are_separate_per_subscription_and_kind() {
        let rl = RateLimiter::new(small());
        for _ in 0..2 {
            rl.try_acquire("SUB-A", RequestKind::Write).expect("token");
        }
        assert!(
            rl.try_acquire("sub-a", RequestKind::Write).is_err(),
            "same subscription, any case"
        );
        assert!(rl.try_acquire("sub-b", RequestKind::Write).is_ok());
        assert!(rl.try_acquire("sub-a", RequestKind::Read).is_ok());
        assert!(rl.try_acquire("sub-a", RequestKind::Delete).is_ok());
    }

    /// Waiting is bounded: within budget it waits, beyond it fails at once.
    #[tokio::test(start_paused = true)]
    async fn acquire_waits_only_within_its_budget() {
        let rl = RateLimiter::new(small());
        for _ in 0..2 {
            rl.try_acquire("s", RequestKind::Write).expect("token");
        }
        let start = Instant::now();
        assert_eq!(
            rl.acquire("s", RequestKind::Write, Duration::from_secs(1))
                .await,
            Err(Duration::from_secs(2))
        );
        assert_eq!(start.elapsed(), Duration::ZERO, "refusal must not wait");
        assert_eq!(
            rl.acquire("s", RequestKind::Write, Duration::from_secs(3))
                .await,
            Ok(())
        );
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    /// When ARM says the shared bucket is low, the local bucket shrinks; refill continues.
    #[tokio::test(start_paused = true)]
    async fn low_remaining_header_shrinks_the_local_bucket() {
        let rl = RateLimiter::new(RateLimitConfig::default());
        assert!((rl.available("s", RequestKind::Read) - 100.0).abs() < 1e-9);
        rl.observe_headers("s", RequestKind::Read, |name| {
            (name == "x-ms-ratelimit-remaining-subscription-reads").then_some("30")
        });
        assert!(
            (rl.available("s", RequestKind::Read) - 10.0).abs() < 1e-9,
            "half of (30 - 10)"
        );
        rl.observe_headers("s", RequestKind::Read, |name| {
            (name == "x-ms-ratelimit-remaining-subscription-global-reads").then_some("4")
        });
        // 4 remaining is below the watermark of 10: a debt of 3 tokens.
        assert!((rl.available("s", RequestKind::Read) + 3.0).abs() < 1e-9);
        assert_eq!(
            rl.try_acquire("s", RequestKind::Read),
            Err(Duration::from_millis(400)),
            "repaying 3 tokens and taking 1 at 10/s"
        );
        tokio::time::advance(Duration::from_millis(300)).await;
        assert!(rl.try_acquire("s", RequestKind::Read).is_err());
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(rl.try_acquire("s", RequestKind::Read).is_ok());
        // The debt is bounded by the capacity.
        rl.observe_headers("s", RequestKind::Read, |_| Some("0"));
        assert!(rl.available("s", RequestKind::Read) >= -100.0);
        // A high remaining count never adds tokens.
        rl.observe_headers("s", RequestKind::Read, |_| Some("12000"));
        assert!(rl.available("s", RequestKind::Read) < 1.0);
    }

    #[test]
    fn subscription_is_read_from_arm_paths_and_methods_pick_buckets() {
        assert_eq!(
            subscription_of_path("/subscriptions/ABC/resourceGroups/rg").as_deref(),
            Some("abc")
        );
        assert_eq!(
            subscription_of_path("/providers/Microsoft.Authorization/roleDefinitions/x"),
            None
        );
        assert_eq!(RequestKind::from_method("get"), RequestKind::Read);
        assert_eq!(RequestKind::from_method("PATCH"), RequestKind::Write);
        assert_eq!(RequestKind::from_method("DELETE"), RequestKind::Delete);
    }
}
