//! The emulated world: every resource, principal, key and role assignment, behind one lock.
//!
//! This module owns the data and the rules that span services: resource-id parsing, the
//! emulator clock, RBAC evaluation (actions and data actions over scopes), Key Vault data-plane
//! authorization (access policies, RBAC, firewall) and the Media Services customer-key access
//! check. It speaks no HTTP: the route modules translate requests into calls here.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::crypto::{CryptoError, JwtKey, KeyMaterial, random_hex32};
use super::knobs::Knobs;
use super::roles::{RoleDefinition, builtin_roles};
use super::seed::{DEFAULT_ASSERTION_AUDIENCE, DEFAULT_OIDC_ISSUER, DEFAULT_TENANT_ID, Seed};

/// Lower-cases an id for use as a map key (ARM ids are case-insensitive).
#[must_use]
pub fn key_of(id: &str) -> String {
    id.trim_end_matches('/').to_ascii_lowercase()
}

/// Normalises a location (`South Central US` → `southcentralus`).
#[must_use]
pub fn norm_location(loc: &str) -> String {
    loc.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// A parsed ARM resource id `/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceId {
    /// Subscription id.
    pub subscription: String,
    /// Resource group name.
    pub resource_group: String,
    /// Provider namespace, e.g. `Microsoft.KeyVault`.
    pub namespace: String,
    /// Resource type, e.g. `vaults`.
    pub kind: String,
    /// Resource name.
    pub name: String,
}

impl ResourceId {
    /// Parses a top-level resource id; `None` when it is not one.
    #[must_use]
    pub fn parse(id: &str) -> Option<Self> {
        let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
        if parts.len() != 8
            || !parts[0].eq_ignore_ascii_case("subscriptions")
            || !parts[2].eq_ignore_ascii_case("resourceGroups")
            || !parts[4].eq_ignore_ascii_case("providers")
            || parts.iter().any(|p| p.is_empty())
        {
            return None;
        }
        Some(Self {
            subscription: parts[1].to_owned(),
            resource_group: parts[3].to_owned(),
            namespace: parts[5].to_owned(),
            kind: parts[6].to_owned(),
            name: parts[7].to_owned(),
        })
    }

    /// Whether the id is of `namespace/kind` (case-insensitive).
    #[must_use]
    pub fn is(&self, namespace: &str, kind: &str) -> bool {
        self.namespace.eq_ignore_ascii_case(namespace) && self.kind.eq_ignore_ascii_case(kind)
    }
}

/// What kind of principal an object id is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrincipalKind {
    /// An application's service principal (client secret / federated credential).
    ServicePrincipal,
    /// A managed identity (user-assigned or a resource's system-assigned one).
    ManagedIdentity,
}

/// A federated identity credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FederatedCredential {
    /// Issuer.
    pub issuer: String,
    /// Subject.
    pub subject: String,
    /// Audiences.
    pub audiences: Vec<String>,
}

/// A principal in the tenant.
#[derive(Clone, Debug, Serialize)]
pub struct Principal {
    /// Object id (`oid`).
    pub object_id: String,
    /// Application / client id (`appid`).
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// Kind.
    pub kind: PrincipalKind,
    /// Client secrets (service principals only).
    #[serde(skip)]
    pub secrets: Vec<String>,
    /// Federated credentials (service principals only).
    pub federated: Vec<FederatedCredential>,
    /// When it was created (emulator clock), for the role-assignment propagation delay.
    pub created_at: DateTime<Utc>,
    /// For managed identities: the resource they belong to.
    pub resource_id: Option<String>,
}

/// A role assignment.
#[derive(Clone, Debug, Serialize)]
pub struct RoleAssignment {
    /// Full id `{scope}/providers/Microsoft.Authorization/roleAssignments/{name}`.
    pub id: String,
    /// GUID name.
    pub name: String,
    /// Scope, as given (leading slash).
    pub scope: String,
    /// The role definition GUID (lower case).
    pub role_guid: String,
    /// The role definition id as the caller sent it.
    pub role_definition_id: String,
    /// Principal object id.
    pub principal_id: String,
    /// Principal type as sent or inferred.
    pub principal_type: String,
    /// Optional description.
    pub description: Option<String>,
    /// Optional ABAC condition.
    pub condition: Option<String>,
    /// Condition version.
    pub condition_version: Option<String>,
    /// Creation time.
    pub created_on: DateTime<Utc>,
    /// Object id of the creator.
    pub created_by: String,
}

/// One version of a key.
#[derive(Clone, Debug)]
pub struct KeyVersion {
    /// The 32-hex version.
    pub version: String,
    /// `RSA`, `RSA-HSM`, `EC`, `EC-HSM`.
    pub kty: String,
    /// Material.
    pub material: KeyMaterial,
    /// Permitted operations.
    pub key_ops: Vec<String>,
    /// Enabled flag.
    pub enabled: bool,
    /// Not-before (unix seconds).
    pub nbf: Option<i64>,
    /// Expiry (unix seconds).
    pub exp: Option<i64>,
    /// Created (unix seconds).
    pub created: i64,
    /// Updated (unix seconds).
    pub updated: i64,
    /// Tags.
    pub tags: Map<String, Value>,
}

impl KeyVersion {
    /// Whether the version may be used at `now`: enabled, after `nbf`, before `exp`.
    pub fn usable_at(&self, now: i64) -> Result<(), KeyAccessCause> {
        if !self.enabled {
            return Err(KeyAccessCause::KeyDisabled);
        }
        if self.exp.is_some_and(|exp| exp <= now) {
            return Err(KeyAccessCause::KeyExpired);
        }
        if self.nbf.is_some_and(|nbf| nbf > now) {
            return Err(KeyAccessCause::KeyNotYetValid);
        }
        Ok(())
    }
}

/// A key with all its versions (oldest first).
#[derive(Clone, Debug)]
pub struct Key {
    /// Name as created.
    pub name: String,
    /// Versions, oldest first.
    pub versions: Vec<KeyVersion>,
    /// Set when soft-deleted.
    pub deleted: Option<DeletedInfo>,
}

impl Key {
    /// The latest version (the one an unversioned GET returns).
    #[must_use]
    pub fn latest(&self) -> Option<&KeyVersion> {
        self.versions.last()
    }
    /// A version by its id (case-insensitive).
    #[must_use]
    pub fn version(&self, v: &str) -> Option<&KeyVersion> {
        self.versions
            .iter()
            .find(|k| k.version.eq_ignore_ascii_case(v))
    }
}

