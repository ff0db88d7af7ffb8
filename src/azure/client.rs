//! What the reconciler sees: the [`AzureApi`] trait with the operations it needs, its real
//! implementation [`AzureClient`], and [`AzureClients`], which builds one client per credential
//! source ([`CredentialSourceKey`]) over shared transport, rate limiter and counters.
//!
//! Reconciler unit tests implement [`AzureApi`] in memory; nothing here decides what to
//! change in Azure.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::Method;

use super::api_version::{
    API_VERSION_AUTHORIZATION, API_VERSION_KEY_VAULT_MGMT, API_VERSION_MANAGED_IDENTITY,
    API_VERSION_MEDIA, API_VERSION_STORAGE,
};
use super::arm::{ArmClient, ClientSettings};
use super::cloud::AzureCloud;
use super::credentials::{
    CredentialCache, CredentialSource, CredentialSourceKey, IDLE_EVICTION, SourceCache,
};
use super::error::AzureError;
use super::keys::{KeyInfo, KeyVaultKeys, KeyVersionInfo};
use super::lro::{PendingOperation, PollOutcome, Started};
use super::metrics::AzureMetrics;
use super::models::authorization::{
    RoleAssignment, RoleAssignmentCreate, RoleAssignmentProperties, RoleDefinition,
};
use super::models::keyvault::{
    AccessPolicyEntry, AccessPolicyUpdateKind, DeletedVault, Vault, VaultAccessPolicyParameters,
    VaultAccessPolicyProperties,
};
use super::models::media::{MediaAccount, MediaAccountUpdate};
use super::models::msi::UserAssignedIdentity;
use super::models::storage::{
    NetworkRuleSet, StorageAccount, StorageAccountNetworkUpdate,
    StorageAccountNetworkUpdateProperties,
};
use super::operation::Operation;
use super::policy::RetryBudget;
use super::ratelimit::{RateLimitConfig, RateLimiter};
use super::resource_id::ResourceId;
use super::transport::{TransportConfig, TransportError};

