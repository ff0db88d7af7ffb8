//! The `MediaServicesAccount` reconcile: suspend → validate → credentials → parked operation →
//! observe → prerequisites → plan → apply → status, then one status write (only when it
//! changed), events, and the requeue the outcome calls for.
//!
//! Each step lives in `crate::reconcile`; this file strings them together and talks to the
//! apiserver. It never panics on odd input: an object that does not even deserialize gets
//! `Ready=False` with `InvalidSpec` through an untyped patch, and the others carry on.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, PartialObjectMeta, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::azure::{AzureApi, AzureError, ErrorClass, PollOutcome};
use crate::crd::account::MediaServicesAccountStatus;
use crate::crd::conditions::{reasons, types};
use crate::crd::{FIELD_MANAGER, MediaServicesAccount};
use crate::monitor::MonitoredKeys;
use crate::reconcile::apply::{self, Applied, Outcome};
use crate::reconcile::desired::Desired;
use crate::reconcile::observe::{self, Observation};
use crate::reconcile::parked;
use crate::reconcile::plan;
use crate::reconcile::prereqs;
use crate::reconcile::status::{self, Verdict};

use super::{Context, requeue};

/// Transient failures in a row before `Ready` says so (a blip should not flap it).
const TRANSIENT_FAILURES_BEFORE_NOT_READY: u32 = 3;

/// Failures of the reconcile itself (Azure failures are outcomes, not errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The status write failed.
    #[error("failed to write the status of {object}")]
    WriteStatus {
        /// `namespace/name`.
        object: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// The object could not be read from the apiserver at the start of a pass.
    #[error("failed to read {object}")]
    Read {
        /// `namespace/name`.
        object: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// Stable reason for events and metrics.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Error::WriteStatus { .. } => "StatusWriteFailed",
            Error::Read { .. } => "ReadFailed",
        }
    }
}

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

