//! Test fixtures for the pure steps: specs from small JSON snippets, and an observed world
//! built up with chained calls. Test-only.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::azure::ResourceId;
use crate::azure::keys::{KeyInfo, KeyKind};
use crate::azure::models::authorization::{RoleAssignment, RoleAssignmentProperties};
use crate::azure::models::keyvault::{
    AccessPolicyEntry, AccessPolicyPermissions, Vault, VaultProperties,
};
use crate::azure::models::media::{MediaAccount, MediaAccountProperties, MediaStorageAccount};
use crate::azure::models::msi::UserAssignedIdentityProperties;
use crate::azure::models::storage::{NetworkRuleSet, StorageAccount};
use crate::azure::models::{ResourceIdentityBlock, TrackedResource};
use crate::crd::account::MediaServicesAccountSpec;

use super::desired::{Desired, KeyId};
use super::observe::{Observed, ObservedGrant, ObservedKey, ObservedStorage, VaultLookup};

pub const SUB: &str = "00000000-1111-2222-3333-444444444444";
pub const PRINCIPAL: &str = "11111111-aaaa-bbbb-cccc-000000000001";
pub const UAI_PRINCIPAL: &str = "22222222-aaaa-bbbb-cccc-000000000002";
pub const TENANT: &str = "99999999-aaaa-bbbb-cccc-000000000009";

pub fn id(kind: &str, name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/media/providers/{kind}/{name}")
}

pub fn account_id() -> String {
    id("Microsoft.Media/mediaservices", "contosomedia")
}

pub fn storage_id(name: &str) -> String {
    id("Microsoft.Storage/storageAccounts", name)
}

pub fn uai_id() -> String {
    id(
        "Microsoft.ManagedIdentity/userAssignedIdentities",
        "media-id",
    )
}

pub fn vault_id(name: &str) -> String {
    id("Microsoft.KeyVault/vaults", name)
}

/// A spec: `account` filled in, the rest from `rest`.
pub fn spec(rest: Value) -> MediaServicesAccountSpec {
    let mut spec = rest;
    spec["account"] = json!({
        "subscriptionId": SUB, "resourceGroup": "media", "name": "contosomedia", "location": "westeurope"
    });
    serde_json::from_value(spec).expect("fixture spec deserializes")
}

pub fn desired(rest: Value) -> Desired {
    Desired::from_spec(&spec(rest)).expect("fixture spec is valid")
}

/// Trusted storage on `mediaprimary` with the system identity, customer key optional.
pub fn trusted_storage_spec() -> Value {
    json!({
        "identity": { "type": "SystemAssigned" },
        "storage": { "authentication": "ManagedIdentity", "accounts": [
            { "id": storage_id("mediaprimary"), "type": "Primary", "identity": { "useSystemAssignedIdentity": true } } ] },
    })
}

/// [`trusted_storage_spec`] with `grantAccess: false`: the operator only checks the grants.
pub fn checked_storage_spec() -> Value {
    let mut s = trusted_storage_spec();
    s["storage"]["grantAccess"] = json!(false);
    s
}

pub fn assignment(scope: &str, principal: &str, role: &str) -> RoleAssignment {
    RoleAssignment {
        id: Some(format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignments/{}",
            uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_OID,
                format!("{scope}{principal}{role}").as_bytes()
            )
        )),
        name: None,
        properties: RoleAssignmentProperties {
            role_definition_id: format!(
                "/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}"
            ),
            principal_id: principal.to_owned(),
            principal_type: Some("ServicePrincipal".to_owned()),
            scope: Some(scope.to_owned()),
            description: None,
        },
    }
}

pub fn rsa_key(name: &str, version: &str, bits: u32) -> KeyInfo {
    KeyInfo {
        kid: format!("https://media-kv.vault.azure.net/keys/{name}/{version}"),
        name: name.to_owned(),
        version: version.to_owned(),
        kind: KeyKind::Rsa,
        rsa_bits: Some(bits),
        enabled: true,
        not_before: None,
        expires: None,
        key_ops: ["encrypt", "decrypt", "wrapKey", "unwrapKey"]
            .map(str::to_owned)
            .to_vec(),
    }
}