/// The Azure operations the reconciler uses. Object-safe: hold it as `Arc<dyn AzureApi>`.
#[async_trait]
pub trait AzureApi: Send + Sync {
    /// Read a Media Services account; `None` if it does not exist.
    async fn get_media_account(&self, id: &ResourceId) -> Result<Option<MediaAccount>, AzureError>;
    /// PATCH a Media Services account (identity, storage, encryption). Usually long-running.
    async fn update_media_account(
        &self,
        id: &ResourceId,
        update: &MediaAccountUpdate,
    ) -> Result<Started<MediaAccount>, AzureError>;
    /// Delete a Media Services account; `Done(false)` when it was already gone. May be
    /// long-running.
    async fn delete_media_account(&self, id: &ResourceId) -> Result<Started<bool>, AzureError>;
    /// Poll a parked operation once; the final resource body (JSON) when it succeeded.
    async fn poll_operation(
        &self,
        operation: &PendingOperation,
    ) -> Result<PollOutcome<serde_json::Value>, AzureError>;
    /// Read a storage account; `None` if it does not exist.
    async fn get_storage_account(
        &self,
        id: &ResourceId,
    ) -> Result<Option<StorageAccount>, AzureError>;
    /// Replace a storage account's firewall (`networkAcls`).
    async fn update_storage_network_rules(
        &self,
        id: &ResourceId,
        rules: &NetworkRuleSet,
    ) -> Result<Started<StorageAccount>, AzureError>;
    /// Read a vault (management plane); `None` if it does not exist.
    async fn get_vault(&self, id: &ResourceId) -> Result<Option<Vault>, AzureError>;
    /// Every (live) vault of a subscription, to find a vault by the name in a key identifier.
    async fn list_vaults(&self, subscription: &str) -> Result<Vec<Vault>, AzureError>;
    /// A soft-deleted vault by region and name; `None` if no such deleted vault exists.
    async fn get_deleted_vault(
        &self,
        subscription: &str,
        location: &str,
        name: &str,
    ) -> Result<Option<DeletedVault>, AzureError>;
    /// Add, replace or remove access policy entries of a vault.
    async fn update_vault_access_policy(
        &self,
        vault: &ResourceId,
        kind: AccessPolicyUpdateKind,
        entries: &[AccessPolicyEntry],
    ) -> Result<(), AzureError>;
    /// Read a user-assigned identity; `None` if it does not exist.
    async fn get_user_assigned_identity(
        &self,
        id: &ResourceId,
    ) -> Result<Option<UserAssignedIdentity>, AzureError>;
    /// Read a role definition by GUID at a scope; `None` if it does not exist.
    async fn get_role_definition(
        &self,
        scope: &str,
        role_guid: &str,
    ) -> Result<Option<RoleDefinition>, AzureError>;
    /// Role assignments at (and above) a scope, optionally of one principal.
    async fn list_role_assignments(
        &self,
        scope: &str,
        principal_id: Option<&str>,
    ) -> Result<Vec<RoleAssignment>, AzureError>;
    /// Grant `role_guid` at `scope` to a service principal, as assignment `name` (a GUID).
    async fn create_role_assignment(
        &self,
        scope: &ResourceId,
        name: &str,
        role_guid: &str,
        principal_id: &str,
    ) -> Result<RoleAssignment, AzureError>;
    /// Delete a role assignment by full id; `false` when it was already gone.
    async fn delete_role_assignment(&self, id: &str) -> Result<bool, AzureError>;
    /// Read a key (latest version when `version` is `None`); `None` if it does not exist.
    async fn get_key(
        &self,
        vault_url: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<KeyInfo>, AzureError>;
    /// All versions of a key.
    async fn list_key_versions(
        &self,
        vault_url: &str,
        name: &str,
    ) -> Result<Vec<KeyVersionInfo>, AzureError>;
}

/// A fresh role-assignment name (ARM requires a GUID).
#[must_use]
pub fn new_role_assignment_name() -> String {
    azure_core::Uuid::new_v4().to_string()
}

/// The real client for one identity.
#[derive(Clone)]
pub struct AzureClient {
    arm: ArmClient,
    credential: Arc<dyn TokenCredential>,
    keys: Arc<KeyVaultKeys>,
}

impl std::fmt::Debug for AzureClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureClient")
            .field("arm", &self.arm.endpoint().as_str())
            .finish_non_exhaustive()
    }
}

fn unwrap_started<T>(s: Started<T>) -> Result<T, Started<T>> {
    match s {
        Started::Done(t) => Ok(t),
        p @ Started::Pending(_) => Err(p),
    }
}

#[async_trait]
impl AzureApi for AzureClient {
    async fn get_media_account(&self, id: &ResourceId) -> Result<Option<MediaAccount>, AzureError> {
        self.arm
            .get(
                Operation::MediaservicesGet,
                &id.to_string(),
                API_VERSION_MEDIA,
            )
            .await
    }

    async fn update_media_account(
        &self,
        id: &ResourceId,
        update: &MediaAccountUpdate,
    ) -> Result<Started<MediaAccount>, AzureError> {
        self.arm
            .write(
                Operation::MediaservicesUpdate,
                Method::Patch,
                &id.to_string(),
                API_VERSION_MEDIA,
                update,
            )
            .await
    }

    async fn delete_media_account(&self, id: &ResourceId) -> Result<Started<bool>, AzureError> {
        self.arm
            .delete(
                Operation::MediaservicesDelete,
                &id.to_string(),
                API_VERSION_MEDIA,
            )
            .await
    }

    async fn poll_operation(
        &self,
        operation: &PendingOperation,
    ) -> Result<PollOutcome<serde_json::Value>, AzureError> {
        self.arm.poll(operation).await
    }

    async fn get_storage_account(
        &self,
        id: &ResourceId,
    ) -> Result<Option<StorageAccount>, AzureError> {
        self.arm
            .get(
                Operation::StorageAccountsGetProperties,
                &id.to_string(),
                API_VERSION_STORAGE,
            )
            .await
    }

