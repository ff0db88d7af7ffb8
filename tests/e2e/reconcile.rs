//! The reconciler end to end: real kube-apiserver, the Azure emulator, the operator's main job
//! in-process. Each test has its own namespace and its own emulator.

use std::time::Duration;

use ams_security_operator::crd::MediaServicesAccount;
use ams_security_operator::emulator::{Fault, FaultRule};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::common::with_temp_ns;
use super::harness::*;

/// Trusted storage with the system-assigned identity: the identity is turned on, each storage
/// account's Storage Blob Data Contributor is granted before the account switches to
/// managed-identity authentication, and status shows the principal. Once converged, forced
/// reconciles write nothing to Azure and nothing to the apiserver.
#[tokio::test]
async fn system_identity_with_trusted_storage_converges_and_then_writes_nothing() {
    with_temp_ns("e2e-sys", |client, ns| async move {
        let emu = emulator().await;
        let health = free_addr();
        let operator = Operator::start_with_health(&client, &emu, &ns, Some(health));
        assert_eq!(wait_for_http(&format!("http://{health}/healthz"), 200).await, "ok\n");
        wait_for_http(&format!("http://{health}/readyz"), 200).await;
        let spec = json!({
            "identity": { "type": "SystemAssigned" },
            "storage": {
                "authentication": "ManagedIdentity",
                "accounts": [
                    { "id": storage_id("mediaprimary"), "type": "Primary", "identity": { "useSystemAssignedIdentity": true } },
                    { "id": storage_id("mediaarchive"), "type": "Secondary", "identity": { "useSystemAssignedIdentity": true } },
                ],
            },
            "encryption": { "type": "SystemKey" },
        });
        create(&client, &ns, &manifest("trusted", spec)).await;
        let ready = wait_ready(&client, &ns, "trusted").await;

        let status = ready.status.clone().expect("status");
        let principal = status
            .identity
            .as_ref()
            .and_then(|i| i.principal_id.clone())
            .expect("status.identity.principalId is set");
        assert_eq!(emu.principal_id(&account_id()).as_deref(), Some(principal.as_str()));
        assert_eq!(status.storage.len(), 2, "{:?}", status.storage);
        assert!(
            status.storage.iter().all(|s| s.role_assignment_id.is_some()),
            "{:?}",
            status.storage
        );
        assert_eq!(state(&ready, "CustomerKeyInaccessible"), ("False".into(), "SystemKey".into()));

        // Order: the ownership claim with the first account PATCH, the identity, then both
        // grants, then the account's storage settings.
        let writes = azure_writes(&emu);
        let ops: Vec<&str> = writes.iter().map(|r| r.operation.as_str()).collect();
        assert_eq!(
            ops,
            [
                "Mediaservices_Update",
                "Mediaservices_Update",
                "RoleAssignments_Create",
                "RoleAssignments_Create",
                "Mediaservices_Update"
            ],
            "{:#?}",
            describe(&writes)
        );
        let snapshot = emu.snapshot();
        let sbdc: Vec<_> = snapshot["roleAssignments"]
            .as_array()
            .expect("role assignments")
            .iter()
            .filter(|a| {
                a["principal_id"].as_str().is_some_and(|p| p.eq_ignore_ascii_case(&principal))
                    && a["role_guid"] == "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
            })
            .collect();
        assert_eq!(sbdc.len(), 2, "{sbdc:#?}");

        // One event per Azure write, and the transitions.
        let reasons = event_reasons(&client, &ns, "trusted").await;
        for expected in ["IdentityUpdated", "StorageAccessGranted", "AccountUpdated", "Succeeded"] {
            assert!(reasons.iter().any(|r| r == expected), "no {expected} event in {reasons:?}");
        }

        // Steady state: three forced reconciles, no Azure write, no status write.
        let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), &ns);
        let before = api.get("trusted").await.expect("get");
        let writes_before = azure_writes(&emu).len();
        let ctx = operator.context(&client);
        for _ in 0..3 {
            ams_security_operator::controller::account::reconcile(std::sync::Arc::new(watched(&before)), ctx.clone())
                .await
                .expect("reconcile");
        }
        let after = api.get("trusted").await.expect("get");
        assert_eq!(
            before.metadata.resource_version, after.metadata.resource_version,
            "a converged reconcile patched the object"
        );
        let new_writes = &azure_writes(&emu)[writes_before..];
        assert!(new_writes.is_empty(), "converged reconciles wrote to Azure: {:#?}", describe(new_writes));

        // The metrics endpoint: the expected series, with bounded labels (no object names, ids
        // or tokens).
        let metrics = wait_for_http(&format!("http://{health}/metrics"), 200).await;
        let value = |series: &str| {
            metrics.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse::<f64>().ok()))
        };
        assert!(value(r#"ams_reconciles_total{reason="Succeeded"}"#).is_some_and(|v| v >= 1.0), "{metrics}");
        assert!(value("ams_reconcile_duration_seconds_count").is_some_and(|v| v >= 1.0), "{metrics}");
        assert_eq!(value(r#"ams_customer_key_inaccessible_accounts{cause="KeyDisabled"}"#), Some(0.0), "{metrics}");
        assert!(
            metrics.lines().any(|l| l.starts_with("ams_azure_requests_total{") && l.contains(r#"outcome="Ok""#)),
            "{metrics}"
        );
        for series in ["ams_key_probers ", "ams_key_probes_total ", "ams_azure_http_attempts_total "] {
            assert!(metrics.lines().any(|l| l.starts_with(series)), "{series}: {metrics}");
        }
        for leak in [ns.as_str(), "trusted", principal.as_str(), "eyJ", "/subscriptions/"] {
            assert!(!metrics.contains(leak), "metrics carry {leak:?}: {metrics}");
        }
        finish(operator, emu).await;
        // After shutdown the health endpoint is gone.
        assert!(reqwest::get(format!("http://{health}/healthz")).await.is_err());
    })
    .await;
}

/// A user-assigned identity reaches both storage and a versionless customer key in an
/// access-policy vault: the operator grants the storage role and adds the access policy, then
/// sets storage and encryption; status shows the key version in use, which is the latest.
#[tokio::test]
async fn user_assigned_identity_for_storage_and_customer_key_converges() {
    with_temp_ns("e2e-uai", |client, ns| async move {
        let emu = emulator().await;
        let operator = Operator::start(&client, &emu, &ns);
        let spec = json!({
            "identity": { "type": "UserAssigned", "userAssignedIdentities": [identity_id()] },
            "storage": {
                "authentication": "ManagedIdentity",
                "accounts": [
                    { "id": storage_id("mediaprimary"), "type": "Primary", "identity": { "userAssignedIdentity": identity_id() } },
                ],
            },
            "encryption": {
                "type": "CustomerKey",
                "keyIdentifier": "https://media-kv.vault.azure.net/keys/account-key",
                "identity": { "userAssignedIdentity": identity_id() },
            },
        });
        create(&client, &ns, &manifest("byok-uai", spec)).await;
        let ready = wait_ready(&client, &ns, "byok-uai").await;
        let status = ready.status.clone().expect("status");

        let latest = latest_version(&emu, "media-kv", "account-key");
        let encryption = status.encryption.clone().expect("status.encryption");
        assert_eq!(encryption.key_version.as_deref(), Some(latest.as_str()), "{encryption:?}");
        assert!(
            encryption
                .current_key_identifier
                .as_deref()
                .is_some_and(|k| k.ends_with(&format!("/keys/account-key/{latest}"))),
            "{encryption:?}"
        );
        assert_eq!(
            state(&ready, "CustomerKeyInaccessible"),
            ("False".into(), "KeyAccessible".into())
        );
        let (principal, client_id) = emu.user_assigned_identity(&identity_id()).expect("seeded identity");
        let uai = &status.identity.as_ref().expect("status.identity").user_assigned;
        assert_eq!(uai.len(), 1, "{uai:?}");
        assert_eq!(uai[0].principal_id.as_deref(), Some(principal.as_str()));
        assert_eq!(uai[0].client_id.as_deref(), Some(client_id.as_str()));

        // The ownership claim with the first account PATCH, then identity, grants, settings.
        let writes = azure_writes(&emu);
        let ops: Vec<&str> = writes.iter().map(|r| r.operation.as_str()).collect();
        assert_eq!(
            ops,
            [
                "Mediaservices_Update",
                "Mediaservices_Update",
                "RoleAssignments_Create",
                "Vaults_UpdateAccessPolicy",
                "Mediaservices_Update"
            ],
            "{:#?}",
            describe(&writes)
        );
        finish(operator, emu).await;
    })
    .await;
}

/// The newest version of a seeded key, from the emulator's world.
fn latest_version(
    emu: &ams_security_operator::emulator::Emulator,
    vault: &str,
    key: &str,
) -> String {
    let snapshot = emu.snapshot();
    let vault = snapshot["vaults"]
        .as_array()
        .expect("vaults")
        .iter()
        .find(|v| {
            v["id"]
                .as_str()
                .is_some_and(|i| i.ends_with(&format!("/vaults/{vault}")))
        })
        .expect("vault in the world");
    let key = vault["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["name"] == key)
        .expect("key in the vault");
    key["versions"]
        .as_array()
        .and_then(|v| v.last())
        .and_then(|v| v["version"].as_str())
        .expect("a version")
        .to_owned()
}

/// A pinned key version in an RBAC vault with the system-assigned identity: the operator
/// assigns Key Vault Crypto Service Encryption User at the key's scope, and the account uses
/// the pinned version although a newer one exists.
#[tokio::test]
async fn pinned_key_version_in_an_rbac_vault_is_granted_at_key_scope_and_stays_pinned() {
    with_temp_ns("e2e-pin", |client, ns| async move {
        let emu = emulator().await;
        let operator = Operator::start(&client, &emu, &ns);
        let pinned = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
        let spec = json!({
            "identity": { "type": "SystemAssigned" },
            "encryption": {
                "type": "CustomerKey",
                "keyIdentifier": format!("https://media-rbac-kv.vault.azure.net/keys/account-key/{pinned}"),
            },
        });
        create(&client, &ns, &manifest("pinned", spec)).await;
        let ready = wait_ready(&client, &ns, "pinned").await;
        let status = ready.status.clone().expect("status");
        assert_ne!(latest_version(&emu, "media-rbac-kv", "account-key"), pinned);
        assert_eq!(
            status.encryption.as_ref().and_then(|e| e.key_version.as_deref()),
            Some(pinned)
        );
        let grant = azure_writes(&emu)
            .into_iter()
            .find(|r| r.operation == "RoleAssignments_Create")
            .expect("a role assignment was created");
        assert!(
            grant
                .uri
                .contains("/providers/Microsoft.KeyVault/vaults/media-rbac-kv/keys/account-key/providers/Microsoft.Authorization/roleAssignments/"),
            "granted at the wrong scope: {}",
            grant.uri
        );
        assert_eq!(grant.status, 201, "{}", grant.uri);
        finish(operator, emu).await;
    })
    .await;
}

/// A changed spec converges again: from key-based storage to trusted storage with a new
/// system-assigned identity, for the new generation.
#[tokio::test]
async fn a_changed_spec_converges_again() {
    with_temp_ns("e2e-change", |client, ns| async move {
        let emu = emulator().await;
        let operator = Operator::start(&client, &emu, &ns);
        let spec = json!({
            "storage": { "accounts": [ { "id": storage_id("mediaprimary"), "type": "Primary" } ] },
            "encryption": { "type": "SystemKey" },
        });
        create(&client, &ns, &manifest("change", spec)).await;
        let first = wait_ready(&client, &ns, "change").await;
        assert!(azure_writes(&emu).is_empty(), "{:#?}", describe(&azure_writes(&emu)));

        let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), &ns);
        let patch = json!({ "spec": {
            "identity": { "type": "SystemAssigned" },
            "storage": {
                "authentication": "ManagedIdentity",
                "accounts": [ { "id": storage_id("mediaprimary"), "type": "Primary", "identity": { "useSystemAssignedIdentity": true } } ],
            },
        }});
        api.patch("change", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch spec");
        let second = wait_ready(&client, &ns, "change").await;
        assert!(second.metadata.generation > first.metadata.generation);
        assert!(
            second.status.as_ref().and_then(|s| s.identity.as_ref()).and_then(|i| i.principal_id.as_ref()).is_some(),
            "{:?}",
            second.status
        );
        // The claim (the account carried none: the first resource's spec needed no write),
        // the identity, the grant, the storage settings.
        assert_eq!(azure_writes(&emu).len(), 4, "{:#?}", describe(&azure_writes(&emu)));
        finish(operator, emu).await;
    })
    .await;
}

/// Each failed prerequisite is reported with its own reason on its own condition, and nothing
/// at all is written to Azure.
// NB: the table of cases is most of the length.
#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn each_bad_prerequisite_has_its_own_reason_and_causes_zero_azure_writes() {
    let key = |vault: &str, key: &str| json!({ "type": "CustomerKey", "keyIdentifier": format!("https://{vault}.vault.azure.net/keys/{key}") });
    let system = json!({ "type": "SystemAssigned" });
    let trusted = |storage: &str| {
        json!({ "authentication": "ManagedIdentity", "accounts": [
            { "id": storage_id(storage), "type": "Primary", "identity": { "useSystemAssignedIdentity": true } } ] })
    };
    let cases: Vec<(&str, serde_json::Value, Option<&str>, &str, &str)> = vec![
        (
            "ec-key",
            json!({ "identity": system, "encryption": key("media-kv", "ec-key") }),
            None,
            "EncryptionReady",
            "KeyTypeUnsupported",
        ),
        (
            "disabled-key",
            json!({ "identity": system, "encryption": key("media-kv", "account-key") }),
            Some("disable"),
            "EncryptionReady",
            "KeyDisabled",
        ),
        (
            "expired-key",
            json!({ "identity": system, "encryption": key("media-kv", "account-key") }),
            Some("expire"),
            "EncryptionReady",
            "KeyExpired",
        ),
        (
            "other-region",
            json!({ "identity": system, "encryption": key("north-kv", "account-key") }),
            None,
            "EncryptionReady",
            "VaultRegionMismatch",
        ),
        (
            "no-purge-protection",
            json!({ "identity": system, "encryption": key("unprotected-kv", "account-key") }),
            None,
            "EncryptionReady",
            "VaultPurgeProtectionDisabled",
        ),
        (
            "no-vault",
            json!({ "identity": system, "encryption": key("absent-kv", "account-key") }),
            None,
            "EncryptionReady",
            "VaultNotFound",
        ),
        (
            "deleted-vault",
            json!({ "identity": system, "encryption": key("media-kv", "account-key") }),
            Some("delete-vault"),
            "EncryptionReady",
            "VaultSoftDeleted",
        ),
        (
            "no-key",
            json!({ "identity": system, "encryption": key("media-kv", "absent-key") }),
            None,
            "EncryptionReady",
            "KeyNotFound",
        ),
        (
            "other-subscription",
            json!({ "storage": { "accounts": [
            { "id": storage_id("mediaprimary"), "type": "Primary" },
            { "id": format!("/subscriptions/{OTHER_SUB}/resourceGroups/elsewhere/providers/Microsoft.Storage/storageAccounts/mediaforeign"), "type": "Secondary" } ] } }),
            None,
            "StorageAccessReady",
            "StorageInOtherSubscription",
        ),
        (
            "contributor-only",
            json!({
            "identity": { "type": "UserAssigned", "userAssignedIdentities": [identity_id()] },
            "storage": { "authentication": "ManagedIdentity", "grantAccess": false, "accounts": [
                { "id": storage_id("mediacontrib"), "type": "Primary", "identity": { "userAssignedIdentity": identity_id() } } ] } }),
            None,
            "StorageAccessReady",
            "StorageContributorOnly",
        ),
        (
            "firewall",
            json!({ "identity": system, "storage": trusted("mediawalled") }),
            None,
            "StorageAccessReady",
            "StorageFirewallBlocked",
        ),
        (
            "no-such-role",
            json!({ "identity": system, "accessGrants": [
                { "principalId": "0a1b2c3d-0000-4000-8000-00000000beef", "roleDefinitionId": "0b1d2c3e-4f50-6172-8394-a5b6c7d8e9f0" } ] }),
            None,
            "AccessGrantsReady",
            "RoleDefinitionNotFound",
        ),
    ];
    for (name, spec, mutation, condition_type, reason) in cases {
        with_temp_ns("e2e-bad", |client, ns| async move {
            let emu = emulator().await;
            match mutation {
                Some("disable") => emu
                    .disable_key("media-kv", "account-key", None)
                    .expect("disable"),
                Some("expire") => emu
                    .expire_key("media-kv", "account-key", None)
                    .expect("expire"),
                Some("delete-vault") => emu.delete_vault("media-kv").expect("delete vault"),
                _ => {}
            }
            let operator = Operator::start(&client, &emu, &ns);
            create(&client, &ns, &manifest(name, spec)).await;
            let object =
                wait_for_condition(&client, &ns, name, condition_type, "False", reason).await;
            let (ready, ready_reason) = state(&object, "Ready");
            assert_eq!(
                (ready.as_str(), ready_reason.as_str()),
                ("False", reason),
                "{name}: Ready"
            );
            let message = &condition(&object, condition_type)
                .expect("condition")
                .message;
            assert!(!message.is_empty(), "{name}: empty message");
            if name == "other-subscription" {
                assert!(
                    message.contains(SUB) && message.contains(OTHER_SUB),
                    "{name}: {message}"
                );
            }
            let writes = azure_writes(&emu);
            assert!(
                writes.is_empty(),
                "{name}: Azure writes despite a failed prerequisite: {:#?}",
                describe(&writes)
            );
            finish(operator, emu).await;
        })
        .await;
    }
}

/// `PrincipalNotFound` on a fresh grant is propagation, not failure: the condition says
/// `Propagating`, and the grant is retried until the account converges.
#[tokio::test]
async fn principal_not_found_is_propagating_and_then_converges() {
    with_temp_ns("e2e-prop", |client, ns| async move {
        let emu = emulator().await;
        emu.inject_fault(FaultRule {
            operation: "RoleAssignments_Create".into(),
            fault: Fault::Error {
                status: 400,
                code: "PrincipalNotFound".into(),
                message: "Principal does not exist in the directory (replication delay).".into(),
            },
            times: Some(1),
        });
        let operator = Operator::start(&client, &emu, &ns);
        let spec = json!({
            "identity": { "type": "SystemAssigned" },
            "storage": { "authentication": "ManagedIdentity", "accounts": [
                { "id": storage_id("mediaprimary"), "type": "Primary", "identity": { "useSystemAssignedIdentity": true } } ] },
        });
        create(&client, &ns, &manifest("propagating", spec)).await;
        let waiting =
            wait_for_condition(&client, &ns, "propagating", "StorageAccessReady", "False", "Propagating").await;
        assert!(
            waiting.status.as_ref().and_then(|s| s.propagating_since.as_ref()).is_some(),
            "{:?}",
            waiting.status
        );
        let ready = wait_ready(&client, &ns, "propagating").await;
        assert!(ready.status.as_ref().and_then(|s| s.propagating_since.as_ref()).is_none());
        let creates: Vec<_> = azure_writes(&emu).into_iter().filter(|r| r.operation == "RoleAssignments_Create").collect();
        assert_eq!(creates.iter().map(|r| r.status).collect::<Vec<_>>(), [400, 201], "{:#?}", describe(&creates));
        finish(operator, emu).await;
    })
    .await;
}

/// A long-running PATCH is parked in status and polled over several reconciles until it
/// finishes; a failed one surfaces Azure's error code on the condition.
#[tokio::test]
async fn long_running_operations_are_parked_polled_and_their_failures_surface() {
    with_temp_ns("e2e-lro", |client, ns| async move {
        let emu = emulator_with(|c| c.lro_polls = 3).await;
        let operator = Operator::start(&client, &emu, &ns);
        create(&client, &ns, &manifest("slow", json!({ "identity": { "type": "SystemAssigned" } }))).await;
        let parked = wait_until(&client, &ns, "slow", "parked", Duration::from_secs(30), |o| {
            o.status.as_ref().is_some_and(|s| s.pending_operation.is_some())
        })
        .await;
        let op = parked.status.and_then(|s| s.pending_operation).expect("parked");
        assert_eq!(op.operation.as_str(), "update media services account");
        assert!(op.polling_url.starts_with("https://management.azure.com/"), "{}", op.polling_url);
        let ready = wait_ready(&client, &ns, "slow").await;
        assert!(ready.status.as_ref().is_some_and(|s| s.pending_operation.is_none()));
        let polls = emu
            .request_log()
            .iter()
            .filter(|r| r.operation == "MediaServicesOperationStatuses_Get")
            .count();
        assert!(polls >= 3, "polled {polls} times");

        // A failing operation.
        emu.fail_next_operation("StorageAccountAccessDenied", "The account could not reach its storage.");
        let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), &ns);
        let patch = json!({ "spec": { "identity": { "type": "SystemAssigned,UserAssigned", "userAssignedIdentities": [identity_id()] } } });
        api.patch("slow", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");
        let failed = wait_for_condition(&client, &ns, "slow", "IdentityReady", "False", "OperationFailed").await;
        let message = &condition(&failed, "IdentityReady").expect("condition").message;
        assert!(message.contains("StorageAccountAccessDenied"), "{message}");
        assert!(failed.status.as_ref().is_some_and(|s| s.pending_operation.is_none()));
        finish(operator, emu).await;
    })
    .await;
}

/// Suspended resources make no Azure call at all; a missing account is a clear reason with no
/// write; an out-of-range interval is `InvalidSpec` for that object while another object in
/// the same namespace converges.
#[tokio::test]
async fn suspended_missing_and_invalid_resources_are_reported_and_never_block_others() {
    with_temp_ns("e2e-odd", |client, ns| async move {
        let emu = emulator().await;
        let operator = Operator::start(&client, &emu, &ns);

        create(
            &client,
            &ns,
            &manifest(
                "paused",
                json!({ "suspend": true, "identity": { "type": "SystemAssigned" } }),
            ),
        )
        .await;
        wait_for_condition(&client, &ns, "paused", "Ready", "False", "Suspended").await;
        let azure: Vec<_> = emu
            .request_log()
            .into_iter()
            .filter(|r| !r.host.starts_with("localhost"))
            .collect();
        assert!(
            azure.is_empty(),
            "a suspended resource called Azure: {:#?}",
            describe(&azure)
        );

        let mut missing = manifest(
            "missing",
            json!({ "identity": { "type": "SystemAssigned" } }),
        );
        missing.spec.account.name = "nosuchaccount".into();
        create(&client, &ns, &missing).await;
        wait_for_condition(&client, &ns, "missing", "Ready", "False", "AccountNotFound").await;

        create(
            &client,
            &ns,
            &manifest(
                "odd-interval",
                json!({ "keyAccessCheckInterval": "99999h" }),
            ),
        )
        .await;
        create(
            &client,
            &ns,
            &manifest("fine", json!({ "encryption": { "type": "SystemKey" } })),
        )
        .await;
        let odd = wait_for_condition(
            &client,
            &ns,
            "odd-interval",
            "Ready",
            "False",
            "InvalidSpec",
        )
        .await;
        let message = &condition(&odd, "Ready").expect("condition").message;
        assert!(message.contains("spec.keyAccessCheckInterval"), "{message}");
        wait_ready(&client, &ns, "fine").await;
        assert!(
            azure_writes(&emu).is_empty(),
            "{:#?}",
            describe(&azure_writes(&emu))
        );
        finish(operator, emu).await;
    })
    .await;
}

/// A full customer-key scenario with the real binary logging everything (debug, JSON), with a
/// client secret from a Secret: the log has a span per reconcile naming the object, and never a
/// token, the secret, or key material.
#[tokio::test]
async fn the_logs_of_a_full_scenario_carry_spans_and_no_secret() {
    with_temp_ns("e2e-logs", |client, ns| {
        Box::pin(async move {
            use k8s_openapi::api::core::v1::Secret;
            let emu = emulator().await;
            let operator_sp = emu.service_principal("operator").expect("operator");
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
            secrets
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({
                        "metadata": { "name": "azure-creds" },
                        "stringData": {
                            "tenantId": emu.tenant_id(),
                            "clientId": operator_sp.client_id,
                            "clientSecret": "operator-secret",
                        },
                    }))
                    .expect("secret"),
                )
                .await
                .expect("create secret");
            let operator = OperatorProcess::spawn_logged(&emu, &ns, &[]);
            let spec = json!({
                "identity": { "type": "SystemAssigned" },
                "encryption": { "type": "CustomerKey", "keyIdentifier": "https://media-kv.vault.azure.net/keys/account-key" },
                "credentialsSecretRef": { "name": "azure-creds" },
                "keyAccessCheckInterval": "10s",
            });
            create(&client, &ns, &manifest("logged", spec)).await;
            wait_ready(&client, &ns, "logged").await;
            emu.disable_key("media-kv", "account-key", None).expect("disable");
            wait_for_condition(&client, &ns, "logged", "CustomerKeyInaccessible", "True", "KeyDisabled").await;
            let log = operator.log();
            drop(operator);
            assert!(log.lines().count() > 20, "too little logged:\n{log}");
            for line in log.lines() {
                assert!(
                    serde_json::from_str::<Value>(line).is_ok(),
                    "not a JSON log line: {line}"
                );
            }
            assert!(
                log.lines().any(|l| l.contains(r#""name":"reconcile""#) && l.contains(&format!("{ns}/logged"))),
                "no reconcile span naming the object"
            );
            for (what, needle) in [
                ("the client secret", "operator-secret"),
                ("a JWT", "eyJ"),
                ("PEM material", "-----BEGIN"),
                // (a `www-authenticate: Bearer authorization=...` challenge is no secret)
                ("an authorization header", "authorization: Bearer"),
            ] {
                let hit = log.lines().find(|l| l.contains(needle));
                assert!(hit.is_none(), "the log carries {what}: {}", hit.unwrap_or_default());
            }
            emu.shutdown().await;
        })
    })
    .await;
}

/// The event recorder on the real apiserver: an exact repeat continues its event as a series
/// (`kubectl describe` shows the count), a different note for the same reason is an event of its
/// own, so no note is ever hidden behind an earlier one.
#[tokio::test]
async fn events_repeat_as_a_series_and_a_new_note_is_its_own_event() {
    use ams_security_operator::controller::events::{EventType, Events};
    use k8s_openapi::api::events::v1::Event;
    with_temp_ns("e2e-events", |client, ns| async move {
        let object = manifest("noted", json!({ "encryption": { "type": "SystemKey" } }));
        let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), &ns);
        let object = api
            .create(&PostParams::default(), &object)
            .await
            .expect("create");
        let reference = kube::Resource::object_ref(&object, &());
        let events = Events::new(client.clone(), "ams-security-operator");
        for note in [
            "first try failed",
            "first try failed",
            "first try failed",
            "second cause",
        ] {
            events
                .publish(
                    &reference,
                    EventType::Warning,
                    "OperationFailed",
                    "Reconcile",
                    note,
                )
                .await;
        }
        let listed = Api::<Event>::namespaced(client.clone(), &ns)
            .list(&kube::api::ListParams::default())
            .await
            .expect("list events")
            .items;
        let mut seen: Vec<(String, Option<i32>)> = listed
            .iter()
            .map(|e| {
                assert_eq!(e.reason.as_deref(), Some("OperationFailed"));
                assert_eq!(e.type_.as_deref(), Some("Warning"));
                assert_eq!(
                    e.regarding.as_ref().and_then(|r| r.uid.clone()),
                    object.metadata.uid.clone()
                );
                (
                    e.note.clone().unwrap_or_default(),
                    e.series.as_ref().map(|s| s.count),
                )
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("first try failed".to_owned(), Some(3)),
                ("second cause".to_owned(), None)
            ],
            "{listed:#?}"
        );
        // The core/v1 view (what `kubectl describe` reads) counts the repeats too.
        let core: Vec<(Option<String>, Option<i32>)> =
            Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), &ns)
                .list(&kube::api::ListParams::default())
                .await
                .expect("list core events")
                .items
                .into_iter()
                .filter(|e| e.message.as_deref() == Some("first try failed"))
                .map(|e| (e.message, e.series.map(|s| s.count.unwrap_or_default())))
                .collect();
        assert_eq!(core, [(Some("first try failed".to_owned()), Some(3))]);
    })
    .await;
}
