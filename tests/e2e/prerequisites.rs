//! Failed prerequisites end to end, for the reasons the table in `reconcile.rs` does not reach:
//! each object asks for something Azure must not be given (trusted storage that is missing or
//! not granted, a vault without soft delete or closed to trusted services, a key that may not
//! unwrap or is not valid yet, a key the operator may not read, the wrong region, an identity
//! that does not exist). The operator must name the exact reason on the right condition and on
//! `Ready`, and write nothing to Azure: the emulator's request log is the witness. The Azure
//! side is the e2e world plus a few resources seeded here, so no other test sees them.

use std::time::Duration;

use ams_security_operator::crd::MediaServicesAccount;
use ams_security_operator::emulator::{AdminCommand, Emulator, SeedKey, SeedVault};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::common::with_temp_ns;
use super::harness::*;

/// A vault in the account's region with soft delete (and so purge protection) off, as vaults
/// made before Azure enforced soft delete still are.
const SOFT_DELETE_OFF_KV: &str = "soft-off-kv";
/// A vault the operator's identity has no access policy in: it may not read the key.
const CLOSED_KV: &str = "closed-kv";
/// A vault whose firewall lets the operator's address through but not trusted Azure services,
/// so Media Services could not reach the key.
const FIREWALLED_KV: &str = "firewalled-kv";
/// A key in `media-kv` whose only version becomes valid a day from now.
const EARLY_KEY: &str = "early-key";
/// A key in `media-kv` that may wrap but not unwrap.
const WRAP_ONLY_KEY: &str = "wrap-only-key";

/// Media Services accounts seeded for the cases, one each.
const CASE_ACCOUNTS: usize = 16;

/// The name of the `n`th case's Media Services account.
fn case_account(n: usize) -> String {
    format!("prereq{n}")
}

/// The e2e world plus the vaults, keys and accounts only these cases use.
async fn prerequisite_world() -> Emulator {
    let emu = emulator_with(|c| {
        let operator_reads_keys =
            json!({ "objectId": "operator", "permissions": { "keys": ["get", "list"] } });
        let rsa = |name: &str| SeedKey {
            name: name.to_owned(),
            kty: Some("RSA".into()),
            key_size: Some(2048),
            ..SeedKey::default()
        };
        let media_kv = c
            .seed
            .vaults
            .iter_mut()
            .find(|v| v.id.ends_with("/vaults/media-kv"))
            .expect("media-kv in the e2e world");
        media_kv.keys.extend([rsa(EARLY_KEY), rsa(WRAP_ONLY_KEY)]);
        // One Media Services account per case: one Azure account has one owner, so the cases'
        // resources may not share one.
        let template = c
            .seed
            .media_accounts
            .iter()
            .find(|a| a.id.ends_with("/mediaservices/mediaacct"))
            .expect("mediaacct in the e2e world")
            .clone();
        for n in 0..CASE_ACCOUNTS {
            let mut account = template.clone();
            account.id = media_id("Microsoft.Media/mediaservices", &case_account(n));
            c.seed.media_accounts.push(account);
        }
        c.seed.vaults.push(SeedVault {
            id: media_id("Microsoft.KeyVault/vaults", SOFT_DELETE_OFF_KV),
            enable_soft_delete: false,
            enable_purge_protection: false,
            access_policies: vec![operator_reads_keys.clone()],
            keys: vec![rsa("account-key")],
            ..SeedVault::default()
        });
        c.seed.vaults.push(SeedVault {
            id: media_id("Microsoft.KeyVault/vaults", FIREWALLED_KV),
            // NB: spelt out, as `SeedVault::default()` is not the YAML default (soft delete on).
            enable_soft_delete: true,
            enable_purge_protection: true,
            access_policies: vec![operator_reads_keys],
            network_acls: Some(json!({
                "defaultAction": "Deny",
                "bypass": "None",
                "ipRules": [ { "value": "127.0.0.1/32" } ],
            })),
            keys: vec![rsa("account-key")],
            ..SeedVault::default()
        });
        c.seed.vaults.push(SeedVault {
            id: media_id("Microsoft.KeyVault/vaults", CLOSED_KV),
            enable_soft_delete: true,
            enable_purge_protection: true,
            keys: vec![rsa("account-key")],
            ..SeedVault::default()
        });
    })
    .await;
    let tomorrow = emu.now().timestamp() + 86_400;
    emu.set_key_not_before("media-kv", EARLY_KEY, None, Some(tomorrow))
        .expect("set not-before");
    emu.admin(AdminCommand::SetKeyOperations {
        vault: "media-kv".into(),
        key: WRAP_ONLY_KEY.into(),
        version: None,
        ops: vec!["wrapKey".into()],
    })
    .expect("restrict key operations");
    emu
}