/// Soft-delete bookkeeping for a key.
#[derive(Clone, Debug)]
pub struct DeletedInfo {
    /// Deletion time (unix seconds).
    pub deleted_date: i64,
    /// Scheduled purge time (unix seconds).
    pub scheduled_purge_date: i64,
}

/// A vault: its ARM resource plus its keys.
#[derive(Clone, Debug)]
pub struct Vault {
    /// ARM resource JSON (id, name, type, location, tags, properties).
    pub resource: Value,
    /// Keys by lower-case name.
    pub keys: BTreeMap<String, Key>,
    /// Set when the vault itself is soft-deleted.
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Vault {
    /// The vault name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.resource["name"].as_str().unwrap_or_default()
    }
    /// The ARM id.
    #[must_use]
    pub fn id(&self) -> &str {
        self.resource["id"].as_str().unwrap_or_default()
    }
    /// The `properties` object.
    #[must_use]
    pub fn props(&self) -> &Value {
        &self.resource["properties"]
    }
    /// Normalised location.
    #[must_use]
    pub fn location(&self) -> String {
        norm_location(self.resource["location"].as_str().unwrap_or_default())
    }
    /// `enableRbacAuthorization`.
    #[must_use]
    pub fn rbac(&self) -> bool {
        self.props()["enableRbacAuthorization"].as_bool() == Some(true)
    }
    /// `enableSoftDelete` (absent counts as true, as Azure has enforced since 2025).
    #[must_use]
    pub fn soft_delete(&self) -> bool {
        self.props()["enableSoftDelete"].as_bool() != Some(false)
    }
    /// `enablePurgeProtection`.
    #[must_use]
    pub fn purge_protection(&self) -> bool {
        self.props()["enablePurgeProtection"].as_bool() == Some(true)
    }
    /// `softDeleteRetentionInDays` (default 90).
    #[must_use]
    pub fn retention_days(&self) -> i64 {
        self.props()["softDeleteRetentionInDays"]
            .as_i64()
            .unwrap_or(90)
    }
    /// The tenant the vault trusts.
    #[must_use]
    pub fn tenant(&self) -> &str {
        self.props()["tenantId"].as_str().unwrap_or_default()
    }
}

/// Why a Media Services account cannot reach its customer-managed key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyAccessCause {
    /// `keyIdentifier` is not a Key Vault key URL.
    InvalidKeyIdentifier,
    /// The encryption identity is not (or no longer) assigned to the account.
    IdentityNotFound,
    /// No vault of that name exists.
    VaultNotFound,
    /// The vault was deleted.
    VaultDeleted,
    /// The key (or the pinned version) does not exist.
    KeyNotFound,
    /// The key is soft-deleted.
    KeyDeleted,
    /// The key version is disabled.
    KeyDisabled,
    /// The key version expired.
    KeyExpired,
    /// The key version's `nbf` is in the future.
    KeyNotYetValid,
    /// The identity lacks get/wrapKey/unwrapKey (access policy or RBAC).
    PermissionDenied,
    /// The vault firewall blocks the service.
    FirewallBlocked,
}

impl KeyAccessCause {
    /// A sentence for error messages.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::InvalidKeyIdentifier => "the key identifier is not a Key Vault key URL",
            Self::IdentityNotFound => "the encryption identity is not assigned to the account",
            Self::VaultNotFound => "the key vault was not found",
            Self::VaultDeleted => "the key vault was deleted",
            Self::KeyNotFound => "the key (or key version) was not found",
            Self::KeyDeleted => "the key was deleted",
            Self::KeyDisabled => "the key is disabled",
            Self::KeyExpired => "the key has expired",
            Self::KeyNotYetValid => "the key is not yet valid (nbf in the future)",
            Self::PermissionDenied => {
                "the identity lacks get, wrapKey and unwrapKey permissions on the key"
            }
            Self::FirewallBlocked => "the key vault firewall blocks trusted Azure services",
        }
    }
}

/// The result of the last customer-key access check of an account.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KeyAccess {
    /// `Some` while the account is in the customer-key-inaccessible state.
    pub cause: Option<KeyAccessCause>,
    /// The versioned key id in use (the latest enabled version when none is pinned).
    pub current_key_identifier: Option<String>,
    /// When the check ran (emulator clock).
    pub checked_at: Option<DateTime<Utc>>,
}

/// A Media Services account.
#[derive(Clone, Debug)]
pub struct MediaAccount {
    /// The resource JSON as last written (without read-only fields).
    pub resource: Value,
    /// The system-assigned principal, when the identity includes `SystemAssigned`.
    pub system_principal: Option<String>,
    /// `provisioningState`.
    pub provisioning_state: String,
    /// Customer-key access.
    pub key_access: KeyAccess,
}

/// An asynchronous operation (Media Services LRO).
#[derive(Clone, Debug)]
pub struct AsyncOperation {
    /// Operation id (GUID).
    pub id: String,
    /// Subscription.
    pub subscription: String,
    /// Location segment used in the polling URLs.
    pub location: String,
    /// The account it changes.
    pub resource_id: String,
    /// Polls left before it reports `Succeeded`.
    pub polls_left: u32,
    /// Start time.
    pub start: DateTime<Utc>,
    /// End time, once terminal.
    pub end: Option<DateTime<Utc>>,
    /// Terminal failure.
    pub error: Option<(String, String)>,
}

/// One logged request.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedRequest {
    /// Sequence number.
    pub seq: u64,
    /// Operation name (swagger operationId where there is one).
    pub operation: String,
    /// HTTP method.
    pub method: String,
    /// Host header.
    pub host: String,
    /// Path and query.
    pub uri: String,
    /// Response status.
    pub status: u16,
    /// Caller object id, when authenticated.
    pub caller: Option<String>,
    /// `x-ms-request-id` sent back.
    pub request_id: String,
    /// The JSON response body, when the emulator records bodies (`EmulatorConfig::record_bodies`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<Value>,
    /// The JSON request body, when the emulator records bodies: secret-bearing members
    /// (secrets, passwords, key material, the payload of crypto operations) replaced by
    /// `"<redacted>"`, and bodies over 64 KiB replaced by a note of their size. Form bodies
    /// (token requests) are never kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<Value>,
}

