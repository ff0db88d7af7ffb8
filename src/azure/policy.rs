//! Pipeline policies that bound every Azure call: a retry policy with a small, total budget
//! and a per-attempt timeout (replacing `azure_core`'s ~60 s default), and ARM's client-side
//! rate limit per subscription.
//!
//! 429/503 answers are retried only when the server's `Retry-After` fits the budget; otherwise
//! the answer goes back to the caller, whose error carries the delay so the reconciler can
//! requeue instead of sleeping. These policies never touch the Authorization header.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::headers::{HeaderName, Headers};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};

use super::metrics::AzureMetrics;
use super::ratelimit::{RateLimiter, RequestKind, subscription_of_path};

/// Retry and timeout budget of one Azure call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryBudget {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff delay; doubles each retry.
    pub initial_delay: Duration,
    /// Largest backoff delay.
    pub max_delay: Duration,
    /// No retry starts once this much time has passed since the first attempt.
    pub total: Duration,
    /// Timeout of one HTTP attempt.
    pub per_try_timeout: Duration,
    /// A `Retry-After` longer than this is handed back to the caller instead of slept.
    pub max_retry_after: Duration,
}

impl Default for RetryBudget {
    /// At most about 15 s per call in the worst case (two 5 s attempts plus backoff), far
    /// below `azure_core`'s default minute.
    fn default() -> Self {
        Self {
            max_retries: 2,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            total: Duration::from_secs(8),
            per_try_timeout: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(2),
        }
    }
}

/// An attempt that got no answer in time. Carried inside an `azure_core::Error` of kind `Io`.
#[derive(Debug, thiserror::Error)]
#[error("no answer within {0:?}")]
pub struct AttemptTimedOut(pub Duration);

/// The client-side rate limit refused a request. Carried inside an `azure_core::Error`.
#[derive(Debug, thiserror::Error)]
#[error("client-side request budget of subscription {subscription} is spent")]
pub struct ClientRateLimited {
    /// Subscription whose bucket is empty.
    pub subscription: String,
    /// When a token will be available.
    pub retry_after: Duration,
}

const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
const X_MS_RETRY_AFTER_MS: HeaderName = HeaderName::from_static("x-ms-retry-after-ms");
const RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");

/// The longest wait an Azure answer can impose: a `Retry-After` beyond it (a misbehaving
/// proxy, a date far ahead) is cut to it, so one answer never parks a resource for hours. A
/// request that is still throttled then simply gets another `Retry-After`.
pub const RETRY_AFTER_CEILING: Duration = Duration::from_secs(300);

/// The delay an answer asks for: `retry-after-ms`, `x-ms-retry-after-ms`, then `Retry-After`
/// as seconds or an HTTP date; at most [`RETRY_AFTER_CEILING`].
#[must_use]
pub fn retry_after(headers: &Headers) -> Option<Duration> {
    asked_delay(headers).map(|d| d.min(RETRY_AFTER_CEILING))
}

fn asked_delay(headers: &Headers) -> Option<Duration> {
    for name in [&RETRY_AFTER_MS, &X_MS_RETRY_AFTER_MS] {
        if let Some(ms) = headers
            .get_optional_str(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_millis(ms));
        }
    }
    let v = headers.get_optional_str(&RETRY_AFTER)?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = azure_core::time::parse_rfc7231(v).ok()?;
    let delta = at - azure_core::time::OffsetDateTime::now_utc();
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

fn find_in_chain<T: std::error::Error + 'static>(err: &azure_core::Error) -> Option<&T> {
    if let Some(t) = err.downcast_ref::<T>() {
        return Some(t);
    }
    let mut current = std::error::Error::source(err);
    while let Some(e) = current {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        if let Some(core) = e.downcast_ref::<azure_core::Error>()
            && let Some(t) = core.downcast_ref::<T>()
        {
            return Some(t);
        }
        current = e.source();
    }
    None
}

/// Whether the error is an attempt timeout.
#[must_use]
pub fn is_timeout(err: &azure_core::Error) -> bool {
    find_in_chain::<AttemptTimedOut>(err).is_some()
}

/// The timeout that expired (zero when [`is_timeout`] is false).
#[must_use]
pub fn timeout_of(err: &azure_core::Error) -> Duration {
    find_in_chain::<AttemptTimedOut>(err).map_or(Duration::ZERO, |t| t.0)
}

/// The rate-limit refusal inside an error, if that is what it is.
#[must_use]
pub fn rate_limited(err: &azure_core::Error) -> Option<&ClientRateLimited> {
    find_in_chain::<ClientRateLimited>(err)
}

fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Bounded retries with a per-attempt timeout. Install with `RetryOptions::none()` so the
/// SDK's own retry policy does nothing, and this one as a per-call policy.
#[derive(Debug)]
pub struct BudgetRetryPolicy {
    budget: RetryBudget,
    metrics: Arc<AzureMetrics>,
}

impl BudgetRetryPolicy {
    /// A policy with this budget, counting attempts into `metrics`.
    #[must_use]
    pub fn new(budget: RetryBudget, metrics: Arc<AzureMetrics>) -> Self {
        Self { budget, metrics }
    }

    fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.budget
            .initial_delay
            .saturating_mul(factor)
            .min(self.budget.max_delay)
    }
}