/// A customer key in `vault`, used by the system-assigned identity.
fn customer_key(vault: &str, key: &str) -> Value {
    json!({
        "identity": { "type": "SystemAssigned" },
        "encryption": { "type": "CustomerKey", "keyIdentifier": format!("https://{vault}.vault.azure.net/keys/{key}") },
    })
}

/// One case: the object's name and spec, the region its spec claims for the account, the
/// condition and reason expected, and text the message must contain (the resource at fault).
struct Case {
    name: &'static str,
    spec: Value,
    location: &'static str,
    condition: &'static str,
    reason: &'static str,
    names: Vec<String>,
}

/// Each failed prerequisite not covered by `reconcile.rs` is reported with its own reason on its
/// own condition and on `Ready`, with a message naming the resource, and nothing at all is
/// written to Azure, on the first pass or on one asked for afterwards. Every spec here would
/// make writes (an identity to turn on, grants, the account's settings) were it not for its
/// failed prerequisite, so the empty request log is the prerequisite check's doing.
// NB: the table of cases is most of the length.
#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn each_remaining_failed_prerequisite_has_its_reason_and_causes_zero_azure_writes() {
    with_temp_ns("e2e-prereq", |client, ns| {
        Box::pin(async move {
            let emu = prerequisite_world().await;
            let (uai_principal, _) = emu
                .user_assigned_identity(&identity_id())
                .expect("seeded identity");
            let uai = json!({ "type": "UserAssigned", "userAssignedIdentities": [identity_id()] });
            let cases = vec![
                Case {
                    name: "wrong-region",
                    spec: json!({ "identity": { "type": "SystemAssigned" } }),
                    location: "northeurope",
                    condition: "IdentityReady",
                    reason: "AccountLocationMismatch",
                    names: vec!["westeurope".into(), "northeurope".into()],
                },
                Case {
                    name: "no-such-storage",
                    spec: json!({
                        "identity": { "type": "SystemAssigned" },
                        "storage": { "authentication": "ManagedIdentity", "accounts": [
                            { "id": storage_id("mediaprimary"), "type": "Primary", "identity": { "useSystemAssignedIdentity": true } },
                            { "id": storage_id("mediamissing"), "type": "Secondary", "identity": { "useSystemAssignedIdentity": true } } ] },
                    }),
                    location: "westeurope",
                    condition: "StorageAccessReady",
                    reason: "StorageAccountNotFound",
                    names: vec![storage_id("mediamissing")],
                },
                Case {
                    name: "storage-not-granted",
                    spec: json!({
                        "identity": uai,
                        "storage": { "authentication": "ManagedIdentity", "grantAccess": false, "accounts": [
                            { "id": storage_id("mediaprimary"), "type": "Primary", "identity": { "userAssignedIdentity": identity_id() } } ] },
                    }),
                    location: "westeurope",
                    condition: "StorageAccessReady",
                    reason: "StorageAccessMissing",
                    names: vec![storage_id("mediaprimary"), uai_principal.clone()],
                },
                Case {
                    name: "soft-delete-off",
                    spec: customer_key(SOFT_DELETE_OFF_KV, "account-key"),
                    location: "westeurope",
                    condition: "EncryptionReady",
                    reason: "VaultSoftDeleteDisabled",
                    names: vec![SOFT_DELETE_OFF_KV.into()],
                },
                Case {
                    name: "vault-firewall",
                    spec: customer_key(FIREWALLED_KV, "account-key"),
                    location: "westeurope",
                    condition: "EncryptionReady",
                    reason: "VaultFirewallBlocked",
                    names: vec![FIREWALLED_KV.into(), "AzureServices".into()],
                },
                Case {
                    name: "not-yet-valid",
                    spec: customer_key("media-kv", EARLY_KEY),
                    location: "westeurope",
                    condition: "EncryptionReady",
                    reason: "KeyNotYetValid",
                    names: vec![EARLY_KEY.into()],
                },
                Case {
                    name: "wrap-only",
                    spec: customer_key("media-kv", WRAP_ONLY_KEY),
                    location: "westeurope",
                    condition: "EncryptionReady",
                    reason: "KeyOperationsMissing",
                    names: vec![WRAP_ONLY_KEY.into(), "unwrapKey".into()],
                },
                Case {
                    name: "key-not-granted",
                    spec: json!({
                        "identity": uai,
                        "encryption": {
                            "type": "CustomerKey",
                            "keyIdentifier": "https://media-kv.vault.azure.net/keys/account-key",
                            "identity": { "userAssignedIdentity": identity_id() },
                            "grantAccess": false,
                        },
                    }),
                    location: "westeurope",
                    condition: "EncryptionReady",
                    reason: "KeyAccessMissing",
                    names: vec![uai_principal.clone(), "media-kv".into()],
                },
                Case {
                    name: "operator-refused",
                    spec: customer_key(CLOSED_KV, "account-key"),
                    location: "westeurope",
                    condition: "EncryptionReady",
                    reason: "OperatorForbidden",
                    names: vec![CLOSED_KV.into()],
                },
            ];

            let operator = Operator::start(&client, &emu, &ns);
            assert!(cases.len() <= CASE_ACCOUNTS, "seed more case accounts");
            for (n, case) in cases.iter().enumerate() {
                let mut object = manifest(case.name, case.spec.clone());
                case.location.clone_into(&mut object.spec.account.location);
                object.spec.account.name = case_account(n);
                create(&client, &ns, &object).await;
            }
            for case in &cases {
                let object = wait_for_condition(
                    &client,
                    &ns,
                    case.name,
                    case.condition,
                    "False",
                    case.reason,
                )
                .await;
                assert_reported(&object, case);
            }
            let writes = azure_writes(&emu);
            assert!(
                writes.is_empty(),
                "Azure writes despite failed prerequisites: {:#?}",
                describe(&writes)
            );

            // A pass asked for afterwards (fresh reads, fresh key probe) holds the line too.
            for case in &cases {
                let object = reconcile_asked(&client, &ns, case.name, "again").await;
                assert_reported(&object, case);
            }
            let writes = azure_writes(&emu);
            assert!(
                writes.is_empty(),
                "Azure writes on a later pass: {:#?}",
                describe(&writes)
            );
            finish(operator, emu).await;
        })
    })
    .await;
}

