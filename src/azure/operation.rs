//! The Azure operations the clients call, as one closed vocabulary: the metric label, the
//! tracing span field, the verb of every error message and the name a parked long-running
//! operation is recorded under in status.
//!
//! A leaf: it imports nothing else from [`crate::azure`], so the clients, the error type and
//! the long-running-operation values can all name an operation without naming each other.
//!
//! [`Operation::as_str`] is the stable name (metric label values and stored status depend on
//! it: never change one). [`Operation::operation_id`] is the REST specification's operationId,
//! to find the call in `shared/azure-specs`.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One Azure operation the operator performs.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// `Mediaservices_Get`.
    MediaservicesGet,
    /// `Mediaservices_Update` (PATCH; usually long-running).
    MediaservicesUpdate,
    /// `Mediaservices_Delete`.
    MediaservicesDelete,
    /// `StorageAccounts_GetProperties`.
    StorageAccountsGetProperties,
    /// `StorageAccounts_Update`, sending only the firewall (`networkAcls`).
    StorageAccountsUpdate,
    /// `Vaults_Get` (management plane).
    VaultsGet,
    /// `Vaults_ListBySubscription`.
    VaultsListBySubscription,
    /// `Vaults_GetDeleted`.
    VaultsGetDeleted,
    /// `Vaults_UpdateAccessPolicy`.
    VaultsUpdateAccessPolicy,
    /// `UserAssignedIdentities_Get`.
    UserAssignedIdentitiesGet,
    /// `RoleDefinitions_Get`.
    RoleDefinitionsGet,
    /// `RoleAssignments_ListForScope`.
    RoleAssignmentsListForScope,
    /// `RoleAssignments_Create`.
    RoleAssignmentsCreate,
    /// `RoleAssignments_Delete`.
    RoleAssignmentsDelete,
    /// Key Vault data plane `GetKey`.
    GetKey,
    /// Key Vault data plane `GetKeyVersions`.
    GetKeyVersions,
    /// One poll of a parked long-running operation (its `Azure-AsyncOperation` or `Location`
    /// URL, or the resource itself).
    PollLongRunningOperation,
    /// The GET of the resource that ends async-operation polling (ARM's final-state rule).
    GetResourceAfterLongRunningOperation,
    /// A long-running operation parked under a name this version does not know (another
    /// version wrote it); it is still polled to completion, under this name.
    OtherLongRunningOperation,
    /// A token request to Microsoft Entra ID.
    TokenRequest,
    /// Building a credential from its configuration (no request is sent).
    BuildCredential,
}

impl Operation {
    /// Every operation, for tests and documentation.
    pub const ALL: [Self; 21] = [
        Self::MediaservicesGet,
        Self::MediaservicesUpdate,
        Self::MediaservicesDelete,
        Self::StorageAccountsGetProperties,
        Self::StorageAccountsUpdate,
        Self::VaultsGet,
        Self::VaultsListBySubscription,
        Self::VaultsGetDeleted,
        Self::VaultsUpdateAccessPolicy,
        Self::UserAssignedIdentitiesGet,
        Self::RoleDefinitionsGet,
        Self::RoleAssignmentsListForScope,
        Self::RoleAssignmentsCreate,
        Self::RoleAssignmentsDelete,
        Self::GetKey,
        Self::GetKeyVersions,
        Self::PollLongRunningOperation,
        Self::GetResourceAfterLongRunningOperation,
        Self::OtherLongRunningOperation,
        Self::TokenRequest,
        Self::BuildCredential,
    ];

