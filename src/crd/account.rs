//! `MediaServicesAccount` (`ams-security.io/v1alpha1`): the declared security state of one Azure
//! Media Services account: managed identity, trusted storage, customer-managed key, and role
//! grants for other services' managed identities.
//!
//! This module is the API's shape only: field docs (they become `kubectl explain` text), schema
//! constraints and CEL rules. The same rules are enforced in Rust by `reconcile::validate`,
//! because apiservers older than 1.25 ignore CEL. It does no I/O.

use std::fmt::Write as _;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::patterns;
use crate::azure::operation::Operation;

/// The desired security state of an Azure Media Services account.
///
/// The operator reconciles the account's managed identity, its storage accounts and their role
/// grants, its encryption key and the role grants of other services' identities, continuously,
/// and reports drift and customer-key access loss in `status.conditions`.
#[derive(CustomResource, Clone, Debug, Deserialize, KubeSchema, PartialEq, Serialize)]
#[kube(
    group = "ams-security.io",
    version = "v1alpha1",
    kind = "MediaServicesAccount",
    plural = "mediaservicesaccounts",
    shortname = "msa",
    category = "azure",
    doc = "The declared security state of one Azure Media Services account: managed identity, trusted storage, customer-managed key and access grants.",
    namespaced,
    status = "MediaServicesAccountStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","description":"Whether the account matches the spec"}"#,
    printcolumn = r#"{"name":"KeyAccess","type":"string","jsonPath":".status.conditions[?(@.type==\"CustomerKeyInaccessible\")].reason","description":"Customer-key access: KeyAccessible, SystemKey, or the cause of access loss"}"#,
    printcolumn = r#"{"name":"KeyVersion","type":"string","jsonPath":".status.encryption.keyVersion","description":"Key version the account is encrypted with"}"#,
    printcolumn = r#"{"name":"Account","type":"string","priority":1,"jsonPath":".spec.account.name","description":"Media Services account name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new(
        "!has(self.storage) || self.storage.authentication != 'ManagedIdentity' || has(self.identity)"
    ).message("identity is required when storage.authentication is ManagedIdentity").field_path(".identity"),
    validation = Rule::new(
        "!has(self.encryption) || self.encryption.type != 'CustomerKey' || has(self.identity)"
    ).message("identity is required when encryption.type is CustomerKey").field_path(".identity"),
    validation = Rule::new(
        "!has(self.storage) || !has(self.identity) || self.storage.accounts.all(a, !has(a.identity) || \
         has(a.identity.userAssignedIdentity) || self.identity.type.startsWith('SystemAssigned'))"
    ).message("storage.accounts[].identity.useSystemAssignedIdentity needs identity.type SystemAssigned or SystemAssigned,UserAssigned").field_path(".storage.accounts"),
    validation = Rule::new(
        "!has(self.storage) || self.storage.accounts.all(a, !has(a.identity) || !has(a.identity.userAssignedIdentity) || \
         (has(self.identity) && has(self.identity.userAssignedIdentities) && \
         self.identity.userAssignedIdentities.exists(u, u.lowerAscii() == a.identity.userAssignedIdentity.lowerAscii())))"
    ).message("storage.accounts[].identity.userAssignedIdentity must be listed in identity.userAssignedIdentities").field_path(".storage.accounts"),
    validation = Rule::new(
        "!has(self.encryption) || self.encryption.type != 'CustomerKey' || !has(self.identity) || \
         (has(self.encryption.identity) && has(self.encryption.identity.userAssignedIdentity)) || \
         self.identity.type.startsWith('SystemAssigned')"
    ).message("encryption uses the system-assigned identity unless encryption.identity.userAssignedIdentity is set, so identity.type must include SystemAssigned").field_path(".encryption.identity"),
    validation = Rule::new(
        "!has(self.encryption) || !has(self.encryption.identity) || !has(self.encryption.identity.userAssignedIdentity) || \
         (has(self.identity) && has(self.identity.userAssignedIdentities) && \
         self.identity.userAssignedIdentities.exists(u, u.lowerAscii() == self.encryption.identity.userAssignedIdentity.lowerAscii()))"
    ).message("encryption.identity.userAssignedIdentity must be listed in identity.userAssignedIdentities").field_path(".encryption.identity"),
)]
#[serde(rename_all = "camelCase")]
pub struct MediaServicesAccountSpec {
    /// The Azure Media Services account this resource manages. Immutable in practice: pointing
    /// an existing resource at another account is treated as a new account.
    pub account: AccountReference,

