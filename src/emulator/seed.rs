//! The YAML seed that describes an emulated Azure world.
//!
//! A seed names the tenant, subscriptions and resource groups, the service principals (with
//! client secrets and federated credentials), user-assigned identities, storage accounts, vaults
//! with keys, Media Services accounts and role assignments present at start. It is plain data:
//! turning it into live state (generating keys, issuing principals) is `state::World::from_seed`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The tenant id used when a seed names none.
pub const DEFAULT_TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The issuer of the emulator's own "projected service account tokens" when a seed names none.
pub const DEFAULT_OIDC_ISSUER: &str = "https://oidc.emulator.invalid/cluster";
/// The audience Entra expects in a federated client assertion by default.
pub const DEFAULT_ASSERTION_AUDIENCE: &str = "api://AzureADTokenExchange";

/// A whole emulated world.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    /// The Entra tenant; defaults to [`DEFAULT_TENANT_ID`].
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The OIDC issuer the emulator signs service account tokens as; defaults to
    /// [`DEFAULT_OIDC_ISSUER`].
    #[serde(default)]
    pub oidc_issuer: Option<String>,
    /// Subscriptions and their resource groups.
    #[serde(default)]
    pub subscriptions: Vec<SeedSubscription>,
    /// Applications/service principals that can get tokens.
    #[serde(default)]
    pub service_principals: Vec<SeedServicePrincipal>,
    /// `Microsoft.ManagedIdentity/userAssignedIdentities`.
    #[serde(default)]
    pub user_assigned_identities: Vec<SeedIdentity>,
    /// `Microsoft.Storage/storageAccounts`.
    #[serde(default)]
    pub storage_accounts: Vec<SeedResource>,
    /// `Microsoft.KeyVault/vaults` with their keys.
    #[serde(default)]
    pub vaults: Vec<SeedVault>,
    /// `Microsoft.Media/mediaservices`.
    #[serde(default)]
    pub media_accounts: Vec<SeedResource>,
    /// Custom role definitions (built-in roles are always present).
    #[serde(default)]
    pub role_definitions: Vec<SeedRoleDefinition>,
    /// Role assignments present at start.
    #[serde(default)]
    pub role_assignments: Vec<SeedRoleAssignment>,
    /// The managed-identity endpoint (App Service protocol) served on `localhost`.
    #[serde(default)]
    pub managed_identity: Option<SeedManagedIdentity>,
}

/// A subscription.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedSubscription {
    /// The subscription id (a GUID).
    pub id: String,
    /// Display name; defaults to the id.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Resource groups in it.
    #[serde(default)]
    pub resource_groups: Vec<SeedResourceGroup>,
}

/// A resource group.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedResourceGroup {
    /// Its name.
    pub name: String,
    /// Its location, such as `westeurope`.
    pub location: String,
}

/// A service principal (an application's identity in the tenant).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedServicePrincipal {
    /// A name tests use to find it (also the display name).
    pub name: String,
    /// The application (client) id; generated when absent.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The service principal's object id (`oid` in tokens); generated when absent.
    #[serde(default)]
    pub object_id: Option<String>,
    /// Accepted client secrets.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Federated identity credentials (workload identity).
    #[serde(default)]
    pub federated_credentials: Vec<SeedFederatedCredential>,
}

/// A federated identity credential on an application.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedFederatedCredential {
    /// The issuer the assertion must carry; defaults to the emulator's OIDC issuer.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The subject, e.g. `system:serviceaccount:ns:name`.
    pub subject: String,
    /// Accepted audiences; defaults to `api://AzureADTokenExchange`.
    #[serde(default)]
    pub audiences: Vec<String>,
}

/// A user-assigned managed identity.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedIdentity {
    /// Full ARM resource id.
    pub id: String,
    /// Location; defaults to the resource group's.
    #[serde(default)]
    pub location: Option<String>,
    /// Principal (object) id; generated when absent.
    #[serde(default)]
    pub principal_id: Option<String>,
    /// Client id; generated when absent.
    #[serde(default)]
    pub client_id: Option<String>,
}

