//! Leader election over a `coordination.k8s.io/v1` Lease, with kube-lease-manager (it renews
//! with server-side apply, so two instances can never both hold the lease).
//!
//! With several replicas exactly one reconciles: the others wait, serving `/healthz`,
//! `/readyz` (ready on standby, so rollouts proceed) and `/metrics`. A leader that loses the
//! lease (it could not renew in time) stops its controllers and the main job returns
//! [`super::RunError::LeadershipLost`]: the process exits, restarts and stands by, rather than
//! risk two leaders. On shutdown the leader releases the lease at once, so a successor takes
//! over without waiting for it to expire.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the lease is held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This instance's identity in the Lease (`holderIdentity`).
    pub identity: String,
    /// How long a lease is valid after its last renewal; a successor takes over at most this
    /// long after a leader dies without releasing it.
    pub lease_duration: Duration,
    /// The leader renews this long before the lease expires.
    pub renew_before: Duration,
}

impl LeaderElection {
    /// Checks the timings kube-lease-manager needs (it would panic otherwise).
    ///
    /// # Errors
    /// A message naming the bad value.
    pub fn validate(&self) -> Result<(), String> {
        let duration = self.lease_duration.as_secs();
        let grace = self.renew_before.as_secs();
        if grace == 0 || duration <= grace {
            return Err(format!(
                "the lease duration ({duration} s) must be longer than the renewal margin ({grace} s), which must be at least 1 s"
            ));
        }
        if self.identity.is_empty() || self.lease_name.is_empty() || self.namespace.is_empty() {
            return Err("leader election needs a lease name, a namespace and an identity".into());
        }
        Ok(())
    }
}

/// A default identity: the host (pod) name and a random suffix, so two processes on one host
/// differ.
#[must_use]
pub fn default_identity() -> String {
    use std::hash::BuildHasher;
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ams-security-operator".to_owned());
    let suffix = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    format!("{host}-{:08x}", suffix & 0xffff_ffff)
}

/// The lease being contended for: `is_leader` says whether this instance holds it.
pub struct Lease {
    /// `true` while this instance holds the lease.
    pub is_leader: watch::Receiver<bool>,
    task:
        JoinHandle<Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>>,
}

impl Lease {
    /// Starts contending (creating the Lease if it does not exist).
    ///
    /// # Errors
    /// The apiserver refused the Lease (RBAC, a missing namespace).
    pub async fn contend(
        kube: Client,
        election: &LeaderElection,
    ) -> Result<Self, kube_lease_manager::LeaseManagerError> {
        let params = LeaseParams::new(
            election.identity.clone(),
            election.lease_duration.as_secs(),
            election.renew_before.as_secs(),
        )
        .with_field_manager(format!("ams-security-operator-{}", election.identity));
        let manager = LeaseManagerBuilder::new(kube, &election.lease_name)
            .with_namespace(&election.namespace)
            .with_parameters(params)
            .build()
            .await?;
        let (is_leader, task) = manager.watch().await;
        Ok(Self { is_leader, task })
    }

    /// Waits until this instance holds the lease.
    pub async fn acquired(&mut self) {
        let _ = self.is_leader.wait_for(|held| *held).await;
    }

    /// Resolves when this instance, the leader, no longer holds the lease.
    pub async fn lost(mut rx: watch::Receiver<bool>) {
        let _ = rx.wait_for(|held| !*held).await;
    }

    /// Stops contending; a held lease is released at once (bounded by `within`).
    pub async fn release(self, within: Duration) {
        drop(self.is_leader);
        match tokio::time::timeout(within, self.task).await {
            Ok(Ok(Ok(_))) => tracing::info!("lease released"),
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "failed to release the lease; it expires by itself");
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "lease task failed"),
            Err(_) => tracing::warn!("the lease was not released in time; it expires by itself"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_that_would_make_the_lease_manager_panic_are_refused() {
        let ok = LeaderElection {
            namespace: "ams-system".into(),
            lease_name: "ams-security-operator".into(),
            identity: "pod-a".into(),
            lease_duration: Duration::from_secs(15),
            renew_before: Duration::from_secs(5),
        };
        assert_eq!(ok.validate(), Ok(()));
        for (duration, grace) in [(5, 5), (5, 0), (0, 0), (3, 4)] {
            let bad = LeaderElection {
                lease_duration: Duration::from_secs(duration),
                renew_before: Duration::from_secs(grace),
                ..ok.clone()
            };
            assert!(bad.validate().is_err(), "{duration}/{grace}");
        }
        assert!(
            LeaderElection {
                identity: String::new(),
                ..ok
            }
            .validate()
            .is_err()
        );
        assert_ne!(default_identity(), "");
    }
}