#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
impl Policy for BudgetRetryPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let start = tokio::time::Instant::now();
        let mut retry = 0u32;
        loop {
            self.metrics.record_attempt(retry > 0);
            let attempt = tokio::time::timeout(
                self.budget.per_try_timeout,
                next[0].send(ctx, request, &next[1..]),
            )
            .await;
            let (retryable, server_delay, result) = match attempt {
                Err(_) => (
                    true,
                    None,
                    Err(azure_core::Error::new(
                        ErrorKind::Io,
                        AttemptTimedOut(self.budget.per_try_timeout),
                    )),
                ),
                Ok(Ok(response)) => {
                    let status = u16::from(response.status());
                    let delay = if matches!(status, 429 | 503) {
                        retry_after(response.headers())
                    } else {
                        None
                    };
                    (retryable_status(status), delay, Ok(response))
                }
                Ok(Err(err)) => {
                    let transport = matches!(err.kind(), ErrorKind::Io | ErrorKind::Connection)
                        && rate_limited(&err).is_none();
                    (transport, None, Err(err))
                }
            };
            if !retryable || retry >= self.budget.max_retries {
                return result;
            }
            let delay = match server_delay {
                Some(d) if d > self.budget.max_retry_after => return result,
                Some(d) => d.max(self.backoff(retry + 1)),
                None => self.backoff(retry + 1),
            };
            if start.elapsed() + delay >= self.budget.total {
                return result;
            }
            // Path only: no query (skip tokens), never headers (the bearer token).
            tracing::debug!(
                method = %request.method(),
                path = request.url().path(),
                status = result.as_ref().ok().map(|r| u16::from(r.status())),
                error = result.as_ref().err().map(ToString::to_string),
                retry = retry + 1,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "retrying azure request"
            );
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }
}

/// ARM's client-side rate limit: one token per attempt from the subscription's bucket, and
/// adaptation to `x-ms-ratelimit-remaining-*` answers. Install as a per-try policy.
#[derive(Debug)]
pub struct RateLimitPolicy {
    limiter: Arc<RateLimiter>,
    max_wait: Duration,
}

impl RateLimitPolicy {
    /// Draw from `limiter`, waiting at most `max_wait` for a token.
    #[must_use]
    pub fn new(limiter: Arc<RateLimiter>, max_wait: Duration) -> Self {
        Self { limiter, max_wait }
    }
}

#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
impl Policy for RateLimitPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let Some(subscription) = subscription_of_path(request.url().path()) else {
            return next[0].send(ctx, request, &next[1..]).await;
        };
        let kind = RequestKind::from_method(request.method().as_ref());
        if let Err(wait) = self
            .limiter
            .acquire(&subscription, kind, self.max_wait)
            .await
        {
            return Err(azure_core::Error::new(
                ErrorKind::Other,
                ClientRateLimited {
                    subscription,
                    retry_after: wait,
                },
            ));
        }
        let response = next[0].send(ctx, request, &next[1..]).await?;
        let headers = response.headers();
        self.limiter.observe_headers(&subscription, kind, |name| {
            headers.get_optional_str(&HeaderName::from(name.to_owned()))
        });
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_ms_headers_seconds_and_dates() {
        let mut h = Headers::new();
        h.insert(RETRY_AFTER, "7");
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(X_MS_RETRY_AFTER_MS, "1500");
        assert_eq!(
            retry_after(&h),
            Some(Duration::from_millis(1500)),
            "ms headers win"
        );
        let mut d = Headers::new();
        d.insert(RETRY_AFTER, "Fri, 01 Jan 2021 00:00:00 GMT");
        assert_eq!(
            retry_after(&d),
            Some(Duration::ZERO),
            "a past date means now"
        );
        assert_eq!(retry_after(&Headers::new()), None);
    }

    /// A Retry-After of a day, in seconds, milliseconds or as a date, waits the ceiling.
    #[test]
    fn retry_after_is_capped_at_the_ceiling() {
        for (name, value) in [
            (RETRY_AFTER, "86400".to_owned()),
            (RETRY_AFTER_MS, "86400000".to_owned()),
            (RETRY_AFTER, "Fri, 01 Jan 2100 00:00:00 GMT".to_owned()),
        ] {
            let mut h = Headers::new();
            h.insert(name, value.clone());
            assert_eq!(retry_after(&h), Some(RETRY_AFTER_CEILING), "{value}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = BudgetRetryPolicy::new(RetryBudget::default(), Arc::default());
        assert_eq!(p.backoff(1), Duration::from_millis(200));
        assert_eq!(p.backoff(2), Duration::from_millis(400));
        assert_eq!(p.backoff(10), Duration::from_secs(2));
    }

    #[test]
    fn timeouts_and_rate_limits_are_recognised_inside_sdk_errors() {
        let e = azure_core::Error::new(ErrorKind::Io, AttemptTimedOut(Duration::from_secs(5)));
        assert!(is_timeout(&e));
        assert_eq!(timeout_of(&e), Duration::from_secs(5));
        let r = azure_core::Error::new(
            ErrorKind::Other,
            ClientRateLimited {
                subscription: "s".into(),
                retry_after: Duration::from_secs(1),
            },
        );
        assert_eq!(
            rate_limited(&r).map(|r| r.retry_after),
            Some(Duration::from_secs(1))
        );
        assert!(!is_timeout(&r));
    }
}
