//! Deletion end to end: the finalizer carries out `deletionPolicy` before the object goes, with
//! exact ownership (never an assignment someone else made), tolerates targets already gone,
//! and never hangs without saying why.

use ams_security_operator::crd::MediaServicesAccount;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::common::with_temp_ns;
use super::harness::*;

const SBDC: &str = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";

async fn delete(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), ns);
    api.delete(name, &DeleteParams::default())
        .await
        .expect("delete");
}

/// `RevokeGrants` removes exactly the role assignments and access-policy entries the operator
/// made: an equivalent assignment someone else made first is adopted for checking, and
/// survives; the account stays.
#[tokio::test]
async fn revoke_grants_removes_exactly_what_the_operator_made() {
    with_temp_ns("e2e-revoke", |client, ns| async move {
        let emu = emulator().await;
        let ctx = offline_context(&client, &emu);
        let (principal, _) = emu.user_assigned_identity(&identity_id()).expect("identity");
        // Someone else already granted the identity blob access on the archive account.
        let foreign = format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/0f0f0f0f-0000-4000-8000-000000000001",
            storage_id("mediaarchive")
        );
        let (made, _) = arm_as(&emu, "operator", reqwest::Method::PUT, &format!("{foreign}?api-version=2022-04-01"),
            Some(json!({ "properties": {
                "roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{SBDC}"),
                "principalId": principal,
                "principalType": "ServicePrincipal" } }))).await;
        assert!((200..300).contains(&made), "{made}");

        let uai = json!({ "userAssignedIdentity": identity_id() });
        let spec = json!({
            "identity": { "type": "UserAssigned", "userAssignedIdentities": [identity_id()] },
            "storage": { "authentication": "ManagedIdentity", "accounts": [
                { "id": storage_id("mediaprimary"), "type": "Primary", "identity": uai },
                { "id": storage_id("mediaarchive"), "type": "Secondary", "identity": uai } ] },
            "encryption": { "type": "CustomerKey", "keyIdentifier": "https://media-kv.vault.azure.net/keys/account-key", "identity": uai },
            "accessGrants": [ { "principalId": principal, "role": "Reader" } ],
            "deletionPolicy": "RevokeGrants",
        });
        create(&client, &ns, &manifest("revoke", spec)).await;
        let ready = reconcile_until_ready(&client, &ns, "revoke", &ctx).await;
        assert!(ready.metadata.finalizers.iter().flatten().any(|f| f == "ams-security.io/cleanup"));
        // Status says which grant is whose: the archive's is adopted, the primary's is ours.
        let storage = &ready.status.as_ref().expect("status").storage;
        let ours = |name: &str| storage.iter().find(|s| s.id.eq_ignore_ascii_case(&storage_id(name))).map(|s| s.created_by_operator);
        assert_eq!((ours("mediaprimary"), ours("mediaarchive")), (Some(true), Some(false)), "{storage:#?}");
        let made_by_operator = |a: &Value| a["description"] == "Managed by ams-security-operator";
        let before = role_assignments_of(&emu, &principal);
        assert_eq!(
            before.iter().filter(|a| made_by_operator(a)).count(),
            2,
            "SBDC on the primary (the archive's is adopted) and Reader: {before:#?}"
        );

        delete(&client, &ns, "revoke").await;
        finalize_now(&client, &ns, "revoke", &ctx).await;
        let left = role_assignments_of(&emu, &principal);
        assert!(!left.iter().any(made_by_operator), "an operator grant survived: {left:#?}");
        assert_eq!(left.len(), before.len() - 2, "{left:#?}");
        assert!(
            left.iter().any(|a| a["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(&foreign))),
            "the adopted foreign assignment was removed: {left:#?}"
        );
        let policy_removals = azure_writes(&emu)
            .into_iter()
            .filter(|r| r.operation == "Vaults_UpdateAccessPolicy" && r.uri.contains("/accessPolicies/remove"))
            .count();
        assert_eq!(policy_removals, 1);
        assert!(emu.principal_id(&account_id()).is_some() || emu.snapshot()["mediaAccounts"].as_array().is_some_and(|a| !a.is_empty()), "the account stays");
        let reasons = event_reasons(&client, &ns, "revoke").await;
        for expected in ["RoleAssignmentRevoked", "KeyAccessRevoked", "CleanedUp"] {
            assert!(reasons.iter().any(|r| r == expected), "no {expected} in {reasons:?}");
        }
        emu.shutdown().await;
    })
    .await;
}