pub fn vault(name: &str, rbac: bool) -> Vault {
    TrackedResource {
        id: Some(vault_id(name)),
        name: Some(name.to_owned()),
        location: Some("westeurope".to_owned()),
        properties: VaultProperties {
            tenant_id: Some(TENANT.to_owned()),
            vault_uri: Some(format!("https://{name}.vault.azure.net/")),
            enable_soft_delete: Some(true),
            enable_purge_protection: Some(true),
            enable_rbac_authorization: Some(rbac),
            ..VaultProperties::default()
        },
    }
}

pub fn policy(principal: &str, keys: &[&str]) -> AccessPolicyEntry {
    AccessPolicyEntry {
        tenant_id: TENANT.to_owned(),
        object_id: principal.to_owned(),
        application_id: None,
        permissions: AccessPolicyPermissions {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            ..AccessPolicyPermissions::default()
        },
    }
}

/// An observed world, built up step by step.
#[derive(Clone)]
pub struct World(pub Observed);

impl World {
    /// A new account: no identity, key-based storage on `mediaprimary`, Microsoft-managed key.
    pub fn new_account() -> Self {
        Self(Observed {
            account: MediaAccount {
                id: Some(account_id()),
                name: Some("contosomedia".to_owned()),
                location: Some("West Europe".to_owned()),
                identity: None,
                tags: None,
                properties: Some(MediaAccountProperties {
                    storage_accounts: Some(vec![MediaStorageAccount {
                        id: Some(storage_id("mediaprimary")),
                        account_type: "Primary".to_owned(),
                        identity: None,
                        status: None,
                    }]),
                    ..MediaAccountProperties::default()
                }),
            },
            identities: BTreeMap::new(),
            storage: Vec::new(),
            key: None,
            grants: Vec::new(),
            account_assignments: Vec::new(),
        })
    }

    /// Trusted storage on `mediaprimary` with the system identity, fully converged.
    pub fn converged_trusted_storage() -> Self {
        Self::new_account()
            .with_system_identity()
            .with_storage(
                "mediaprimary",
                Some(PRINCIPAL),
                &[crate::azure::models::authorization::STORAGE_BLOB_DATA_CONTRIBUTOR],
                None,
            )
            .with_trusted_storage_applied()
    }

    pub fn with_system_identity(mut self) -> Self {
        self.0.account.identity = Some(ResourceIdentityBlock {
            identity_type: "SystemAssigned".to_owned(),
            principal_id: Some(PRINCIPAL.to_owned()),
            tenant_id: Some(TENANT.to_owned()),
            user_assigned_identities: None,
        });
        self
    }

    pub fn with_uai(mut self) -> Self {
        self.0.identities.insert(
            uai_id().to_ascii_lowercase(),
            Some(TrackedResource {
                id: Some(uai_id()),
                name: Some("media-id".to_owned()),
                location: Some("westeurope".to_owned()),
                properties: UserAssignedIdentityProperties {
                    tenant_id: Some(TENANT.to_owned()),
                    principal_id: Some(UAI_PRINCIPAL.to_owned()),
                    client_id: Some("33333333-aaaa-bbbb-cccc-000000000003".to_owned()),
                },
            }),
        );
        self
    }

    pub fn with_missing_uai(mut self) -> Self {
        self.0
            .identities
            .insert(uai_id().to_ascii_lowercase(), None);
        self
    }

