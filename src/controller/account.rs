//! The `MediaServicesAccount` driver: reads the object, then runs the pipeline
//!
//! admit → key-only update → credentials → parked operation → observe → owned → assess → apply
//! → status
//!
//! and finishes with one status write (only when it changed), events, and the requeue the
//! pass's [`Ending`] calls for. Every decision is made by a pure step of `crate::reconcile`
//! (the decision itself by [`assess`]) or by [`requeue`]; this file does the I/O between them.
//!
//! It never panics on odd input: an object that does not even deserialize gets `Ready=False`
//! with `InvalidSpec` through an untyped status patch, and the others carry on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, PartialObjectMeta};
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::azure::{AzureApi, AzureError, ErrorClass, PollOutcome};
use crate::crd::MediaServicesAccount;
use crate::crd::account::MediaServicesAccountStatus;
use crate::crd::conditions::{reasons, types};
use crate::monitor::{Follow, MonitoredKeys};
use crate::reconcile::apply::{self, Applied, Outcome, Write};
use crate::reconcile::assess::{self, Assessment, Inputs, assess};
use crate::reconcile::desired::Desired;
use crate::reconcile::observe::{self, Observation, Observed};
use crate::reconcile::ownership::{self, Claim};
use crate::reconcile::prereqs::Area;
use crate::reconcile::status::{self, Verdict};
use crate::reconcile::{key_access, parked};

use super::context::{Context, key_of};
use super::error::Error;
use super::requeue::{self, Ending};
use super::{finalize, write};

/// What the controller's cache keeps of each object: its metadata, which is all the watch's
/// filters read. Each pass reads the whole object, so the cache does not hold every spec and
/// status (at 10,000 resources those copies were most of the operator's memory), and a pass
/// never acts on a stale copy.
pub type Watched = PartialObjectMeta<MediaServicesAccount>;