/// Everything the emulator knows.
#[derive(Debug)]
pub struct World {
    /// Tenant id.
    pub tenant_id: String,
    /// OIDC issuer of service account tokens.
    pub oidc_issuer: String,
    /// Offset added to the wall clock (moved by "advance time").
    pub clock_offset: Duration,
    /// Subscriptions (lower id → display name) .
    pub subscriptions: BTreeMap<String, String>,
    /// Resource groups (lower `/subscriptions/{s}/resourcegroups/{rg}` → location).
    pub resource_groups: BTreeMap<String, String>,
    /// Principals by lower object id.
    pub principals: BTreeMap<String, Principal>,
    /// Seeded service principal names → object id.
    pub sp_names: BTreeMap<String, String>,
    /// User-assigned identities (lower id → resource JSON).
    pub identities: BTreeMap<String, Value>,
    /// Storage accounts (lower id → resource JSON).
    pub storage: BTreeMap<String, Value>,
    /// Vaults (lower id → vault).
    pub vaults: BTreeMap<String, Vault>,
    /// Media accounts (lower id → account).
    pub media: BTreeMap<String, MediaAccount>,
    /// Role assignments (lower id → assignment).
    pub role_assignments: BTreeMap<String, RoleAssignment>,
    /// Built-in role definitions.
    pub roles: Vec<RoleDefinition>,
    /// Media async operations (lower id → op).
    pub operations: BTreeMap<String, AsyncOperation>,
    /// The managed-identity endpoint: header secret and default principal.
    pub msi: Option<(String, String)>,
    /// Test knobs.
    pub knobs: Knobs,
    /// Request log.
    pub log: Vec<LoggedRequest>,
    /// Per-operation call counters.
    pub counters: BTreeMap<String, u64>,
}

/// State shared by every request: the world and the keys that sign tokens.
#[derive(Debug)]
pub struct Shared {
    /// The world, behind one lock (never held across an await).
    pub world: Mutex<World>,
    /// Signs access tokens.
    pub token_key: JwtKey,
    /// Signs "projected service account tokens" (the emulator's OIDC issuer).
    pub oidc_key: JwtKey,
}

