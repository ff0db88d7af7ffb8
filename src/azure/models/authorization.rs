//! Microsoft.Authorization role assignments and role definitions (api-version 2022-04-01).

use serde::{Deserialize, Serialize};

pub use crate::roles::{KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER, STORAGE_BLOB_DATA_CONTRIBUTOR};

/// A role assignment (`RoleAssignment`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    /// Full id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name (a GUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Properties.
    #[serde(default)]
    pub properties: RoleAssignmentProperties,
}

/// `RoleAssignmentProperties`; also the create body (`RoleAssignmentCreateParameters`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignmentProperties {
    /// Role definition id (subscription- or tenant-level form).
    #[serde(default)]
    pub role_definition_id: String,
    /// Principal (object) id.
    #[serde(default)]
    pub principal_id: String,
    /// `ServicePrincipal` for managed identities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_type: Option<String>,
    /// Scope (read-only).
    #[serde(default, skip_serializing)]
    pub scope: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl RoleAssignment {
    /// The role definition's GUID, whatever form the id takes.
    #[must_use]
    pub fn role_definition_guid(&self) -> &str {
        last_segment(&self.properties.role_definition_id)
    }

    /// Whether this assignment grants `role_guid` to `principal_id` (case-insensitive).
    #[must_use]
    pub fn grants(&self, principal_id: &str, role_guid: &str) -> bool {
        self.properties
            .principal_id
            .eq_ignore_ascii_case(principal_id)
            && self.role_definition_guid().eq_ignore_ascii_case(role_guid)
    }
}

/// The last `/`-separated segment of an id.
#[must_use]
pub fn last_segment(id: &str) -> &str {
    id.trim_end_matches('/').rsplit('/').next().unwrap_or(id)
}

/// Create body for `RoleAssignments_Create`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RoleAssignmentCreate {
    /// Properties to create with.
    pub properties: RoleAssignmentProperties,
}

/// A role definition (`RoleDefinition`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinition {
    /// Full id.
    #[serde(default)]
    pub id: Option<String>,
    /// Name (GUID).
    #[serde(default)]
    pub name: Option<String>,
    /// Properties.
    #[serde(default)]
    pub properties: RoleDefinitionProperties,
}

/// `RoleDefinitionProperties`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinitionProperties {
    /// Display name, e.g. "Storage Blob Data Contributor".
    #[serde(default)]
    pub role_name: Option<String>,
    /// `BuiltInRole` / `CustomRole`.
    #[serde(default, rename = "type")]
    pub role_type: Option<String>,
    /// Permissions.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// Where the role can be assigned.
    #[serde(default)]
    pub assignable_scopes: Vec<String>,
}

/// `Permission` of a role definition.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
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
