//! Counters of Azure calls by operation and outcome, as plain atomics with a snapshot.
//!
//! Labels are bounded: the operation is a `&'static str` from this crate and the outcome is
//! `Ok` or an error reason. Exporting to Prometheus is done elsewhere.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Outcome label of a successful call.
pub const OUTCOME_OK: &str = "Ok";

#[derive(Debug, Default)]
struct Cell {
    count: AtomicU64,
    micros: AtomicU64,
}

/// Azure call counters, shared by all clients.
#[derive(Debug, Default)]
pub struct AzureMetrics {
    cells: Mutex<BTreeMap<(&'static str, &'static str), Arc<Cell>>>,
    http_attempts: AtomicU64,
    http_retries: AtomicU64,
}

/// One row of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallStats {
    /// Operation, e.g. `get media services account`.
    pub operation: &'static str,
    /// `Ok` or an error reason.
    pub outcome: &'static str,
    /// Calls.
    pub count: u64,
    /// Summed latency.
    pub total_latency: Duration,
}

/// Everything counted so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Per operation and outcome.
    pub calls: Vec<CallStats>,
    /// HTTP requests sent (including retries).
    pub http_attempts: u64,
    /// Of those, retries.
    pub http_retries: u64,
}

impl MetricsSnapshot {
    /// Calls of `operation` with `outcome`.
    #[must_use]
    pub fn count(&self, operation: &str, outcome: &str) -> u64 {
        self.calls
            .iter()
            .filter(|c| c.operation == operation && c.outcome == outcome)
            .map(|c| c.count)
            .sum()
    }
}

impl AzureMetrics {
    /// Record one finished call.
    pub fn record(&self, operation: &'static str, outcome: &'static str, latency: Duration) {
        let cell = {
            let mut cells = self
                .cells
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cells.entry((operation, outcome)).or_default().clone()
        };
        cell.count.fetch_add(1, Ordering::Relaxed);
        cell.micros.fetch_add(
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Record one HTTP attempt; `retry` when it repeats an earlier attempt.
    pub fn record_attempt(&self, retry: bool) {
        self.http_attempts.fetch_add(1, Ordering::Relaxed);
        if retry {
            self.http_retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A consistent-enough copy for export and tests.
    #[must_use]
    pub fn snapshot(&self) -> MetricsSnapshot {
        let cells = self
            .cells
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        MetricsSnapshot {
            calls: cells
                .iter()
                .map(|((operation, outcome), c)| CallStats {
                    operation,
                    outcome,
                    count: c.count.load(Ordering::Relaxed),
                    total_latency: Duration::from_micros(c.micros.load(Ordering::Relaxed)),
                })
                .collect(),
            http_attempts: self.http_attempts.load(Ordering::Relaxed),
            http_retries: self.http_retries.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_counts_by_operation_and_outcome() {
        let m = AzureMetrics::default();
        m.record("get vault", OUTCOME_OK, Duration::from_millis(3));
        m.record("get vault", OUTCOME_OK, Duration::from_millis(2));
        m.record("get vault", "AzureThrottled", Duration::from_millis(1));
        m.record_attempt(false);
        m.record_attempt(true);
        let s = m.snapshot();
        assert_eq!(s.count("get vault", OUTCOME_OK), 2);
        assert_eq!(s.count("get vault", "AzureThrottled"), 1);
        assert_eq!(s.count("get key", OUTCOME_OK), 0);
        assert_eq!((s.http_attempts, s.http_retries), (2, 1));
        let ok = s
            .calls
            .iter()
            .find(|c| c.outcome == OUTCOME_OK)
            .expect("row");
        assert_eq!(ok.total_latency, Duration::from_millis(5));
    }
}