    /// The account's managed identity. Omit to leave the identity as it is in Azure; required
    /// when storage uses managed-identity authentication or encryption uses a customer key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentitySpec>,

    /// Storage accounts the Media Services account uses, and how it authenticates to them.
    /// Omit to leave storage as it is in Azure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,

    /// How the account key is encrypted: Microsoft-managed (`SystemKey`) or with a
    /// customer-managed key in Key Vault (`CustomerKey`). Omit to leave encryption as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSpec>,

    /// Managed identities of other services (VMs, Function apps, ...) to grant a role on the
    /// account. The operator owns exactly these grants: a grant removed from this list is
    /// revoked in Azure; role assignments made outside the operator are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(
        validation = Rule::new(unique_access_grants_rule()).message(
            "each access grant must be unique: principalId and identityResourceId compare in any case, roleDefinitionId by its GUID"
        ),
        validation = Rule::new(role_and_definition_id_differ_rule()).message(
            "each access grant must be unique: a grant by role and one by that role's roleDefinitionId give the same role to the same principal"
        ),
    )]
    pub access_grants: Vec<AccessGrant>,

    /// How often the operator checks that the account's identity can still use the customer key,
    /// and looks for drift in Azure. A Go-style duration between 10s and 24h, e.g. `30s`, `5m`.
    #[serde(default)]
    #[schemars(with = "String", pattern(patterns::DURATION), length(max = 32))]
    #[x_kube(validation = Rule::new(
        "!self.matches('^([0-9]{1,5}(\\\\.[0-9]{1,9})?(ms|s|m|h)){1,4}$') || (duration(self) >= duration('10s') && duration(self) <= duration('24h'))"
    ).message("keyAccessCheckInterval must be between 10s and 24h"))]
    pub key_access_check_interval: super::interval::CheckInterval,

    /// What deleting this resource does in Azure. `Retain` (default): nothing but removing this
    /// resource's ownership claim tag; the account keeps its identity, grants and key.
    /// `RevokeGrants`: remove the claim and the role assignments and key permissions the
    /// operator made, and keep the account. `Delete`: revoke the grants, then delete the Media
    /// Services account itself (never one another owner claims).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Pause reconciliation: while true the operator makes no Azure calls for this resource.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,

    /// A Secret in this resource's namespace holding a service principal's credentials
    /// (`tenantId`, `clientId`, `clientSecret`) to use for this account. Omit to use the
    /// operator's own identity (workload identity or managed identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretReference>,
}

/// Default key-access check interval, as users write it.
pub const DEFAULT_KEY_ACCESS_CHECK_INTERVAL: &str = super::interval::DEFAULT;

/// Which Azure Media Services account.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountReference {
    /// The Azure subscription id (a UUID) that holds the account.
    #[schemars(pattern(patterns::SUBSCRIPTION_ID), length(max = 36))]
    pub subscription_id: String,
    /// The resource group that holds the account.
    #[schemars(pattern(patterns::RESOURCE_GROUP), length(min = 1, max = 90))]
    pub resource_group: String,
    /// The account name: 3-24 lowercase letters and digits.
    #[schemars(pattern(patterns::ACCOUNT_NAME), length(min = 3, max = 24))]
    pub name: String,
    /// The account's Azure region, in canonical form (e.g. `westeurope`). A customer key's vault
    /// must be in the same region.
    #[schemars(pattern(patterns::LOCATION), length(max = 40))]
    pub location: String,
}

