//! Every example response in `shared/azure-specs` for an operation the operator uses must
//! deserialize into the client's models, and the fields the operator reads must come through.
//! Example files of operations we do not use are listed by name, so a new file fails the test
//! until someone decides which it is.

use std::path::{Path, PathBuf};

use ams_security_operator::azure::keys::{KeyKind, key_info, key_version_info};
use ams_security_operator::azure::models::authorization::{RoleAssignment, RoleDefinition};
use ams_security_operator::azure::models::keyvault::{Vault, VaultAccessPolicyParameters};
use ams_security_operator::azure::models::media::MediaAccount;
use ams_security_operator::azure::models::msi::UserAssignedIdentity;
use ams_security_operator::azure::models::storage::StorageAccount;
use ams_security_operator::azure::models::{ListResult, OperationStatus};
use ams_security_operator::azure::resource_id::ResourceId;
use serde::de::DeserializeOwned;
use serde_json::Value;

const SPECS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/azure-specs");

/// What an example file's response bodies are.
#[derive(Clone, Copy, Debug)]
enum Kind {
    MediaAccount,
    MediaAccountList,
    OperationStatus,
    RoleAssignment,
    RoleAssignmentList,
    RoleDefinition,
    Vault,
    AccessPolicy,
    StorageAccount,
    Identity,
    Key,
    KeyVersions,
    /// An operation the operator does not call.
    NotUsed,
}

fn kind_of(file: &str) -> Option<Kind> {
    use Kind::*;
    Some(match file {
        "accounts-get-by-name.json"
        | "async-accounts-create.json"
        | "async-accounts-create-managed-identity.json"
        | "async-accounts-update.json"
        | "media-service-operation-result-by-id.json" => MediaAccount,
        "accounts-list-all-accounts.json" | "accounts-subscription-list-all-accounts.json" => {
            MediaAccountList
        }
        "media-service-operation-status-by-id-terminal-state.json"
        | "media-service-operation-status-by-id-non-terminal-state.json"
        | "media-service-operation-status-by-id-non-terminal-state-failed.json" => OperationStatus,
        "RoleAssignments_CreateById.json"
        | "RoleAssignments_CreateForResource.json"
        | "RoleAssignments_CreateForResourceGroup.json"
        | "RoleAssignments_CreateForSubscription.json"
        | "RoleAssignments_Delete.json"
        | "RoleAssignments_DeleteById.json"
        | "RoleAssignments_Get.json"
        | "RoleAssignments_GetById.json" => RoleAssignment,
        "RoleAssignments_ListForResourceGroup.json" | "RoleAssignments_ListForScope.json" => {
            RoleAssignmentList
        }
        "GetRoleDefinitionById.json" | "GetRoleDefinitionByName.json" => RoleDefinition,
        "createVault.json" | "getVault.json" => Vault,
        "updateAccessPoliciesAdd.json" => AccessPolicy,
        "StorageAccountGetProperties.json"
        | "StorageAccountUpdate.json"
        | "StorageAccountEnableCMK.json"
        | "StorageAccountUpdateUserAssignedEncryptionIdentityWithCMK.json" => StorageAccount,
        "IdentityCreate.json" | "IdentityGet.json" => Identity,
        "GetKey-example.json" | "CreateKey-example.json" => Key,
        "GetKeyVersions-example.json" => KeyVersions,
        "accounts-check-name-availability.json"
        | "accounts-delete.json"
        | "accounts-list-media-edge-policies.json"
        | "accounts-sync-storage-keys.json"
        | "wrapKey-example.json"
        | "unwrapKey-example.json" => NotUsed,
        _ => return None,
    })
}

fn example_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            example_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json")
            && path.parent().is_some_and(|p| p.ends_with("examples"))
        {
            out.push(path);
        }
    }
}

fn decode<T: DeserializeOwned>(file: &str, status: &str, body: &Value) -> T {
    serde_json::from_value(body.clone()).unwrap_or_else(|e| {
        panic!("{file} response {status} does not fit the model: {e}\n{body:#}")
    })
}