/// The reconcile function the controller runs: reads the object, valid or not, and reconciles
/// it; an object already gone needs nothing.
pub async fn reconcile(meta: Arc<Watched>, ctx: Arc<Context>) -> Result<Action, Error> {
    use tracing::Instrument;
    let object = object_key(&meta);
    // One span per pass: every log line and Azure call of the pass carries the object.
    let span = tracing::info_span!("reconcile", %object);
    async {
        let api: Api<DeserializeGuard<MediaServicesAccount>> = Api::namespaced(
            ctx.kube.clone(),
            meta.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let name = meta.metadata.name.as_deref().unwrap_or_default();
        // Not older than what the watch delivered: the apiserver answers from its watch cache
        // instead of a quorum read of etcd (a key change re-reads every account of the key at
        // once). A status write from an older copy fails its precondition and is retried.
        let params = kube::api::GetParams {
            resource_version: meta.metadata.resource_version.clone(),
        };
        let guard = match api.get_with(name, &params).await {
            Ok(guard) => guard,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
            Err(source) => {
                return Err(Error::Read {
                    object: object.clone(),
                    source,
                });
            }
        };
        // Boxed: a pass's state is large, and the read above should not make every caller's
        // future larger still.
        let action = match &guard.0 {
            Ok(account) => Box::pin(reconcile_account(account, &ctx)).await?,
            Err(invalid) => Box::pin(reconcile_invalid(invalid, &ctx)).await?,
        };
        Ok(action)
    }
    .instrument(span)
    .await
}

/// What one pass decided, before it is written.
struct Pass {
    status: MediaServicesAccountStatus,
    writes: Vec<apply::Write>,
    warning: Option<(String, String)>,
    action: Action,
    success: bool,
    /// Nothing is left to do until the resync: the monitor's facts may serve the next pass.
    settled: bool,
}

async fn reconcile_account(account: &MediaServicesAccount, ctx: &Context) -> Result<Action, Error> {
    if account.metadata.deletion_timestamp.is_some() {
        return super::finalize::finalize(account, ctx).await;
    }
    if !super::finalize::has_finalizer(account) {
        // The change of metadata brings the object back through the watch at once.
        super::finalize::add(ctx, account).await?;
        return Ok(Action::await_change());
    }
    let key = format!(
        "{}/{}",
        account.namespace().unwrap_or_default(),
        account.name_any()
    );
    let previous = account.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    let started = std::time::Instant::now();
    let mut pass = run_pass(account, ctx, &previous, now).await;
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
    let failure = (!pass.success).then(|| {
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
    if !pass.settled {
        // Something is still moving (a write just made, a grant propagating, a retry): the
        // next pass reads the key's facts afresh instead of the monitor's latest.
        ctx.keys.invalidate(&key);
    }
    if let Some(asked) = reconcile_requested(account, &previous) {
        pass.status.last_handled_reconcile_at = Some(asked.to_owned());
    }
    if pass.success {
        ctx.record_success(&key);
    }
    let reference = account.object_ref(&());
    if pass.status != previous {
        write_status(&ctx.kube, account, &previous, &pass.status)
            .await
            .map_err(|source| Error::WriteStatus {
                object: key.clone(),
                source,
            })?;
    }
    write_events(
        ctx,
        &reference,
        &key,
        &previous,
        account.metadata.generation,
        &pass,
    )
    .await;
    let version =
        |s: &MediaServicesAccountStatus| s.encryption.as_ref().and_then(|e| e.key_version.clone());
    if let (Some(before), Some(after)) = (version(&previous), version(&pass.status))
        && !before.eq_ignore_ascii_case(&after)
    {
        ctx.events
            .publish(
                &reference,
                EventType::Normal,
                "KeyRotated",
                "ObserveAzure",
                &format!("the account's key moved from version {before} to {after}"),
            )
            .await;
    }
    ctx.events
        .transitions(&reference, &previous.conditions, &pass.status.conditions)
        .await;
    Ok(pass.action)
}

/// The events of a pass's Azure writes, its drift corrections (with the metric) and its
/// warning.
async fn write_events(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    key: &str,
    previous: &MediaServicesAccountStatus,
    generation: Option<i64>,
    pass: &Pass,
) {
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
        ctx.events
            .publish(
                reference,
                EventType::Normal,
                reason,
                "WriteAzure",
                &notes.join("; "),
            )
            .await;
    }
    for c in crate::reconcile::drift::corrections(previous, generation, &pass.writes) {
        ctx.metrics.drift_corrected(c.area.condition_type());
        tracing::warn!(object = %key, area = c.area.condition_type(), "{}", c.message);
        ctx.events
            .publish(
                reference,
                EventType::Warning,
                "DriftCorrected",
                // The recorder folds events of one reason and action into a series that keeps
                // the first note, so each area gets its own action.
                &format!("Correct{}", c.area.condition_type()),
                &c.message,
            )
            .await;
    }
    if let Some((reason, note)) = &pass.warning {
        ctx.events
            .publish(reference, EventType::Warning, reason, "CallAzure", note)
            .await;
    }
}

/// Whether a key-only update can stand in for a full pass: the last full pass saw this
/// generation and finished (nothing parked), and the new verdict asks for no write (a revoked
/// grant the operator restores needs the full pass).
fn key_update_applies(
    previous: &MediaServicesAccountStatus,
    generation: Option<i64>,
    desired: &Desired,
    latest: &crate::reconcile::observe::ObservedKey,
    now: Timestamp,
    ctx: &Context,
) -> bool {
    let restores = matches!(
        &desired.encryption,
        Some(crate::reconcile::desired::DesiredEncryption::CustomerKey {
            grant_access: true,
            ..
        })
    ) && matches!(
        crate::reconcile::key_access::diagnose(latest, now, ctx.key_expiry_warning),
        crate::reconcile::key_access::KeyVerdict::Inaccessible {
            cause: crate::crd::conditions::key_access::ACCESS_REVOKED,
            ..
        }
    );
    previous.observed_generation == generation
        && previous.pending_operation.is_none()
        && previous.condition(types::READY).is_some()
        && previous.propagating_since.is_none()
        && !restores
}

/// The annotation that asks for a reconcile (and a fresh key probe) now; its value is any text
/// that differs from the last one handled (`kubectl annotate msa NAME
/// ams-security.io/reconcile-at="$(date +%s)" --overwrite`).
pub const RECONCILE_AT: &str = "ams-security.io/reconcile-at";

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

fn interval(account: &MediaServicesAccount) -> Duration {
    account
        .spec
        .key_access_check_interval
        .duration()
        .unwrap_or(Duration::from_secs(30))
}

#[allow(clippy::too_many_lines)]
async fn run_pass(
    account: &MediaServicesAccount,
    ctx: &Context,
    previous: &MediaServicesAccountStatus,
    now: Timestamp,
) -> Pass {
    let generation = account.metadata.generation;
    let key = format!(
        "{}/{}",
        account.namespace().unwrap_or_default(),
        account.name_any()
    );
    let simple = |verdict: Verdict<'_>, action: Action| Pass {
        status: status::compute(previous, generation, &verdict, now),
        writes: Vec::new(),
        warning: None,
        action,
        success: true,
        settled: false,
    };

    if account.spec.suspend {
        ctx.keys.unregister(&key);
        return simple(Verdict::Suspended, Action::await_change());
    }
    let desired = match Desired::from_spec(&account.spec) {
        Ok(d) => d,
        Err(errors) => {
            ctx.keys.unregister(&key);
            return simple(
                Verdict::InvalidSpec(errors.to_string()),
                Action::await_change(),
            );
        }
    };
    // Outside its tenancy map a resource gets no Azure call at all (not even a credential).
    if let Err(message) = ctx
        .tenancy_allows(&account.namespace().unwrap_or_default(), &desired)
        .await
    {
        ctx.keys.unregister(&key);
        return simple(
            Verdict::Blocked {
                reason: reasons::TENANCY_DENIED,
                message,
            },
            Action::requeue(requeue::USER_ACTION),
        );
    }
    // Re-triggered by the key monitor: only the key changed since the last full pass, so its
    // verdict is written without reading Azure again (the next resync confirms the rest).
    if ctx.keys.take_trigger(&key)
        && let Some(latest) = ctx.keys.latest(&key)
        && key_update_applies(previous, generation, &desired, &latest, now, ctx)
    {
        return Pass {
            status: status::key_update(
                previous,
                generation,
                &desired,
                &latest,
                ctx.key_expiry_warning,
                now,
            ),
            writes: Vec::new(),
            warning: None,
            action: Action::requeue(requeue::jittered(ctx.resync_interval, &key)),
            success: true,
            settled: true,
        };
    }
    let (credential, api) = match credentials(account, ctx).await {
        Ok(found) => found,
        Err(message) => {
            return simple(
                Verdict::Blocked {
                    reason: reasons::CREDENTIALS_UNAVAILABLE,
                    message,
                },
                Action::requeue(requeue::USER_ACTION),
            );
        }
    };
    let azure_failure = |error: AzureError, mut status: MediaServicesAccountStatus| {
        let class = error.class();
        let (action, flip) = match class {
            ErrorClass::Throttled => (
                Action::requeue(error.retry_after().unwrap_or(requeue::THROTTLED_DEFAULT)),
                false,
            ),
            ErrorClass::Transient | ErrorClass::Propagating => {
                let n = ctx.record_failure(&key);
                (
                    Action::requeue(requeue::transient(n)),
                    n >= TRANSIENT_FAILURES_BEFORE_NOT_READY,
                )
            }
            ErrorClass::UserActionRequired | ErrorClass::NotFound => {
                (Action::requeue(requeue::USER_ACTION), true)
            }
        };
        if flip {
            status = status::compute(
                &status,
                generation,
                &Verdict::Blocked {
                    reason: status::error_reason(&error),
                    message: error.to_string(),
                },
                now,
            );
        }
        Pass {
            status,
            writes: Vec::new(),
            warning: Some((error.reason().to_owned(), error.to_string())),
            action,
            success: false,
            settled: false,
        }
    };

    // A parked operation first: nothing new is started while one runs.
    let mut base = previous.clone();
    let mut failed_operation = None;
    if let Some(parked) = &previous.pending_operation {
        // A parked value this version cannot read is dropped: observing again is always safe.
        match parked::from_status(parked) {
            None => base.pending_operation = None,
            Some(op) => match api.poll_operation(&op).await {
                Ok(PollOutcome::InProgress { retry_after }) => {
                    let wait = retry_after
                        .unwrap_or(requeue::OPERATION_DEFAULT)
                        .clamp(Duration::from_secs(1), requeue::OPERATION_MAX);
                    return simple(
                        Verdict::Waiting {
                            operation: format!(
                                "{} (started {})",
                                parked.operation, parked.started_at.0
                            ),
                        },
                        Action::requeue(wait),
                    );
                }
                Ok(PollOutcome::Succeeded(_)) => base.pending_operation = None,
                Err(e) if matches!(e, AzureError::OperationFailed { .. }) => {
                    let area = prereqs::Area::from_condition_type(&parked.condition)
                        .unwrap_or(prereqs::Area::Identity);
                    base.pending_operation = None;
                    failed_operation = Some((e, area));
                }
                Err(e) if e.class() == ErrorClass::NotFound => base.pending_operation = None,
                Err(e) => return azure_failure(e, previous.clone()),
            },
        }
    }

    if !desired.uses_customer_key() {
        ctx.keys.unregister(&key);
    }
    let keys = MonitoredKeys {
        monitor: &ctx.keys,
        user: key.clone(),
        credential,
        api: api.clone(),
        interval: interval(account),
        force: reconcile_requested(account, previous).is_some(),
    };
    let observed = match observe::observe(api.as_ref(), &desired, &keys).await {
        Ok(Observation::Found(o)) => o,
        Ok(Observation::AccountNotFound) => {
            let mut status = status::compute(
                &base,
                generation,
                &Verdict::Blocked {
                    reason: reasons::ACCOUNT_NOT_FOUND,
                    message: format!(
                        "Media Services account {} does not exist; the operator manages the security state of existing accounts and does not create them",
                        desired.account
                    ),
                },
                now,
            );
            status.pending_operation = None;
            return Pass {
                status,
                writes: Vec::new(),
                warning: None,
                action: Action::requeue(requeue::USER_ACTION),
                success: true,
                settled: false,
            };
        }
        Err(e) => return azure_failure(e, base),
    };

    let identity_changing = plan::identity_update(&desired, &observed).is_some();
    let propagating_since = base.propagating_since.as_ref().map(|t| t.0);
    let problems = prereqs::check(
        &desired,
        &observed,
        propagating_since,
        identity_changing,
        now,
    );
    let owner = ctx.owner(account);
    let the_plan = plan::plan(&desired, &observed, &base, &owner);
    let applied: Option<Applied> =
        if problems.is_empty() && failed_operation.is_none() && !the_plan.steps.is_empty() {
            Some(apply::apply(api.as_ref(), &desired.account, &the_plan).await)
        } else {
            None
        };
    let mut status = status::compute(
        &base,
        generation,
        &Verdict::Reconciled {
            desired: &desired,
            observed: &observed,
            problems: &problems,
            plan: &the_plan,
            owner: &owner,
            applied: applied.as_ref(),
            failed_operation: failed_operation.as_ref().map(|(e, a)| (e, *a)),
            expiry_horizon: ctx.key_expiry_warning,
            rotation_grace: ctx.key_rotation_grace,
        },
        now,
    );

    let mut settled = false;
    let mut warning = failed_operation
        .as_ref()
        .map(|(e, _)| (e.reason().to_owned(), e.to_string()));
    let mut success = true;
    let action = match applied.as_ref().map(|a| &a.outcome) {
        Some(Outcome::Pending {
            area,
            operation: op,
        }) => {
            status.pending_operation = Some(parked::to_status(op, *area, now));
            Action::requeue(
                op.retry_after()
                    .unwrap_or(requeue::OPERATION_DEFAULT)
                    .clamp(Duration::from_secs(1), requeue::OPERATION_MAX),
            )
        }
        Some(Outcome::Done) => Action::requeue(requeue::AFTER_WRITE),
        Some(Outcome::Propagating { .. }) => Action::requeue(requeue::PROPAGATING),
        Some(Outcome::Failed { error, .. }) => {
            warning = Some((error.reason().to_owned(), error.to_string()));
            match error.class() {
                ErrorClass::Throttled => {
                    Action::requeue(error.retry_after().unwrap_or(requeue::THROTTLED_DEFAULT))
                }
                ErrorClass::Transient => {
                    success = false;
                    Action::requeue(requeue::transient(ctx.record_failure(&key)))
                }
                _ => Action::requeue(requeue::USER_ACTION),
            }
        }
        None if failed_operation.is_some() => Action::requeue(requeue::USER_ACTION),
        None if problems.iter().any(|p| !p.propagating) => Action::requeue(requeue::USER_ACTION),
        None if !problems.is_empty() => Action::requeue(requeue::PROPAGATING),
        // Key access is watched by the shared monitor, which re-triggers this account when
        // its verdict changes; the resync looks for drift everywhere else.
        None => {
            settled = true;
            Action::requeue(requeue::jittered(ctx.resync_interval, &key))
        }
    };
    Pass {
        status,
        writes: applied.map(|a| a.writes).unwrap_or_default(),
        warning,
        action,
        success,
        settled,
    }
}

/// The Azure client for this resource: its `credentialsSecretRef`, else the operator's own;
/// with the credential's identity (kind, tenant and client id), which key probers share by.
pub(crate) async fn credentials(
    account: &MediaServicesAccount,
    ctx: &Context,
) -> Result<(String, Arc<dyn AzureApi>), String> {
    let source = match &account.spec.credentials_secret_ref {
        None => ctx.operator_credential.clone(),
        Some(r) => {
            let ns = account.namespace().unwrap_or_default();
            let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &ns);
            let secret = secrets
                .get_opt(&r.name)
                .await
                .map_err(|e| format!("failed to read Secret {ns}/{}: {e}", r.name))?
                .ok_or_else(|| {
                    format!(
                        "Secret {ns}/{} named by spec.credentialsSecretRef does not exist; create it with keys tenantId, clientId and clientSecret",
                        r.name
                    )
                })?;
            crate::azure::CredentialSource::client_secret_from_k8s_secret(&ns, &secret)
                .map_err(|e| e.to_string())?
        }
    };
    let (kind, tenant, client) = source.identity_key();
    let api = ctx.azure.api(&source).map_err(|e| e.to_string())?;
    Ok((format!("{kind}/{tenant}/{client}"), api))
}