/// The account's managed identity.
#[derive(Clone, Debug, Deserialize, KubeSchema, PartialEq, Eq, Serialize)]
#[x_kube(validation = Rule::new(
    "self.type.contains('UserAssigned') == (has(self.userAssignedIdentities) && size(self.userAssignedIdentities) > 0)"
).message("userAssignedIdentities must list at least one identity when type includes UserAssigned, and must be empty otherwise").field_path(".userAssignedIdentities"))]
#[serde(rename_all = "camelCase")]
pub struct IdentitySpec {
    /// `None`, `SystemAssigned`, `UserAssigned`, or `SystemAssigned,UserAssigned` (no space).
    #[serde(rename = "type")]
    pub type_: IdentityType,
    /// ARM ids of user-assigned identities to attach; required when `type` includes
    /// `UserAssigned`. Identities attached in Azure but not listed here are detached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(pattern(patterns::USER_ASSIGNED_IDENTITY_ID), length(max = patterns::MAX_ARM_ID_LENGTH)))]
    #[x_kube(validation = Rule::new("self.all(x, self.exists_one(y, y.lowerAscii() == x.lowerAscii()))").message("userAssignedIdentities must not repeat an identity"))]
    pub user_assigned_identities: Vec<String>,
}

/// Managed identity types, as Azure spells them.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq, Serialize)]
pub enum IdentityType {
    /// No managed identity.
    None,
    /// A system-assigned identity, created and deleted with the account.
    SystemAssigned,
    /// One or more user-assigned identities.
    UserAssigned,
    /// Both a system-assigned and user-assigned identities.
    #[serde(rename = "SystemAssigned,UserAssigned")]
    SystemAssignedUserAssigned,
}

impl IdentityType {
    /// Whether the account has a system-assigned identity.
    #[must_use]
    pub fn has_system_assigned(self) -> bool {
        matches!(
            self,
            Self::SystemAssigned | Self::SystemAssignedUserAssigned
        )
    }

    /// Whether the account has user-assigned identities.
    #[must_use]
    pub fn has_user_assigned(self) -> bool {
        matches!(self, Self::UserAssigned | Self::SystemAssignedUserAssigned)
    }
}

/// Storage accounts and the way the Media Services account authenticates to them.
#[derive(Clone, Debug, Deserialize, KubeSchema, PartialEq, Eq, Serialize)]
#[x_kube(
    validation = Rule::new("size(self.accounts) == 0 || self.accounts.exists_one(a, a.type == 'Primary')")
        .message("exactly one storage account must have type Primary").field_path(".accounts"),
    validation = Rule::new("self.authentication != 'ManagedIdentity' || self.accounts.all(a, has(a.identity))")
        .message("every storage account needs an identity when authentication is ManagedIdentity").field_path(".accounts"),
    validation = Rule::new("self.authentication == 'ManagedIdentity' || self.accounts.all(a, !has(a.identity))")
        .message("storage account identities apply only when authentication is ManagedIdentity").field_path(".accounts"),
)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// `System` (default): the service uses the storage account keys. `ManagedIdentity`: the
    /// service reaches storage with a managed identity ("trusted storage").
    #[serde(default)]
    pub authentication: StorageAuthentication,
    /// With `ManagedIdentity` authentication, assign each storage account's identity the
    /// Storage Blob Data Contributor role on that storage account (generic Contributor is not
    /// enough). Set false when grants are managed elsewhere; the operator then only checks them.
    #[serde(default = "default_true")]
    pub grant_access: bool,
    /// The storage accounts, exactly one of them `Primary`. Each must be in the account's
    /// subscription.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(validation = Rule::new("self.all(x, self.exists_one(y, y.id.lowerAscii() == x.id.lowerAscii()))").message("storage accounts must not repeat an id"))]
    pub accounts: Vec<StorageAccountSpec>,
}

fn default_true() -> bool {
    true
}

/// How the Media Services account authenticates to its storage accounts.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq, Serialize)]
pub enum StorageAuthentication {
    /// Storage account keys.
    #[default]
    System,
    /// A managed identity of the account.
    ManagedIdentity,
}

