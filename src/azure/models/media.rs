//! Microsoft.Media `mediaservices` (api-version 2023-01-01): identity, storage accounts and
//! account encryption. Only the fields the operator reads or writes.

use serde::{Deserialize, Serialize};

use super::ResourceIdentityBlock;

/// A Media Services account (`MediaService`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MediaAccount {
    /// Resource id (read-only).
    #[serde(default, skip_serializing)]
    pub id: Option<String>,
    /// Account name (read-only).
    #[serde(default, skip_serializing)]
    pub name: Option<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Managed identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<ResourceIdentityBlock>,
    /// Account properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<MediaAccountProperties>,
    /// Resource tags (the operator's ownership claim is one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<std::collections::BTreeMap<String, String>>,
}

/// `MediaServiceProperties`, the part the operator manages. Also the PATCH body's properties.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MediaAccountProperties {
    /// Storage accounts attached to the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_accounts: Option<Vec<MediaStorageAccount>>,
    /// `System` (keys) or `ManagedIdentity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_authentication: Option<String>,
    /// Account encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<AccountEncryption>,
    /// `Enabled` / `Disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_network_access: Option<String>,
    /// `Succeeded`, `InProgress`, `Failed` (read-only).
    #[serde(default, skip_serializing)]
    pub provisioning_state: Option<String>,
}

/// A storage account attached to a Media Services account (`StorageAccount`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MediaStorageAccount {
    /// Storage account resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `Primary` / `Secondary`.
    #[serde(rename = "type")]
    pub account_type: String,
    /// Identity used to reach the storage account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<ResourceIdentity>,
    /// Status as Media Services sees it (read-only).
    #[serde(default, skip_serializing)]
    pub status: Option<String>,
}

/// `ResourceIdentity`: which identity Media Services uses against another resource.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceIdentity {
    /// User-assigned identity resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_assigned_identity: Option<String>,
    /// Use the system-assigned identity instead.
    #[serde(default)]
    pub use_system_assigned_identity: bool,
}

/// `AccountEncryption`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccountEncryption {
    /// `SystemKey` / `CustomerKey`. Required by the spec; read as `SystemKey` (ARM's default)
    /// when an answer omits it.
    #[serde(rename = "type", default = "system_key")]
    pub key_type: String,
    /// Key Vault key, for `CustomerKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_vault_properties: Option<KeyVaultProperties>,
    /// Identity used to reach the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<ResourceIdentity>,
    /// Encryption status (read-only).
    #[serde(default, skip_serializing)]
    pub status: Option<String>,
}

fn system_key() -> String {
    "SystemKey".to_owned()
}

/// `KeyVaultProperties` of a Media Services account.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KeyVaultProperties {
    /// Key URL, versioned or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_identifier: Option<String>,
    /// Key version in use (read-only).
    #[serde(default, skip_serializing)]
    pub current_key_identifier: Option<String>,
}

/// PATCH body of `Mediaservices_Update` (`MediaServiceUpdate`): only what is set is sent.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MediaAccountUpdate {
    /// New identity block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<ResourceIdentityBlock>,
    /// Properties to change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub properties: Option<MediaAccountProperties>,
    /// The whole tag set (an ARM PATCH replaces tags as a whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<std::collections::BTreeMap<String, String>>,
}