/// `namespace/name` of a watched object.
#[must_use]
pub fn object_key(meta: &Watched) -> String {
    format!(
        "{}/{}",
        meta.metadata.namespace.as_deref().unwrap_or_default(),
        meta.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The annotation that asks for a reconcile (and a fresh key probe) now; its value is any text
/// that differs from the last one handled (`kubectl annotate msa NAME
/// ams-security.io/reconcile-at="$(date +%s)" --overwrite`).
pub const RECONCILE_AT: &str = "ams-security.io/reconcile-at";

/// The reconcile function the controller runs: reads the object, valid or not, and reconciles
/// it; an object already gone needs nothing. Whatever the pass did, the key monitor hears of it
/// here, once.
pub async fn reconcile(meta: Arc<Watched>, ctx: Arc<Context>) -> Result<Action, Error> {
    use tracing::Instrument;
    let object = object_key(&meta);
    // One span per pass: every log line and Azure call of the pass carries the object.
    let span = tracing::info_span!("reconcile", %object);
    async {
        let (follow, result) = match read(&meta, &ctx).await {
            Err(e) => (Follow::Keep, Err(e)),
            Ok(None) => {
                ctx.claims.release(&object);
                (Follow::Untrack, Ok(Action::await_change()))
            }
            // Boxed: a pass's state is large, and the read should not make every caller's
            // future larger still.
            Ok(Some(Ok(account))) => Box::pin(reconcile_account(&account, &ctx)).await,
            Ok(Some(Err(invalid))) => (
                Follow::Untrack,
                Box::pin(reconcile_invalid(&invalid, &ctx)).await,
            ),
        };
        ctx.keys.follow(&object, follow);
        if follow == Follow::Untrack {
            ctx.metrics.forget(&object);
        }
        result
    }
    .instrument(span)
    .await
}

/// The whole object, valid or not; `None` when it is gone.
async fn read(
    meta: &Watched,
    ctx: &Context,
) -> Result<Option<Result<MediaServicesAccount, InvalidObject>>, Error> {
    let api: Api<DeserializeGuard<MediaServicesAccount>> = Api::namespaced(
        ctx.kube.clone(),
        meta.metadata.namespace.as_deref().unwrap_or_default(),
    );
    // Not older than what the watch delivered: the apiserver answers from its watch cache
    // instead of a quorum read of etcd (a key change re-reads every account of the key at
    // once). A status write from an older copy fails its precondition and is retried.
    let params = kube::api::GetParams {
        resource_version: meta.metadata.resource_version.clone(),
    };
    match api
        .get_with(meta.metadata.name.as_deref().unwrap_or_default(), &params)
        .await
    {
        Ok(guard) => Ok(Some(guard.0)),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(source) => Err(Error::Read {
            object: object_key(meta),
            source,
        }),
    }
}

async fn reconcile_account(
    account: &MediaServicesAccount,
    ctx: &Context,
) -> (Follow, Result<Action, Error>) {
    if account.metadata.deletion_timestamp.is_some() {
        return (Follow::Untrack, finalize::finalize(account, ctx).await);
    }
    if !finalize::has_finalizer(account) {
        // The change of metadata brings the object back through the watch at once.
        let added = finalize::add(ctx, account).await;
        return (Follow::Keep, added.map(|()| Action::await_change()));
    }
    let previous = account.status.clone().unwrap_or_default();
    let started = Instant::now();
    let pass = run_pass(account, ctx, &previous, Timestamp::now()).await;
    (
        pass.follow,
        finish(account, ctx, &previous, pass, started).await,
    )
}

/// What one pass decided, before it is written.
struct Pass {
    status: MediaServicesAccountStatus,
    writes: Vec<Write>,
    /// Reason and note of the Warning event the pass sends.
    warning: Option<(String, String)>,
    ending: Ending,
    follow: Follow,
    /// Transient failures in a row, this pass included.
    failures: u32,
}

/// Why the pipeline stopped before the end: what status says, and how the pass ended.
struct Stop {
    verdict: Verdict<'static>,
    ending: Ending,
    follow: Follow,
    warning: Option<(String, String)>,
}

impl Stop {
    fn blocked(reason: &'static str, message: String, follow: Follow) -> Self {
        Stop {
            verdict: Verdict::Blocked { reason, message },
            ending: Ending::NeedsPerson,
            follow,
            warning: None,
        }
    }

    fn azure(error: &AzureError) -> Self {
        Stop {
            verdict: Verdict::Failed {
                class: error.class(),
                reason: status::error_reason(error),
                message: error.to_string(),
                failures: 0,
            },
            ending: Ending::failed(error),
            follow: Follow::Refresh,
            warning: Some((error.reason().to_owned(), error.to_string())),
        }
    }

    fn into_pass(
        mut self,
        base: &MediaServicesAccountStatus,
        generation: Option<i64>,
        failures: u32,
        now: Timestamp,
    ) -> Pass {
        if let Verdict::Failed { failures: f, .. } = &mut self.verdict {
            *f = failures;
        }
        Pass {
            status: status::compute(base, generation, &self.verdict, now),
            writes: Vec::new(),
            warning: self.warning,
            ending: self.ending,
            follow: self.follow,
            failures,
        }
    }
}

/// Runs the pipeline and tallies how it ended.
async fn run_pass(
    account: &MediaServicesAccount,
    ctx: &Context,
    previous: &MediaServicesAccountStatus,
    now: Timestamp,
) -> Pass {
    let mut base = previous.clone();
    let result = pipeline(account, ctx, &mut base, now).await;
    let ending = match &result {
        Ok(pass) => pass.ending,
        Err(stop) => stop.ending,
    };
    let failures = ctx.tally(&key_of(account), ending);
    match result {
        Ok(pass) => Pass { failures, ..pass },
        Err(stop) => stop.into_pass(&base, account.metadata.generation, failures, now),
    }
}

/// The steps, in order; each may stop the pass. `base` is the status the pass builds on (a
/// finished parked operation is cleared from it).
async fn pipeline(
    account: &MediaServicesAccount,
    ctx: &Context,
    base: &mut MediaServicesAccountStatus,
    now: Timestamp,
) -> Result<Pass, Stop> {
    let desired = admit(account, ctx).await?;
    if let Some(pass) = key_only_update(account, ctx, base, &desired, now) {
        return Ok(pass);
    }
    let (credential, api) = ctx
        .azure_for(account)
        .await
        .map_err(|m| Stop::blocked(reasons::CREDENTIALS_UNAVAILABLE, m, Follow::Refresh))?;
    let failed_operation = resume_parked(api.as_ref(), base).await?;
    let observed = observe(account, ctx, &desired, base, credential, &api).await?;
    let claim = owned(account, ctx, &desired, &observed)
        .map_err(|m| Stop::blocked(reasons::ACCOUNT_OWNED_ELSEWHERE, m, Follow::Untrack))?;
    let owner = ctx.owner(account);
    let inputs = Inputs {
        desired: &desired,
        observed: &observed,
        previous: base,
        owner: &owner,
        claim: &claim,
        failed_operation: failed_operation.is_some(),
    };
    let assessment = assess(&inputs, now, ctx.key_expiry_warning);
    let applied = if assessment.apply {
        Some(apply::apply(api.as_ref(), &desired.account, &assessment.plan).await)
    } else {
        None
    };
    let judged = Judged {
        desired: &desired,
        observed: &observed,
        assessment: &assessment,
        owner: &owner,
        applied,
        failed_operation,
    };
    Ok(judged.into_pass(ctx, account.metadata.generation, base, now))
}

/// Suspend, the spec's rules, the tenancy map: the steps before any Azure call (outside its
/// tenancy map a resource gets none at all, not even a credential).
async fn admit(account: &MediaServicesAccount, ctx: &Context) -> Result<Desired, Stop> {
    let idle = |verdict| Stop {
        verdict,
        ending: Ending::Idle,
        follow: Follow::Untrack,
        warning: None,
    };
    if account.spec.suspend {
        return Err(idle(Verdict::Suspended));
    }
    let desired = Desired::from_spec(&account.spec)
        .map_err(|errors| idle(Verdict::InvalidSpec(errors.to_string())))?;
    ctx.tenancy_allows(&account.namespace().unwrap_or_default(), &desired)
        .await
        .map_err(|m| {
            // A resource that may not manage its account holds no claim on it either.
            ctx.claims.release(&key_of(account));
            Stop::blocked(reasons::TENANCY_DENIED, m, Follow::Untrack)
        })?;
    // One resource manages an Azure account: the oldest claim in this cluster.
    ctx.claims
        .claim(&desired.account.to_string(), &Context::claimant(account))
        .map_err(|holder| {
            let message = format!(
                "Azure account {} is managed by MediaServicesAccount {} (the older claim); this one makes no Azure call until that one is deleted or names another account",
                desired.account, holder.object
            );
            Stop::blocked(reasons::ACCOUNT_CLAIMED, message, Follow::Untrack)
        })?;
    Ok(desired)
}

/// Re-triggered by the key monitor: when only the key changed since the last full pass, its
/// verdict is written without reading Azure again (the next resync confirms the rest).
fn key_only_update(
    account: &MediaServicesAccount,
    ctx: &Context,
    base: &MediaServicesAccountStatus,
    desired: &Desired,
    now: Timestamp,
) -> Option<Pass> {
    let latest = ctx.keys.take_update(&key_of(account))?;
    let verdict = key_access::diagnose(&latest, now, ctx.key_expiry_warning);
    let generation = account.metadata.generation;
    assess::key_only(base, generation, desired, &verdict).then(|| Pass {
        status: status::key_update(base, generation, desired, &latest, &verdict, now),
        writes: Vec::new(),
        warning: None,
        ending: Ending::Settled,
        follow: Follow::Keep,
        failures: 0,
    })
}

/// A parked operation first: nothing new is started while one runs. Returns a parked
/// operation that just failed, with the area it served.
async fn resume_parked(
    api: &dyn AzureApi,
    base: &mut MediaServicesAccountStatus,
) -> Result<Option<(AzureError, Area)>, Stop> {
    let Some(recorded) = base.pending_operation.clone() else {
        return Ok(None);
    };
    let Some(op) = parked::from_status(&recorded) else {
        // A parked value this version cannot read is dropped: observing again is always safe.
        base.pending_operation = None;
        return Ok(None);
    };
    match api.poll_operation(&op).await {
        Ok(PollOutcome::InProgress { retry_after }) => Err(Stop {
            verdict: Verdict::Waiting {
                operation: format!("{} (started {})", recorded.operation, recorded.started_at.0),
            },
            ending: Ending::Parked(retry_after),
            follow: Follow::Refresh,
            warning: None,
        }),
        Ok(PollOutcome::Succeeded(_)) => {
            base.pending_operation = None;
            Ok(None)
        }
        Err(e) if matches!(e, AzureError::OperationFailed { .. }) => {
            base.pending_operation = None;
            let area = Area::from_condition_type(&recorded.condition).unwrap_or(Area::Identity);
            Ok(Some((e, area)))
        }
        Err(e) if e.class() == ErrorClass::NotFound => {
            base.pending_operation = None;
            Ok(None)
        }
        Err(e) => Err(Stop::azure(&e)),
    }
}

/// What Azure holds now, the key read through the shared monitor.
async fn observe(
    account: &MediaServicesAccount,
    ctx: &Context,
    desired: &Desired,
    base: &mut MediaServicesAccountStatus,
    credential: crate::azure::CredentialSourceKey,
    api: &Arc<dyn AzureApi>,
) -> Result<Box<Observed>, Stop> {
    let keys = MonitoredKeys {
        monitor: &ctx.keys,
        user: key_of(account),
        credential,
        api: api.clone(),
        interval: account
            .spec
            .key_access_check_interval
            .duration()
            .unwrap_or(Duration::from_secs(30)),
        force: reconcile_requested(account, base).is_some(),
    };
    match observe::observe(api.as_ref(), desired, &keys).await {
        Ok(Observation::Found(o)) => Ok(o),
        Ok(Observation::AccountNotFound) => {
            base.pending_operation = None;
            Err(Stop::blocked(
                reasons::ACCOUNT_NOT_FOUND,
                format!(
                    "Media Services account {} does not exist; the operator manages the security state of existing accounts and does not create them",
                    desired.account
                ),
                Follow::Refresh,
            ))
        }
        Err(e) => Err(Stop::azure(&e)),
    }
}

/// Whose claim the account carries: another owner's (another cluster's, or a resource that no
/// longer exists) stops the pass before any write, until it is handed over; the error says so.
fn owned(
    account: &MediaServicesAccount,
    ctx: &Context,
    desired: &Desired,
    observed: &Observed,
) -> Result<Claim, String> {
    let handover = account
        .annotations()
        .get(ownership::HANDOVER_ANNOTATION)
        .map(String::as_str);
    let mine = ctx.claim_value(account);
    match ownership::claim(observed.account.tags.as_ref(), &mine, handover) {
        Claim::Foreign(holder) => Err(format!(
            "Azure account {} is claimed by {holder} (its {} tag); this resource writes nothing to it. If that owner is gone or moves the account here, annotate {}={holder} to take it over",
            desired.account,
            ownership::CLAIM_TAG,
            ownership::HANDOVER_ANNOTATION
        )),
        claim => Ok(claim),
    }
}

/// Everything a full pass judged and did, for the status step.
struct Judged<'a> {
    desired: &'a Desired,
    observed: &'a Observed,
    assessment: &'a Assessment,
    owner: &'a str,
    applied: Option<Applied>,
    failed_operation: Option<(AzureError, Area)>,
}

impl Judged<'_> {
    fn into_pass(
        self,
        ctx: &Context,
        generation: Option<i64>,
        base: &MediaServicesAccountStatus,
        now: Timestamp,
    ) -> Pass {
        let mut status = status::compute(
            base,
            generation,
            &Verdict::Reconciled {
                desired: self.desired,
                observed: self.observed,
                assessment: self.assessment,
                owner: self.owner,
                applied: self.applied.as_ref(),
                failed_operation: self.failed_operation.as_ref().map(|(e, a)| (e, *a)),
                rotation_grace: ctx.key_rotation_grace,
            },
            now,
        );
        let ending = requeue::ending(
            &self.assessment.problems,
            self.applied.as_ref().map(|a| &a.outcome),
            self.failed_operation.is_some(),
        );
        let warning = match (
            self.applied.as_ref().map(|a| &a.outcome),
            &self.failed_operation,
        ) {
            (Some(Outcome::Failed { error, .. }), _) | (_, Some((error, _))) => {
                Some((error.reason().to_owned(), error.to_string()))
            }
            _ => None,
        };
        if let Some(Outcome::Pending { area, operation }) =
            self.applied.as_ref().map(|a| &a.outcome)
        {
            status.pending_operation = Some(parked::to_status(operation, *area, now));
        }
        Pass {
            status,
            writes: self.applied.map(|a| a.writes).unwrap_or_default(),
            warning,
            ending,
            follow: match ending {
                _ if !self.desired.uses_customer_key() => Follow::Untrack,
                Ending::Settled => Follow::Keep,
                _ => Follow::Refresh,
            },
            failures: 0,
        }
    }
}