/// One storage account attached to the Media Services account.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageAccountSpec {
    /// ARM id of the storage account (`Microsoft.Storage/storageAccounts`).
    #[schemars(pattern(patterns::STORAGE_ACCOUNT_ID), length(max = patterns::MAX_ARM_ID_LENGTH))]
    pub id: String,
    /// `Primary` or `Secondary`.
    #[serde(rename = "type")]
    pub type_: StorageAccountType,
    /// Which of the account's identities reaches this storage account; required with
    /// `ManagedIdentity` authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<ResourceIdentity>,
}

/// The role of a storage account.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq, Serialize)]
pub enum StorageAccountType {
    /// The primary storage account; exactly one.
    Primary,
    /// An additional storage account.
    Secondary,
}

/// Which of the account's identities to use: the system-assigned one, or a user-assigned one.
#[derive(Clone, Debug, Deserialize, KubeSchema, PartialEq, Eq, Serialize)]
#[x_kube(validation = Rule::new(
    "(has(self.useSystemAssignedIdentity) && self.useSystemAssignedIdentity) != has(self.userAssignedIdentity)"
).message("set exactly one of useSystemAssignedIdentity: true or userAssignedIdentity"))]
#[serde(rename_all = "camelCase")]
pub struct ResourceIdentity {
    /// Use the account's system-assigned identity.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_system_assigned_identity: bool,
    /// ARM id of one of the account's user-assigned identities (listed in
    /// `identity.userAssignedIdentities`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::USER_ASSIGNED_IDENTITY_ID), length(max = patterns::MAX_ARM_ID_LENGTH))]
    pub user_assigned_identity: Option<String>,
}

/// Encryption of the account key.
#[derive(Clone, Debug, Deserialize, KubeSchema, PartialEq, Eq, Serialize)]
#[x_kube(
    validation = Rule::new("self.type != 'CustomerKey' || has(self.keyIdentifier)")
        .message("keyIdentifier is required when type is CustomerKey").field_path(".keyIdentifier"),
    validation = Rule::new("self.type == 'CustomerKey' || (!has(self.keyIdentifier) && !has(self.identity))")
        .message("keyIdentifier and identity apply only when type is CustomerKey"),
)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionSpec {
    /// `SystemKey` (Microsoft-managed) or `CustomerKey` (a key in your Key Vault).
    #[serde(rename = "type")]
    pub type_: EncryptionType,
    /// The Key Vault key: `https://<vault>.vault.azure.net/keys/<name>[/<version>]`. Without a
    /// version the operator tracks the key's latest enabled version, and each new version
    /// re-encrypts the account key. The key must be RSA 2048, 3072 or 4096 (software or HSM),
    /// in a vault in the account's region with soft-delete and purge protection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::KEY_IDENTIFIER), length(max = 1024))]
    pub key_identifier: Option<String>,
    /// The identity the service uses to reach the key; default: the system-assigned identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<ResourceIdentity>,
    /// Grant that identity `get`, `wrapKey` and `unwrapKey` on the key (an access policy, or the
    /// Key Vault Crypto Service Encryption User role on the key when the vault uses RBAC). Set
    /// false when the grant is managed elsewhere; the operator then only checks it.
    #[serde(default = "default_true")]
    pub grant_access: bool,
}

/// Who holds the key that encrypts the account key.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq, Serialize)]
pub enum EncryptionType {
    /// A Microsoft-managed key.
    SystemKey,
    /// A customer-managed key in Key Vault.
    CustomerKey,
}