/// A resource given as its ARM JSON (`identity`, `properties`, `tags`, `sku`, `kind`...).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedResource {
    /// Full ARM resource id.
    pub id: String,
    /// Location; defaults to the resource group's.
    #[serde(default)]
    pub location: Option<String>,
    /// The rest of the resource body, as a PUT would carry it.
    #[serde(default)]
    pub body: Option<Value>,
}

/// A key vault and its keys.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedVault {
    /// Full ARM resource id; the last segment is the vault name (and host name).
    pub id: String,
    /// Location; defaults to the resource group's.
    #[serde(default)]
    pub location: Option<String>,
    /// `enableSoftDelete` (default true, as Azure now enforces).
    #[serde(default = "yes")]
    pub enable_soft_delete: bool,
    /// `enablePurgeProtection` (default false).
    #[serde(default)]
    pub enable_purge_protection: bool,
    /// `enableRbacAuthorization` (default false: access-policy mode).
    #[serde(default)]
    pub enable_rbac_authorization: bool,
    /// Access policies (ARM `AccessPolicyEntry` JSON; `tenantId` defaults to the tenant, and
    /// `objectId` may name a seeded principal or identity).
    #[serde(default)]
    pub access_policies: Vec<Value>,
    /// `networkAcls` (ARM `NetworkRuleSet` JSON).
    #[serde(default)]
    pub network_acls: Option<Value>,
    /// Keys to create at start.
    #[serde(default)]
    pub keys: Vec<SeedKey>,
}

fn yes() -> bool {
    true
}

/// A key in a seeded vault.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedKey {
    /// Key name.
    pub name: String,
    /// `RSA`, `RSA-HSM`, `EC` or `EC-HSM` (default `RSA`).
    #[serde(default)]
    pub kty: Option<String>,
    /// RSA size (default 2048).
    #[serde(default)]
    pub key_size: Option<u32>,
    /// EC curve (default `P-256`).
    #[serde(default)]
    pub crv: Option<String>,
    /// How many versions to create (default 1, or as many as `versionIds`).
    #[serde(default)]
    pub versions: Option<u32>,
    /// Fixed version ids for the first versions, oldest first (32 hex characters each).
    #[serde(default)]
    pub version_ids: Vec<String>,
}

impl SeedKey {
    /// How many versions the seed creates: `versions` (at least 1), or as many as
    /// `versionIds` when that is more.
    #[must_use]
    pub fn version_count(&self) -> usize {
        (self.versions.unwrap_or(1).max(1) as usize).max(self.version_ids.len())
    }
}

/// A custom role definition.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedRoleDefinition {
    /// The role definition GUID.
    pub id: String,
    /// The role name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Control-plane actions.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Excluded control-plane actions.
    #[serde(default)]
    pub not_actions: Vec<String>,
    /// Data-plane actions.
    #[serde(default)]
    pub data_actions: Vec<String>,
    /// Excluded data-plane actions.
    #[serde(default)]
    pub not_data_actions: Vec<String>,
}

/// A role assignment at start.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedRoleAssignment {
    /// The scope (`/subscriptions/...`).
    pub scope: String,
    /// A built-in role's name (`Contributor`) or GUID.
    pub role: String,
    /// A seeded service principal's name, a user-assigned identity's resource id, a Media
    /// Services account's resource id (its system identity), or an object id.
    pub principal: String,
    /// The assignment's GUID name; generated when absent.
    #[serde(default)]
    pub name: Option<String>,
}

/// The managed-identity endpoint's settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedManagedIdentity {
    /// The `X-IDENTITY-HEADER` secret clients must send.
    pub header: String,
    /// The identity used when a request names none: a user-assigned identity's resource id or
    /// a service principal's name.
    pub default: String,
}

impl Seed {
    /// Parses a seed from YAML.
    pub fn from_yaml(text: &str) -> Result<Self, serde_yaml_ng::Error> {
        serde_yaml_ng::from_str(text)
    }
}