    /// A storage account as read, with the principal's assignments on it.
    pub fn with_storage(
        mut self,
        name: &str,
        principal: Option<&str>,
        roles: &[&str],
        acls: Option<NetworkRuleSet>,
    ) -> Self {
        let sid = storage_id(name);
        self.0.storage.push(ObservedStorage {
            id: ResourceId::parse(&sid).expect("fixture id"),
            resource: Some(StorageAccount {
                id: Some(sid.clone()),
                name: Some(name.to_owned()),
                properties: crate::azure::models::storage::StorageAccountProperties {
                    network_acls: acls,
                    ..Default::default()
                },
                ..StorageAccount::default()
            }),
            principal: principal.map(str::to_owned),
            assignments: principal
                .map(|p| roles.iter().map(|r| assignment(&sid, p, r)).collect())
                .unwrap_or_default(),
        });
        self
    }

    /// The account's storage settings as Azure reports them after the managed-identity PATCH.
    pub fn with_trusted_storage_applied(mut self) -> Self {
        let props = self.0.account.properties.get_or_insert_default();
        props.storage_authentication = Some("ManagedIdentity".to_owned());
        props.storage_accounts = Some(vec![MediaStorageAccount {
            id: Some(storage_id("mediaprimary")),
            account_type: "Primary".to_owned(),
            identity: Some(crate::azure::models::media::ResourceIdentity {
                user_assigned_identity: None,
                use_system_assigned_identity: true,
            }),
            status: Some("Ok".to_owned()),
        }]);
        self
    }

    pub fn with_key(
        mut self,
        key_id: &str,
        vault: VaultLookup,
        key: Option<KeyInfo>,
        principal: Option<&str>,
    ) -> Self {
        self.0.key = Some(ObservedKey {
            key_id: KeyId::parse(key_id).expect("fixture key id"),
            vault,
            key,
            principal: principal.map(str::to_owned),
            assignments: Vec::new(),
            operator_refused: None,
            role_definitions: Vec::new(),
            probe: super::observe::ProbeInfo::default(),
        });
        self
    }

    pub fn with_key_assignments(mut self, assignments: Vec<RoleAssignment>) -> Self {
        if let Some(k) = self.0.key.as_mut() {
            k.assignments = assignments;
        }
        self
    }

    pub fn with_grant(mut self, principal: &str, roles: &[&str]) -> Self {
        self.0.grants.push(ObservedGrant {
            principal: Some(principal.to_owned()),
            assignments: roles
                .iter()
                .map(|r| assignment(&account_id(), principal, r))
                .collect(),
            role_exists: true,
        });
        self
    }

    pub fn with_encryption(mut self, key_identifier: &str, current: &str) -> Self {
        let props = self.0.account.properties.get_or_insert_default();
        props.encryption = Some(crate::azure::models::media::AccountEncryption {
            key_type: "CustomerKey".to_owned(),
            key_vault_properties: Some(crate::azure::models::media::KeyVaultProperties {
                key_identifier: Some(key_identifier.to_owned()),
                current_key_identifier: Some(current.to_owned()),
            }),
            identity: Some(crate::azure::models::media::ResourceIdentity {
                user_assigned_identity: None,
                use_system_assigned_identity: true,
            }),
            status: None,
        });
        self
    }
}

/// The customer key every BYOK fixture names.
pub const BYOK_KEY: &str = "https://media-kv.vault.azure.net/keys/account-key";

/// A converged customer-key account: system identity, an access policy for it, and the
/// account on version v1 of [`BYOK_KEY`].
pub fn byok() -> (Desired, World) {
    let d = desired(
        serde_json::json!({ "identity": { "type": "SystemAssigned" }, "encryption": { "type": "CustomerKey", "keyIdentifier": BYOK_KEY } }),
    );
    let mut v = vault("media-kv", false);
    v.properties.access_policies = vec![policy(PRINCIPAL, &["get", "wrapKey", "unwrapKey"])];
    let w = World::new_account()
        .with_system_identity()
        .with_key(
            BYOK_KEY,
            super::observe::VaultLookup::Found(v),
            Some(rsa_key("account-key", "v1", 2048)),
            Some(PRINCIPAL),
        )
        .with_encryption(BYOK_KEY, &format!("{BYOK_KEY}/v1"));
    (d, w)
}