fn check_media(file: &str, a: &MediaAccount) {
    // Some examples omit the id (and 202 answers may carry no account at all).
    if let Some(id) = a.id.as_deref() {
        let parsed = ResourceId::parse(id).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            parsed.is_type("Microsoft.Media/mediaservices"),
            "{file}: {id}"
        );
    }
    if a == &MediaAccount::default() {
        return;
    }
    if let Some(identity) = &a.identity {
        assert!(
            !identity.identity_type.is_empty(),
            "{file}: identity without type"
        );
    }
    let props = a
        .properties
        .as_ref()
        .unwrap_or_else(|| panic!("{file}: no properties"));
    let storage = props
        .storage_accounts
        .as_ref()
        .unwrap_or_else(|| panic!("{file}: no storageAccounts"));
    assert!(
        storage.iter().any(|s| s.account_type == "Primary"),
        "{file}: no primary storage in {storage:?}"
    );
}

/// Decode one response body as `kind` and check the fields the operator reads.
fn check_body(kind: Kind, file: &str, status: &str, body: &Value) {
    let file = file.to_owned();
    match kind {
        Kind::MediaAccount => check_media(&file, &decode::<MediaAccount>(&file, status, body)),
        Kind::MediaAccountList => {
            let list: ListResult<MediaAccount> = decode(&file, status, body);
            assert!(!list.value.is_empty(), "{file}: empty list");
            for a in &list.value {
                check_media(&file, a);
            }
        }
        Kind::OperationStatus => {
            let s: OperationStatus = decode(&file, status, body);
            assert!(!s.status.is_empty(), "{file}: no status");
        }
        Kind::RoleAssignment => {
            let a: RoleAssignment = decode(&file, status, body);
            assert!(
                !a.properties.principal_id.is_empty(),
                "{file}: no principalId"
            );
            assert!(
                !a.role_definition_guid().is_empty(),
                "{file}: no roleDefinitionId"
            );
        }
        Kind::RoleAssignmentList => {
            let list: ListResult<RoleAssignment> = decode(&file, status, body);
            assert!(
                list.value
                    .iter()
                    .all(|a| !a.properties.principal_id.is_empty()),
                "{file}"
            );
            assert!(!list.value.is_empty(), "{file}: empty list");
        }
        Kind::RoleDefinition => {
            let d: RoleDefinition = decode(&file, status, body);
            assert!(
                !d.properties.permissions.is_empty(),
                "{file}: no permissions"
            );
        }
        Kind::Vault => {
            let v: Vault = decode(&file, status, body);
            assert!(v.properties.tenant_id.is_some(), "{file}: no tenantId");
            assert!(v.location.is_some(), "{file}: no location");
        }
        Kind::AccessPolicy => {
            let p: VaultAccessPolicyParameters = decode(&file, status, body);
            assert!(
                !p.properties.access_policies.is_empty(),
                "{file}: no access policies"
            );
        }
        Kind::StorageAccount => {
            let s: StorageAccount = decode(&file, status, body);
            assert!(s.id.is_some(), "{file}: no id");
        }
        Kind::Identity => {
            let i: UserAssignedIdentity = decode(&file, status, body);
            assert!(
                i.properties.principal_id.is_some() && i.properties.client_id.is_some(),
                "{file}: {i:?}"
            );
        }
        Kind::Key => {
            let k: azure_security_keyvault_keys::models::Key = decode(&file, status, body);
            let info = key_info(&k).unwrap_or_else(|| panic!("{file}: no kid/key"));
            assert!(
                !info.version.is_empty(),
                "{file}: kid without version: {}",
                info.kid
            );
            if info.kind.is_rsa() {
                let bits = info
                    .rsa_bits
                    .unwrap_or_else(|| panic!("{file}: RSA key without modulus"));
                assert!(
                    bits >= 2048 && bits.is_multiple_of(8),
                    "{file}: odd RSA size {bits}"
                );
            }
        }
        Kind::KeyVersions => {
            let page: azure_security_keyvault_keys::models::ListKeyPropertiesResult =
                decode(&file, status, body);
            assert!(page.next_link.is_some(), "{file}: the example pages");
            let versions: Vec<_> = page.value.iter().filter_map(key_version_info).collect();
            assert_eq!(
                versions.len(),
                page.value.len(),
                "{file}: a version lacks a kid"
            );
            assert!(
                versions.iter().all(|v| v.created.is_some()),
                "{file}: unix timestamps must decode"
            );
        }
        Kind::NotUsed => unreachable!("unused examples are skipped"),
    }
}