impl Shared {
    /// Locks the world, recovering from a poisoned lock (a panicking handler must not wedge
    /// the emulator for every later test).
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A seed that cannot be turned into a world.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// A reference or id in the seed is wrong.
    #[error("invalid seed: {0}")]
    Invalid(String),
    /// Key generation failed.
    #[error("failed to generate a seeded key")]
    Crypto(#[from] CryptoError),
}

fn guid() -> String {
    super::crypto::guid()
}

/// The material of every seeded key version, in seed order (vault, key, version), generated on
/// all cores: a world of a thousand RSA keys otherwise takes over a minute to build.
fn generate_seed_keys(seed: &Seed) -> Result<Vec<KeyMaterial>, SeedError> {
    let specs: Vec<(bool, &str, u32)> = seed
        .vaults
        .iter()
        .flat_map(|v| v.keys.iter())
        .flat_map(|k| {
            let ec = k.kty.as_deref().unwrap_or("RSA").starts_with("EC");
            std::iter::repeat_n(
                (
                    ec,
                    k.crv.as_deref().unwrap_or("P-256"),
                    k.key_size.unwrap_or(2048),
                ),
                k.version_count(),
            )
        })
        .collect();
    let generate = |(ec, crv, bits): &(bool, &str, u32)| {
        if *ec {
            KeyMaterial::generate_ec(crv)
        } else {
            KeyMaterial::generate_rsa(*bits)
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let chunk = specs.len().div_ceil(threads).max(1);
    let generated: Vec<Result<Vec<KeyMaterial>, CryptoError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = specs
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(generate).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(CryptoError::Failed("key generation panicked".into())))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(specs.len());
    for part in generated {
        out.extend(part?);
    }
    Ok(out)
}

impl World {
    /// The emulator clock.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.clock_offset
    }

    /// The emulator clock in unix seconds.
    #[must_use]
    pub fn now_unix(&self) -> i64 {
        self.now().timestamp()
    }

    /// Builds a world from a seed: issues principals, generates keys, checks references.
    // NB: seeding follows the dependency order of the world; splitting it hides that order.
    #[allow(clippy::too_many_lines)]
    pub fn from_seed(seed: &Seed, knobs: Knobs) -> Result<Self, SeedError> {
        let tenant_id = seed
            .tenant_id
            .clone()
            .unwrap_or_else(|| DEFAULT_TENANT_ID.into());
        let oidc_issuer = seed
            .oidc_issuer
            .clone()
            .unwrap_or_else(|| DEFAULT_OIDC_ISSUER.into());
        let mut w = Self {
            tenant_id: tenant_id.clone(),
            oidc_issuer: oidc_issuer.clone(),
            clock_offset: Duration::zero(),
            subscriptions: BTreeMap::new(),
            resource_groups: BTreeMap::new(),
            principals: BTreeMap::new(),
            sp_names: BTreeMap::new(),
            identities: BTreeMap::new(),
            storage: BTreeMap::new(),
            vaults: BTreeMap::new(),
            media: BTreeMap::new(),
            role_assignments: BTreeMap::new(),
            roles: builtin_roles(),
            operations: BTreeMap::new(),
            msi: None,
            knobs,
            log: Vec::new(),
            counters: BTreeMap::new(),
        };
        // A principal seeded long ago: the propagation delay applies only to new ones.
        let long_ago = w.now() - Duration::days(365);
        for sub in &seed.subscriptions {
            w.subscriptions.insert(
                key_of(&sub.id),
                sub.display_name.clone().unwrap_or_else(|| sub.id.clone()),
            );
            for rg in &sub.resource_groups {
                w.resource_groups.insert(
                    key_of(&format!(
                        "/subscriptions/{}/resourceGroups/{}",
                        sub.id, rg.name
                    )),
                    rg.location.clone(),
                );
            }
        }
        for r in &seed.role_definitions {
            w.roles.push(RoleDefinition {
                id: r.id.to_ascii_lowercase(),
                name: r.name.clone(),
                description: r.description.clone().unwrap_or_default(),
                role_type: "CustomRole",
                actions: r.actions.clone(),
                not_actions: r.not_actions.clone(),
                data_actions: r.data_actions.clone(),
                not_data_actions: r.not_data_actions.clone(),
            });
        }
        for sp in &seed.service_principals {
            let object_id = sp.object_id.clone().unwrap_or_else(guid);
            let principal = Principal {
                object_id: object_id.clone(),
                client_id: sp.client_id.clone().unwrap_or_else(guid),
                name: sp.name.clone(),
                kind: PrincipalKind::ServicePrincipal,
                secrets: sp.secrets.clone(),
                federated: sp
                    .federated_credentials
                    .iter()
                    .map(|f| FederatedCredential {
                        issuer: f.issuer.clone().unwrap_or_else(|| oidc_issuer.clone()),
                        subject: f.subject.clone(),
                        audiences: if f.audiences.is_empty() {
                            vec![DEFAULT_ASSERTION_AUDIENCE.into()]
                        } else {
                            f.audiences.clone()
                        },
                    })
                    .collect(),
                created_at: long_ago,
                resource_id: None,
            };
            w.sp_names.insert(sp.name.clone(), object_id.clone());
            w.principals.insert(key_of(&object_id), principal);
        }
        for ident in &seed.user_assigned_identities {
            let loc = w.seed_location(&ident.id, ident.location.as_ref())?;
            let body = json!({"location": loc});
            w.put_identity(
                &ident.id,
                &body,
                ident.principal_id.clone(),
                ident.client_id.clone(),
                long_ago,
            )
            .map_err(SeedError::Invalid)?;
        }
        for sa in &seed.storage_accounts {
            let loc = w.seed_location(&sa.id, sa.location.as_ref())?;
            let mut body = sa.body.clone().unwrap_or_else(|| json!({}));
            body["location"] = json!(loc);
            w.store_storage(&sa.id, &body).map_err(SeedError::Invalid)?;
        }
        let mut materials = generate_seed_keys(seed)?.into_iter();
        for v in &seed.vaults {
            let loc = w.seed_location(&v.id, v.location.as_ref())?;
            let mut policies = Vec::new();
            for p in &v.access_policies {
                let mut p = p.clone();
                if let Some(oid) = p["objectId"].as_str() {
                    let resolved = w.resolve_principal(oid).unwrap_or_else(|| oid.to_owned());
                    p["objectId"] = json!(resolved);
                }
                if p.get("tenantId").is_none() {
                    p["tenantId"] = json!(tenant_id);
                }
                policies.push(p);
            }
            let mut props = json!({
                "tenantId": tenant_id,
                "sku": {"family": "A", "name": "standard"},
                "accessPolicies": policies,
                "enableSoftDelete": v.enable_soft_delete,
                "softDeleteRetentionInDays": 90,
                "enableRbacAuthorization": v.enable_rbac_authorization,
                "publicNetworkAccess": "Enabled",
            });
            if v.enable_purge_protection {
                props["enablePurgeProtection"] = json!(true);
            }
            if let Some(acls) = &v.network_acls {
                props["networkAcls"] = acls.clone();
            }
            w.put_vault(&v.id, &json!({"location": loc, "properties": props}))
                .map_err(SeedError::Invalid)?;
            let vault_key = key_of(&v.id);
            for k in &v.keys {
                let kty = k.kty.clone().unwrap_or_else(|| "RSA".into());
                for i in 0..k.version_count() {
                    let material = materials.next().ok_or_else(|| {
                        SeedError::Invalid("a seeded key was not generated".into())
                    })?;
                    let now = w.now_unix();
                    let vault = w
                        .vaults
                        .get_mut(&vault_key)
                        .ok_or_else(|| SeedError::Invalid("vault vanished".into()))?;
                    let created = add_key_version(vault, &k.name, &kty, material, None, now);
                    if let Some(id) = k.version_ids.get(i)
                        && let Some(key) = vault.keys.get_mut(&k.name.to_ascii_lowercase())
                        && let Some(last) = key.versions.last_mut()
                    {
                        debug_assert_eq!(last.version, created.version);
                        last.version.clone_from(id);
                    }
                }
            }
        }
        for m in &seed.media_accounts {
            let loc = w.seed_location(&m.id, m.location.as_ref())?;
            let mut body = m.body.clone().unwrap_or_else(|| json!({}));
            body["location"] = json!(loc);
            let id = ResourceId::parse(&m.id)
                .ok_or_else(|| SeedError::Invalid(format!("bad media account id {}", m.id)))?;
            let system = body["identity"]["type"]
                .as_str()
                .is_some_and(|t| t.contains("SystemAssigned"))
                .then(|| w.issue_system_principal(&m.id, &id.name, long_ago));
            let account = MediaAccount {
                resource: normalise_media_body(&m.id, &id.name, body),
                system_principal: system,
                provisioning_state: "Succeeded".into(),
                key_access: KeyAccess::default(),
            };
            w.media.insert(key_of(&m.id), account);
        }
        // Seeded assignments were made by someone: one directory principal stands for them.
        let seeder = guid();
        for ra in &seed.role_assignments {
            let principal = w
                .resolve_principal(&ra.principal)
                .ok_or_else(|| SeedError::Invalid(format!("unknown principal {}", ra.principal)))?;
            let role = w
                .role_by_name_or_guid(&ra.role)
                .ok_or_else(|| SeedError::Invalid(format!("unknown role {}", ra.role)))?
                .id
                .clone();
            let scope = format!("/{}", ra.scope.trim_matches('/'));
            let name = ra.name.clone().unwrap_or_else(guid);
            let ptype = w.principal_type_of(&principal);
            w.insert_role_assignment(&scope, &name, &role, &principal, &ptype, None, &seeder);
        }
        if let Some(msi) = &seed.managed_identity {
            let oid = w.resolve_principal(&msi.default).ok_or_else(|| {
                SeedError::Invalid(format!("unknown managed identity {}", msi.default))
            })?;
            w.msi = Some((msi.header.clone(), oid));
        }
        w.recheck_all_key_access();
        Ok(w)
    }

    fn seed_location(&self, id: &str, given: Option<&String>) -> Result<String, SeedError> {
        if let Some(loc) = given {
            return Ok(loc.clone());
        }
        let rid = ResourceId::parse(id)
            .ok_or_else(|| SeedError::Invalid(format!("not a resource id: {id}")))?;
        self.rg_location(&rid.subscription, &rid.resource_group)
            .ok_or_else(|| SeedError::Invalid(format!("no resource group for {id}")))
    }

    /// The location of a resource group, when it exists.
    #[must_use]
    pub fn rg_location(&self, sub: &str, rg: &str) -> Option<String> {
        self.resource_groups
            .get(&key_of(&format!(
                "/subscriptions/{sub}/resourceGroups/{rg}"
            )))
            .cloned()
    }

    /// Resolves a seeded name, identity/account resource id, client id or object id to an
    /// object id.
    #[must_use]
    pub fn resolve_principal(&self, reference: &str) -> Option<String> {
        if let Some(oid) = self.sp_names.get(reference) {
            return Some(oid.clone());
        }
        if let Some(ident) = self.identities.get(&key_of(reference)) {
            return ident["properties"]["principalId"]
                .as_str()
                .map(str::to_owned);
        }
        if let Some(acct) = self.media.get(&key_of(reference)) {
            return acct.system_principal.clone();
        }
        if self.principals.contains_key(&key_of(reference)) {
            return Some(reference.to_owned());
        }
        self.principals
            .values()
            .find(|p| p.client_id.eq_ignore_ascii_case(reference))
            .map(|p| p.object_id.clone())
    }

    /// `ServicePrincipal` for every principal the emulator knows (managed identities are
    /// service principals in Entra too), `User` otherwise.
    #[must_use]
    pub fn principal_type_of(&self, oid: &str) -> String {
        if self.principals.contains_key(&key_of(oid)) {
            "ServicePrincipal".into()
        } else {
            "User".into()
        }
    }

    /// Issues the system-assigned principal of a resource.
    pub fn issue_system_principal(
        &mut self,
        resource_id: &str,
        name: &str,
        at: DateTime<Utc>,
    ) -> String {
        let oid = guid();
        self.principals.insert(
            key_of(&oid),
            Principal {
                object_id: oid.clone(),
                client_id: guid(),
                name: name.to_owned(),
                kind: PrincipalKind::ManagedIdentity,
                secrets: Vec::new(),
                federated: Vec::new(),
                created_at: at,
                resource_id: Some(resource_id.to_owned()),
            },
        );
        oid
    }

    /// Creates or updates a user-assigned identity; returns `true` when created.
    pub fn put_identity(
        &mut self,
        id: &str,
        body: &Value,
        principal_id: Option<String>,
        client_id: Option<String>,
        created_at: DateTime<Utc>,
    ) -> Result<bool, String> {
        let rid = ResourceId::parse(id).ok_or_else(|| format!("not a resource id: {id}"))?;
        let k = key_of(id);
        let mut resource = self.identities.get(&k).cloned();
        let created = resource.is_none();
        let resource = resource.get_or_insert_with(|| {
            let oid = principal_id.unwrap_or_else(guid);
            let cid = client_id.unwrap_or_else(guid);
            self.principals.insert(
                key_of(&oid),
                Principal {
                    object_id: oid.clone(),
                    client_id: cid.clone(),
                    name: rid.name.clone(),
                    kind: PrincipalKind::ManagedIdentity,
                    secrets: Vec::new(),
                    federated: Vec::new(),
                    created_at,
                    resource_id: Some(id.to_owned()),
                },
            );
            json!({
                "id": id,
                "name": rid.name,
                "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
                "properties": {"tenantId": self.tenant_id, "principalId": oid, "clientId": cid},
            })
        });
        if let Some(loc) = body.get("location") {
            resource["location"] = loc.clone();
        }
        if let Some(tags) = body.get("tags") {
            resource["tags"] = tags.clone();
        }
        if let Some(iso) = body["properties"].get("isolationScope") {
            resource["properties"]["isolationScope"] = iso.clone();
        }
        self.identities.insert(k, resource.clone());
        Ok(created)
    }

    /// Stores a storage account resource body (normalising id/name/type).
    pub fn store_storage(&mut self, id: &str, body: &Value) -> Result<bool, String> {
        let rid = ResourceId::parse(id).ok_or_else(|| format!("not a resource id: {id}"))?;
        let k = key_of(id);
        let created = !self.storage.contains_key(&k);
        let mut resource = body.clone();
        resource["id"] = json!(id);
        resource["name"] = json!(rid.name);
        resource["type"] = json!("Microsoft.Storage/storageAccounts");
        if resource.get("kind").is_none() {
            resource["kind"] = json!("StorageV2");
        }
        if resource.get("sku").is_none() {
            resource["sku"] = json!({"name": "Standard_LRS", "tier": "Standard"});
        }
        if !resource["properties"].is_object() {
            resource["properties"] = json!({});
        }
        let props = &mut resource["properties"];
        props["provisioningState"] = json!("Succeeded");
        if props.get("networkAcls").is_none() {
            props["networkAcls"] = json!({"bypass": "AzureServices", "defaultAction": "Allow", "ipRules": [], "virtualNetworkRules": []});
        }
        let name = rid.name.to_ascii_lowercase();
        props["primaryEndpoints"] = json!({
            "blob": format!("https://{name}.blob.core.windows.net/"),
            "dfs": format!("https://{name}.dfs.core.windows.net/"),
        });
        self.storage.insert(k, resource);
        Ok(created)
    }

    /// Creates or replaces a vault (keeping its keys); returns `true` when created.
    pub fn put_vault(&mut self, id: &str, body: &Value) -> Result<bool, String> {
        let rid = ResourceId::parse(id).ok_or_else(|| format!("not a resource id: {id}"))?;
        let k = key_of(id);
        let existing = self.vaults.remove(&k);
        let created = existing.is_none();
        let mut resource = body.clone();
        resource["id"] = json!(id);
        resource["name"] = json!(rid.name);
        resource["type"] = json!("Microsoft.KeyVault/vaults");
        if resource.get("tags").is_none() {
            resource["tags"] = json!({});
        }
        let props = &mut resource["properties"];
        if props.get("enableSoftDelete").is_none() {
            props["enableSoftDelete"] = json!(true);
        }
        if props.get("softDeleteRetentionInDays").is_none() {
            props["softDeleteRetentionInDays"] = json!(90);
        }
        if props.get("accessPolicies").is_none() {
            props["accessPolicies"] = json!([]);
        }
        props["vaultUri"] = json!(format!(
            "https://{}.vault.azure.net/",
            rid.name.to_ascii_lowercase()
        ));
        props["provisioningState"] = json!("Succeeded");
        let keys = existing.map(|v| v.keys).unwrap_or_default();
        self.vaults.insert(
            k,
            Vault {
                resource,
                keys,
                deleted_at: None,
            },
        );
        Ok(created)
    }

    /// The live (not deleted) vault whose name is `name`.
    #[must_use]
    pub fn vault_by_name(&self, name: &str) -> Option<&Vault> {
        self.vaults
            .values()
            .find(|v| v.deleted_at.is_none() && v.name().eq_ignore_ascii_case(name))
    }

    /// Mutable [`World::vault_by_name`].
    pub fn vault_by_name_mut(&mut self, name: &str) -> Option<&mut Vault> {
        self.vaults
            .values_mut()
            .find(|v| v.deleted_at.is_none() && v.name().eq_ignore_ascii_case(name))
    }

    /// The key in `vaults` of the soft-deleted vault named `name`.
    #[must_use]
    pub fn deleted_vault_key(&self, name: &str) -> Option<String> {
        self.vaults
            .iter()
            .find(|(_, v)| v.deleted_at.is_some() && v.name().eq_ignore_ascii_case(name))
            .map(|(k, _)| k.clone())
    }

    /// A role definition by display name or GUID.
    #[must_use]
    pub fn role_by_name_or_guid(&self, r: &str) -> Option<&RoleDefinition> {
        let guid = r.rsplit('/').next().unwrap_or(r);
        self.roles
            .iter()
            .find(|d| d.id.eq_ignore_ascii_case(guid) || d.name.eq_ignore_ascii_case(r))
    }

    /// Inserts a role assignment without checks (seed and handler use).
    #[allow(clippy::too_many_arguments)]
    pub fn insert_role_assignment(
        &mut self,
        scope: &str,
        name: &str,
        role_guid: &str,
        principal: &str,
        principal_type: &str,
        description: Option<String>,
        created_by: &str,
    ) -> RoleAssignment {
        let scope = scope_norm(scope);
        let sub = scope
            .split('/')
            .nth(2)
            .filter(|_| scope.to_ascii_lowercase().starts_with("/subscriptions/"));
        let role_definition_id = match sub {
            Some(s) => format!(
                "/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"
            ),
            None => format!("/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"),
        };
        let ra = RoleAssignment {
            id: format!(
                "{}/providers/Microsoft.Authorization/roleAssignments/{name}",
                scope.trim_end_matches('/')
            ),
            name: name.to_owned(),
            scope: scope.clone(),
            role_guid: role_guid.to_ascii_lowercase(),
            role_definition_id,
            principal_id: principal.to_owned(),
            principal_type: principal_type.to_owned(),
            description,
            condition: None,
            condition_version: None,
            created_on: self.now(),
            created_by: created_by.to_owned(),
        };
        self.role_assignments.insert(key_of(&ra.id), ra.clone());
        ra
    }

    /// Whether `oid` holds an action matching `action` at `scope` (inherited from parents).
    #[must_use]
    pub fn has_action(&self, oid: &str, scope: &str, action: &str) -> bool {
        self.roles_at(oid, scope)
            .any(|r| permits(&r.actions, &r.not_actions, action))
    }

    /// Whether `oid` holds a data action matching `action` at `scope`.
    #[must_use]
    pub fn has_data_action(&self, oid: &str, scope: &str, action: &str) -> bool {
        self.roles_at(oid, scope)
            .any(|r| permits(&r.data_actions, &r.not_data_actions, action))
    }

    fn roles_at<'a>(
        &'a self,
        oid: &'a str,
        scope: &'a str,
    ) -> impl Iterator<Item = &'a RoleDefinition> + 'a {
        self.role_assignments
            .values()
            .filter(move |ra| {
                ra.principal_id.eq_ignore_ascii_case(oid) && scope_covers(&ra.scope, scope)
            })
            .filter_map(|ra| {
                self.roles
                    .iter()
                    .find(|r| r.id.eq_ignore_ascii_case(&ra.role_guid))
            })
    }