/// `Delete` revokes, then deletes the account; `Retain` touches nothing but its ownership claim.
#[tokio::test]
async fn delete_removes_the_account_and_retain_removes_only_its_claim() {
    with_temp_ns("e2e-delete", |client, ns| async move {
        let emu = emulator().await;
        let ctx = offline_context(&client, &emu);
        let trusted = |policy: &str| json!({
            "identity": { "type": "SystemAssigned" },
            "storage": { "authentication": "ManagedIdentity", "accounts": [
                { "id": storage_id("mediaprimary"), "type": "Primary", "identity": { "useSystemAssignedIdentity": true } } ] },
            "deletionPolicy": policy,
        });
        create(&client, &ns, &manifest("kept", trusted("Retain"))).await;
        reconcile_until_ready(&client, &ns, "kept", &ctx).await;
        let writes = azure_writes(&emu).len();
        delete(&client, &ns, "kept").await;
        finalize_now(&client, &ns, "kept", &ctx).await;
        // Retain leaves everything but the resource's ownership claim, which goes so that
        // another owner may take the account over.
        let retained = azure_writes(&emu);
        assert_eq!(
            describe(&retained[writes..]).len(),
            1,
            "Retain wrote more than the claim's removal: {:#?}",
            describe(&retained[writes..])
        );
        assert_eq!(retained[writes].operation, "Mediaservices_Update");
        emu.shutdown().await;

        // A fresh world, so the grant to revoke is this object's own.
        let emu = emulator().await;
        let ctx = offline_context(&client, &emu);
        create(&client, &ns, &manifest("gone", trusted("Delete"))).await;
        let ready = reconcile_until_ready(&client, &ns, "gone", &ctx).await;
        let principal = ready.status.and_then(|s| s.identity).and_then(|i| i.principal_id).expect("principal");
        delete(&client, &ns, "gone").await;
        finalize_now(&client, &ns, "gone", &ctx).await;
        let accounts = emu.snapshot()["mediaAccounts"].clone();
        let still_there = accounts.as_array().is_some_and(|all| {
            all.iter()
                .any(|a| a["id"].as_str().is_some_and(|id| id.ends_with("/mediaservices/mediaacct")))
        });
        assert!(!still_there, "the account is still there: {accounts}");
        // The world's other account is not this resource's and is left alone.
        assert_eq!(accounts.as_array().map(Vec::len), Some(1), "{accounts}");
        assert!(
            role_assignments_of(&emu, &principal).iter().all(|a| a["role_guid"] != SBDC),
            "the grant was not revoked"
        );
        emu.shutdown().await;
    })
    .await;
}