    async fn update_storage_network_rules(
        &self,
        id: &ResourceId,
        rules: &NetworkRuleSet,
    ) -> Result<Started<StorageAccount>, AzureError> {
        let body = StorageAccountNetworkUpdate {
            properties: StorageAccountNetworkUpdateProperties {
                network_acls: rules.clone(),
            },
        };
        self.arm
            .write(
                Operation::StorageAccountsUpdate,
                Method::Patch,
                &id.to_string(),
                API_VERSION_STORAGE,
                &body,
            )
            .await
    }

    async fn get_vault(&self, id: &ResourceId) -> Result<Option<Vault>, AzureError> {
        self.arm
            .get(
                Operation::VaultsGet,
                &id.to_string(),
                API_VERSION_KEY_VAULT_MGMT,
            )
            .await
    }

    async fn list_vaults(&self, subscription: &str) -> Result<Vec<Vault>, AzureError> {
        let path = format!("/subscriptions/{subscription}/providers/Microsoft.KeyVault/vaults");
        self.arm
            .list(
                Operation::VaultsListBySubscription,
                &path,
                API_VERSION_KEY_VAULT_MGMT,
                None,
            )
            .await
    }

    async fn get_deleted_vault(
        &self,
        subscription: &str,
        location: &str,
        name: &str,
    ) -> Result<Option<DeletedVault>, AzureError> {
        let path = format!(
            "/subscriptions/{subscription}/providers/Microsoft.KeyVault/locations/{location}/deletedVaults/{name}"
        );
        self.arm
            .get(
                Operation::VaultsGetDeleted,
                &path,
                API_VERSION_KEY_VAULT_MGMT,
            )
            .await
    }

    async fn update_vault_access_policy(
        &self,
        vault: &ResourceId,
        kind: AccessPolicyUpdateKind,
        entries: &[AccessPolicyEntry],
    ) -> Result<(), AzureError> {
        let path = format!("{vault}/accessPolicies/{}", kind.as_str());
        let body = VaultAccessPolicyParameters {
            properties: VaultAccessPolicyProperties {
                access_policies: entries.to_vec(),
            },
        };
        let started: Started<serde_json::Value> = self
            .arm
            .write(
                Operation::VaultsUpdateAccessPolicy,
                Method::Put,
                &path,
                API_VERSION_KEY_VAULT_MGMT,
                &body,
            )
            .await?;
        // The spec answers 200/201 synchronously; a pending answer would be a contract break.
        unwrap_started(started)
            .map(|_| ())
            .map_err(|_| AzureError::Decode {
                operation: Operation::VaultsUpdateAccessPolicy,
                resource: path,
                source: "access policy update answered as long-running".into(),
            })
    }

    async fn get_user_assigned_identity(
        &self,
        id: &ResourceId,
    ) -> Result<Option<UserAssignedIdentity>, AzureError> {
        self.arm
            .get(
                Operation::UserAssignedIdentitiesGet,
                &id.to_string(),
                API_VERSION_MANAGED_IDENTITY,
            )
            .await
    }

    async fn get_role_definition(
        &self,
        scope: &str,
        role_guid: &str,
    ) -> Result<Option<RoleDefinition>, AzureError> {
        let path = format!(
            "{}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}",
            scope.trim_end_matches('/')
        );
        // NB: ARM answers a missing role definition with 404 RoleDefinitionDoesNotExist, a code
        // that means "a person must act" when a role assignment names it; on a read it only
        // means "absent".
        match self
            .arm
            .get(
                Operation::RoleDefinitionsGet,
                &path,
                API_VERSION_AUTHORIZATION,
            )
            .await
        {
            Err(e) if e.status() == Some(404) => Ok(None),
            other => other,
        }
    }