#[test]
fn every_example_response_of_the_operations_we_use_fits_the_models() {
    let root = Path::new(SPECS);
    assert!(
        root.is_dir(),
        "the REST specifications are missing: expected them at {SPECS} (shared/azure-specs beside the repository)"
    );
    let mut files = Vec::new();
    example_files(root, &mut files);
    files.sort();
    assert!(
        files.len() >= 40,
        "expected the full example set, found {} files",
        files.len()
    );
    let mut checked = 0;
    let mut unknown = Vec::new();
    for path in &files {
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name")
            .to_owned();
        let Some(kind) = kind_of(&file) else {
            unknown.push(file);
            continue;
        };
        let text = std::fs::read_to_string(path).expect("readable");
        let example: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"));
        let responses = example["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{file}: no responses"));
        for (status, response) in responses {
            let Some(body) = response.get("body") else {
                continue;
            };
            if matches!(kind, Kind::NotUsed) {
                continue;
            }
            checked += 1;
            check_body(kind, &file, status, body);
        }
    }
    assert!(
        unknown.is_empty(),
        "example files not classified as used or unused: {unknown:?}"
    );
    assert_eq!(
        checked, 43,
        "response bodies checked (update when examples are added)"
    );
}

/// The fields the operator's decisions hang on come through with their values.
#[test]
fn the_fields_the_operator_reads_carry_the_example_values() {
    let read = |rel: &str| -> Value {
        let p = format!("{SPECS}/specification/{rel}");
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
            .expect("json")
    };
    let media = read(
        "mediaservices/resource-manager/Microsoft.Media/Accounts/stable/2023-01-01/examples/async-accounts-create-managed-identity.json",
    );
    let a: MediaAccount =
        serde_json::from_value(media["responses"]["200"]["body"].clone()).expect("fits");
    let identity = a.identity.expect("identity");
    assert!(identity.has_user_assigned("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/contosorg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ID1"));
    let props = a.properties.expect("properties");
    assert_eq!(
        props.storage_authentication.as_deref(),
        Some("ManagedIdentity")
    );
    let enc = props.encryption.expect("encryption");
    assert_eq!(enc.key_type, "CustomerKey");
    assert!(
        enc.key_vault_properties
            .and_then(|k| k.key_identifier)
            .is_some_and(|k| k.starts_with("https://"))
    );

    let storage = read(
        "storage/resource-manager/Microsoft.Storage/stable/2025-08-01/examples/StorageAccountGetProperties.json",
    );
    let s: StorageAccount =
        serde_json::from_value(storage["responses"]["200"]["body"].clone()).expect("fits");
    let acls = s.properties.network_acls.expect("networkAcls");
    assert!(acls.bypasses_azure_services(), "{acls:?}");
    assert!(!acls.resource_access_rules.is_empty(), "{acls:?}");

    let key =
        read("keyvault/data-plane/Microsoft.KeyVault/stable/7.5/examples/GetKey-example.json");
    let k: azure_security_keyvault_keys::models::Key =
        serde_json::from_value(key["responses"]["200"]["body"].clone()).expect("fits");
    let info = key_info(&k).expect("key");
    assert_eq!(info.kind, KeyKind::Rsa);
    assert_eq!(info.rsa_bits, Some(2048));
    assert!(info.enabled);

    let vault = read(
        "keyvault/resource-manager/Microsoft.KeyVault/stable/2025-05-01/examples/getVault.json",
    );
    let v: Vault = serde_json::from_value(vault["responses"]["200"]["body"].clone()).expect("fits");
    assert!(v.properties.access_policies[0].grants_keys(&["get", "wrapKey", "unwrapKey"]));
}
