//! The finalizer: put on every `MediaServicesAccount`, and on deletion taken off only after the
//! resource's `deletionPolicy` has been carried out (`crate::reconcile::cleanup`).
//!
//! It never hangs without saying why: when cleanup cannot run (credentials gone, Azure refusing)
//! `Ready=False` names the cause and the way out, the pass is retried with backoff, and the
//! `ams-security.io/release-finalizer: "true"` annotation lets a person release the object
//! without cleanup. A suspended or invalid resource is released without Azure calls.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use serde_json::json;

use crate::crd::account::DeletionPolicy;
use crate::crd::conditions::reasons;
use crate::crd::{FINALIZER, MediaServicesAccount, RELEASE_ANNOTATION};
use crate::reconcile::cleanup::{self, CleanupOutcome};
use crate::reconcile::desired::Desired;
use crate::reconcile::observe::{self, Observation};
use crate::reconcile::status::{self, Verdict};

use super::context::{Context, key_of};
use super::error::Error;
use super::{requeue, write};

/// Whether the object carries the operator's finalizer.
#[must_use]
pub fn has_finalizer(account: &MediaServicesAccount) -> bool {
    account.finalizers().iter().any(|f| f == FINALIZER)
}

/// Sets the finalizer list to `finalizers`, with the object's `resourceVersion` as
/// precondition (a list changed meanwhile is never overwritten).
async fn set_finalizers(
    ctx: &Context,
    account: &MediaServicesAccount,
    finalizers: Vec<String>,
) -> Result<(), Error> {
    let api: Api<MediaServicesAccount> =
        Api::namespaced(ctx.kube.clone(), &account.namespace().unwrap_or_default());
    let patch = json!({
        "metadata": {
            "resourceVersion": account.resource_version(),
            "finalizers": finalizers,
        }
    });
    api.patch(
        &account.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|source| Error::WriteFinalizers {
        object: key_of(account),
        source,
    })?;
    Ok(())
}

/// Adds the finalizer.
pub async fn add(ctx: &Context, account: &MediaServicesAccount) -> Result<(), Error> {
    let mut finalizers = account.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    set_finalizers(ctx, account, finalizers).await
}

async fn release(
    ctx: &Context,
    account: &MediaServicesAccount,
    reason: &str,
    note: &str,
) -> Result<Action, Error> {
    let finalizers = account
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    set_finalizers(ctx, account, finalizers).await?;
    // The object goes now: its account's next claimant in this cluster takes over.
    ctx.claims.release(&key_of(account));
    ctx.events
        .publish(
            &kube::Resource::object_ref(account, &()),
            EventType::Normal,
            reason,
            "Finalize",
            note,
        )
        .await;
    Ok(Action::await_change())
}

/// Cleanup cannot go on: `Ready` says why and how to let the object go; retried with backoff.
async fn blocked(
    ctx: &Context,
    account: &MediaServicesAccount,
    reason: &'static str,
    message: String,
) -> Result<Action, Error> {
    let n = ctx.record_failure(&key_of(account));
    let previous = account.status.clone().unwrap_or_default();
    let status = status::compute(
        &previous,
        account.metadata.generation,
        &Verdict::Blocked {
            reason,
            message: format!(
                "deletion is waiting: {message}; fix it, or annotate {RELEASE_ANNOTATION}=true to let the object go without cleanup"
            ),
        },
        Timestamp::now(),
    );
    if status != previous {
        write::account_status(&ctx.kube, account, &previous, &status).await?;
    }
    Ok(Action::requeue(requeue::transient(n)))
}

/// When the object goes without any Azure call: the release annotation, `Retain`, suspend.
fn release_without_cleanup(account: &MediaServicesAccount) -> Option<(&'static str, String)> {
    if account
        .annotations()
        .get(RELEASE_ANNOTATION)
        .is_some_and(|v| v == "true")
    {
        return Some((
            "FinalizerReleased",
            format!(
                "released by the {RELEASE_ANNOTATION} annotation; nothing was cleaned up in Azure"
            ),
        ));
    }
    account.spec.suspend.then(|| {
        (
            "Retained",
            "suspended: no Azure calls, so Azure is left as it is".to_owned(),
        )
    })
}