    async fn list_role_assignments(
        &self,
        scope: &str,
        principal_id: Option<&str>,
    ) -> Result<Vec<RoleAssignment>, AzureError> {
        let path = format!(
            "{}/providers/Microsoft.Authorization/roleAssignments",
            scope.trim_end_matches('/')
        );
        let filter = principal_id.map(|p| format!("principalId eq '{p}'"));
        let all: Vec<RoleAssignment> = self
            .arm
            .list(
                Operation::RoleAssignmentsListForScope,
                &path,
                API_VERSION_AUTHORIZATION,
                filter.as_deref(),
            )
            .await?;
        // Filter here too: the answer is authoritative only for what we asked.
        Ok(match principal_id {
            Some(p) => all
                .into_iter()
                .filter(|a| a.properties.principal_id.eq_ignore_ascii_case(p))
                .collect(),
            None => all,
        })
    }

    async fn create_role_assignment(
        &self,
        scope: &ResourceId,
        name: &str,
        role_guid: &str,
        principal_id: &str,
    ) -> Result<RoleAssignment, AzureError> {
        let path = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}");
        let body = RoleAssignmentCreate {
            properties: RoleAssignmentProperties {
                role_definition_id: format!(
                    "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}",
                    scope.subscription()
                ),
                principal_id: principal_id.to_owned(),
                principal_type: Some("ServicePrincipal".to_owned()),
                scope: None,
                description: Some("Managed by ams-security-operator".to_owned()),
            },
        };
        let started: Started<RoleAssignment> = self
            .arm
            .write(
                Operation::RoleAssignmentsCreate,
                Method::Put,
                &path,
                API_VERSION_AUTHORIZATION,
                &body,
            )
            .await?;
        unwrap_started(started).map_err(|_| AzureError::Decode {
            operation: Operation::RoleAssignmentsCreate,
            resource: path,
            source: "role assignment creation answered as long-running".into(),
        })
    }

    async fn delete_role_assignment(&self, id: &str) -> Result<bool, AzureError> {
        match self
            .arm
            .delete(
                Operation::RoleAssignmentsDelete,
                id,
                API_VERSION_AUTHORIZATION,
            )
            .await?
        {
            Started::Done(existed) => Ok(existed),
            // Role assignment deletes are synchronous per the spec; treat a 202 as accepted.
            Started::Pending(_) => Ok(true),
        }
    }

    async fn get_key(
        &self,
        vault_url: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<KeyInfo>, AzureError> {
        self.keys
            .get_key(&self.credential, vault_url, name, version)
            .await
    }

    async fn list_key_versions(
        &self,
        vault_url: &str,
        name: &str,
    ) -> Result<Vec<KeyVersionInfo>, AzureError> {
        self.keys
            .list_key_versions(&self.credential, vault_url, name)
            .await
    }
}

/// Operator-wide Azure settings.
#[derive(Clone, Debug, Default)]
pub struct AzureConfig {
    /// Which cloud.
    pub cloud: AzureCloud,
    /// Transport (default: real Azure, system trust store).
    pub transport: TransportConfig,
    /// Retry and timeout budget per call.
    pub budget: RetryBudget,
    /// Whole-call timeout (default 15 s).
    pub call_timeout: Option<Duration>,
    /// Longest wait for a client-side rate-limit token (default 10 s: a reconcile waits its turn
    /// rather than failing after part of its reads and starting over).
    pub rate_limit_max_wait: Option<Duration>,
    /// Per-subscription rate limit.
    pub rate_limit: RateLimitConfig,
}

/// Builds and caches one [`AzureClient`] per credential source, sharing transport, the rate
/// limiter and the counters. Bounded as [`CredentialCache`] is: one entry per source used
/// within [`IDLE_EVICTION`].
pub struct AzureClients {
    cloud: AzureCloud,
    settings: ClientSettings,
    credentials: CredentialCache,
    keys: Arc<KeyVaultKeys>,
    clients: Mutex<SourceCache<Arc<AzureClient>>>,
}

impl std::fmt::Debug for AzureClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureClients")
            .field("cloud", &self.cloud.name())
            .finish_non_exhaustive()
    }
}