/// Access grants for a VM's identity (by principal id) and for a user-assigned identity (by
/// `identityResourceId`) are made and listed with their assignments; `Delete` then finishes
/// although one grant and the account itself were already removed out of band.
#[tokio::test]
async fn delete_tolerates_targets_already_gone() {
    with_temp_ns("e2e-gone", |client, ns| async move {
        let emu = emulator().await;
        let ctx = offline_context(&client, &emu);
        let vm = emu.principal_id("encoder-vm").expect("the VM's principal");
        let spec = json!({
            "accessGrants": [
                { "principalId": vm, "role": "MediaServicesMediaOperator" },
                { "identityResourceId": identity_id(), "role": "Reader" } ],
            "deletionPolicy": "Delete",
        });
        create(&client, &ns, &manifest("gone", spec)).await;
        let ready = reconcile_until_ready(&client, &ns, "gone", &ctx).await;
        let grants = ready.status.expect("status").access_grants;
        assert_eq!(grants.len(), 2, "{grants:#?}");
        assert!(
            grants
                .iter()
                .all(|g| g.created_by_operator && g.role_assignment_id.is_some()),
            "{grants:#?}"
        );
        assert!(
            grants
                .iter()
                .any(|g| g.principal_id.eq_ignore_ascii_case(&vm)),
            "{grants:#?}"
        );

        // Out of band: the VM's grant and then the account are deleted.
        let vm_grant = grants
            .iter()
            .find(|g| g.principal_id.eq_ignore_ascii_case(&vm))
            .and_then(|g| g.role_assignment_id.clone())
            .expect("id");
        emu.remove_role_assignment(&vm_grant).expect("remove");
        let (code, body) = arm_as(
            &emu,
            "operator",
            reqwest::Method::DELETE,
            &format!("{}?api-version=2023-01-01", account_id()),
            None,
        )
        .await;
        assert!((200..300).contains(&code), "{code} {body}");

        delete(&client, &ns, "gone").await;
        finalize_now(&client, &ns, "gone", &ctx).await;
        let (principal, _) = emu
            .user_assigned_identity(&identity_id())
            .expect("identity");
        assert!(
            role_assignments_of(&emu, &principal)
                .iter()
                .all(|a| a["role_guid"] != "acdd72a7-3385-48ef-bd42-f606fba81ae7"),
            "the Reader grant was not revoked"
        );
        emu.shutdown().await;
    })
    .await;
}

/// With its credentials gone, deletion waits and says why; the release annotation lets the
/// object go without cleanup.
#[tokio::test]
async fn deletion_without_credentials_waits_and_says_why_until_released() {
    with_temp_ns("e2e-stuck", |client, ns| async move {
        let emu = emulator().await;
        let ctx = offline_context(&client, &emu);
        let sp = emu.service_principal("operator").expect("operator");
        let mut secret = Secret::default();
        secret.metadata.name = Some("azure-credentials".into());
        secret.data = Some(
            [
                ("tenantId", emu.tenant_id()),
                ("clientId", sp.client_id.clone()),
                ("clientSecret", sp.secret.clone().expect("secret")),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
            .collect(),
        );
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        secrets.create(&PostParams::default(), &secret).await.expect("create secret");
        let spec = json!({
            "identity": { "type": "SystemAssigned" },
            "credentialsSecretRef": { "name": "azure-credentials" },
            "deletionPolicy": "RevokeGrants",
        });
        create(&client, &ns, &manifest("stuck", spec)).await;
        reconcile_until_ready(&client, &ns, "stuck", &ctx).await;
        secrets.delete("azure-credentials", &DeleteParams::default()).await.expect("delete secret");
        delete(&client, &ns, "stuck").await;
        let waiting = reconcile_now(&client, &ns, "stuck", &ctx).await;
        assert_eq!(state(&waiting, "Ready"), ("False".into(), "CredentialsUnavailable".into()));
        let message = &condition(&waiting, "Ready").expect("ready").message;
        assert!(message.contains("ams-security.io/release-finalizer"), "{message}");

        let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), &ns);
        let patch = json!({ "metadata": { "annotations": { "ams-security.io/release-finalizer": "true" } } });
        api.patch("stuck", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate");
        finalize_now(&client, &ns, "stuck", &ctx).await;
        let reasons = event_reasons(&client, &ns, "stuck").await;
        assert!(reasons.iter().any(|r| r == "FinalizerReleased"), "{reasons:?}");
        emu.shutdown().await;
    })
    .await;
}

