//! Azure call metrics on prometheus-client, shared by every client and registered with the
//! operator's registry by [`crate::metrics`].
//!
//! - `ams_azure_requests_total{operation,outcome}`: finished calls.
//! - `ams_azure_request_duration_seconds_total{operation,outcome}`: their summed latency (kept
//!   for existing dashboards; the histogram's `_sum` says the same per operation).
//! - `ams_azure_request_latency_seconds{operation}`: latency histogram.
//! - `ams_azure_http_attempts_total`, `ams_azure_http_retries_total`: HTTP requests sent,
//!   retries included, and the retries among them.
//!
//! Labels are bounded: `operation` is an [`Operation`] and `outcome` is [`OUTCOME_OK`] or an
//! error's `reason()`, both closed sets. No resource id ever becomes a label.

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::operation::Operation;

/// Outcome label of a successful call.
pub const OUTCOME_OK: &str = "Ok";

/// Upper bounds of the latency buckets, in seconds: from a fast ARM read to past the default
/// whole-call timeout (15 s), which is where a call that used up its retries lands.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0,
];

impl EncodeLabelValue for Operation {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// `operation` and `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    operation: Operation,
    outcome: &'static str,
}

/// `operation` alone: the histogram's buckets multiply every label value, so it carries the
/// one that matters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: Operation,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Azure call metrics, shared by all clients (hold it in an `Arc`).
#[derive(Debug)]
pub struct AzureMetrics {
    requests: Family<CallLabels, Counter>,
    latency_total: Family<CallLabels, Counter<f64>>,
    latency: Family<OperationLabels, Histogram, fn() -> Histogram>,
    http_attempts: Counter,
    http_retries: Counter,
}

impl Default for AzureMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latency_total: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            http_attempts: Counter::default(),
            http_retries: Counter::default(),
        }
    }
}

impl AzureMetrics {
    /// Record one finished call: `outcome` is [`OUTCOME_OK`] or the error's reason.
    pub fn record(&self, operation: Operation, outcome: &'static str, latency: Duration) {
        let labels = CallLabels { operation, outcome };
        self.requests.get_or_create(&labels).inc();
        self.latency_total
            .get_or_create(&labels)
            .inc_by(latency.as_secs_f64());
        self.latency
            .get_or_create(&OperationLabels { operation })
            .observe(latency.as_secs_f64());
    }

    /// Record one HTTP attempt; `retry` when it repeats an earlier attempt.
    pub fn record_attempt(&self, retry: bool) {
        self.http_attempts.inc();
        if retry {
            self.http_retries.inc();
        }
    }

    /// Add these metrics to `registry` (every registry they join counts the same calls).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "ams_azure_requests",
            "Azure calls by operation and outcome (Ok, or the error reason such as AzureThrottled)",
            self.requests.clone(),
        );
        registry.register(
            "ams_azure_request_duration_seconds",
            "Summed latency of Azure calls by operation and outcome",
            self.latency_total.clone(),
        );
        registry.register(
            "ams_azure_request_latency_seconds",
            "Latency of Azure calls by operation, retries included",
            self.latency.clone(),
        );
        registry.register(
            "ams_azure_http_attempts",
            "HTTP requests sent to Azure, retries included",
            self.http_attempts.clone(),
        );
        registry.register(
            "ams_azure_http_retries",
            "HTTP retries of Azure calls",
            self.http_retries.clone(),
        );
    }

    /// Calls of `operation` that ended with `outcome` so far.
    #[must_use]
    pub fn requests(&self, operation: Operation, outcome: &'static str) -> u64 {
        self.requests
            .get(&CallLabels { operation, outcome })
            .map_or(0, |c| c.get())
    }

    /// HTTP requests sent so far, retries included.
    #[must_use]
    pub fn http_attempts(&self) -> u64 {
        self.http_attempts.get()
    }

    /// HTTP retries so far.
    #[must_use]
    pub fn http_retries(&self) -> u64 {
        self.http_retries.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_count_by_operation_and_outcome_and_feed_the_histogram() {
        let m = AzureMetrics::default();
        m.record(Operation::VaultsGet, OUTCOME_OK, Duration::from_millis(3));
        m.record(Operation::VaultsGet, OUTCOME_OK, Duration::from_millis(2));
        m.record(
            Operation::VaultsGet,
            "AzureThrottled",
            Duration::from_millis(1),
        );
        m.record_attempt(false);
        m.record_attempt(true);
        assert_eq!(m.requests(Operation::VaultsGet, OUTCOME_OK), 2);
        assert_eq!(m.requests(Operation::VaultsGet, "AzureThrottled"), 1);
        assert_eq!(m.requests(Operation::GetKey, OUTCOME_OK), 0);
        assert_eq!((m.http_attempts(), m.http_retries()), (2, 1));
    }

    /// The exposition keeps the series dashboards read and adds the histogram.
    #[test]
    fn exposition_has_the_documented_series_and_the_histogram() {
        let m = AzureMetrics::default();
        m.record(Operation::GetKey, OUTCOME_OK, Duration::from_millis(30));
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        for line in [
            r#"ams_azure_requests_total{operation="get key",outcome="Ok"} 1"#,
            r#"ams_azure_request_duration_seconds_total{operation="get key",outcome="Ok"} 0.03"#,
            r#"ams_azure_request_latency_seconds_bucket{le="0.05",operation="get key"} 1"#,
            r#"ams_azure_request_latency_seconds_bucket{le="0.025",operation="get key"} 0"#,
            r#"ams_azure_request_latency_seconds_count{operation="get key"} 1"#,
            "# TYPE ams_azure_request_latency_seconds histogram",
            "ams_azure_http_attempts_total 0",
            "ams_azure_http_retries_total 0",
        ] {
            assert!(text.contains(line), "missing {line} in:\n{text}");
        }
    }
}
