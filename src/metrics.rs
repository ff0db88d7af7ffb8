//! Prometheus metrics (prometheus-client), served at `/metrics` on the health listener.
//!
//! Every label set is bounded: reasons are the constants of `crd::conditions` and the
//! reconcile's own error reasons, Azure operations are `azure::Operation` names and outcomes
//! their error reasons; no object name, id or message is ever a label.
//!
//! - `ams_reconciles_total{reason}`: passes by the `Ready` reason they ended with.
//! - `ams_reconcile_failures_total{reason}`: passes that failed (status write, Azure error).
//! - `ams_reconcile_duration_seconds`: histogram of pass duration.
//! - `ams_customer_key_inaccessible_accounts{cause}`: accounts whose key is inaccessible now.
//! - `ams_key_probers`, `ams_key_probes_total`, `ams_key_probe_failures_total`,
//!   `ams_key_probe_rounds_total`, `ams_key_probe_triggers_total`,
//!   `ams_key_probe_interval_stretch`: the shared key monitor.
//! - `ams_azure_requests_total{operation,outcome}`,
//!   `ams_azure_request_duration_seconds_total{operation,outcome}` (summed latency),
//!   `ams_azure_request_latency_seconds{operation}` (histogram),
//!   `ams_azure_http_attempts_total`, `ams_azure_http_retries_total`: Azure calls, defined in
//!   [`crate::azure::metrics`]; throttling shows as `outcome="AzureThrottled"`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::azure::metrics::AzureMetrics;
use crate::monitor::KeyMonitor;

/// A `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

/// An `area` label: a condition type of an area the operator writes (four values).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Area {
    area: String,
}

/// A `cause` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Cause {
    cause: String,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<Reason, Counter>,
    failures: Family<Reason, Counter>,
    duration: Histogram,
    drift: Family<Area, Counter>,
    /// The inaccessible-key cause per account (`namespace/name`), for the gauge.
    inaccessible: Arc<Mutex<HashMap<String, &'static str>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Inaccessible(Arc<Mutex<HashMap<String, &'static str>>>);

