//! What every reconcile shares: the clients, the key monitor, metrics, events, the tenancy map,
//! and the per-object failure tally. A leaf of the controller: the driver and the finalizer
//! both read it, and it reads neither.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};

use crate::azure::{AzureApi, AzureClients, AzureError, CredentialSource, CredentialSourceKey};
use crate::crd::MediaServicesAccount;

use super::events;
use super::requeue;

/// Builds the Azure client a resource's reconcile talks through, per credential source.
pub trait AzureProvider: Send + Sync {
    /// The client of credential source `key`, acting as `source`.
    fn api(
        &self,
        key: &CredentialSourceKey,
        source: &CredentialSource,
    ) -> Result<Arc<dyn AzureApi>, AzureError>;
    /// The Azure call metrics, for `/metrics`.
    fn metrics(&self) -> Option<Arc<crate::azure::metrics::AzureMetrics>> {
        None
    }
}

impl AzureProvider for AzureClients {
    fn api(
        &self,
        key: &CredentialSourceKey,
        source: &CredentialSource,
    ) -> Result<Arc<dyn AzureApi>, AzureError> {
        AzureClients::api_for(self, key, source)
    }
    fn metrics(&self) -> Option<Arc<crate::azure::metrics::AzureMetrics>> {
        Some(AzureClients::metrics(self))
    }
}

/// What every reconcile shares.
pub struct Context {
    /// The Kubernetes client.
    pub kube: Client,
    /// Azure clients per identity.
    pub azure: Arc<dyn AzureProvider>,
    /// The operator's own identity.
    pub operator_credential: CredentialSource,
    /// The one event recorder.
    pub events: events::Events,
    /// How long before a customer key's expiry `EncryptionReady` warns.
    pub key_expiry_warning: Duration,
    /// How often a reconciled account is looked at again for drift.
    pub resync_interval: Duration,
    /// How long an account may lag behind its key's latest version before it warns.
    pub key_rotation_grace: Duration,
    /// Which namespaces may manage which subscriptions; `None`: no restriction.
    pub tenancy: Option<Arc<crate::tenancy::Tenancy>>,
    /// The namespace labels `namespaceSelector` rules match; `None` when no rule selects by
    /// labels.
    pub namespace_labels: Option<Arc<super::namespaces::NamespaceLabels>>,
    /// This cluster's identity in role-assignment names.
    pub cluster_id: String,
    /// The shared key-access monitor.
    pub keys: Arc<crate::monitor::KeyMonitor>,
    /// Which resource manages each Azure account in this cluster.
    pub claims: super::claims::Claims,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Consecutive failures per object (`namespace/name`), for capped backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Which credentials Secret each object (`namespace/name`) named at its last pass.
    secret_users: Mutex<SecretUsers>,
}

impl Context {
    /// Whether the tenancy map lets `namespace` manage what `desired` names (`Ok` without a
    /// map). Reads the namespace's labels, from the namespace cache, only when rules by name
    /// alone do not allow it and a rule selects by labels.
    ///
    /// # Errors
    /// Why not, for the `TenancyDenied` condition (or why the labels are unknown: it fails
    /// closed).
    pub async fn tenancy_allows(
        &self,
        namespace: &str,
        desired: &crate::reconcile::desired::Desired,
    ) -> Result<(), String> {
        let Some(t) = &self.tenancy else {
            return Ok(());
        };
        let no_labels = std::collections::BTreeMap::new();
        // NB: a label can only add matching rules, so what names allow stands without labels.
        let by_name = t.check(namespace, &no_labels, desired);
        if by_name.is_ok() || !t.uses_selectors() {
            return by_name;
        }
        let labels = match &self.namespace_labels {
            Some(cache) => cache.labels(namespace).await?,
            None => return by_name,
        };
        t.check(namespace, &labels, desired)
    }
}

