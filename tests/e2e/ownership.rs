//! Ownership end to end: one Azure account has one owner. In one cluster the older resource
//! keeps the account and a second one naming it is `AccountClaimed` with zero Azure writes;
//! across clusters the claim tag on the account holds others off (`AccountOwnedElsewhere`)
//! until it is handed over by the annotation, with exactly one tag write.

use std::time::Duration;

use ams_security_operator::crd::MediaServicesAccount;
use ams_security_operator::emulator::Emulator;
use ams_security_operator::reconcile::ownership::{CLAIM_TAG, HANDOVER_ANNOTATION, claim_value};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use reqwest::Method;
use serde_json::{Value, json};

use super::common::with_temp_ns;
use super::harness::*;

fn trusted_storage() -> Value {
    json!({
        "identity": { "type": "SystemAssigned" },
        "storage": { "authentication": "ManagedIdentity", "accounts": [
            { "id": storage_id("mediaprimary"), "type": "Primary", "identity": { "useSystemAssignedIdentity": true } } ] },
    })
}

/// The account's tags as Azure answers a GET.
async fn account_tags(emu: &Emulator) -> Value {
    let (code, body) = arm_as(
        emu,
        "operator",
        Method::GET,
        &format!("{}?api-version=2023-01-01", account_id()),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    body["tags"].clone()
}

/// Sets the account's tags out of band, as another cluster's operator would.
async fn set_tags(emu: &Emulator, tags: Value) {
    let (code, body) = arm_as(
        emu,
        "operator",
        Method::PATCH,
        &format!("{}?api-version=2023-01-01", account_id()),
        Some(json!({ "tags": tags })),
    )
    .await;
    assert!((200..300).contains(&code), "{code} {body}");
}

fn claim_of(object: &MediaServicesAccount) -> String {
    claim_value(
        "",
        &object.namespace().unwrap_or_default(),
        &object.name_any(),
        &object.uid().unwrap_or_default(),
    )
}

/// Two resources in one namespace name one account: the later one is `AccountClaimed`, naming
/// the earlier, and causes zero Azure writes over several passes, while the earlier stays
/// `Ready` with its claim on the account; once the earlier is deleted (`Retain`: it removes
/// only its claim), the later one takes over.
#[tokio::test]
async fn a_second_resource_naming_a_managed_account_is_held_off_until_the_first_goes() {
    with_temp_ns("e2e-owner", |client, ns| async move {
        let emu = emulator().await;
        let ctx = offline_context(&client, &emu);
        create(&client, &ns, &manifest("first", trusted_storage())).await;
        let first = reconcile_until_ready(&client, &ns, "first", &ctx).await;
        assert_eq!(
            account_tags(&emu).await[CLAIM_TAG],
            json!(claim_of(&first)),
            "the first write records the claim"
        );
        // Creation times have one-second resolution: the second must be visibly younger.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        create(&client, &ns, &manifest("second", trusted_storage())).await;
        let before = azure_writes(&emu).len();
        // The first pass puts the finalizer on.
        reconcile_now(&client, &ns, "second", &ctx).await;
        for _ in 0..3 {
            let second = reconcile_now(&client, &ns, "second", &ctx).await;
            assert_eq!(
                state(&second, "Ready"),
                ("False".to_owned(), "AccountClaimed".to_owned())
            );
            let message = &condition(&second, "Ready").expect("Ready").message;
            assert!(message.contains(&format!("{ns}/first")), "{message}");
            let first = reconcile_now(&client, &ns, "first", &ctx).await;
            assert_eq!(
                state(&first, "Ready"),
                ("True".to_owned(), "Succeeded".to_owned())
            );
        }
        let writes = azure_writes(&emu);
        assert_eq!(
            writes.len(),
            before,
            "writes while two resources name one account: {:#?}",
            describe(&writes[before..])
        );

        let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), &ns);
        api.delete("first", &DeleteParams::default())
            .await
            .expect("delete");
        finalize_now(&client, &ns, "first", &ctx).await;
        let released = azure_writes(&emu);
        assert_eq!(
            describe(&released[before..]).len(),
            1,
            "Retain writes only the claim's removal: {:#?}",
            describe(&released[before..])
        );
        assert_eq!(released[before].operation, "Mediaservices_Update");
        assert_eq!(account_tags(&emu).await.get(CLAIM_TAG), None);

        let second = reconcile_now(&client, &ns, "second", &ctx).await;
        assert_eq!(
            state(&second, "Ready"),
            ("True".to_owned(), "Succeeded".to_owned()),
            "{:?}",
            second.status.as_ref().map(|s| &s.conditions)
        );
        emu.shutdown().await;
    })
    .await;
}