/// A role on the account for another service's managed identity.
#[derive(Clone, Debug, Deserialize, KubeSchema, PartialEq, Eq, Serialize)]
#[x_kube(
    validation = Rule::new("has(self.principalId) != has(self.identityResourceId)")
        .message("set exactly one of principalId or identityResourceId"),
    validation = Rule::new("has(self.role) != has(self.roleDefinitionId)")
        .message("set exactly one of role or roleDefinitionId"),
)]
#[serde(rename_all = "camelCase")]
pub struct AccessGrant {
    /// The object (principal) id of the identity, e.g. a VM's or Function app's
    /// system-assigned identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::PRINCIPAL_ID), length(max = 36))]
    pub principal_id: Option<String>,
    /// The ARM id of a user-assigned identity; the operator resolves its principal id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::USER_ASSIGNED_IDENTITY_ID), length(max = patterns::MAX_ARM_ID_LENGTH))]
    pub identity_resource_id: Option<String>,
    /// A built-in role by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = super::remove_null_from_enum)]
    pub role: Option<BuiltInRole>,
    /// Any role definition, by GUID or ARM id, for roles not in `role`'s list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::ROLE_DEFINITION_ID), length(max = patterns::MAX_ARM_ID_LENGTH))]
    pub role_definition_id: Option<String>,
}

impl AccessGrant {
    /// Who the grant is for, as Azure compares it: the object id or the identity's ARM id,
    /// lower-cased (both are case-insensitive in Azure). `None` when neither is set. The two
    /// forms never collide: one is a UUID, the other an ARM id.
    #[must_use]
    pub fn principal_key(&self) -> Option<String> {
        self.principal_id
            .as_deref()
            .or(self.identity_resource_id.as_deref())
            .map(str::to_ascii_lowercase)
    }

    /// The granted role definition's GUID, lower-cased, however the grant names it: a built-in
    /// `role`, or `roleDefinitionId` as a GUID or an ARM id (its last path segment). `None` when
    /// neither is set.
    #[must_use]
    pub fn role_definition_guid(&self) -> Option<String> {
        match (self.role, self.role_definition_id.as_deref()) {
            (Some(role), _) => Some(role.definition_guid().to_owned()),
            (None, Some(id)) => Some(id.rsplit('/').next().unwrap_or(id).to_ascii_lowercase()),
            (None, None) => None,
        }
    }
}

/// CEL for a grant's principal as [`AccessGrant::principal_key`] compares it.
fn cel_principal(x: &str) -> String {
    format!(
        "(has({x}.principalId) ? {x}.principalId : has({x}.identityResourceId) ? {x}.identityResourceId : '').lowerAscii()"
    )
}

/// CEL guard: the grant names a principal and a role, so it has a key to compare.
fn cel_complete(x: &str) -> String {
    format!(
        "(has({x}.principalId) || has({x}.identityResourceId)) && (has({x}.role) || has({x}.roleDefinitionId))"
    )
}

/// The first CEL twin of [`AccessGrant::principal_key`] and
/// [`AccessGrant::role_definition_guid`]: no two complete grants name the same principal and the
/// same role in the same form (`role`, or `roleDefinitionId` as any form of one GUID).
///
/// A valid `roleDefinitionId` ends with its GUID (see [`patterns::ROLE_DEFINITION_ID`]), so its
/// last 36 characters are its last path segment; a shorter one, which the pattern rejects
/// anyway, is compared whole so that the rule never fails to evaluate. NB: the pairwise
/// comparison walks the list twice (`maxItems` 64), so the body is kept to `has`, ternaries and
/// one `substring`; `tests/api_rules.rs` checks the cost estimate.
fn unique_access_grants_rule() -> String {
    fn role(x: &str) -> String {
        let id = format!("{x}.roleDefinitionId");
        format!(
            "(has({x}.role) ? {x}.role : has({id}) ? \
             (size({id}) < 36 ? {id} : {id}.substring(size({id}) - 36)).lowerAscii() : '')"
        )
    }
    format!(
        "self.all(g, !({}) || self.exists_one(h, {} == {} && {} == {}))",
        cel_complete("g"),
        cel_principal("h"),
        cel_principal("g"),
        role("h"),
        role("g"),
    )
}