impl Collector for Inaccessible {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut by_cause: BTreeMap<&'static str, i64> = crate::crd::conditions::key_access::ALL
            .iter()
            .map(|c| (*c, 0))
            .collect();
        for cause in self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            *by_cause.entry(cause).or_insert(0) += 1;
        }
        let mut family = encoder.encode_descriptor(
            "ams_customer_key_inaccessible_accounts",
            "Accounts whose identity cannot use their customer-managed key, by cause",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (cause, n) in by_cause {
            let labels = Cause {
                cause: cause.to_owned(),
            };
            ConstGauge::new(n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

struct MonitorCollector(Arc<KeyMonitor>);

impl std::fmt::Debug for MonitorCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MonitorCollector")
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    let m = encoder.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

impl Collector for MonitorCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.stats();
        #[allow(clippy::cast_precision_loss)]
        gauge(
            &mut encoder,
            "ams_key_probers",
            "Distinct keys and principals being probed",
            s.probers as f64,
        )?;
        counter(&mut encoder, "ams_key_probes", "Key probes run", s.probes)?;
        counter(
            &mut encoder,
            "ams_key_probe_failures",
            "Key probes that failed (the last verdict was kept)",
            s.failed_probes,
        )?;
        counter(
            &mut encoder,
            "ams_key_probe_rounds",
            "Scheduled probe rounds",
            s.rounds,
        )?;
        counter(
            &mut encoder,
            "ams_key_probe_triggers",
            "Accounts reconciled at once because their key's verdict changed",
            s.triggers,
        )?;
        gauge(
            &mut encoder,
            "ams_key_probe_interval_stretch",
            "Largest factor by which read budgets stretched a key's probe interval (1: none)",
            s.max_stretch,
        )
    }
}

impl Metrics {
    /// The metrics, reading the key monitor's counters at scrape time; `azure` are the Azure
    /// clients' call metrics, when there are real clients.
    #[must_use]
    pub fn new(monitor: Arc<KeyMonitor>, azure: Option<&AzureMetrics>) -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<Reason, Counter>::default();
        registry.register(
            "ams_reconciles",
            "Reconcile passes by the Ready reason they ended with",
            reconciles.clone(),
        );
        let failures = Family::<Reason, Counter>::default();
        registry.register(
            "ams_reconcile_failures",
            "Reconcile passes that failed, by reason",
            failures.clone(),
        );
        let duration = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register(
            "ams_reconcile_duration_seconds",
            "Duration of reconcile passes",
            duration.clone(),
        );
        let drift = Family::<Area, Counter>::default();
        registry.register(
            "ams_drift_corrections",
            "Changes made in Azure outside the operator that it corrected, by the condition of the area",
            drift.clone(),
        );
        let inaccessible = Arc::new(Mutex::new(HashMap::new()));
        registry.register_collector(Box::new(Inaccessible(inaccessible.clone())));
        registry.register_collector(Box::new(MonitorCollector(monitor)));
        if let Some(azure) = azure {
            azure.register(&mut registry);
        }
        Self {
            registry,
            reconciles,
            failures,
            duration,
            drift,
            inaccessible,
        }
    }

    /// Counts a drift corrected in the area whose condition is `area`.
    pub fn drift_corrected(&self, area: &str) {
        self.drift
            .get_or_create(&Area {
                area: area.to_owned(),
            })
            .inc();
    }

    /// Records a pass of `object` that ended with `ready_reason` after `took`; `failure` is
    /// the reason it failed, if it did; `inaccessible` the key cause, if the key is lost.
    pub fn reconciled(
        &self,
        object: &str,
        ready_reason: &str,
        failure: Option<&str>,
        inaccessible: Option<&'static str>,
        took: Duration,
    ) {
        self.reconciles
            .get_or_create(&Reason {
                reason: ready_reason.to_owned(),
            })
            .inc();
        if let Some(reason) = failure {
            self.failures
                .get_or_create(&Reason {
                    reason: reason.to_owned(),
                })
                .inc();
        }
        self.duration.observe(took.as_secs_f64());
        let mut map = self
            .inaccessible
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match inaccessible {
            Some(cause) => {
                map.insert(object.to_owned(), cause);
            }
            None => {
                map.remove(object);
            }
        }
    }

    /// Records a pass that failed before it could finish (its status write, or the read of
    /// its object), by the error's reason.
    pub fn failed(&self, reason: &str) {
        self.failures
            .get_or_create(&Reason {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The object is gone: it no longer counts anywhere.
    pub fn forget(&self, object: &str) {
        self.inaccessible
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(object);
    }

    /// The metrics in the OpenMetrics text format.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> BTreeMap<String, f64> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_owned(), v.parse().ok()?))
            })
            .collect()
    }

    /// Every series is present with bounded labels, and the key gauge follows each account's
    /// latest pass.
    #[test]
    fn series_follow_reconciles_and_labels_stay_bounded() {
        let monitor = KeyMonitor::new(crate::monitor::MonitorSettings::default());
        let azure = AzureMetrics::default();
        azure.record(
            crate::azure::Operation::GetKey,
            crate::azure::metrics::OUTCOME_OK,
            Duration::from_millis(40),
        );
        let m = Metrics::new(monitor, Some(&azure));
        m.reconciled("ns/a", "Succeeded", None, None, Duration::from_millis(20));
        m.reconciled(
            "ns/b",
            "KeyDisabled",
            None,
            Some("KeyDisabled"),
            Duration::from_millis(30),
        );
        m.reconciled(
            "ns/c",
            "TransientError",
            Some("AzureThrottled"),
            None,
            Duration::from_secs(1),
        );
        let got = parse(&m.render());
        assert_eq!(
            got.get(r#"ams_reconciles_total{reason="Succeeded"}"#),
            Some(&1.0)
        );
        assert_eq!(
            got.get(r#"ams_reconcile_failures_total{reason="AzureThrottled"}"#),
            Some(&1.0)
        );
        assert_eq!(got.get("ams_reconcile_duration_seconds_count"), Some(&3.0));
        assert_eq!(
            got.get(r#"ams_customer_key_inaccessible_accounts{cause="KeyDisabled"}"#),
            Some(&1.0)
        );
        assert_eq!(
            got.get(r#"ams_customer_key_inaccessible_accounts{cause="VaultNotFound"}"#),
            Some(&0.0)
        );
        for name in [
            "ams_key_probers",
            "ams_key_probes_total",
            "ams_key_probe_interval_stretch",
            "ams_azure_http_attempts_total",
            "ams_azure_http_retries_total",
        ] {
            assert!(got.keys().any(|k| k.starts_with(name)), "{name} missing");
        }
        // Azure calls: the counters dashboards read, and the latency histogram.
        assert_eq!(
            got.get(r#"ams_azure_requests_total{operation="get key",outcome="Ok"}"#),
            Some(&1.0)
        );
        assert_eq!(
            got.get(r#"ams_azure_request_latency_seconds_bucket{le="0.05",operation="get key"}"#),
            Some(&1.0)
        );
        assert_eq!(
            got.get(r#"ams_azure_request_latency_seconds_count{operation="get key"}"#),
            Some(&1.0)
        );
        // Recovery and deletion clear the gauge.
        m.reconciled("ns/b", "Succeeded", None, None, Duration::from_millis(5));
        let got = parse(&m.render());
        assert_eq!(
            got.get(r#"ams_customer_key_inaccessible_accounts{cause="KeyDisabled"}"#),
            Some(&0.0)
        );
        // No label carries an object name.
        assert!(!m.render().contains("ns/"), "{}", m.render());
    }
}