impl Context {
    /// A context over these clients.
    #[must_use]
    pub fn new(
        kube: Client,
        azure: Arc<dyn AzureProvider>,
        operator_credential: CredentialSource,
        reporter: &str,
    ) -> Self {
        let keys = crate::monitor::KeyMonitor::new(crate::monitor::MonitorSettings::default());
        let metrics = Arc::new(crate::metrics::Metrics::new(
            keys.clone(),
            metrics_source(&azure).as_deref(),
        ));
        Self {
            events: events::Events::new(kube.clone(), reporter),
            kube,
            azure,
            operator_credential,
            key_expiry_warning: crate::reconcile::key_access::DEFAULT_EXPIRY_WARNING,
            resync_interval: requeue::RESYNC_DEFAULT,
            key_rotation_grace: crate::reconcile::status::DEFAULT_ROTATION_GRACE,
            tenancy: None,
            namespace_labels: None,
            cluster_id: String::new(),
            keys,
            claims: super::claims::Claims::default(),
            metrics,
            failures: Mutex::new(HashMap::new()),
            secret_users: Mutex::new(SecretUsers::default()),
        }
    }

    /// A context whose key monitor uses these settings (the expiry horizon is the context's).
    #[must_use]
    pub fn with_monitor(mut self, settings: crate::monitor::MonitorSettings) -> Self {
        self.key_expiry_warning = settings.expiry_horizon;
        self.keys = crate::monitor::KeyMonitor::new(settings);
        self.metrics = Arc::new(crate::metrics::Metrics::new(
            self.keys.clone(),
            metrics_source(&self.azure).as_deref(),
        ));
        self
    }

    /// Who owns the role assignments made for `account`, as it goes into their names.
    #[must_use]
    pub fn owner(&self, account: &MediaServicesAccount) -> String {
        self.owned_as(account, crate::reconcile::plan::owner_identity)
    }

    /// The claim `account` records on its Azure account (the ownership tag's value).
    #[must_use]
    pub fn claim_value(&self, account: &MediaServicesAccount) -> String {
        self.owned_as(account, crate::reconcile::ownership::claim_value)
    }

    /// `form` of this cluster's id and the object's namespace, name and uid.
    fn owned_as(
        &self,
        account: &MediaServicesAccount,
        form: fn(&str, &str, &str, &str) -> String,
    ) -> String {
        form(
            &self.cluster_id,
            &account.namespace().unwrap_or_default(),
            &account.name_any(),
            &account.uid().unwrap_or_default(),
        )
    }

    /// `account` as a claimant of its Azure account in this cluster.
    #[must_use]
    pub fn claimant(account: &MediaServicesAccount) -> crate::reconcile::ownership::Claimant {
        crate::reconcile::ownership::Claimant {
            created: account.metadata.creation_timestamp.as_ref().map(|t| t.0),
            uid: account.uid().unwrap_or_default(),
            object: key_of(account),
        }
    }