/// What finalizing decided.
enum Next {
    /// Take the finalizer off, with this event reason and note.
    Release(&'static str, String),
    /// Cleanup cannot go on: `Ready` names the reason; retried with backoff.
    Block(&'static str, String),
    /// Cleanup is under way (an account delete runs): look again after this long.
    Wait(std::time::Duration),
}

/// Carries out the deletion policy of a deleted object, then releases it.
pub async fn finalize(account: &MediaServicesAccount, ctx: &Context) -> Result<Action, Error> {
    if !has_finalizer(account) {
        return Ok(Action::await_change());
    }
    match clean_up(account, ctx).await {
        Next::Release(reason, note) => release(ctx, account, reason, &note).await,
        Next::Block(reason, message) => blocked(ctx, account, reason, message).await,
        Next::Wait(after) => Ok(Action::requeue(after)),
    }
}

/// The guards in the order they must run, each with its own way out, then the cleanup.
async fn clean_up(account: &MediaServicesAccount, ctx: &Context) -> Next {
    if let Some((reason, note)) = release_without_cleanup(account) {
        return Next::Release(reason, note);
    }
    let Ok(desired) = Desired::from_spec(&account.spec) else {
        let note = "the spec is invalid, so what to clean up is unknown: Azure is left as it is";
        return Next::Release("Retained", note.to_owned());
    };
    let namespace = account.namespace().unwrap_or_default();
    if let Err(note) = ctx.tenancy_allows(&namespace, &desired).await {
        // Outside the tenancy map nothing was ever done in Azure, so nothing is undone.
        return Next::Release("Retained", format!("{note}; Azure is left as it is"));
    }
    if let Err(holder) = ctx
        .claims
        .claim(&desired.account.to_string(), &Context::claimant(account))
    {
        // Another resource manages the account: this one never wrote to it, and must not
        // undo (or delete) what the other manages.
        let note = format!(
            "{} manages the Azure account; nothing was done in Azure for this resource, so nothing is undone",
            holder.object
        );
        return Next::Release("Retained", note);
    }
    let policy = account.spec.deletion_policy;
    // Retain leaves Azure as it is but for this resource's ownership claim, which it removes
    // when it can: when it cannot, the object still goes (the claim can be handed over).
    let stuck = |reason: &'static str, message: String| {
        if policy == DeletionPolicy::Retain {
            Next::Release(
                "Retained",
                format!(
                    "deletionPolicy Retain: Azure is left as it is; this resource's ownership claim on the account could not be removed ({message})"
                ),
            )
        } else {
            Next::Block(reason, message)
        }
    };
    let api = match ctx.azure_for(account).await {
        Ok((_, api)) => api,
        Err(message) => return stuck(reasons::CREDENTIALS_UNAVAILABLE, message),
    };
    let previous = account.status.clone().unwrap_or_default();
    let owners = (ctx.owner(account), ctx.claim_value(account));
    let direct = observe::DirectKeys(api.as_ref());
    let plan = match observe::observe(api.as_ref(), &desired, &direct).await {
        Ok(Observation::Found(observed)) => cleanup::cleanup_plan(
            policy,
            &desired,
            &observed,
            &previous,
            (&owners.0, &owners.1),
        ),
        // The account is gone, but grants on storage accounts and vaults outlive it (and a
        // user-assigned identity could still use them): revoke what status recorded.
        Ok(Observation::AccountNotFound) => cleanup::recorded_plan(policy, &previous),
        Err(e) => return stuck(status::error_reason(&e), e.to_string()),
    };
    let (done, outcome) = cleanup::run(api.as_ref(), &desired.account, &plan).await;
    let reference = kube::Resource::object_ref(account, &());
    for (reason, note) in &done {
        ctx.events
            .publish(&reference, EventType::Normal, reason, "Cleanup", note)
            .await;
    }
    match outcome {
        Err(e) => stuck(status::error_reason(&e), e.to_string()),
        Ok(CleanupOutcome::Deleting) => Next::Wait(requeue::OPERATION_DEFAULT),
        Ok(CleanupOutcome::Done) if policy == DeletionPolicy::Retain => Next::Release(
            "Retained",
            "deletionPolicy Retain: Azure is left as it is, but for this resource's ownership claim"
                .to_owned(),
        ),
        Ok(CleanupOutcome::Done) => {
            ctx.record_success(&key_of(account));
            Next::Release(
                "CleanedUp",
                format!("deletionPolicy {policy:?} carried out"),
            )
        }
    }
}