/// The second CEL twin: no grant by `role` has a twin by that role's `roleDefinitionId` for the
/// same principal. The name-to-GUID chain is built from [`BuiltInRole::ALL`], so it cannot fall
/// out of step with [`BuiltInRole::definition_guid`].
fn role_and_definition_id_differ_rule() -> String {
    let guid = BuiltInRole::ALL.iter().fold(String::new(), |mut chain, r| {
        let _ = write!(
            chain,
            "g.role == '{}' ? '{}' : ",
            r.name(),
            r.definition_guid()
        );
        chain
    });
    format!(
        "self.all(g, !({}) || !has(g.role) || !self.exists(h, !has(h.role) && has(h.roleDefinitionId) && \
         {} == {} && h.roleDefinitionId.lowerAscii().endsWith({guid}g.role)))",
        cel_complete("g"),
        cel_principal("h"),
        cel_principal("g"),
    )
}

/// Built-in Azure roles that make sense on a Media Services account.
///
/// Owner and User Access Administrator are deliberately absent: a security operator should not
/// hand out the right to grant further rights by a short name.
#[derive(
    Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq, Serialize, PartialOrd, Ord,
)]
pub enum BuiltInRole {
    /// Media Services Account Administrator.
    MediaServicesAccountAdministrator,
    /// Media Services Live Events Administrator.
    MediaServicesLiveEventsAdministrator,
    /// Media Services Media Operator.
    MediaServicesMediaOperator,
    /// Media Services Policy Administrator.
    MediaServicesPolicyAdministrator,
    /// Media Services Streaming Endpoints Administrator.
    MediaServicesStreamingEndpointsAdministrator,
    /// Reader.
    Reader,
    /// Contributor.
    Contributor,
}

impl BuiltInRole {
    /// Every built-in role, in declaration order.
    pub const ALL: [Self; 7] = [
        Self::MediaServicesAccountAdministrator,
        Self::MediaServicesLiveEventsAdministrator,
        Self::MediaServicesMediaOperator,
        Self::MediaServicesPolicyAdministrator,
        Self::MediaServicesStreamingEndpointsAdministrator,
        Self::Reader,
        Self::Contributor,
    ];

    /// The name as written in `role` (the serialized form).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::MediaServicesAccountAdministrator => "MediaServicesAccountAdministrator",
            Self::MediaServicesLiveEventsAdministrator => "MediaServicesLiveEventsAdministrator",
            Self::MediaServicesMediaOperator => "MediaServicesMediaOperator",
            Self::MediaServicesPolicyAdministrator => "MediaServicesPolicyAdministrator",
            Self::MediaServicesStreamingEndpointsAdministrator => {
                "MediaServicesStreamingEndpointsAdministrator"
            }
            Self::Reader => "Reader",
            Self::Contributor => "Contributor",
        }
    }

    /// The role definition's well-known GUID, the same in every tenant.
    #[must_use]
    pub fn definition_guid(self) -> &'static str {
        match self {
            Self::MediaServicesAccountAdministrator => {
                crate::roles::MEDIA_SERVICES_ACCOUNT_ADMINISTRATOR
            }
            Self::MediaServicesLiveEventsAdministrator => {
                crate::roles::MEDIA_SERVICES_LIVE_EVENTS_ADMINISTRATOR
            }
            Self::MediaServicesMediaOperator => crate::roles::MEDIA_SERVICES_MEDIA_OPERATOR,
            Self::MediaServicesPolicyAdministrator => {
                crate::roles::MEDIA_SERVICES_POLICY_ADMINISTRATOR
            }
            Self::MediaServicesStreamingEndpointsAdministrator => {
                crate::roles::MEDIA_SERVICES_STREAMING_ENDPOINTS_ADMINISTRATOR
            }
            Self::Reader => crate::roles::READER,
            Self::Contributor => crate::roles::CONTRIBUTOR,
        }
    }
}

/// What deleting the resource does in Azure.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq, Serialize)]
pub enum DeletionPolicy {
    /// Leave everything in Azure as it is, but for this resource's ownership claim.
    #[default]
    Retain,
    /// Remove the claim and the grants the operator made; keep the account.
    RevokeGrants,
    /// Remove the grants, then delete the Media Services account.
    Delete,
}

/// A Secret in the resource's namespace.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq, Eq, Serialize)]
pub struct SecretReference {
    /// The Secret's name.
    #[schemars(pattern(patterns::OBJECT_NAME), length(min = 1, max = 253))]
    pub name: String,
}

