//! Call-exact tests of the driver ([`super::account::reconcile`]) and the finalizer: each pass
//! runs against a mocked apiserver that expects an exact sequence of calls, and an in-memory
//! Azure that records every call; each test asserts both, and the requeue the pass chose.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use serde_json::json;

use crate::crd::conditions::{reasons, types};
use crate::crd::{FINALIZER, MediaServicesAccount, RELEASE_ANNOTATION};
use crate::reconcile::fixtures::{
    BYOK_KEY, PRINCIPAL, World, byok, storage_id, trusted_storage_spec,
};

use super::account::reconcile;
use super::context::Context;
use super::fixtures::{AccountExt, ApiServerVerifier, Cloud, Expect, account, context};
use super::requeue;

/// An object without the finalizer gets it, and nothing else happens in that pass: the
/// finalizer must be on before any Azure write, or a deletion could leave grants behind.
#[tokio::test]
async fn an_object_without_the_finalizer_gets_it_before_anything_else() {
    let cloud = Cloud::from_world(&World::converged_trusted_storage());
    let (ctx, mut apiserver) = context(&cloud);
    let object = account(trusted_storage_spec());
    let (action, seen) = apiserver
        .reconcile(
            &ctx,
            &object,
            vec![
                Expect::Get(object.clone()),
                Expect::Finalizers {
                    account: object.clone(),
                    finalizers: vec![FINALIZER.to_owned()],
                },
            ],
        )
        .await;
    assert_eq!(action, Action::await_change());
    assert!(seen.events.is_empty());
    assert_eq!(cloud.writes(), Vec::<String>::new(), "no Azure write");
    assert_eq!(cloud.reads(), Vec::<String>::new(), "no Azure read");
}

/// The requeue of `action` when it lies in `[from, to)` (whole milliseconds, as the driver's
/// jitter adds), else `None`.
fn requeued_within(action: &Action, from: Duration, to: Duration) -> Option<Duration> {
    let (from, to) = (from.as_millis(), to.as_millis());
    (from..to)
        .map(|ms| Duration::from_millis(u64::try_from(ms).expect("small")))
        .find(|d| *action == Action::requeue(*d))
}

/// A converged account costs Azure reads only: no status write (the status already says
/// it), no events, no Azure write, and it is looked at again after the resync interval plus
/// up to a tenth of jitter. Writing an unchanged status every resync would wake every watcher
/// of the object and load the apiserver for nothing.
#[tokio::test]
async fn a_converged_account_reads_azure_and_writes_nothing() {
    let cloud = Cloud::from_world(&World::converged_trusted_storage());
    let (ctx, mut apiserver) = context(&cloud);
    let object = converged(&mut apiserver, &ctx, trusted_storage_spec()).await;
    let reads_before = cloud.reads().len();

    let (action, seen) = apiserver
        .reconcile(&ctx, &object, vec![Expect::Get(object.clone())])
        .await;

    assert_eq!(cloud.writes(), Vec::<String>::new(), "no Azure write");
    assert!(
        cloud.reads().len() > reads_before,
        "the pass reads Azure to look for drift: {:?}",
        cloud.reads()
    );
    assert!(seen.events.is_empty(), "no events: {:?}", seen.events);
    let resync = ctx.resync_interval;
    assert!(
        requeued_within(&action, resync, resync + resync / 10).is_some(),
        "requeued after the resync interval with at most a tenth of jitter: {action:?}"
    );
}

/// `(status, reason)` of condition `type_` in the object's status.
fn condition(object: &MediaServicesAccount, type_: &str) -> (String, String) {
    object
        .status
        .as_ref()
        .and_then(|s| s.condition(type_))
        .map(|c| (c.status.clone(), c.reason.clone()))
        .unwrap_or_default()
}

/// `(status, reason)` of condition `type_` in a status merge patch.
fn patched<'a>(patch: &'a serde_json::Value, type_: &str) -> (&'a str, &'a str) {
    patch["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default(),
                c["reason"].as_str().unwrap_or_default(),
            )
        })
        .unwrap_or_default()
}

