//! Typed ARM models for exactly the resources and fields the operator uses.
//!
//! Each struct keeps only the fields we read or write; unknown fields are ignored on input,
//! and unset fields are not sent. Field names follow the REST specifications in
//! `shared/azure-specs/`. These models do no I/O and hold no policy.

pub mod authorization;
pub mod keyvault;
pub mod media;
pub mod msi;
pub mod storage;

use serde::{Deserialize, Serialize};

/// An ARM tracked resource whose only body is `properties` (`id`, `name`, `location` around it),
/// shared by the kinds that add nothing else to the envelope.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TrackedResource<P> {
    /// Resource id.
    #[serde(default)]
    pub id: Option<String>,
    /// Resource name.
    #[serde(default)]
    pub name: Option<String>,
    /// Region.
    #[serde(default)]
    pub location: Option<String>,
    /// Properties.
    #[serde(default)]
    pub properties: P,
}

/// A page of an ARM list: `value` plus `nextLink` when more pages follow.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListResult<T> {
    /// Items on this page.
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    /// URL of the next page, absent or empty on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

/// ARM error detail, as in common-types `ErrorDetail`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Error code, e.g. `AuthorizationFailed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Target of the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Status of an asynchronous ARM operation (the `Azure-AsyncOperation` resource), as in
/// `MediaServiceOperationStatus` and ARM's async-operation contract.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    /// Operation resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Operation name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `InProgress`, `Succeeded`, `Failed`, `Canceled` (or a provider-specific non-terminal value).
    #[serde(default)]
    pub status: String,
    /// Start time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// End time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// Identity block shared by ARM resources (`ManagedServiceIdentity`-like).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceIdentityBlock {
    /// `None`, `SystemAssigned`, `UserAssigned`, `SystemAssigned,UserAssigned`.
    #[serde(rename = "type", default)]
    pub identity_type: String,
    /// System-assigned principal (read-only).
    #[serde(default, skip_serializing)]
    pub principal_id: Option<String>,
    /// Tenant of the system-assigned principal (read-only).
    #[serde(default, skip_serializing)]
    pub tenant_id: Option<String>,
    /// User-assigned identities keyed by resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_assigned_identities:
        Option<std::collections::BTreeMap<String, UserAssignedIdentityRef>>,
}

impl ResourceIdentityBlock {
    /// Whether the system-assigned identity is on.
    #[must_use]
    pub fn has_system_assigned(&self) -> bool {
        self.identity_type
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("SystemAssigned"))
    }

    /// Whether the given user-assigned identity is attached (id compared as ARM does).
    #[must_use]
    pub fn has_user_assigned(&self, id: &str) -> bool {
        self.user_assigned_identities.as_ref().is_some_and(|m| {
            m.keys()
                .any(|k| crate::azure::resource_id::ids_equal(k, id))
        })
    }
}

/// A user-assigned identity as seen from the resource using it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserAssignedIdentityRef {
    /// Client id (read-only).
    #[serde(default, skip_serializing)]
    pub client_id: Option<String>,
    /// Principal (object) id (read-only).
    #[serde(default, skip_serializing)]
    pub principal_id: Option<String>,
}