    /// The stable name: the `operation` metric label, the verb in error messages ("failed to
    /// {name} {resource}") and what status records of a parked operation.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MediaservicesGet => "get media services account",
            Self::MediaservicesUpdate => "update media services account",
            Self::MediaservicesDelete => "delete media services account",
            Self::StorageAccountsGetProperties => "get storage account",
            Self::StorageAccountsUpdate => "update storage account network rules",
            Self::VaultsGet => "get key vault",
            Self::VaultsListBySubscription => "list key vaults",
            Self::VaultsGetDeleted => "get deleted key vault",
            Self::VaultsUpdateAccessPolicy => "update key vault access policy",
            Self::UserAssignedIdentitiesGet => "get user-assigned identity",
            Self::RoleDefinitionsGet => "get role definition",
            Self::RoleAssignmentsListForScope => "list role assignments",
            Self::RoleAssignmentsCreate => "create role assignment",
            Self::RoleAssignmentsDelete => "delete role assignment",
            Self::GetKey => "get key",
            Self::GetKeyVersions => "list key versions",
            Self::PollLongRunningOperation => "poll long-running operation",
            Self::GetResourceAfterLongRunningOperation => {
                "get resource after long-running operation"
            }
            Self::OtherLongRunningOperation => "complete long-running operation",
            Self::TokenRequest => "obtain access token",
            Self::BuildCredential => "build credential",
        }
    }

    /// The REST specification's operationId; calls the specifications do not name (polls,
    /// token requests, local steps) get a name in the same style.
    #[must_use]
    pub const fn operation_id(self) -> &'static str {
        match self {
            Self::MediaservicesGet => "Mediaservices_Get",
            Self::MediaservicesUpdate => "Mediaservices_Update",
            Self::MediaservicesDelete => "Mediaservices_Delete",
            Self::StorageAccountsGetProperties => "StorageAccounts_GetProperties",
            Self::StorageAccountsUpdate => "StorageAccounts_Update",
            Self::VaultsGet => "Vaults_Get",
            Self::VaultsListBySubscription => "Vaults_ListBySubscription",
            Self::VaultsGetDeleted => "Vaults_GetDeleted",
            Self::VaultsUpdateAccessPolicy => "Vaults_UpdateAccessPolicy",
            Self::UserAssignedIdentitiesGet => "UserAssignedIdentities_Get",
            Self::RoleDefinitionsGet => "RoleDefinitions_Get",
            Self::RoleAssignmentsListForScope => "RoleAssignments_ListForScope",
            Self::RoleAssignmentsCreate => "RoleAssignments_Create",
            Self::RoleAssignmentsDelete => "RoleAssignments_Delete",
            Self::GetKey => "GetKey",
            Self::GetKeyVersions => "GetKeyVersions",
            Self::PollLongRunningOperation => "LongRunningOperation_Poll",
            Self::GetResourceAfterLongRunningOperation => "LongRunningOperation_GetResource",
            Self::OtherLongRunningOperation => "LongRunningOperation_Other",
            Self::TokenRequest => "Token_Request",
            Self::BuildCredential => "Credential_Build",
        }
    }

    /// The operation named `name` ([`Self::as_str`]), if this version knows it.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Operation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Lenient: a name this version does not know (written by another version) reads as
/// [`Operation::OtherLongRunningOperation`] instead of failing the whole object it is part of.
/// Only parked long-running operations are ever read back.
impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::from_name(&name).unwrap_or(Self::OtherLongRunningOperation))
    }
}

/// A plain string in the CRD schema: names come and go between versions, and a stored name
/// this version does not know must stay valid.
impl JsonSchema for Operation {
    fn schema_name() -> Cow<'static, str> {
        "Operation".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names are labels and stored values: each is distinct and reads back as itself.
    #[test]
    fn every_name_is_distinct_and_reads_back_as_its_operation() {
        let mut names: Vec<_> = Operation::ALL.iter().map(|o| o.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            Operation::ALL.len(),
            "duplicate names: {names:?}"
        );
        for op in Operation::ALL {
            let json = serde_json::to_value(op).expect("serializes");
            assert_eq!(json, serde_json::json!(op.as_str()));
            let back: Operation = serde_json::from_value(json).expect("deserializes");
            assert_eq!(back, op);
        }
    }

    /// Names that earlier versions stored in status keep reading as the same operation.
    #[test]
    fn names_stored_by_earlier_versions_are_stable() {
        for (name, op) in [
            (
                "update media services account",
                Operation::MediaservicesUpdate,
            ),
            (
                "delete media services account",
                Operation::MediaservicesDelete,
            ),
            (
                "update storage account network rules",
                Operation::StorageAccountsUpdate,
            ),
            ("delete role assignment", Operation::RoleAssignmentsDelete),
        ] {
            assert_eq!(Operation::from_name(name), Some(op), "{name}");
        }
    }

    /// An unknown stored name must not fail the object around it.
    #[test]
    fn an_unknown_name_reads_as_another_long_running_operation() {
        let op: Operation = serde_json::from_str(r#""resize the moon""#).expect("lenient");
        assert_eq!(op, Operation::OtherLongRunningOperation);
    }

    #[test]
    fn operation_ids_follow_the_specifications_style() {
        for op in Operation::ALL {
            let id = op.operation_id();
            assert!(
                id == "GetKey" || id == "GetKeyVersions" || id.contains('_'),
                "{op:?}: {id}"
            );
        }
    }
}
