//! Microsoft.ManagedIdentity user-assigned identities (api-version 2026-05-31).

use serde::{Deserialize, Serialize};

/// A user-assigned identity (`Identity`).
pub type UserAssignedIdentity = super::TrackedResource<UserAssignedIdentityProperties>;

/// `UserAssignedIdentityProperties` (all read-only).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserAssignedIdentityProperties {
    /// Tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Principal (object) id, the subject of role assignments.
    #[serde(default)]
    pub principal_id: Option<String>,
    /// Client (application) id.
    #[serde(default)]
    pub client_id: Option<String>,
}