/// An account carrying another cluster's claim: `AccountOwnedElsewhere`, naming the claim, and
/// zero writes over several passes; the hand-over annotation takes it over with exactly one tag
/// write (the claim, other tags kept); then steady state writes nothing with the claim in place.
#[tokio::test]
async fn a_foreign_claim_blocks_every_write_until_it_is_handed_over() {
    with_temp_ns("e2e-foreign", |client, ns| async move {
        let emu = emulator().await;
        let ctx = offline_context(&client, &emu);
        create(&client, &ns, &manifest("media", trusted_storage())).await;
        let ready = reconcile_until_ready(&client, &ns, "media", &ctx).await;
        let mine = claim_of(&ready);
        let foreign = "other-cluster/media/fabrikam/2f0c8e1a-0000-4000-8000-000000000001";
        set_tags(&emu, json!({ "cost-center": "42", CLAIM_TAG: foreign })).await;

        let before = azure_writes(&emu).len();
        for _ in 0..3 {
            let held = reconcile_now(&client, &ns, "media", &ctx).await;
            assert_eq!(
                state(&held, "Ready"),
                ("False".to_owned(), "AccountOwnedElsewhere".to_owned())
            );
            let message = &condition(&held, "Ready").expect("Ready").message;
            assert!(
                message.contains(foreign) && message.contains(HANDOVER_ANNOTATION),
                "{message}"
            );
        }
        let writes = azure_writes(&emu);
        assert_eq!(
            writes.len(),
            before,
            "writes to an account another owner claims: {:#?}",
            describe(&writes[before..])
        );

        let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), &ns);
        let annotate = json!({ "metadata": { "annotations": { HANDOVER_ANNOTATION: foreign } } });
        api.patch("media", &PatchParams::default(), &Patch::Merge(&annotate))
            .await
            .expect("annotate");
        let taken = reconcile_until_ready(&client, &ns, "media", &ctx).await;
        let writes = azure_writes(&emu);
        assert_eq!(
            describe(&writes[before..]).len(),
            1,
            "the hand-over writes the claim alone: {:#?}",
            describe(&writes[before..])
        );
        assert_eq!(writes[before].operation, "Mediaservices_Update");
        assert_eq!(
            account_tags(&emu).await,
            json!({ "cost-center": "42", CLAIM_TAG: mine }),
            "the claim replaces the other, and the other tags stay"
        );
        assert_eq!(
            state(&taken, "Ready"),
            ("True".to_owned(), "Succeeded".to_owned())
        );
        for _ in 0..2 {
            reconcile_now(&client, &ns, "media", &ctx).await;
        }
        assert_eq!(
            azure_writes(&emu).len(),
            before + 1,
            "steady state with the claim in place writes nothing"
        );
        emu.shutdown().await;
    })
    .await;
}

/// Across namespaces the same: a resource in another namespace naming an account already
/// managed is `AccountClaimed`, naming the holder with its namespace, and writes nothing.
#[tokio::test]
async fn a_resource_in_another_namespace_naming_a_managed_account_is_held_off() {
    with_temp_ns("e2e-owner-a", |client, a| async move {
        with_temp_ns("e2e-owner-b", |_, b| async move {
            let emu = emulator().await;
            let ctx = offline_context(&client, &emu);
            create(&client, &a, &manifest("media", trusted_storage())).await;
            reconcile_until_ready(&client, &a, "media", &ctx).await;
            // Creation times have one-second resolution: the second must be visibly younger.
            tokio::time::sleep(Duration::from_millis(1100)).await;
            create(&client, &b, &manifest("media", trusted_storage())).await;
            let before = azure_writes(&emu).len();
            // The first pass puts the finalizer on.
            reconcile_now(&client, &b, "media", &ctx).await;
            for _ in 0..2 {
                let held = reconcile_now(&client, &b, "media", &ctx).await;
                assert_eq!(
                    state(&held, "Ready"),
                    ("False".to_owned(), "AccountClaimed".to_owned())
                );
                let message = &condition(&held, "Ready").expect("Ready").message;
                assert!(message.contains(&format!("{a}/media")), "{message}");
            }
            let held_by = reconcile_now(&client, &a, "media", &ctx).await;
            assert_eq!(
                state(&held_by, "Ready"),
                ("True".to_owned(), "Succeeded".to_owned())
            );
            let writes = azure_writes(&emu);
            assert_eq!(
                writes.len(),
                before,
                "writes while two namespaces name one account: {:#?}",
                describe(&writes[before..])
            );
            emu.shutdown().await;
        })
        .await;
    })
    .await;
}
