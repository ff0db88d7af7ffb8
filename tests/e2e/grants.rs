//! Grants end to end: blob access on a storage account the spec dropped is revoked (only the
//! operator's own), changes made outside the operator are corrected with `DriftCorrected`
//! events and the drift metric, and a foreign assignment that holds the name the operator
//! derives is reported, never overwritten.

use ams_security_operator::azure::ResourceId;
use ams_security_operator::crd::MediaServicesAccount;
use ams_security_operator::reconcile::plan::{assignment_name, owner_identity};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use reqwest::Method;
use serde_json::{Value, json};

use super::common::with_temp_ns;
use super::harness::*;

const SBDC: &str = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
const KEY: &str = "https://media-kv.vault.azure.net/keys/account-key";

fn spec(storage: &[&str], grants: &Value, encryption: bool) -> Value {
    let uai = json!({ "userAssignedIdentity": identity_id() });
    let accounts: Vec<Value> = storage
        .iter()
        .enumerate()
        .map(|(n, s)| json!({ "id": storage_id(s), "type": if n == 0 { "Primary" } else { "Secondary" }, "identity": uai }))
        .collect();
    let mut spec = json!({
        "identity": { "type": "UserAssigned", "userAssignedIdentities": [identity_id()] },
        "storage": { "authentication": "ManagedIdentity", "accounts": accounts },
        "accessGrants": grants.clone(),
    });
    if encryption {
        spec["encryption"] =
            json!({ "type": "CustomerKey", "keyIdentifier": KEY, "identity": uai });
    }
    spec
}

/// Replaces the object's storage section with `spec`'s.
async fn replace_storage(client: &kube::Client, ns: &str, name: &str, spec: &Value) {
    let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), ns);
    let mut object = api.get(name).await.expect("get");
    let mut whole = serde_json::to_value(&object.spec).expect("spec");
    whole["storage"] = spec["storage"].clone();
    object.spec = serde_json::from_value(whole).expect("spec");
    object.metadata.managed_fields = None;
    api.replace(name, &PostParams::default(), &object)
        .await
        .expect("replace");
}

/// A storage account dropped from the spec loses the blob access the operator granted on it,
/// after the account stopped using it, with a `StorageAccessRevoked` event; status keeps the
/// remaining grant, and an equivalent assignment someone else made is adopted and survives.
#[tokio::test]
async fn a_storage_account_dropped_from_the_spec_loses_only_the_operators_grant() {
    with_temp_ns("e2e-dropstorage", |client, ns| async move {
        let emu = emulator().await;
        let ctx = offline_context(&client, &emu);
        let (principal, _) = emu
            .user_assigned_identity(&identity_id())
            .expect("identity");
        create(
            &client,
            &ns,
            &manifest(
                "drop",
                spec(&["mediaprimary", "mediaarchive"], &json!([]), false),
            ),
        )
        .await;
        let ready = reconcile_until_ready(&client, &ns, "drop", &ctx).await;
        // Both grants of the pass are named, not only the first.
        let granted = event_notes(&client, &ns, "drop", "StorageAccessGranted").await;
        assert!(
            granted
                .iter()
                .any(|n| n.contains("/mediaprimary") && n.contains("/mediaarchive")),
            "{granted:#?}"
        );
        let status = ready.status.as_ref().expect("status");
        assert_eq!(status.storage.len(), 2);
        assert!(
            status.storage.iter().all(|s| s.created_by_operator),
            "{:#?}",
            status.storage
        );
        assert_eq!(
            role_assignments_at(&emu, &storage_id("mediaarchive"), &principal).len(),
            1
        );

        replace_storage(
            &client,
            &ns,
            "drop",
            &spec(&["mediaprimary"], &json!([]), false),
        )
        .await;
        let ready = reconcile_until_ready(&client, &ns, "drop", &ctx).await;
        assert!(
            role_assignments_at(&emu, &storage_id("mediaarchive"), &principal).is_empty(),
            "the archive grant stayed"
        );
        assert_eq!(
            role_assignments_at(&emu, &storage_id("mediaprimary"), &principal).len(),
            1
        );
        let storage = &ready.status.as_ref().expect("status").storage;
        assert_eq!(storage.len(), 1, "{storage:#?}");
        // The account let go of the archive before its access went.
        let writes = describe(&azure_writes(&emu));
        let patch = writes
            .iter()
            .rposition(|w| w.starts_with("PATCH"))
            .expect("account PATCH");
        let revoke = writes
            .iter()
            .rposition(|w| w.starts_with("DELETE"))
            .expect("revocation");
        assert!(patch < revoke, "{writes:#?}");
        let reasons = event_reasons(&client, &ns, "drop").await;
        assert!(
            reasons.iter().any(|r| r == "StorageAccessRevoked"),
            "{reasons:?}"
        );
        emu.shutdown().await;
    })
    .await;
}