/// Writes the status as a JSON merge patch of exactly what changed, with the object's
/// `resourceVersion` as a precondition, so a status someone else changed since the read is
/// never overwritten (the apiserver answers 409 and the reconcile runs again).
///
/// NB: server-side apply would be the natural choice, but the 1.20 apiserver turns a field the
/// manager stops sending (a cleared `pendingOperation`) into `null`, which the schema then
/// refuses; a merge patch says "remove" explicitly.
pub(crate) async fn write_status(
    kube: &kube::Client,
    account: &MediaServicesAccount,
    previous: &MediaServicesAccountStatus,
    status: &MediaServicesAccountStatus,
) -> Result<(), kube::Error> {
    let api: Api<MediaServicesAccount> =
        Api::namespaced(kube.clone(), &account.namespace().unwrap_or_default());
    let old = serde_json::to_value(previous).unwrap_or_default();
    let new = serde_json::to_value(status).unwrap_or_default();
    let patch = json!({
        "metadata": { "resourceVersion": account.resource_version() },
        "status": merge_diff(&old, &new),
    });
    tracing::debug!(object = %account.name_any(), patch = %patch["status"], "writing status");
    api.patch_status(
        &account.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// The JSON merge patch (RFC 7386) that turns `old` into `new`: changed members, `null` for
/// removed ones; arrays and scalars are replaced whole.
fn merge_diff(old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = serde_json::Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) if ov == nv => {}
                    Some(ov) => {
                        patch.insert(k.clone(), merge_diff(ov, nv));
                    }
                    None => {
                        patch.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
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
    let current = api
        .get_opt(&name)
        .await
        .map_err(|source| Error::WriteStatus {
            object: object.clone(),
            source,
        })?;
    let ready = current
        .as_ref()
        .and_then(|o| o.data.pointer("/status/conditions"))
        .and_then(|c| c.as_array())
        .and_then(|c| c.iter().find(|c| c["type"] == types::READY))
        .cloned();
    let unchanged = ready.as_ref().is_some_and(|r| {
        r["status"] == "False"
            && r["reason"] == reasons::INVALID_SPEC
            && r["message"] == message.as_str()
    });
    if current.is_none() || unchanged {
        return Ok(Action::await_change());
    }
    let since = ready
        .as_ref()
        .filter(|r| r["status"] == "False")
        .and_then(|r| r["lastTransitionTime"].as_str().map(str::to_owned))
        .unwrap_or_else(|| Timestamp::now().to_string());
    let patch = json!({
        "apiVersion": MediaServicesAccount::api_version(&()),
        "kind": MediaServicesAccount::kind(&()),
        "status": {
            "observedGeneration": invalid.metadata.generation,
            "conditions": [{
                "type": types::READY,
                "status": "False",
                "reason": reasons::INVALID_SPEC,
                "message": message,
                "lastTransitionTime": since,
                "observedGeneration": invalid.metadata.generation,
            }, {
                // kstatus: a person must act.
                "type": types::STALLED,
                "status": "True",
                "reason": reasons::INVALID_SPEC,
                "message": message,
                "lastTransitionTime": since,
                "observedGeneration": invalid.metadata.generation,
            }, {
                "type": types::RECONCILING,
                "status": "False",
                "reason": reasons::INVALID_SPEC,
                "message": "not reconciling; Ready is InvalidSpec",
                "lastTransitionTime": since,
                "observedGeneration": invalid.metadata.generation,
            }],
        },
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| Error::WriteStatus {
        object: object.clone(),
        source,
    })?;
    let reference = k8s_openapi::api::core::v1::ObjectReference {
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