/// After the pipeline: metrics, the status write (only when it changed), events, the requeue.
async fn finish(
    account: &MediaServicesAccount,
    ctx: &Context,
    previous: &MediaServicesAccountStatus,
    mut pass: Pass,
    started: Instant,
) -> Result<Action, Error> {
    let key = key_of(account);
    let ready_reason = pass
        .status
        .condition(types::READY)
        .map_or("Unknown", |c| c.reason.as_str())
        .to_owned();
    let inaccessible = pass
        .status
        .condition(types::CUSTOMER_KEY_INACCESSIBLE)
        .filter(|c| c.status == "True")
        .and_then(|c| {
            crate::crd::conditions::key_access::ALL
                .iter()
                .copied()
                .find(|k| *k == c.reason)
        });
    let failure = pass.ending.is_failure().then(|| {
        pass.warning
            .as_ref()
            .map_or("Unknown", |(reason, _)| reason.as_str())
    });
    ctx.metrics.reconciled(
        &key,
        &ready_reason,
        failure,
        inaccessible,
        started.elapsed(),
    );
    if let Some(asked) = reconcile_requested(account, previous) {
        pass.status.last_handled_reconcile_at = Some(asked.to_owned());
    }
    if pass.status != *previous {
        write::account_status(&ctx.kube, account, previous, &pass.status).await?;
    }
    publish_events(ctx, account, previous, &pass).await;
    Ok(requeue::requeue(pass.ending, pass.failures, ctx.resync_interval).action(&key))
}