/// Changes made in Azure outside the operator, once the account converged: a storage grant
/// and an access grant removed, the account moved to a Microsoft-managed key, then its
/// identity changed. Each is corrected on the next pass with a `DriftCorrected` Warning event
/// naming the condition, and the drift metric counts it per area.
#[tokio::test]
async fn changes_made_outside_the_operator_are_corrected_with_events_and_a_metric() {
    with_temp_ns("e2e-drift", |client, ns| async move {
        let emu = emulator().await;
        let ctx = offline_context(&client, &emu);
        let (principal, _) = emu.user_assigned_identity(&identity_id()).expect("identity");
        let grants = json!([{ "identityResourceId": identity_id(), "role": "Reader" }]);
        create(&client, &ns, &manifest("drift", spec(&["mediaprimary"], &grants, true))).await;
        let ready = reconcile_until_ready(&client, &ns, "drift", &ctx).await;
        // Converged and looked at again: no drift reported for the first convergence.
        reconcile_now(&client, &ns, "drift", &ctx).await;
        assert!(event_notes(&client, &ns, "drift", "DriftCorrected").await.is_empty());

        let (code, body) = arm_as(&emu, "operator", Method::PATCH, &format!("{}?api-version=2023-01-01", account_id()),
            Some(json!({ "properties": { "encryption": { "type": "SystemKey" } } }))).await;
        assert!((200..300).contains(&code), "{code} {body}");
        let status = ready.status.as_ref().expect("status");
        for id in [
            status.storage[0].role_assignment_id.clone().expect("storage grant"),
            status.access_grants[0].role_assignment_id.clone().expect("access grant"),
        ] {
            emu.remove_role_assignment(&id).expect("remove out of band");
        }

        reconcile_until_ready(&client, &ns, "drift", &ctx).await;
        assert_eq!(role_assignments_at(&emu, &storage_id("mediaprimary"), &principal).len(), 1, "storage grant restored");
        assert_eq!(role_assignments_at(&emu, &account_id(), &principal).len(), 1, "access grant restored");
        let notes = event_notes(&client, &ns, "drift", "DriftCorrected").await;
        for area in ["StorageAccessReady", "EncryptionReady", "AccessGrantsReady"] {
            assert!(notes.iter().any(|n| n.starts_with(area)), "no drift event for {area}: {notes:#?}");
        }

        let (code, body) = arm_as(&emu, "operator", Method::PATCH, &format!("{}?api-version=2023-01-01", account_id()),
            Some(json!({ "identity": { "type": "SystemAssigned,UserAssigned", "userAssignedIdentities": { identity_id(): {} } } }))).await;
        assert!((200..300).contains(&code), "{code} {body}");
        let fixed = reconcile_until_ready(&client, &ns, "drift", &ctx).await;
        assert_eq!(state(&fixed, "IdentityReady").0, "True");
        let (_, account) = arm_as(&emu, "operator", Method::GET, &format!("{}?api-version=2023-01-01", account_id()), None).await;
        assert_eq!(account["identity"]["type"], "UserAssigned", "{account:#}");
        assert_eq!(account["properties"]["encryption"]["type"], "CustomerKey", "{account:#}");
        let notes = event_notes(&client, &ns, "drift", "DriftCorrected").await;
        assert!(notes.iter().any(|n| n.starts_with("IdentityReady")), "{notes:#?}");

        let metrics = ctx.metrics.render();
        for area in ["StorageAccessReady", "EncryptionReady", "AccessGrantsReady", "IdentityReady"] {
            let line = format!("ams_drift_corrections_total{{area=\"{area}\"}} 1");
            assert!(metrics.contains(&line), "no {line} in:\n{metrics}");
        }
        emu.shutdown().await;
    })
    .await;
}