/// Observed state, written by the operator.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaServicesAccountStatus {
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions: `Ready`, `IdentityReady`, `StorageAccessReady`, `EncryptionReady`,
    /// `AccessGrantsReady` (normal-true) and `CustomerKeyInaccessible` (abnormal-true).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The account's identity principals as Azure reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityStatus>,
    /// The key in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionStatus>,
    /// Role assignments that give each storage account's identity Storage Blob Data Contributor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
    pub storage: Vec<StorageStatus>,
    /// Role assignments made for `spec.accessGrants`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["principalId", "roleDefinitionId"]))]
    pub access_grants: Vec<AccessGrantStatus>,
    /// Access-policy entries the operator added to vaults (and so removes with
    /// `deletionPolicy: RevokeGrants` or `Delete`); entries others made are never removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["vaultId", "objectId"]))]
    pub created_access_policies: Vec<CreatedAccessPolicy>,
    /// A long-running Azure operation the operator started and polls on later reconciles
    /// (it never waits inside one). Absent when none is running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_operation: Option<PendingOperationStatus>,
    /// The last value of the `ams-security.io/reconcile-at` annotation the operator acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// Since when the operator has been waiting for Azure to propagate a new identity or grant;
    /// after a bounded wait the wait becomes a reason for a person to act.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagating_since: Option<Time>,
}

/// An access-policy entry the operator added.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedAccessPolicy {
    /// ARM id of the vault.
    pub vault_id: String,
    /// The principal the entry is for.
    pub object_id: String,
    /// Its tenant.
    pub tenant_id: String,
}

/// A long-running Azure operation in flight.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingOperationStatus {
    /// What was started, e.g. `update media services account`.
    pub operation: Operation,
    /// The condition it serves (e.g. `IdentityReady`); a failure is reported there.
    pub condition: String,
    /// The Azure resource it changes.
    pub resource_id: String,
    /// api-version to read the resource with once done.
    pub api_version: String,
    /// How it is polled: `AzureAsyncOperation`, `Location` or `ProvisioningState`.
    pub polling_method: PollingMethodKind,
    /// The URL polled (an Azure operation-status URL; it carries no credentials).
    pub polling_url: String,
    /// When the operator started it.
    pub started_at: Time,
}

/// How a parked operation is polled (ARM's long-running-operation contract).
///
/// NB: stored as a plain string and read leniently. A value this version does not know (another
/// version wrote it) reads as [`PollingMethodKind::Unknown`], keeping the text, instead of
/// failing the whole object; the schema stays `type: string` so such a value stays valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollingMethodKind {
    /// GET the `Azure-AsyncOperation` URL until its `status` is terminal, then the resource.
    AzureAsyncOperation,
    /// GET the `Location` URL until it stops answering 202.
    Location,
    /// GET the resource until `properties.provisioningState` is terminal.
    ProvisioningState,
    /// A method this version cannot poll, as stored.
    Unknown(String),
}

impl PollingMethodKind {
    /// The stored name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::AzureAsyncOperation => "AzureAsyncOperation",
            Self::Location => "Location",
            Self::ProvisioningState => "ProvisioningState",
            Self::Unknown(name) => name,
        }
    }

    /// The method stored as `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Self {
        match name {
            "AzureAsyncOperation" => Self::AzureAsyncOperation,
            "Location" => Self::Location,
            "ProvisioningState" => Self::ProvisioningState,
            other => Self::Unknown(other.to_owned()),
        }
    }
}

impl Serialize for PollingMethodKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PollingMethodKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::from_name(&name))
    }
}

impl JsonSchema for PollingMethodKind {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PollingMethodKind".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }
}

/// Principals of the account's managed identity.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityStatus {
    /// Object id of the system-assigned identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// Tenant of the system-assigned identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The attached user-assigned identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
    pub user_assigned: Vec<UserAssignedIdentityStatus>,
}

