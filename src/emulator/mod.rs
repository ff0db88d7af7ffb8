//! A stateful Azure emulator held to the official REST specifications.
//!
//! One HTTPS listener (CA generated at start) serves, by `Host`, the Entra ID token endpoint,
//! ARM (`Microsoft.Media`, `Microsoft.Authorization`, `Microsoft.KeyVault`, `Microsoft.Storage`,
//! `Microsoft.ManagedIdentity`), the Key Vault keys data plane and, on `localhost`, the
//! managed-identity endpoint and the admin API (see `docs/emulator-contract.md` and
//! `docs/emulator.md`). [`Emulator`] is the in-process handle; the `ams-azure-emulator` binary
//! serves the same from a YAML seed.
//!
//! It imports nothing from `crate::azure`: the swagger files in `shared/azure-specs/` referee
//! both the emulator and the clients. It is a test double, not a security boundary: the admin
//! API is unauthenticated and keys live in memory.

mod admin;
mod arm;
mod crypto;
mod entra;
mod keyvault;
mod knobs;
mod media;
mod provider;
mod requests;
mod roles;
mod seed;
mod server;
mod state;
mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

pub use admin::AdminCommand;
pub use crypto::CryptoError;
pub use knobs::{Fault, FaultRule, ThrottleLimits};
pub use roles::{
    CONTRIBUTOR, KEY_VAULT_ADMINISTRATOR, KEY_VAULT_CRYPTO_OFFICER,
    KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER, MEDIA_SERVICES_ACCOUNT_ADMINISTRATOR,
    MEDIA_SERVICES_LIVE_EVENTS_ADMINISTRATOR, MEDIA_SERVICES_MEDIA_OPERATOR,
    MEDIA_SERVICES_POLICY_ADMINISTRATOR, MEDIA_SERVICES_STREAMING_ENDPOINTS_ADMINISTRATOR, OWNER,
    READER, STORAGE_BLOB_DATA_CONTRIBUTOR, USER_ACCESS_ADMINISTRATOR,
};
pub use seed::{
    DEFAULT_ASSERTION_AUDIENCE, DEFAULT_OIDC_ISSUER, DEFAULT_TENANT_ID, Seed,
    SeedFederatedCredential, SeedIdentity, SeedKey, SeedManagedIdentity, SeedResource,
    SeedResourceGroup, SeedRoleAssignment, SeedRoleDefinition, SeedServicePrincipal,
    SeedSubscription, SeedVault,
};
pub use server::SERVER_NAMES;
pub use state::{KeyAccess, KeyAccessCause, LoggedRequest, SeedError};

/// How to start an emulator.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// The world at start.
    pub seed: Seed,
    /// Where to listen (port 0 picks a free port). Default `127.0.0.1:0`.
    pub bind: SocketAddr,
    /// How often the background task re-checks every account's customer-key access
    /// (`None`: only on demand). Default 1 s.
    pub key_check_interval: Option<Duration>,
    /// Polls (of the status or the result URL) a Media Services operation stays `InProgress`
    /// (0: done at once). Default 1.
    pub lro_polls: u32,
    /// Role-assignment propagation delay for new principals. Default 0.
    pub propagation_delay: Duration,
    /// ARM throttling limits (`None`: off; the rate-limit headers are still sent). Default off.
    pub throttle: Option<ThrottleLimits>,
    /// Keep JSON response bodies in the request log (for checking traffic against the specs).
    /// Default off.
    pub record_bodies: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            seed: Seed::default(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            key_check_interval: Some(Duration::from_secs(1)),
            lro_polls: 1,
            propagation_delay: Duration::ZERO,
            throttle: None,
            record_bodies: false,
        }
    }
}

impl EmulatorConfig {
    /// A config with this seed and the defaults.
    #[must_use]
    pub fn with_seed(seed: Seed) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }
}