    /// Key Vault data-plane authorization of `oid` for `op` on `key_name` in the vault.
    /// `client_ip` is `None` for a trusted Azure service (Media Services' own key access).
    pub fn kv_authorize(
        &self,
        vault: &Vault,
        oid: &str,
        op: KvOp,
        key_name: Option<&str>,
        client_ip: Option<IpAddr>,
    ) -> Result<(), KvDenied> {
        if !firewall_allows(vault.props(), client_ip) {
            return Err(KvDenied::Firewall);
        }
        if vault.rbac() {
            let scope = match key_name {
                Some(k) => format!("{}/keys/{k}", vault.id()),
                None => vault.id().to_owned(),
            };
            let action = op.data_action();
            if self.has_data_action(oid, &scope, action) {
                Ok(())
            } else {
                Err(KvDenied::Rbac { action, scope })
            }
        } else {
            let wanted = op.permission();
            let granted = vault.props()["accessPolicies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| {
                    p["objectId"]
                        .as_str()
                        .is_some_and(|o| o.eq_ignore_ascii_case(oid))
                })
                .flat_map(|p| {
                    p["permissions"]["keys"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .any(|perm| {
                    perm.as_str().is_some_and(|s| {
                        s.eq_ignore_ascii_case(wanted) || s.eq_ignore_ascii_case("all")
                    })
                });
            if granted {
                Ok(())
            } else {
                Err(KvDenied::Policy { permission: wanted })
            }
        }
    }

    /// Evaluates whether a Media Services account can reach its customer key, as the service
    /// would (trusted service, acting as the encryption identity).
    pub fn evaluate_key_access(
        &self,
        account: &MediaAccount,
    ) -> Result<Option<String>, KeyAccessCause> {
        let enc = &account.resource["properties"]["encryption"];
        if enc["type"].as_str() != Some("CustomerKey") {
            return Ok(None);
        }
        let Some(kid) = enc["keyVaultProperties"]["keyIdentifier"].as_str() else {
            return Ok(None);
        };
        let oid = self.encryption_principal(account)?;
        let parsed = parse_key_identifier(kid).ok_or(KeyAccessCause::InvalidKeyIdentifier)?;
        let vault = match self.vault_by_name(&parsed.vault) {
            Some(v) => v,
            None if self
                .vaults
                .values()
                .any(|v| v.name().eq_ignore_ascii_case(&parsed.vault)) =>
            {
                return Err(KeyAccessCause::VaultDeleted);
            }
            None => return Err(KeyAccessCause::VaultNotFound),
        };
        let key = vault
            .keys
            .get(&parsed.key.to_ascii_lowercase())
            .ok_or(KeyAccessCause::KeyNotFound)?;
        if key.deleted.is_some() {
            return Err(KeyAccessCause::KeyDeleted);
        }
        for op in [KvOp::Get, KvOp::WrapKey, KvOp::UnwrapKey] {
            self.kv_authorize(vault, &oid, op, Some(&key.name), None)
                .map_err(|d| match d {
                    KvDenied::Firewall => KeyAccessCause::FirewallBlocked,
                    _ => KeyAccessCause::PermissionDenied,
                })?;
        }
        let now = self.now_unix();
        let version = match &parsed.version {
            Some(v) => {
                let kv = key.version(v).ok_or(KeyAccessCause::KeyNotFound)?;
                kv.usable_at(now)?;
                kv
            }
            None => {
                // The latest enabled version; report the latest's own problem when none is.
                if let Some(v) = key.versions.iter().rev().find(|v| v.usable_at(now).is_ok()) {
                    v
                } else {
                    let latest = key.latest().ok_or(KeyAccessCause::KeyNotFound)?;
                    latest.usable_at(now)?;
                    latest
                }
            }
        };
        Ok(Some(format!(
            "https://{}.vault.azure.net/keys/{}/{}",
            vault.name().to_ascii_lowercase(),
            key.name,
            version.version
        )))
    }

    /// The principal a Media Services account uses for its customer key.
    pub fn encryption_principal(&self, account: &MediaAccount) -> Result<String, KeyAccessCause> {
        let enc_identity = &account.resource["properties"]["encryption"]["identity"];
        let assigned = &account.resource["identity"]["userAssignedIdentities"];
        if let Some(uai) = enc_identity["userAssignedIdentity"].as_str()
            && enc_identity["useSystemAssignedIdentity"].as_bool() != Some(true)
        {
            let listed = assigned
                .as_object()
                .is_some_and(|m| m.keys().any(|k| k.eq_ignore_ascii_case(uai)));
            if !listed {
                return Err(KeyAccessCause::IdentityNotFound);
            }
            return self
                .identities
                .get(&key_of(uai))
                .and_then(|i| i["properties"]["principalId"].as_str())
                .map(str::to_owned)
                .ok_or(KeyAccessCause::IdentityNotFound);
        }
        account
            .system_principal
            .clone()
            .ok_or(KeyAccessCause::IdentityNotFound)
    }

    /// Re-checks every account's customer-key access; returns the accounts whose state changed.
    pub fn recheck_all_key_access(&mut self) -> Vec<(String, KeyAccess)> {
        let now = self.now();
        let results: Vec<(String, Result<Option<String>, KeyAccessCause>)> = self
            .media
            .iter()
            .map(|(k, a)| (k.clone(), self.evaluate_key_access(a)))
            .collect();
        let hold_rotation = self.knobs.hold_key_rotation;
        let mut changed = Vec::new();
        for (k, result) in results {
            let Some(account) = self.media.get_mut(&k) else {
                continue;
            };
            let before = (
                account.key_access.cause,
                account.key_access.current_key_identifier.clone(),
            );
            match result {
                Ok(current) => {
                    account.key_access.cause = None;
                    let held = hold_rotation && account.key_access.current_key_identifier.is_some();
                    if current.is_some() && !held {
                        account.key_access.current_key_identifier = current;
                    }
                }
                // NB: the last known current key stays visible while access is lost.
                Err(cause) => account.key_access.cause = Some(cause),
            }
            account.key_access.checked_at = Some(now);
            if before
                != (
                    account.key_access.cause,
                    account.key_access.current_key_identifier.clone(),
                )
            {
                changed.push((
                    account.resource["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    account.key_access.clone(),
                ));
            }
        }
        changed
    }
}

/// Adds a new version to a key (creating the key), returning the version.
pub fn add_key_version(
    vault: &mut Vault,
    name: &str,
    kty: &str,
    material: KeyMaterial,
    attrs: Option<&Value>,
    now: i64,
) -> KeyVersion {
    let ops = match &material {
        KeyMaterial::Rsa { .. } => vec![
            "encrypt",
            "decrypt",
            "sign",
            "verify",
            "wrapKey",
            "unwrapKey",
        ],
        KeyMaterial::Ec { .. } => vec!["sign", "verify"],
    };
    let version = KeyVersion {
        version: random_hex32(),
        kty: kty.to_owned(),
        material,
        key_ops: ops.into_iter().map(str::to_owned).collect(),
        enabled: attrs.and_then(|a| a["enabled"].as_bool()).unwrap_or(true),
        nbf: attrs.and_then(|a| a["nbf"].as_i64()),
        exp: attrs.and_then(|a| a["exp"].as_i64()),
        created: now,
        updated: now,
        tags: Map::new(),
    };
    let key = vault
        .keys
        .entry(name.to_ascii_lowercase())
        .or_insert_with(|| Key {
            name: name.to_owned(),
            versions: Vec::new(),
            deleted: None,
        });
    key.versions.push(version.clone());
    version
}

/// `https://{vault}.vault.azure.net/keys/{name}[/{version}]`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyIdentifier {
    /// Vault name.
    pub vault: String,
    /// Key name.
    pub key: String,
    /// Version, when pinned.
    pub version: Option<String>,
}

/// Parses a Key Vault key identifier.
#[must_use]
pub fn parse_key_identifier(kid: &str) -> Option<KeyIdentifier> {
    let rest = kid.strip_prefix("https://")?;
    let (host, path) = rest.split_once('/')?;
    let host = host.split(':').next()?;
    let vault = [
        "vault.azure.net",
        "vault.usgovcloudapi.net",
        "vault.azure.cn",
    ]
    .iter()
    .find_map(|suffix| host.strip_suffix(suffix)?.strip_suffix('.'))?;
    let mut segs = path.trim_end_matches('/').split('/');
    if segs.next()? != "keys" {
        return None;
    }
    let key = segs.next().filter(|s| !s.is_empty())?.to_owned();
    let version = segs.next().filter(|s| !s.is_empty()).map(str::to_owned);
    if segs.next().is_some() {
        return None;
    }
    Some(KeyIdentifier {
        vault: vault.to_owned(),
        key,
        version,
    })
}

/// Key Vault key operations, with their access-policy permission and RBAC data action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvOp {
    /// get
    Get,
    /// list
    List,
    /// create
    Create,
    /// update
    Update,
    /// delete
    Delete,
    /// recover
    Recover,
    /// purge
    Purge,
    /// wrapKey
    WrapKey,
    /// unwrapKey
    UnwrapKey,
    /// encrypt
    Encrypt,
    /// decrypt
    Decrypt,
}

impl KvOp {
    /// The access-policy key permission.
    #[must_use]
    pub fn permission(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::List => "list",
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Recover => "recover",
            Self::Purge => "purge",
            Self::WrapKey => "wrapKey",
            Self::UnwrapKey => "unwrapKey",
            Self::Encrypt => "encrypt",
            Self::Decrypt => "decrypt",
        }
    }