/// The case's reason is on its condition and on `Ready`, and the message names the resource.
fn assert_reported(object: &MediaServicesAccount, case: &Case) {
    let name = case.name;
    assert_eq!(
        state(object, case.condition),
        ("False".to_owned(), case.reason.to_owned()),
        "{name}: {}",
        case.condition
    );
    assert_eq!(
        state(object, "Ready"),
        ("False".to_owned(), case.reason.to_owned()),
        "{name}: Ready"
    );
    let message = &condition(object, case.condition)
        .expect("condition")
        .message;
    for needle in &case.names {
        assert!(
            message.contains(needle.as_str()),
            "{name}: the message does not name {needle}: {message}"
        );
    }
}

/// Asks for a reconcile with the `reconcile-at` annotation, as a person would, and waits until
/// the operator has handled it; returns the object then.
async fn reconcile_asked(
    client: &kube::Client,
    ns: &str,
    name: &str,
    value: &str,
) -> MediaServicesAccount {
    let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), ns);
    let patch = json!({ "metadata": { "annotations": {
        ams_security_operator::controller::account::RECONCILE_AT: value } } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate");
    wait_until(
        client,
        ns,
        name,
        &format!("reconciled on request {value:?}"),
        Duration::from_secs(60),
        |o| {
            o.status
                .as_ref()
                .and_then(|s| s.last_handled_reconcile_at.as_deref())
                == Some(value)
        },
    )
    .await
}

/// A user-assigned identity that does not exist, named by the account's identity and by an
/// access grant: first `Propagating` (a new identity may take a while to be seen), and once the
/// wait began more than the 5-minute bound ago (the test moves `status.propagatingSince` back
/// rather than wait), `UserAssignedIdentityNotFound` on both conditions and on `Ready`, and it
/// stays so on later passes. Nothing is written to Azure in either phase.
#[tokio::test]
async fn a_missing_user_assigned_identity_waits_then_is_not_found_with_zero_azure_writes() {
    with_temp_ns("e2e-prereq-uai", |client, ns| {
        Box::pin(async move {
            let emu = emulator().await;
            let operator = Operator::start(&client, &emu, &ns);
            let absent = media_id(
                "Microsoft.ManagedIdentity/userAssignedIdentities",
                "absent-id",
            );
            let absent_grantee = media_id(
                "Microsoft.ManagedIdentity/userAssignedIdentities",
                "absent-grantee",
            );
            let spec = json!({
                "identity": { "type": "UserAssigned", "userAssignedIdentities": [absent] },
                "accessGrants": [ { "identityResourceId": absent_grantee, "role": "Reader" } ],
            });
            create(&client, &ns, &manifest("ghost", spec)).await;

            let waiting = wait_for_condition(
                &client,
                &ns,
                "ghost",
                "IdentityReady",
                "False",
                "Propagating",
            )
            .await;
            assert_eq!(
                state(&waiting, "AccessGrantsReady"),
                ("False".to_owned(), "Propagating".to_owned())
            );
            let since = waiting
                .status
                .as_ref()
                .and_then(|s| s.propagating_since.clone())
                .expect("status.propagatingSince is set while waiting");
            let writes = azure_writes(&emu);
            assert!(
                writes.is_empty(),
                "Azure writes while waiting for an identity: {:#?}",
                describe(&writes)
            );

            // The wait began ten minutes ago, twice the bound.
            let earlier = k8s_openapi::jiff::Timestamp::from_second(since.0.as_second() - 600)
                .expect("a valid time");
            let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), &ns);
            api.patch_status(
                "ghost",
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": { "propagatingSince": earlier.to_string() } })),
            )
            .await
            .expect("move propagatingSince back");
            let gone = reconcile_asked(&client, &ns, "ghost", "after-the-bound").await;
            for (type_, id) in [
                ("IdentityReady", &absent),
                ("AccessGrantsReady", &absent_grantee),
            ] {
                assert_eq!(
                    state(&gone, type_),
                    (
                        "False".to_owned(),
                        "UserAssignedIdentityNotFound".to_owned()
                    ),
                    "{type_}: {:?}",
                    gone.status.as_ref().map(|s| &s.conditions)
                );
                let message = &condition(&gone, type_).expect("condition").message;
                assert!(
                    message.contains(id.as_str()) && message.contains("does not exist"),
                    "{type_}: {message}"
                );
            }
            assert_eq!(
                state(&gone, "Ready"),
                (
                    "False".to_owned(),
                    "UserAssignedIdentityNotFound".to_owned()
                )
            );
            // The wait keeps its start: a later pass does not begin a new bounded wait and
            // flip the reason back to Propagating.
            let later = reconcile_asked(&client, &ns, "ghost", "a-pass-later").await;
            assert_eq!(
                state(&later, "IdentityReady"),
                (
                    "False".to_owned(),
                    "UserAssignedIdentityNotFound".to_owned()
                ),
                "{:?}",
                later.status.as_ref().map(|s| &s.conditions)
            );
            let writes = azure_writes(&emu);
            assert!(
                writes.is_empty(),
                "Azure writes for a missing identity: {:#?}",
                describe(&writes)
            );
            finish(operator, emu).await;
        })
    })
    .await;
}