/// One attached user-assigned identity.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserAssignedIdentityStatus {
    /// ARM id of the identity.
    pub id: String,
    /// Its object (principal) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// Its client (application) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// The customer key in use.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionStatus {
    /// The versioned key identifier the account is encrypted with, as Azure reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_key_identifier: Option<String>,
    /// The version part of `currentKeyIdentifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<String>,
    /// When the operator last saw the account move to a new key version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<Time>,
    /// When a successful check last established the verdict in `CustomerKeyInaccessible`.
    /// The key is checked on every `keyAccessCheckInterval`, but this is written only when the
    /// verdict changes or checks start or stop failing, so a healthy key costs no status
    /// writes; while `keyAccessCheckError` is set it says how old the verdict is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_key_access_check_time: Option<Time>,
    /// Why the key checks since `lastKeyAccessCheckTime` fail (throttled, refused, unreachable).
    /// The verdict is then the last one known: a failed check never flips it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_access_check_error: Option<String>,
    /// The interval key checks actually run at, when Azure's read budgets stretched it past
    /// `spec.keyAccessCheckInterval` (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_key_access_check_interval: Option<String>,
    /// For a spec that tracks the latest version: the latest version the vault reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_key_version: Option<String>,
    /// Since when the vault has had a newer version than the account uses (absent when the
    /// account is on the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_pending_since: Option<Time>,
}

/// A storage grant.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    /// ARM id of the storage account.
    pub id: String,
    /// ARM id of the role assignment that gives the identity blob data access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_assignment_id: Option<String>,
    /// The principal that reaches the storage account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// Whether the operator made that assignment (it carries the name the operator derives for
    /// this object). An equivalent assignment someone else made is adopted for checking only:
    /// never revoked, not even by `RevokeGrants`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub created_by_operator: bool,
}

/// An access grant as made in Azure.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessGrantStatus {
    /// The principal granted the role (resolved from `identityResourceId` where used).
    pub principal_id: String,
    /// The role definition's GUID.
    pub role_definition_id: String,
    /// ARM id of the role assignment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_assignment_id: Option<String>,
    /// Whether the operator made that assignment; an equivalent one someone else made is
    /// adopted for checking only and never revoked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub created_by_operator: bool,
}

impl MediaServicesAccountStatus {
    /// The condition of the given type, if present.
    #[must_use]
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The identity type's wire form is what Azure accepts; the spaced form
    /// (`SystemAssigned, UserAssigned`) is rejected by Azure and must be rejected here too.
    #[test]
    fn identity_type_uses_azure_spelling() {
        let both: IdentityType =
            serde_json::from_str("\"SystemAssigned,UserAssigned\"").expect("parses");
        assert_eq!(both, IdentityType::SystemAssignedUserAssigned);
        assert!(both.has_system_assigned() && both.has_user_assigned());
        assert!(serde_json::from_str::<IdentityType>("\"SystemAssigned, UserAssigned\"").is_err());
    }

    /// Every built-in role maps to a distinct GUID: two names sharing an id would grant the
    /// wrong role silently.
    #[test]
    fn built_in_roles_have_distinct_guids() {
        let all = BuiltInRole::ALL;
        let guids: std::collections::HashSet<_> = all.iter().map(|r| r.definition_guid()).collect();
        assert_eq!(guids.len(), all.len());
    }

    /// `ALL` lists every role and `name` is its wire form: the CEL uniqueness rule is built from
    /// both, so a role missing here would compare by name in CEL and by GUID in Rust.
    #[test]
    fn all_built_in_roles_are_listed_with_their_wire_names() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(MediaServicesAccount::crd()).expect("CRD serializes");
        let schema_enum = crd
            .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/accessGrants/items/properties/role/enum")
            .expect("role has an enum")
            .clone();
        let names: Vec<_> = BuiltInRole::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(
            schema_enum,
            serde_json::json!(names),
            "ALL differs from the schema's enum"
        );
        for role in BuiltInRole::ALL {
            assert_eq!(
                serde_json::to_value(role).expect("serializes"),
                serde_json::json!(role.name()),
                "{role:?}"
            );
        }
    }
}