    /// The RBAC data action.
    #[must_use]
    pub fn data_action(self) -> &'static str {
        match self {
            Self::Get | Self::List => "Microsoft.KeyVault/vaults/keys/read",
            Self::Create => "Microsoft.KeyVault/vaults/keys/create/action",
            Self::Update => "Microsoft.KeyVault/vaults/keys/update/action",
            Self::Delete => "Microsoft.KeyVault/vaults/keys/delete",
            Self::Recover => "Microsoft.KeyVault/vaults/keys/recover/action",
            Self::Purge => "Microsoft.KeyVault/vaults/keys/purge/action",
            Self::WrapKey => "Microsoft.KeyVault/vaults/keys/wrap/action",
            Self::UnwrapKey => "Microsoft.KeyVault/vaults/keys/unwrap/action",
            Self::Encrypt => "Microsoft.KeyVault/vaults/keys/encrypt/action",
            Self::Decrypt => "Microsoft.KeyVault/vaults/keys/decrypt/action",
        }
    }
}

/// Why Key Vault refused a data-plane call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvDenied {
    /// The firewall blocked the caller.
    Firewall,
    /// Access-policy mode: the permission is missing.
    Policy {
        /// The missing permission.
        permission: &'static str,
    },
    /// RBAC mode: no assignment grants the data action.
    Rbac {
        /// The data action.
        action: &'static str,
        /// The scope checked.
        scope: String,
    },
}

