//! Microsoft.KeyVault vaults, management plane (api-version 2025-05-01): the properties that
//! decide whether a customer-managed key is usable, and access policies.

use serde::{Deserialize, Serialize};

/// A vault (`Vault`).
pub type Vault = super::TrackedResource<VaultProperties>;

/// `VaultProperties`, as far as the operator reads them.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VaultProperties {
    /// Tenant of the vault.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Data-plane URL.
    #[serde(default)]
    pub vault_uri: Option<String>,
    /// Access policies (ignored by Azure when RBAC authorization is on).
    #[serde(default)]
    pub access_policies: Vec<AccessPolicyEntry>,
    /// Soft delete (always on for new vaults).
    #[serde(default)]
    pub enable_soft_delete: Option<bool>,
    /// Soft-delete retention.
    #[serde(default)]
    pub soft_delete_retention_in_days: Option<i32>,
    /// Purge protection (required for customer-managed keys).
    #[serde(default)]
    pub enable_purge_protection: Option<bool>,
    /// RBAC authorization instead of access policies.
    #[serde(default)]
    pub enable_rbac_authorization: Option<bool>,
    /// `Enabled` / `Disabled`.
    #[serde(default)]
    pub public_network_access: Option<String>,
    /// Firewall.
    #[serde(default)]
    pub network_acls: Option<VaultNetworkRuleSet>,
    /// Provisioning state.
    #[serde(default)]
    pub provisioning_state: Option<String>,
}

/// A soft-deleted vault (`DeletedVault`), kept for its retention period and recoverable.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeletedVault {
    /// Id of the deleted-vault resource.
    #[serde(default)]
    pub id: Option<String>,
    /// Vault name.
    #[serde(default)]
    pub name: Option<String>,
    /// Properties.
    #[serde(default)]
    pub properties: DeletedVaultProperties,
}

/// `DeletedVaultProperties`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeletedVaultProperties {
    /// The original vault's resource id.
    #[serde(default)]
    pub vault_id: Option<String>,
    /// Region.
    #[serde(default)]
    pub location: Option<String>,
    /// When it was deleted (RFC 3339).
    #[serde(default)]
    pub deletion_date: Option<String>,
    /// When it will be purged (RFC 3339).
    #[serde(default)]
    pub scheduled_purge_date: Option<String>,
    /// Whether purge protection was on.
    #[serde(default)]
    pub purge_protection_enabled: Option<bool>,
}

/// `NetworkRuleSet` of a vault.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VaultNetworkRuleSet {
    /// `AzureServices` / `None`.
    #[serde(default)]
    pub bypass: Option<String>,
    /// `Allow` / `Deny`.
    #[serde(default)]
    pub default_action: Option<String>,
}

/// `AccessPolicyEntry`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicyEntry {
    /// Tenant of the principal.
    pub tenant_id: String,
    /// Principal (object) id.
    pub object_id: String,
    /// Application id for compound identities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    /// Granted permissions.
    #[serde(default)]
    pub permissions: AccessPolicyPermissions,
}

/// `Permissions` of an access policy entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicyPermissions {
    /// Key permissions, e.g. `get`, `wrapKey`, `unwrapKey`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Secret permissions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Certificate permissions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
}

impl AccessPolicyEntry {
    /// Whether this entry grants every key permission in `needed` (case-insensitive, `all`
    /// counts as everything).
    #[must_use]
    pub fn grants_keys(&self, needed: &[&str]) -> bool {
        needed.iter().all(|n| {
            self.permissions
                .keys
                .iter()
                .any(|k| k.eq_ignore_ascii_case(n) || k.eq_ignore_ascii_case("all"))
        })
    }
}

/// Key permissions Media Services needs on a customer-managed key.
pub const CMK_KEY_PERMISSIONS: &[&str] = &["get", "wrapKey", "unwrapKey"];

impl AccessPolicyEntry {
    /// The entry that gives `object_id` exactly [`CMK_KEY_PERMISSIONS`] on keys: what the
    /// operator adds for an encryption identity, and removes again on cleanup.
    #[must_use]
    pub fn customer_key(tenant_id: &str, object_id: &str) -> Self {
        Self {
            tenant_id: tenant_id.to_owned(),
            object_id: object_id.to_owned(),
            application_id: None,
            permissions: AccessPolicyPermissions {
                keys: CMK_KEY_PERMISSIONS
                    .iter()
                    .map(|p| (*p).to_owned())
                    .collect(),
                ..AccessPolicyPermissions::default()
            },
        }
    }
}

/// Body of `Vaults_UpdateAccessPolicy` (`VaultAccessPolicyParameters`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct VaultAccessPolicyParameters {
    /// Properties.
    pub properties: VaultAccessPolicyProperties,
}

/// `VaultAccessPolicyProperties`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VaultAccessPolicyProperties {
    /// Entries to add, replace or remove.
    pub access_policies: Vec<AccessPolicyEntry>,
}

/// `operationKind` of `Vaults_UpdateAccessPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessPolicyUpdateKind {
    /// Add permissions to existing entries (or add entries).
    Add,
    /// Replace the entries for these principals.
    Replace,
    /// Remove permissions.
    Remove,
}

impl AccessPolicyUpdateKind {
    /// Path segment.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Replace => "replace",
            Self::Remove => "remove",
        }
    }
}