/// A grant dropped from the spec is revoked (only the operator's own), the others stay.
#[tokio::test]
async fn a_grant_dropped_from_the_spec_is_revoked() {
    with_temp_ns("e2e-dropped", |client, ns| async move {
        let emu = emulator().await;
        let ctx = offline_context(&client, &emu);
        let (principal, _) = emu.user_assigned_identity(&identity_id()).expect("identity");
        let grants = |roles: &[&str]| {
            json!({ "accessGrants": roles.iter().map(|r| json!({ "identityResourceId": identity_id(), "role": r })).collect::<Vec<_>>() })
        };
        create(&client, &ns, &manifest("grants", grants(&["Reader", "MediaServicesMediaOperator"]))).await;
        reconcile_until_ready(&client, &ns, "grants", &ctx).await;
        let on_account = |emu: &ams_security_operator::emulator::Emulator| {
            role_assignments_at(emu, &account_id(), &principal)
                .into_iter()
                .map(|a| a["role_guid"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(on_account(&emu).len(), 2, "{:?}", on_account(&emu));

        let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), &ns);
        let mut object = api.get("grants").await.expect("get");
        object.spec.access_grants.truncate(1);
        object.metadata.managed_fields = None;
        api.replace("grants", &PostParams::default(), &object).await.expect("drop a grant");
        let ready = reconcile_until_ready(&client, &ns, "grants", &ctx).await;
        assert_eq!(on_account(&emu), ["acdd72a7-3385-48ef-bd42-f606fba81ae7"], "only Reader stays");
        assert_eq!(ready.status.as_ref().map(|s| s.access_grants.len()), Some(1));
        let reasons = event_reasons(&client, &ns, "grants").await;
        assert!(reasons.iter().any(|r| r == "AccessGrantRevoked"), "{reasons:?}");
        emu.shutdown().await;
    })
    .await;
}

/// A namespace outside the tenancy map: `Ready=False` (`TenancyDenied`) naming what is outside,
/// not one Azure call (not even for a token), and deleting it releases the object without
/// touching Azure either. The same spec in a namespace the map names converges.
#[tokio::test]
async fn a_namespace_outside_the_tenancy_map_makes_no_azure_call() {
    with_temp_ns("e2e-tenancy", |client, ns| async move {
        let emu = emulator().await;
        let map = ams_security_operator::tenancy::Tenancy::from_yaml(
            &format!(
                "rules:\n  - namespaces: [someone-else]\n    subscriptions: [\"*\"]\n  - namespaces: [{ns}]\n    subscriptions: [{SUB}]\n    resourceGroups: [other-group]\n"
            ),
            "test map",
        )
        .expect("map");
        let ctx = offline_context_with(&client, &emu, |c| c.tenancy = Some(std::sync::Arc::new(map)));
        let trusted = |policy: &str| json!({
            "identity": { "type": "SystemAssigned" },
            "storage": { "authentication": "ManagedIdentity", "accounts": [
                { "id": storage_id("mediaprimary"), "type": "Primary", "identity": { "useSystemAssignedIdentity": true } } ] },
            "deletionPolicy": policy,
        });
        create(&client, &ns, &manifest("outside", trusted("Delete"))).await;
        // The first pass adds the finalizer, the second judges the spec.
        reconcile_now(&client, &ns, "outside", &ctx).await;
        let refused = reconcile_now(&client, &ns, "outside", &ctx).await;
        assert_eq!(
            state(&refused, "Ready"),
            ("False".into(), "TenancyDenied".into())
        );
        let message = &condition(&refused, "Ready").expect("ready").message;
        assert!(message.contains("resource group media"), "{message}");
        assert!(
            emu.request_log().is_empty(),
            "called Azure: {:#?}",
            describe(&emu.request_log())
        );
        delete(&client, &ns, "outside").await;
        finalize_now(&client, &ns, "outside", &ctx).await;
        assert!(
            emu.request_log().is_empty(),
            "deletion called Azure: {:#?}",
            describe(&emu.request_log())
        );

        // Allowed: converges as usual.
        let map = ams_security_operator::tenancy::Tenancy::from_yaml(
            &format!("rules:\n  - namespaces: [{ns}]\n    subscriptions: [{SUB}]\n    resourceGroups: [media]\n"),
            "test map",
        )
        .expect("map");
        let ctx = offline_context_with(&client, &emu, |c| c.tenancy = Some(std::sync::Arc::new(map)));
        create(&client, &ns, &manifest("inside", trusted("Retain"))).await;
        reconcile_until_ready(&client, &ns, "inside", &ctx).await;
        emu.shutdown().await;
    })
    .await;
}