/// A converged account after one pass: finalized, its status as that pass wrote it.
async fn converged(
    apiserver: &mut ApiServerVerifier,
    ctx: &Arc<Context>,
    spec: serde_json::Value,
) -> MediaServicesAccount {
    let object = account(spec).finalized();
    let (object, _) = apiserver
        .settle(&object, reconcile(object.watched(), ctx.clone()))
        .await;
    assert_eq!(
        condition(&object, types::READY),
        ("True".to_owned(), reasons::SUCCEEDED.to_owned()),
        "the first pass converges: {:#?}",
        object.status
    );
    object
}

/// A grant removed outside the operator is put back in the next pass: the grant (then the
/// ownership claim, which goes with the first write the operator makes to an account that
/// carries none), one status patch (with the read's resourceVersion as precondition) that
/// records it, a Normal event per write and a `DriftCorrected` Warning (the area was True for
/// this generation, so this is drift, not first-time setup; the claim is no correction), and a
/// quick look again to see the write take.
#[tokio::test]
async fn a_revoked_storage_grant_is_granted_again_and_reported_as_drift() {
    let cloud = Cloud::from_world(&World::converged_trusted_storage());
    let (ctx, mut apiserver) = context(&cloud);
    let object = converged(&mut apiserver, &ctx, trusted_storage_spec()).await;
    cloud.revoke_outside(&storage_id("mediaprimary"));

    let (action, seen) = apiserver
        .reconcile(
            &ctx,
            &object,
            vec![
                Expect::Get(object.clone()),
                Expect::Status(object.clone()),
                Expect::Event("Normal", "StorageAccessGranted"),
                Expect::Event("Normal", "OwnershipClaimed"),
                Expect::Event("Warning", "DriftCorrected"),
                Expect::Event("Warning", "InProgress"),
                Expect::Event("Warning", "InProgress"),
            ],
        )
        .await;

    let writes = cloud.writes();
    assert_eq!(writes.len(), 2, "the grant and the claim: {writes:?}");
    assert!(
        writes[0].starts_with(&format!(
            "PUT {}/roleAssignments/",
            storage_id("mediaprimary")
        )),
        "the grant on the storage account first: {writes:?}"
    );
    assert!(
        writes[1].starts_with("PATCH ") && writes[1].contains("mediaservices"),
        "then the claim, on the account made valid again: {writes:?}"
    );
    let patch = &seen.status_patches[0];
    assert_eq!(
        patched(patch, types::STORAGE_ACCESS_READY),
        ("False", reasons::IN_PROGRESS),
        "the grant is applied, not yet confirmed: {patch:#}"
    );
    assert_eq!(
        patched(patch, types::READY),
        ("False", reasons::IN_PROGRESS),
        "{patch:#}"
    );
    assert!(
        seen.events[2].2.contains("had converged for generation 1"),
        "the drift event says what had converged: {:?}",
        seen.events[2]
    );
    assert_eq!(action, Action::requeue(requeue::AFTER_WRITE));
}

/// An object already gone when the pass reads it needs nothing: no other apiserver call, no
/// Azure call, and no requeue; and its account leaves the key monitor, which would otherwise
/// go on probing the key of an object that no longer exists.
#[tokio::test]
async fn a_deleted_object_is_forgotten_and_leaves_the_key_monitor() {
    let (_, world) = byok();
    let cloud = Cloud::from_world(&world);
    let (ctx, mut apiserver) = context(&cloud);
    let object = account(
        json!({ "identity": { "type": "SystemAssigned" }, "encryption": { "type": "CustomerKey", "keyIdentifier": BYOK_KEY } }),
    )
    .finalized();
    let (object, _) = apiserver
        .settle(&object, reconcile(object.watched(), ctx.clone()))
        .await;
    assert_eq!(
        ctx.keys.stats().users,
        1,
        "the first pass registered the account with the key monitor"
    );
    let (reads, writes) = (cloud.reads(), cloud.writes());

    let (action, seen) = apiserver
        .reconcile(
            &ctx,
            &object,
            vec![Expect::GetGone {
                resource_version: object.metadata.resource_version.clone().unwrap_or_default(),
            }],
        )
        .await;

    assert_eq!(action, Action::await_change());
    assert!(seen.events.is_empty(), "no events: {:?}", seen.events);
    assert_eq!(
        (cloud.reads(), cloud.writes()),
        (reads, writes),
        "no Azure call"
    );
    assert_eq!(
        ctx.keys.stats().users,
        0,
        "the gone account left the key monitor"
    );
}