/// The events of a pass: its Azure writes, its drift corrections (with the metric), its
/// warning, a key rotation, and the conditions that changed.
async fn publish_events(
    ctx: &Context,
    account: &MediaServicesAccount,
    previous: &MediaServicesAccountStatus,
    pass: &Pass,
) {
    let reference = account.object_ref(&());
    // One event per reason, naming every write of the pass with it, so that a pass that grants
    // two storage accounts reads as one change in `kubectl describe`.
    let mut by_reason: Vec<(&str, Vec<&str>)> = Vec::new();
    for w in &pass.writes {
        match by_reason.iter_mut().find(|(r, _)| *r == w.reason) {
            Some((_, notes)) => notes.push(&w.message),
            None => by_reason.push((w.reason, vec![&w.message])),
        }
    }
    for (reason, notes) in by_reason {
        let note = notes.join("; ");
        ctx.events
            .publish(&reference, EventType::Normal, reason, "WriteAzure", &note)
            .await;
    }
    let generation = account.metadata.generation;
    for c in crate::reconcile::drift::corrections(previous, generation, &pass.writes) {
        let area = c.area.condition_type();
        ctx.metrics.drift_corrected(area);
        tracing::warn!(object = %key_of(account), area, "{}", c.message);
        // The recorder folds events of one reason and action into a series that keeps the
        // first note, so each area gets its own action.
        let action = format!("Correct{area}");
        ctx.events
            .publish(
                &reference,
                EventType::Warning,
                "DriftCorrected",
                &action,
                &c.message,
            )
            .await;
    }
    if let Some((reason, note)) = &pass.warning {
        ctx.events
            .publish(&reference, EventType::Warning, reason, "CallAzure", note)
            .await;
    }
    let version =
        |s: &MediaServicesAccountStatus| s.encryption.as_ref().and_then(|e| e.key_version.clone());
    if let (Some(before), Some(after)) = (version(previous), version(&pass.status))
        && !before.eq_ignore_ascii_case(&after)
    {
        let note = format!("the account's key moved from version {before} to {after}");
        ctx.events
            .publish(
                &reference,
                EventType::Normal,
                "KeyRotated",
                "ObserveAzure",
                &note,
            )
            .await;
    }
    ctx.events
        .transitions(&reference, &previous.conditions, &pass.status.conditions)
        .await;
}