/// Whether a vault's firewall lets `client_ip` in (`None`: a trusted Azure service).
#[must_use]
pub fn firewall_allows(props: &Value, client_ip: Option<IpAddr>) -> bool {
    let acls = &props["networkAcls"];
    let public_disabled = props["publicNetworkAccess"]
        .as_str()
        .is_some_and(|p| p.eq_ignore_ascii_case("Disabled"));
    let deny = acls["defaultAction"]
        .as_str()
        .is_some_and(|a| a.eq_ignore_ascii_case("Deny"));
    if !deny && !public_disabled {
        return true;
    }
    let Some(ip) = client_ip else {
        // Trusted services pass when the bypass allows them (even with public access disabled).
        return acls["bypass"]
            .as_str()
            .is_some_and(|b| b.contains("AzureServices"));
    };
    if public_disabled {
        return false;
    }
    acls["ipRules"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|rule| {
            rule["value"]
                .as_str()
                .is_some_and(|cidr| ip_in_cidr(ip, cidr))
        })
}

fn ip_in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let (addr, bits) = match cidr.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (cidr, None),
    };
    match (ip, addr.parse::<IpAddr>()) {
        (IpAddr::V4(ip), Ok(IpAddr::V4(net))) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            (u32::from(ip) & mask) == (u32::from(net) & mask)
        }
        (IpAddr::V6(ip), Ok(IpAddr::V6(net))) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            (u128::from(ip) & mask) == (u128::from(net) & mask)
        }
        _ => false,
    }
}