/// A suspended resource says so in `Ready` and makes no Azure call at all (suspend is how a
/// person stops the operator touching an account), and it waits for a change of the object.
#[tokio::test]
async fn a_suspended_account_says_so_and_makes_no_azure_call() {
    let cloud = Cloud::from_world(&World::converged_trusted_storage());
    let (ctx, mut apiserver) = context(&cloud);
    let mut spec = trusted_storage_spec();
    spec["suspend"] = json!(true);
    let object = account(spec).finalized();

    let (action, seen) = apiserver
        .reconcile(
            &ctx,
            &object,
            vec![
                Expect::Get(object.clone()),
                Expect::Status(object.clone()),
                Expect::Event("Warning", "Suspended"),
            ],
        )
        .await;

    let patch = &seen.status_patches[0];
    assert_eq!(
        patched(patch, types::READY),
        ("False", reasons::SUSPENDED),
        "{patch:#}"
    );
    assert_eq!(
        (cloud.reads(), cloud.writes()),
        (Vec::new(), Vec::new()),
        "no Azure call"
    );
    assert_eq!(action, Action::await_change());
}

/// One failed Azure read does not flip `Ready` (a blip must not page anyone, nor write
/// status): it sends a Warning and retries after 2 s, then 4 s; the third failure in a row
/// is no blip, and `Ready` turns False.
#[tokio::test]
async fn transient_azure_failures_flip_ready_only_on_the_third_in_a_row() {
    let cloud = Cloud::from_world(&World::converged_trusted_storage());
    let (ctx, mut apiserver) = context(&cloud);
    let object = converged(&mut apiserver, &ctx, trusted_storage_spec()).await;
    *cloud.fake.fail_reads.lock().expect("lock") = Some((503, "ServiceUnavailable"));

    let (first, seen) = apiserver
        .reconcile(
            &ctx,
            &object,
            vec![
                Expect::Get(object.clone()),
                Expect::Event("Warning", "AzureServerError"),
            ],
        )
        .await;
    assert_eq!(first, Action::requeue(Duration::from_secs(2)));
    assert!(seen.status_patches.is_empty());

    let (second, _) = apiserver
        .reconcile(
            &ctx,
            &object,
            vec![
                Expect::Get(object.clone()),
                Expect::EventRepeat("AzureServerError"),
            ],
        )
        .await;
    assert_eq!(second, Action::requeue(Duration::from_secs(4)));

    let (third, seen) = apiserver
        .reconcile(
            &ctx,
            &object,
            vec![
                Expect::Get(object.clone()),
                Expect::Status(object.clone()),
                Expect::EventRepeat("AzureServerError"),
                Expect::Event("Warning", "TransientError"),
            ],
        )
        .await;
    let patch = &seen.status_patches[0];
    assert_eq!(
        patched(patch, types::READY),
        ("False", reasons::TRANSIENT_ERROR),
        "{patch:#}"
    );
    assert_eq!(third, Action::requeue(Duration::from_secs(8)));
    assert_eq!(cloud.writes(), Vec::<String>::new(), "no Azure write");
}