/// Failure to start an emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The seed is inconsistent.
    #[error("failed to build the emulated world from the seed")]
    Seed(#[source] SeedError),
    /// Certificates or signing keys could not be generated.
    #[error("failed to generate emulator credentials: {0}")]
    Credentials(String),
    /// The listener could not bind.
    #[error("failed to bind the emulator listener")]
    Bind(#[source] std::io::Error),
    /// An admin command failed.
    #[error("admin command failed: {0}")]
    Admin(String),
}

/// A seeded service principal's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePrincipalInfo {
    /// The seed name.
    pub name: String,
    /// Application (client) id.
    pub client_id: String,
    /// Object id.
    pub object_id: String,
    /// Its first client secret, if any.
    pub secret: Option<String>,
}

/// A running emulator.
pub struct Emulator {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<state::Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Builds the world, generates the CA and keys, binds and starts serving.
    pub async fn start(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        let knobs = knobs::Knobs {
            throttle: config.throttle,
            propagation_delay: config.propagation_delay,
            lro_polls: config.lro_polls,
            record_bodies: config.record_bodies,
            ..knobs::Knobs::default()
        };
        let seed = config.seed.clone();
        // Key generation is CPU work; keep it off the async workers.
        let (world, token_key, oidc_key, certs) = tokio::task::spawn_blocking(move || {
            let world = state::World::from_seed(&seed, knobs).map_err(EmulatorError::Seed)?;
            let token_key = crypto::JwtKey::generate("emulator-token-key")
                .map_err(|e| EmulatorError::Credentials(e.to_string()))?;
            let oidc_key = crypto::JwtKey::generate("emulator-oidc-key")
                .map_err(|e| EmulatorError::Credentials(e.to_string()))?;
            let certs = server::generate_certs().map_err(EmulatorError::Credentials)?;
            Ok::<_, EmulatorError>((world, token_key, oidc_key, certs))
        })
        .await
        .map_err(|e| EmulatorError::Credentials(e.to_string()))??;
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(EmulatorError::Bind)?;
        let addr = listener.local_addr().map_err(EmulatorError::Bind)?;
        let shared = Arc::new(state::Shared {
            world: Mutex::new(world),
            token_key,
            oidc_key,
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(server::serve(
            listener,
            certs.server_config,
            shared.clone(),
            stop_rx.clone(),
        ))];
        if let Some(every) = config.key_check_interval {
            let shared = shared.clone();
            let mut stop_rx = stop_rx;
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tokio::select! {
                        _ = stop_rx.changed() => break,
                        _ = tick.tick() => { shared.world().recheck_all_key_access(); }
                    }
                }
            }));
        }
        Ok(Self {
            addr,
            ca_pem: certs.ca_pem,
            shared,
            stop,
            tasks,
        })
    }

    /// The listener's address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) clients must trust.
    #[must_use]
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The tenant id.
    #[must_use]
    pub fn tenant_id(&self) -> String {
        self.shared.world().tenant_id.clone()
    }

    /// The OIDC issuer of service account tokens the emulator mints.
    #[must_use]
    pub fn oidc_issuer(&self) -> String {
        self.shared.world().oidc_issuer.clone()
    }

    /// The managed-identity endpoint URL (`IDENTITY_ENDPOINT`).
    #[must_use]
    pub fn msi_endpoint(&self) -> String {
        format!("https://localhost:{}/msi/token", self.addr.port())
    }

    /// The `X-IDENTITY-HEADER` secret (`IDENTITY_HEADER`), when the seed configures one.
    #[must_use]
    pub fn msi_header(&self) -> Option<String> {
        self.shared.world().msi.as_ref().map(|(h, _)| h.clone())
    }

    /// The admin API base URL.
    #[must_use]
    pub fn admin_url(&self) -> String {
        format!("https://localhost:{}/_emulator", self.addr.port())
    }

    /// A seeded service principal by its seed name.
    #[must_use]
    pub fn service_principal(&self, name: &str) -> Option<ServicePrincipalInfo> {
        let w = self.shared.world();
        let oid = w.sp_names.get(name)?;
        let p = w.principals.get(&state::key_of(oid))?;
        Some(ServicePrincipalInfo {
            name: name.to_owned(),
            client_id: p.client_id.clone(),
            object_id: p.object_id.clone(),
            secret: p.secrets.first().cloned(),
        })
    }

    /// Resolves a seed name, identity/account resource id or client id to an object id.
    #[must_use]
    pub fn principal_id(&self, reference: &str) -> Option<String> {
        self.shared.world().resolve_principal(reference)
    }

    /// The (principal id, client id) of a user-assigned identity.
    #[must_use]
    pub fn user_assigned_identity(&self, id: &str) -> Option<(String, String)> {
        let w = self.shared.world();
        let ident = w.identities.get(&state::key_of(id))?;
        Some((
            ident["properties"]["principalId"].as_str()?.to_owned(),
            ident["properties"]["clientId"].as_str()?.to_owned(),
        ))
    }

    /// An access token for a principal (by object id or seed name) and audience, without the
    /// token endpoint; for tests that are not about authentication.
    pub fn token_for(&self, principal: &str, audience: &str) -> Result<String, EmulatorError> {
        let oid = self
            .principal_id(principal)
            .ok_or_else(|| EmulatorError::Admin(format!("unknown principal {principal}")))?;
        entra::issue_token(&self.shared, &oid, audience)
            .map(|(t, _)| t)
            .map_err(EmulatorError::Admin)
    }

    /// Mints a "projected service account token" (federated client assertion) signed by the
    /// emulator's OIDC key, with the default issuer and `api://AzureADTokenExchange` audience.
    pub fn mint_service_account_token(&self, subject: &str) -> Result<String, EmulatorError> {
        entra::mint_assertion(
            &self.shared,
            None,
            subject,
            DEFAULT_ASSERTION_AUDIENCE,
            3600,
        )
        .map_err(EmulatorError::Admin)
    }

    /// Runs an admin command (the same as `POST /_emulator/admin`).
    pub fn admin(&self, cmd: AdminCommand) -> Result<Value, EmulatorError> {
        admin::apply(&self.shared, cmd).map_err(EmulatorError::Admin)
    }

    /// Disables a key version (latest when `version` is `None`).
    pub fn disable_key(
        &self,
        vault: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<(), EmulatorError> {
        self.admin(AdminCommand::DisableKey {
            vault: vault.into(),
            key: key.into(),
            version: version.map(Into::into),
        })
        .map(drop)
    }

    /// Enables a key version (latest when `version` is `None`).
    pub fn enable_key(
        &self,
        vault: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<(), EmulatorError> {
        self.admin(AdminCommand::EnableKey {
            vault: vault.into(),
            key: key.into(),
            version: version.map(Into::into),
        })
        .map(drop)
    }

    /// Expires a key version now (latest when `version` is `None`).
    pub fn expire_key(
        &self,
        vault: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<(), EmulatorError> {
        self.admin(AdminCommand::ExpireKey {
            vault: vault.into(),
            key: key.into(),
            version: version.map(Into::into),
            at: None,
        })
        .map(drop)
    }

    /// Sets a key version's expiry to `at` (unix seconds; latest version when `version` is
    /// `None`).
    pub fn expire_key_at(
        &self,
        vault: &str,
        key: &str,
        version: Option<&str>,
        at: i64,
    ) -> Result<(), EmulatorError> {
        self.admin(AdminCommand::ExpireKey {
            vault: vault.into(),
            key: key.into(),
            version: version.map(Into::into),
            at: Some(at),
        })
        .map(drop)
    }

    /// Sets (or with `None` clears) a key version's not-before time, in unix seconds.
    pub fn set_key_not_before(
        &self,
        vault: &str,
        key: &str,
        version: Option<&str>,
        at: Option<i64>,
    ) -> Result<(), EmulatorError> {
        self.admin(AdminCommand::SetKeyNotBefore {
            vault: vault.into(),
            key: key.into(),
            version: version.map(Into::into),
            at,
        })
        .map(drop)
    }

    /// Soft-deletes a key.
    pub fn delete_key(&self, vault: &str, key: &str) -> Result<(), EmulatorError> {
        self.admin(AdminCommand::DeleteKey {
            vault: vault.into(),
            key: key.into(),
        })
        .map(drop)
    }

    /// Recovers a soft-deleted key.
    pub fn recover_key(&self, vault: &str, key: &str) -> Result<(), EmulatorError> {
        self.admin(AdminCommand::RecoverKey {
            vault: vault.into(),
            key: key.into(),
        })
        .map(drop)
    }

    /// Adds a key version; returns its versioned key id.
    pub fn add_key_version(&self, vault: &str, key: &str) -> Result<String, EmulatorError> {
        let v = self.admin(AdminCommand::AddKeyVersion {
            vault: vault.into(),
            key: key.into(),
        })?;
        Ok(v["kid"].as_str().unwrap_or_default().to_owned())
    }

    /// Removes a role assignment by its full id.
    pub fn remove_role_assignment(&self, id: &str) -> Result<(), EmulatorError> {
        self.admin(AdminCommand::RemoveRoleAssignment { id: id.into() })
            .map(drop)
    }

    /// Removes every role assignment of a principal (optionally under `scope`); returns how many.
    pub fn remove_role_assignments_of(
        &self,
        principal: &str,
        scope: Option<&str>,
    ) -> Result<u64, EmulatorError> {
        let v = self.admin(AdminCommand::RemoveRoleAssignmentsOf {
            principal: principal.into(),
            scope: scope.map(Into::into),
        })?;
        Ok(v["removed"].as_u64().unwrap_or_default())
    }

    /// Removes a principal's access policy from a vault.
    pub fn remove_access_policy(&self, vault: &str, object_id: &str) -> Result<(), EmulatorError> {
        self.admin(AdminCommand::RemoveAccessPolicy {
            vault: vault.into(),
            object_id: object_id.into(),
        })
        .map(drop)
    }

    /// Soft-deletes a vault.
    pub fn delete_vault(&self, vault: &str) -> Result<(), EmulatorError> {
        self.admin(AdminCommand::DeleteVault {
            vault: vault.into(),
        })
        .map(drop)
    }

    /// Recovers a soft-deleted vault.
    pub fn recover_vault(&self, vault: &str) -> Result<(), EmulatorError> {
        self.admin(AdminCommand::RecoverVault {
            vault: vault.into(),
        })
        .map(drop)
    }

    /// Revokes client secret `secret` of application `client` (seeded name or client id): token
    /// requests with it then fail as Entra's do (401 `invalid_client`, `AADSTS7000215`).
    pub fn revoke_client_secret(&self, client: &str, secret: &str) -> Result<(), EmulatorError> {
        self.admin(AdminCommand::RevokeClientSecret {
            client: client.to_owned(),
            secret: secret.to_owned(),
        })
        .map(drop)
    }

    /// Adds client secret `secret` to application `client` (seeded name or client id).
    pub fn add_client_secret(&self, client: &str, secret: &str) -> Result<(), EmulatorError> {
        self.admin(AdminCommand::AddClientSecret {
            client: client.to_owned(),
            secret: secret.to_owned(),
        })
        .map(drop)
    }

    /// Sets the lifetime of the tokens issued from now on (`None`: an hour).
    pub fn set_token_lifetime(&self, lifetime: Option<Duration>) {
        let _ = self.admin(AdminCommand::SetTokenLifetime {
            seconds: lifetime.map(|d| d.as_secs()),
        });
    }

    /// Holds (`true`) or releases the accounts' background pick-up of new key versions.
    pub fn hold_key_rotation(&self, hold: bool) -> Result<(), EmulatorError> {
        self.admin(AdminCommand::HoldKeyRotation { hold }).map(drop)
    }

    /// Purges a soft-deleted vault as Key Vault does when its retention period has passed.
    pub fn purge_after_retention(&self, vault: &str) -> Result<(), EmulatorError> {
        self.admin(AdminCommand::PurgeAfterRetention {
            vault: vault.into(),
        })
        .map(drop)
    }

    /// Closes a vault's firewall (`defaultAction: Deny`) with the given bypass
    /// (`AzureServices` or `None`) and no IP rules.
    pub fn close_vault_firewall(&self, vault: &str, bypass: &str) -> Result<(), EmulatorError> {
        self.admin(AdminCommand::SetVaultFirewall {
            vault: vault.into(),
            default_action: "Deny".into(),
            bypass: Some(bypass.into()),
            ip_rules: Vec::new(),
        })
        .map(drop)
    }

    /// Opens a vault's firewall (`defaultAction: Allow`).
    pub fn open_vault_firewall(&self, vault: &str) -> Result<(), EmulatorError> {
        self.admin(AdminCommand::SetVaultFirewall {
            vault: vault.into(),
            default_action: "Allow".into(),
            bypass: None,
            ip_rules: Vec::new(),
        })
        .map(drop)
    }

    /// Moves the emulator clock forward.
    pub fn advance_clock(&self, by: Duration) {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.shared.world().clock_offset += chrono::Duration::seconds(secs);
    }

    /// The emulator clock.
    #[must_use]
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.shared.world().now()
    }

    /// Re-checks every account's customer-key access now; returns the accounts that changed.
    // NB: callers often run it only for its effect; the returned changes are optional detail.
    #[allow(clippy::must_use_candidate)]
    pub fn recheck_key_access(&self) -> Vec<(String, KeyAccess)> {
        self.shared.world().recheck_all_key_access()
    }

    /// The last key-access result of a Media Services account (by resource id).
    #[must_use]
    pub fn key_access(&self, account_id: &str) -> Option<KeyAccess> {
        self.shared
            .world()
            .media
            .get(&state::key_of(account_id))
            .map(|a| a.key_access.clone())
    }

    /// Sets the latency of an operation pattern (`Mediaservices_Get`, `Vaults_*`, `*`).
    pub fn set_latency(&self, operation: &str, latency: Duration) {
        self.shared
            .world()
            .knobs
            .latency
            .insert(operation.to_owned(), latency);
    }

    /// Arms a fault.
    pub fn inject_fault(&self, rule: FaultRule) {
        self.shared.world().knobs.faults.push(rule);
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.shared.world().knobs.faults.clear();
    }

    /// Turns ARM throttling on (with limits) or off.
    pub fn set_throttling(&self, limits: Option<ThrottleLimits>) {
        let mut w = self.shared.world();
        w.knobs.throttle = limits;
        w.knobs.buckets.clear();
    }

    /// Sets the role-assignment propagation delay.
    pub fn set_propagation_delay(&self, delay: Duration) {
        self.shared.world().knobs.propagation_delay = delay;
    }

    /// Leaves role assignments younger than `lag` (emulator clock) out of list answers, as
    /// ARM's cached reads can trail a write; `Duration::ZERO` turns it off.
    pub fn set_role_assignment_list_lag(&self, lag: Duration) {
        self.shared.world().knobs.role_assignment_list_lag = lag;
    }

    /// Sets how many polls a Media Services operation stays `InProgress`.
    pub fn set_lro_polls(&self, polls: u32) {
        self.shared.world().knobs.lro_polls = polls;
    }

    /// Makes the next Media Services PUT/PATCH operation end `Failed` with this error (the
    /// account's `provisioningState` becomes `Failed`).
    pub fn fail_next_operation(&self, code: &str, message: &str) {
        self.shared.world().knobs.fail_next_operation = Some((code.to_owned(), message.to_owned()));
    }

    /// The request log.
    #[must_use]
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.shared.world().log.clone()
    }

    /// Calls per operation.
    #[must_use]
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.shared.world().counters.clone()
    }

    /// Calls of one operation.
    #[must_use]
    pub fn call_count(&self, operation: &str) -> u64 {
        self.shared
            .world()
            .counters
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// A JSON snapshot of the world (principals, role assignments, accounts' key access, keys).
    #[must_use]
    pub fn snapshot(&self) -> Value {
        admin::snapshot(&self.shared.world())
    }

    /// Stops serving and waits for the tasks to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