/// Normalises a scope to a leading slash, no trailing slash.
#[must_use]
pub fn scope_norm(scope: &str) -> String {
    format!("/{}", scope.trim_matches('/'))
}

/// Whether an assignment at `assigned` applies to `target` (same or a descendant).
#[must_use]
pub fn scope_covers(assigned: &str, target: &str) -> bool {
    let a = key_of(&scope_norm(assigned));
    let t = key_of(&scope_norm(target));
    a == "/" || a.is_empty() || t == a || t.starts_with(&format!("{a}/"))
}

/// Whether `allowed` minus `denied` grants `action` (ARM wildcard semantics, case-insensitive).
#[must_use]
pub fn permits<S: AsRef<str>>(allowed: &[S], denied: &[S], action: &str) -> bool {
    allowed.iter().any(|p| wildcard(p.as_ref(), action))
        && !denied.iter().any(|p| wildcard(p.as_ref(), action))
}

fn wildcard(pattern: &str, text: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let t = text.to_ascii_lowercase();
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == t;
    }
    let mut rest = t.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(pos) = rest.find(part) {
            rest = &rest[pos + part.len()..];
        } else {
            return false;
        }
    }
    true
}

/// Puts a Media Services body into canonical shape (id, name, type; no read-only fields).
#[must_use]
pub fn normalise_media_body(id: &str, name: &str, mut body: Value) -> Value {
    body["id"] = json!(id);
    body["name"] = json!(name);
    body["type"] = json!("Microsoft.Media/mediaservices");
    if !body["properties"].is_object() {
        body["properties"] = json!({});
    }
    if let Some(props) = body["properties"].as_object_mut() {
        props.remove("provisioningState");
        props.remove("mediaServiceId");
        props.remove("privateEndpointConnections");
    }
    if let Some(kvp) = body
        .pointer_mut("/properties/encryption/keyVaultProperties")
        .and_then(Value::as_object_mut)
    {
        kvp.remove("currentKeyIdentifier");
    }
    if let Some(ident) = body.pointer_mut("/identity").and_then(Value::as_object_mut) {
        ident.remove("principalId");
        ident.remove("tenantId");
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_arm_semantics() {
        assert!(wildcard("*", "Microsoft.Media/mediaservices/read"));
        assert!(wildcard("*/read", "Microsoft.Media/mediaservices/read"));
        assert!(!wildcard("*/read", "Microsoft.Media/mediaservices/write"));
        assert!(wildcard(
            "Microsoft.Authorization/*/Write",
            "microsoft.authorization/roleAssignments/write"
        ));
        assert!(wildcard(
            "Microsoft.KeyVault/vaults/*",
            "Microsoft.KeyVault/vaults/keys/wrap/action"
        ));
        assert!(!permits(
            &["*"],
            &["Microsoft.Authorization/*/Write"],
            "Microsoft.Authorization/roleAssignments/write"
        ));
    }

    #[test]
    fn scopes_inherit_downwards_only() {
        assert!(scope_covers(
            "/subscriptions/S",
            "/subscriptions/s/resourceGroups/rg"
        ));
        assert!(!scope_covers(
            "/subscriptions/s/resourceGroups/rg",
            "/subscriptions/s"
        ));
        assert!(!scope_covers(
            "/subscriptions/s/resourceGroups/rg",
            "/subscriptions/s/resourceGroups/rg2"
        ));
    }

    #[test]
    fn key_identifiers_parse_with_and_without_version() {
        let k = parse_key_identifier("https://kv1.vault.azure.net/keys/cmk").expect("parses");
        assert_eq!(
            (k.vault.as_str(), k.key.as_str(), k.version),
            ("kv1", "cmk", None)
        );
        let k = parse_key_identifier("https://kv1.vault.azure.net/keys/cmk/abc").expect("parses");
        assert_eq!(k.version.as_deref(), Some("abc"));
        assert!(parse_key_identifier("https://kv1.example.com/keys/cmk").is_none());
        assert!(parse_key_identifier("https://kv1.vault.azure.net/secrets/cmk").is_none());
    }

    #[test]
    fn firewall_honours_ip_rules_and_trusted_services() {
        let props = json!({"networkAcls": {"defaultAction": "Deny", "bypass": "None", "ipRules": [{"value": "10.0.0.0/8"}]}});
        assert!(firewall_allows(
            &props,
            Some("10.1.2.3".parse().expect("ip"))
        ));
        assert!(!firewall_allows(
            &props,
            Some("127.0.0.1".parse().expect("ip"))
        ));
        assert!(!firewall_allows(&props, None));
        let props = json!({"networkAcls": {"defaultAction": "Deny", "bypass": "AzureServices"}});
        assert!(firewall_allows(&props, None));
    }
}