/// `deletionPolicy: Retain` lets the object go at once: only our finalizer comes off (another
/// controller's stays, or its cleanup would be skipped), with a Normal event, and nothing is
/// written to Azure (the account carries no claim of this resource to remove; it is read to
/// find out).
#[tokio::test]
async fn retain_releases_only_our_finalizer_without_azure_writes() {
    let cloud = Cloud::from_world(&World::converged_trusted_storage());
    let (ctx, mut apiserver) = context(&cloud);
    let object = account(trusted_storage_spec()).deleted_with(&["example.com/other", FINALIZER]);

    let (action, seen) = apiserver
        .reconcile(
            &ctx,
            &object,
            vec![
                Expect::Get(object.clone()),
                Expect::Finalizers {
                    account: object.clone(),
                    finalizers: vec!["example.com/other".to_owned()],
                },
                Expect::Event("Normal", "Retained"),
            ],
        )
        .await;

    assert_eq!(action, Action::await_change());
    assert!(seen.status_patches.is_empty());
    assert_eq!(cloud.writes(), Vec::<String>::new(), "no Azure write");
}

/// `deletionPolicy: RevokeGrants` revokes the grant the operator made before the finalizer
/// comes off: once the object is gone, nothing would ever revoke it.
#[tokio::test]
async fn revoke_grants_revokes_our_grant_before_releasing_the_object() {
    let world = World::new_account()
        .with_system_identity()
        .with_storage("mediaprimary", Some(PRINCIPAL), &[], None)
        .with_trusted_storage_applied();
    let cloud = Cloud::from_world(&world);
    let (ctx, mut apiserver) = context(&cloud);
    let mut spec = trusted_storage_spec();
    spec["deletionPolicy"] = json!("RevokeGrants");
    let object = account(spec).finalized();
    let (object, _) = apiserver
        .settle(&object, reconcile(object.watched(), ctx.clone()))
        .await;
    let granted = cloud.assignment_ids();
    assert_eq!(granted.len(), 1, "the first pass granted: {granted:?}");
    let object = object.deleted_with(&[FINALIZER]);
    let writes = cloud.writes().len();

    let (action, seen) = apiserver
        .reconcile(
            &ctx,
            &object,
            vec![
                Expect::Get(object.clone()),
                Expect::Event("Normal", "RoleAssignmentRevoked"),
                Expect::Finalizers {
                    account: object.clone(),
                    finalizers: Vec::new(),
                },
                Expect::Event("Normal", "CleanedUp"),
            ],
        )
        .await;

    assert_eq!(
        cloud.writes()[writes..],
        [format!("DELETE {}", granted[0])],
        "exactly our grant is revoked"
    );
    assert!(cloud.assignment_ids().is_empty());
    assert!(seen.status_patches.is_empty());
    assert_eq!(action, Action::await_change());
}

/// When cleanup cannot run because the credentials Secret is gone, the object is not released
/// (that would leave grants behind), and `Ready` says why and names the annotation that lets
/// a person release it anyway; the pass retries with backoff.
#[tokio::test]
async fn missing_credentials_hold_the_finalizer_and_name_the_way_out() {
    let cloud = Cloud::from_world(&World::converged_trusted_storage());
    let (ctx, mut apiserver) = context(&cloud);
    let mut spec = trusted_storage_spec();
    spec["deletionPolicy"] = json!("RevokeGrants");
    spec["credentialsSecretRef"] = json!({ "name": "azure-creds" });
    let object = account(spec).deleted_with(&[FINALIZER]);

    let (action, seen) = apiserver
        .reconcile(
            &ctx,
            &object,
            vec![
                Expect::Get(object.clone()),
                Expect::SecretGone("azure-creds".to_owned()),
                Expect::Status(object.clone()),
            ],
        )
        .await;

    let patch = &seen.status_patches[0];
    assert_eq!(
        patched(patch, types::READY),
        ("False", reasons::CREDENTIALS_UNAVAILABLE),
        "{patch:#}"
    );
    assert!(
        patch.to_string().contains(RELEASE_ANNOTATION),
        "Ready names the release annotation: {patch:#}"
    );
    assert_eq!(
        (cloud.reads(), cloud.writes()),
        (Vec::new(), Vec::new()),
        "no Azure call"
    );
    assert_eq!(action, Action::requeue(requeue::transient(1)));
}