/// Someone else's assignment that holds the very name the operator derives for a grant (for
/// another role) is never overwritten: `RoleAssignmentNameConflict` with what to do, nothing
/// else written; once it is removed, the grant is made.
#[tokio::test]
async fn a_foreign_assignment_holding_the_derived_name_is_reported() {
    // NB: boxed, as the scenario's future is large.
    with_temp_ns("e2e-collide", |client, ns| Box::pin(async move {
        let emu = emulator().await;
        let ctx = offline_context(&client, &emu);
        let (principal, _) = emu.user_assigned_identity(&identity_id()).expect("identity");
        create(&client, &ns, &manifest("collide", spec(&["mediaprimary"], &json!([]), false))).await;
        let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), &ns);
        let object = api.get("collide").await.expect("get");
        let owner = owner_identity(&ctx.cluster_id, &ns, "collide", &object.uid().expect("uid"));
        let scope = ResourceId::parse(&storage_id("mediaprimary")).expect("id");
        let name = assignment_name(&scope, &principal, SBDC, &owner);
        let taken = format!("{}/providers/Microsoft.Authorization/roleAssignments/{name}", storage_id("mediaprimary"));
        let (code, body) = arm_as(&emu, "operator", Method::PUT, &format!("{taken}?api-version=2022-04-01"),
            Some(json!({ "properties": {
                "roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{READER}"),
                "principalId": principal, "principalType": "ServicePrincipal" } }))).await;
        assert!((200..300).contains(&code), "{code} {body}");

        let mut last = None;
        for _ in 0..4 {
            let o = reconcile_now(&client, &ns, "collide", &ctx).await;
            if state(&o, "StorageAccessReady").1 == "RoleAssignmentNameConflict" {
                last = Some(o);
                break;
            }
        }
        let o = last.expect("RoleAssignmentNameConflict on StorageAccessReady");
        let c = condition(&o, "StorageAccessReady").expect("condition");
        assert_eq!(c.status, "False");
        assert!(c.message.contains("already used by an assignment") && c.message.contains(&name), "{}", c.message);
        assert_eq!(state(&o, "Ready"), ("False".to_owned(), "RoleAssignmentNameConflict".to_owned()));
        // The foreign assignment is untouched, and no account write went out.
        let foreign = role_assignments_at(&emu, &storage_id("mediaprimary"), &principal);
        assert_eq!(foreign.len(), 1, "{foreign:#?}");
        assert_eq!(foreign[0]["role_guid"], READER);
        assert!(!describe(&azure_writes(&emu)).iter().any(|w| w.starts_with("DELETE")));
        let (_, account) = arm_as(&emu, "operator", Method::GET, &format!("{}?api-version=2023-01-01", account_id()), None).await;
        assert_ne!(account["properties"]["storageAuthentication"], "ManagedIdentity", "the account update was not held back");

        emu.remove_role_assignment(&taken).expect("remove the foreign assignment");
        reconcile_until_ready(&client, &ns, "collide", &ctx).await;
        let now = role_assignments_at(&emu, &storage_id("mediaprimary"), &principal);
        assert_eq!(now.len(), 1);
        assert_eq!(now[0]["role_guid"], SBDC);
        emu.shutdown().await;
    }))
    .await;
}