impl AzureClients {
    /// Build the shared transport and caches.
    pub fn new(config: AzureConfig) -> Result<Self, TransportError> {
        // NB: without the `test-endpoints` feature there is nothing to customise, and the
        // clients use azure_core's default transport.
        #[cfg(feature = "test-endpoints")]
        let transport = if config.transport.is_customised() {
            Some(config.transport.build()?)
        } else {
            None
        };
        #[cfg(not(feature = "test-endpoints"))]
        let transport = None;
        let defaults = ClientSettings::default();
        let settings = ClientSettings {
            transport: transport.clone(),
            budget: config.budget,
            call_timeout: config.call_timeout.unwrap_or(defaults.call_timeout),
            rate_limit_max_wait: config
                .rate_limit_max_wait
                .unwrap_or(defaults.rate_limit_max_wait),
            limiter: Arc::new(RateLimiter::new(config.rate_limit)),
            metrics: Arc::new(AzureMetrics::default()),
        };
        Ok(Self {
            credentials: CredentialCache::new(config.cloud.clone(), transport),
            keys: Arc::new(KeyVaultKeys::new(config.cloud.clone(), settings.clone())),
            cloud: config.cloud,
            settings,
            clients: Mutex::new(SourceCache::new(IDLE_EVICTION)),
        })
    }

    /// The cloud in use.
    #[must_use]
    pub fn cloud(&self) -> &AzureCloud {
        &self.cloud
    }

    /// The call metrics every client built here records into.
    #[must_use]
    pub fn metrics(&self) -> Arc<AzureMetrics> {
        self.settings.metrics.clone()
    }

    /// The shared credential of the operator's own identity, `source`.
    pub fn credential(
        &self,
        source: &CredentialSource,
    ) -> Result<Arc<dyn TokenCredential>, AzureError> {
        self.credentials.get(&CredentialSourceKey::Operator, source)
    }

    /// The client acting as the operator's own identity, `source`.
    pub fn client(&self, source: &CredentialSource) -> Result<Arc<AzureClient>, AzureError> {
        self.client_for(&CredentialSourceKey::Operator, source)
    }

    /// The client of credential source `key`, built from `source` on first use and shared
    /// afterwards (rebuilt when `source` holds other material).
    pub fn client_for(
        &self,
        key: &CredentialSourceKey,
        source: &CredentialSource,
    ) -> Result<Arc<AzureClient>, AzureError> {
        let credential = self.credentials.get(key, source)?;
        let fingerprint = source.fingerprint();
        let now = Instant::now();
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = clients.get(key, fingerprint, now)
            && Arc::ptr_eq(&c.credential, &credential)
        {
            return Ok(c);
        }
        let client = Arc::new(AzureClient {
            arm: ArmClient::new(&self.cloud, credential.clone(), &self.settings),
            credential,
            keys: self.keys.clone(),
        });
        // What was built on an evicted (or replaced) credential goes with it.
        for old in clients.insert(key.clone(), fingerprint, client.clone(), now) {
            self.keys.forget_credential(&old.credential);
        }
        Ok(client)
    }

    /// [`Self::client`] as the trait object the reconciler holds.
    pub fn api(&self, source: &CredentialSource) -> Result<Arc<dyn AzureApi>, AzureError> {
        Ok(self.client(source)?)
    }

    /// [`Self::client_for`] as the trait object the reconciler holds.
    pub fn api_for(
        &self,
        key: &CredentialSourceKey,
        source: &CredentialSource,
    ) -> Result<Arc<dyn AzureApi>, AzureError> {
        Ok(self.client_for(key, source)?)
    }

    /// Clients cached (one per credential source in use).
    #[must_use]
    pub fn cached_clients(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Obtain an ARM token for `source` (readiness checks and tests). Returns when it expires;
    /// the token itself never leaves this function.
    pub async fn check_credential(
        &self,
        source: &CredentialSource,
    ) -> Result<azure_core::time::OffsetDateTime, AzureError> {
        const OP: Operation = Operation::TokenRequest;
        let credential = self.credential(source)?;
        let scope = self.cloud.resource_manager_scope();
        let resource = source.kind();
        self.settings
            .caller()
            .call(OP, resource, "", async {
                credential
                    .get_token(&[scope.as_str()], None)
                    .await
                    .map(|token| token.expires_on)
                    .map_err(|e| super::error::from_token_failure(OP, resource, e))
            })
            .await
    }
}