/// The value of [`RECONCILE_AT`] when it asks for a reconcile not yet handled.
fn reconcile_requested<'a>(
    account: &'a MediaServicesAccount,
    previous: &MediaServicesAccountStatus,
) -> Option<&'a str> {
    account
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RECONCILE_AT))
        .map(String::as_str)
        .filter(|v| previous.last_handled_reconcile_at.as_deref() != Some(*v))
}

/// An object that does not deserialize (stored before a schema change, or written around the
/// schema): `Ready=False`, `InvalidSpec`, through an untyped status patch. Nothing else of it is
/// read, and nothing is sent to Azure.
async fn reconcile_invalid(invalid: &InvalidObject, ctx: &Context) -> Result<Action, Error> {
    let ns = invalid.metadata.namespace.clone().unwrap_or_default();
    let name = invalid.metadata.name.clone().unwrap_or_default();
    let object = format!("{ns}/{name}");
    let message = format!(
        "the object does not match the MediaServicesAccount API ({}); nothing is written to Azure until it is fixed",
        invalid.error
    );
    let resource = ApiResource::erase::<MediaServicesAccount>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.kube.clone(), &ns, &resource);
    let failed = |source| Error::WriteStatus {
        object: object.clone(),
        source,
    };
    let Some(current) = api.get_opt(&name).await.map_err(failed)? else {
        return Ok(Action::await_change());
    };
    let old = current.data.get("status").cloned().unwrap_or(json!({}));
    let new = invalid_status(
        &old,
        invalid.metadata.generation,
        &message,
        Timestamp::now(),
    );
    if new == old {
        return Ok(Action::await_change());
    }
    write::status(&api, &name, current.resource_version(), &old, &new)
        .await
        .map_err(failed)?;
    let reference = ObjectReference {
        api_version: Some(MediaServicesAccount::api_version(&()).into_owned()),
        kind: Some(MediaServicesAccount::kind(&()).into_owned()),
        name: Some(name),
        namespace: Some(ns),
        uid: invalid.metadata.uid.clone(),
        ..Default::default()
    };
    ctx.events
        .publish(
            &reference,
            EventType::Warning,
            reasons::INVALID_SPEC,
            "Validate",
            &message,
        )
        .await;
    Ok(Action::await_change())
}