    /// Records a failure of `key`; returns how many in a row.
    pub fn record_failure(&self, key: &str) -> u32 {
        let mut f = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = f.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets the failures of `key`.
    pub fn record_success(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// Counts a pass of `key` that ended so; returns the failures in a row that backoff and
    /// `Ready` go by (one more for a transient failure, unchanged for another failure, none
    /// after a pass that did not fail).
    pub fn tally(&self, key: &str, ending: requeue::Ending) -> u32 {
        if ending.backs_off() {
            self.record_failure(key)
        } else if ending.is_failure() {
            self.failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(key)
                .copied()
                .unwrap_or(0)
        } else {
            self.record_success(key);
            0
        }
    }

    /// The Azure client for `account`: its `credentialsSecretRef`, else the operator's own;
    /// with the key of the credential's source, by which key probers are shared.
    ///
    /// # Errors
    /// Why no client could be had (the Secret is missing or malformed), for
    /// `CredentialsUnavailable`.
    pub async fn azure_for(
        &self,
        account: &MediaServicesAccount,
    ) -> Result<(CredentialSourceKey, Arc<dyn AzureApi>), String> {
        let ns = account.namespace().unwrap_or_default();
        let secret_name = account
            .spec
            .credentials_secret_ref
            .as_ref()
            .map(|r| r.name.as_str());
        self.note_secret_use(&ns, &account.name_any(), secret_name);
        let (key, source) = match secret_name {
            None => (
                CredentialSourceKey::Operator,
                self.operator_credential.clone(),
            ),
            Some(name) => {
                let secrets: Api<Secret> = Api::namespaced(self.kube.clone(), &ns);
                let secret = secrets
                    .get_opt(name)
                    .await
                    .map_err(|e| format!("failed to read Secret {ns}/{name}: {e}"))?
                    .ok_or_else(|| {
                        format!(
                            "Secret {ns}/{name} named by spec.credentialsSecretRef does not exist; create it with keys tenantId, clientId and clientSecret"
                        )
                    })?;
                let source = CredentialSource::client_secret_from_k8s_secret(&ns, &secret)
                    .map_err(|e| e.to_string())?;
                (CredentialSourceKey::secret(&ns, name, &source), source)
            }
        };
        let api = self.azure.api(&key, &source).map_err(|e| e.to_string())?;
        Ok((key, api))
    }

    /// Records which credentials Secret object `namespace/name` names (`None`: none), so a
    /// change of that Secret re-triggers it.
    fn note_secret_use(&self, namespace: &str, name: &str, secret: Option<&str>) {
        self.secret_users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .note(namespace, name, secret);
    }

    /// The objects (names in `namespace`) whose last pass read credentials Secret
    /// `namespace/secret`. `exists` says whether an object is still there; those gone are
    /// forgotten, which keeps the index to the objects that exist.
    pub fn secret_users(
        &self,
        namespace: &str,
        secret: &str,
        exists: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        self.secret_users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .users(namespace, secret, exists)
    }
}

/// Which credentials Secret each object named at its last pass, by `(namespace, object)`.
#[derive(Debug, Default)]
struct SecretUsers(HashMap<(String, String), String>);

impl SecretUsers {
    fn note(&mut self, namespace: &str, name: &str, secret: Option<&str>) {
        let key = (namespace.to_owned(), name.to_owned());
        match secret {
            Some(s) => {
                self.0.insert(key, s.to_owned());
            }
            None => {
                self.0.remove(&key);
            }
        }
    }

    fn users(
        &mut self,
        namespace: &str,
        secret: &str,
        exists: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut found = Vec::new();
        self.0.retain(|(ns, name), s| {
            if ns != namespace || s != secret {
                return true;
            }
            let alive = exists(name);
            if alive {
                found.push(name.clone());
            }
            alive
        });
        found.sort();
        found
    }
}

/// `namespace/name` of `account`: how the failure tally, the key monitor, the claims and the
/// metrics know an object.
#[must_use]
pub fn key_of(account: &MediaServicesAccount) -> String {
    format!(
        "{}/{}",
        account.namespace().unwrap_or_default(),
        account.name_any()
    )
}

/// The Azure call metrics `/metrics` serves.
fn metrics_source(
    azure: &Arc<dyn AzureProvider>,
) -> Option<Arc<crate::azure::metrics::AzureMetrics>> {
    azure.metrics()
}

#[cfg(test)]
mod tests {
    use super::SecretUsers;

    /// A Secret's change reaches exactly the objects that last named it; an object that names
    /// another Secret, or none, or is gone, is not re-triggered, and the gone one is forgotten.
    #[test]
    fn secret_users_are_the_objects_that_last_named_the_secret() {
        let mut users = SecretUsers::default();
        users.note("team-a", "first", Some("creds"));
        users.note("team-a", "second", Some("creds"));
        users.note("team-a", "third", Some("other"));
        users.note("team-b", "fourth", Some("creds"));
        users.note("team-a", "moved", Some("creds"));
        users.note("team-a", "moved", None);
        assert_eq!(
            users.users("team-a", "creds", |_| true),
            vec!["first".to_owned(), "second".to_owned()]
        );
        assert_eq!(
            users.users("team-a", "creds", |n| n != "second"),
            vec!["first".to_owned()]
        );
        assert_eq!(users.0.len(), 3, "the object that is gone is forgotten");
    }
}
