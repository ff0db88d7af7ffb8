//! The one wrapper every Azure call goes through: a `azure_call` tracing span (operation, its
//! operationId, resource, api-version), the whole-call timeout, and the call metrics.
//!
//! It does not retry (the pipeline's policies do, within the same timeout) and does not
//! classify errors ([`super::error`] does).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::error::AzureError;
use super::metrics::{AzureMetrics, OUTCOME_OK};
use super::operation::Operation;

/// Times, traces and counts Azure calls; cheap to clone.
#[derive(Clone, Debug)]
pub struct Caller {
    timeout: Duration,
    metrics: Arc<AzureMetrics>,
}

impl Caller {
    /// Calls cut at `timeout`, counted in `metrics`.
    #[must_use]
    pub fn new(timeout: Duration, metrics: Arc<AzureMetrics>) -> Self {
        Self { timeout, metrics }
    }

    /// The whole-call timeout.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Run `call` as `operation` on `resource`: inside its span, cut at the timeout (as
    /// [`AzureError::Timeout`]), and recorded with its outcome and latency.
    pub async fn call<T, F>(
        &self,
        operation: Operation,
        resource: &str,
        api_version: &str,
        call: F,
    ) -> Result<T, AzureError>
    where
        F: Future<Output = Result<T, AzureError>>,
    {
        let span = tracing::debug_span!(
            "azure_call",
            operation = operation.as_str(),
            operation_id = operation.operation_id(),
            resource,
            api_version
        );
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, call.instrument(span.clone())).await {
            Ok(result) => result,
            Err(_) => Err(AzureError::Timeout {
                operation,
                resource: resource.to_owned(),
                timeout: self.timeout,
            }),
        };
        let outcome = match &result {
            Ok(_) => OUTCOME_OK,
            Err(e) => e.reason(),
        };
        self.metrics.record(operation, outcome, started.elapsed());
        if let Err(e) = &result {
            span.in_scope(|| {
                tracing::debug!(
                    reason = e.reason(),
                    class = e.class().as_str(),
                    "azure call failed"
                );
            });
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call that outlives the budget ends as a timeout, and every outcome is counted.
    #[tokio::test(start_paused = true)]
    async fn calls_are_cut_at_the_timeout_and_counted_by_outcome() {
        let metrics = Arc::new(AzureMetrics::default());
        let caller = Caller::new(Duration::from_secs(5), metrics.clone());
        let ok: Result<u8, _> = caller
            .call(Operation::GetKey, "k", "7.5", async { Ok(1) })
            .await;
        assert_eq!(ok.expect("ok"), 1);
        let slow: Result<u8, _> = caller
            .call(Operation::GetKey, "k", "7.5", async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(2)
            })
            .await;
        let err = slow.expect_err("times out");
        assert!(
            matches!(err, AzureError::Timeout { operation: Operation::GetKey, timeout, .. } if timeout == Duration::from_secs(5)),
            "{err:?}"
        );
        assert_eq!(metrics.requests(Operation::GetKey, OUTCOME_OK), 1);
        assert_eq!(metrics.requests(Operation::GetKey, "AzureTimeout"), 1);
    }
}