/// The status of an object that does not deserialize, from its stored status (untyped JSON):
/// `Ready=False` with `InvalidSpec`, and the kstatus conditions that go with it. Other
/// conditions and fields are kept; the transition time moves only when `Ready` was not already
/// `False`.
fn invalid_status(
    old: &serde_json::Value,
    generation: Option<i64>,
    message: &str,
    now: Timestamp,
) -> serde_json::Value {
    let conditions: Vec<serde_json::Value> = old
        .get("conditions")
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();
    let ready = conditions.iter().find(|c| c["type"] == types::READY);
    let since = ready
        .filter(|r| r["status"] == "False")
        .and_then(|r| r["lastTransitionTime"].as_str().map(str::to_owned))
        .unwrap_or_else(|| now.to_string());
    let condition = |type_: &str, status: &str, message: &str| {
        json!({
            "type": type_,
            "status": status,
            "reason": reasons::INVALID_SPEC,
            "message": message,
            "lastTransitionTime": since,
            "observedGeneration": generation,
        })
    };
    let ours = [
        condition(types::READY, "False", message),
        // kstatus: a person must act.
        condition(types::STALLED, "True", message),
        condition(
            types::RECONCILING,
            "False",
            "not reconciling; Ready is InvalidSpec",
        ),
    ];
    let mut kept: Vec<serde_json::Value> = conditions
        .into_iter()
        .filter(|c| !ours.iter().any(|o| o["type"] == c["type"]))
        .collect();
    kept.extend(ours);
    let mut status = old.as_object().cloned().unwrap_or_default();
    status.insert("observedGeneration".into(), json!(generation));
    status.insert("conditions".into(), json!(kept));
    serde_json::Value::Object(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("valid")
    }

    /// An object that does not deserialize gets the three conditions once: a second pass over
    /// the status it wrote changes nothing (no write), and conditions someone else owns stay.
    #[test]
    fn an_invalid_object_gets_its_conditions_once_and_keeps_foreign_ones() {
        let old = json!({ "conditions": [
            { "type": "Ready", "status": "True", "reason": "Succeeded", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z" },
            { "type": "Example", "status": "True", "reason": "Other", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z" },
        ]});
        let first = invalid_status(&old, Some(2), "bad", at(1_800_000_000));
        let types: Vec<&str> = first["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(types, ["Example", "Ready", "Stalled", "Reconciling"]);
        assert_eq!(first["observedGeneration"], 2);
        let again = invalid_status(&first, Some(2), "bad", at(1_800_000_100));
        assert_eq!(again, first, "a second pass must change nothing");
        let ready = &first["conditions"][1];
        assert_eq!(
            (ready["status"].as_str(), ready["reason"].as_str()),
            (Some("False"), Some("InvalidSpec"))
        );
    }
}
