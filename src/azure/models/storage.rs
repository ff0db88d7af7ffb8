//! Microsoft.Storage storage accounts (api-version 2025-08-01): the firewall fields that
//! decide whether Media Services can reach the account as a trusted service.

use serde::{Deserialize, Serialize};

/// A storage account (`StorageAccount`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageAccount {
    /// Resource id.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Region.
    #[serde(default)]
    pub location: Option<String>,
    /// Kind, e.g. `StorageV2`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Properties.
    #[serde(default)]
    pub properties: StorageAccountProperties,
}

/// `StorageAccountProperties`, as far as the operator reads them.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageAccountProperties {
    /// Firewall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_acls: Option<NetworkRuleSet>,
    /// Whether shared keys are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_shared_key_access: Option<bool>,
    /// `Enabled` / `Disabled` / `SecuredByPerimeter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_network_access: Option<String>,
    /// Provisioning state (read-only).
    #[serde(default, skip_serializing)]
    pub provisioning_state: Option<String>,
}

/// `NetworkRuleSet` of a storage account.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkRuleSet {
    /// Comma-separated `Logging`, `Metrics`, `AzureServices` or `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypass: Option<String>,
    /// Resource instance rules (trusted resource access).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_access_rules: Vec<ResourceAccessRule>,
    /// `Allow` / `Deny`.
    #[serde(default)]
    pub default_action: String,
    /// Virtual network rules (kept verbatim so a PATCH does not drop them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_network_rules: Vec<serde_json::Value>,
    /// IP rules (kept verbatim so a PATCH does not drop them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_rules: Vec<serde_json::Value>,
}

impl NetworkRuleSet {
    /// Whether `AzureServices` is in the bypass list.
    #[must_use]
    pub fn bypasses_azure_services(&self) -> bool {
        self.bypass.as_deref().is_some_and(|b| {
            b.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("AzureServices"))
        })
    }

    /// Whether the firewall lets `resource_id` in: default `Allow`, or a resource access rule
    /// naming it (compared as ARM does).
    #[must_use]
    pub fn admits_resource(&self, resource_id: &str) -> bool {
        self.default_action.eq_ignore_ascii_case("Allow")
            || self
                .resource_access_rules
                .iter()
                .any(|r| crate::azure::resource_id::ids_equal(&r.resource_id, resource_id))
    }
}

/// `ResourceAccessRule`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAccessRule {
    /// Tenant of the resource.
    #[serde(default)]
    pub tenant_id: String,
    /// Resource id (may contain wildcards in the name).
    #[serde(default)]
    pub resource_id: String,
}

/// PATCH body of `StorageAccounts_Update`, limited to the firewall.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct StorageAccountNetworkUpdate {
    /// Properties.
    pub properties: StorageAccountNetworkUpdateProperties,
}

/// Properties of [`StorageAccountNetworkUpdate`].
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StorageAccountNetworkUpdateProperties {
    /// The full firewall to set.
    pub network_acls: NetworkRuleSet,
}
