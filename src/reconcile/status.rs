//! Status step (pure): computes the resource's status from what this pass found and did, and
//! the previous status. Conditions follow `crd::conditions`: one per area plus
//! `CustomerKeyInaccessible` and the `Ready` summary, each with `observedGeneration`, and a
//! `lastTransitionTime` that moves only when the condition's status changes.
//!
//! The result equals the previous status exactly when nothing changed, so the caller writes
//! only on inequality. Conditions of other types (other owners) are kept as they are. No I/O,
//! no clock: `now` is an argument.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::azure::models::authorization::last_segment;
use crate::azure::resource_id::ids_equal;
use crate::azure::{AzureError, ErrorClass};
use crate::crd::account::{
    AccessGrantStatus, EncryptionStatus, IdentityStatus, MediaServicesAccountStatus, StorageStatus,
    UserAssignedIdentityStatus,
};
use crate::crd::conditions::{reasons, types};

use super::apply::{Applied, Outcome};
use super::assess::Assessment;
use super::desired::{Desired, DesiredEncryption};
use super::key_access::KeyVerdict;
use super::observe::{Observed, ObservedKey};
use super::plan::{Plan, holding, identity_type_str};
use super::prereqs::{Area, Problem};
use super::rules::BLOB_DATA_ROLES;

/// Longest condition message kept; Azure messages can be long.
const MAX_MESSAGE: usize = 1024;

/// What this pass amounts to.
#[derive(Debug)]
pub enum Verdict<'a> {
    /// `spec.suspend`: nothing was read or written.
    Suspended,
    /// The spec breaks a rule; the message lists every violation.
    InvalidSpec(String),
    /// Something stopped the pass before it could judge the account (the account is missing,
    /// credentials are unusable, Azure refused a read): only `Ready` changes.
    Blocked {
        /// Reason.
        reason: &'static str,
        /// What to fix.
        message: String,
    },
    /// A parked operation is still running.
    Waiting {
        /// What it is, for the message.
        operation: String,
    },
    /// An Azure call failed before the pass could judge the account; `failures` is how many
    /// passes in a row failed so. Status is kept as it was (a blip must not flap `Ready`) until
    /// the failure is one a person must fix, or transient failures keep coming.
    Failed {
        /// How Azure's error is classified.
        class: ErrorClass,
        /// Reason ([`error_reason`]).
        reason: &'static str,
        /// The error's message.
        message: String,
        /// Failures in a row, this one included.
        failures: u32,
    },
    /// The account was observed, checked, and (unless a prerequisite failed) planned and applied.
    Reconciled {
        /// What the spec asks for.
        desired: &'a Desired,
        /// What was found.
        observed: &'a Observed,
        /// What the pass decided: the key verdict, failed prerequisites (nothing was applied
        /// when any is not propagating) and the plan.
        assessment: &'a Assessment,
        /// Who owns the operator's role assignments ([`super::plan::owner_identity`]).
        owner: &'a str,
        /// What applying it did (`None` when it was held back by a problem).
        applied: Option<&'a Applied>,
        /// A parked operation that just failed: its error and the area it served.
        failed_operation: Option<(&'a AzureError, Area)>,
        /// How long the account may stay on an older version of a key that tracks the latest
        /// before `EncryptionReady` warns (`KeyRotationPending`).
        rotation_grace: std::time::Duration,
    },
}

/// `CustomerKeyInaccessible` for an account that does (or does not) use a customer key, from
/// the key's verdict.
fn key_condition(
    desired: &Desired,
    uses_customer_key: bool,
    key_verdict: Option<&KeyVerdict>,
) -> (&'static str, &'static str, String) {
    if !uses_customer_key {
        (
            "False",
            reasons::SYSTEM_KEY,
            "the account uses a Microsoft-managed key".to_owned(),
        )
    } else if let (Some(DesiredEncryption::CustomerKey { key, .. }), Some(verdict)) =
        (&desired.encryption, key_verdict)
    {
        match verdict {
            KeyVerdict::Inaccessible { cause, message } => ("True", *cause, message.clone()),
            KeyVerdict::Unknown { reason, message } => ("Unknown", *reason, message.clone()),
            KeyVerdict::Accessible { .. } => (
                "False",
                reasons::KEY_ACCESSIBLE,
                format!(
                    "the account's identity can use key {} in vault {}",
                    key.name, key.vault_name
                ),
            ),
        }
    } else {
        (
            "Unknown",
            reasons::NOT_MANAGED,
            "the account uses a customer-managed key that spec.encryption does not name, so the operator does not check it".to_owned(),
        )
    }
}

/// Writes `CustomerKeyInaccessible` (its message marked as the last verdict known while checks
/// fail); returns the message and whether the verdict (status or reason) changed.
fn set_key_condition(
    status: &mut MediaServicesAccountStatus,
    (ks, kr, km): (&str, &str, String),
    failing: Option<&str>,
    generation: Option<i64>,
    now: Timestamp,
) -> (String, bool) {
    let km = match failing {
        Some(f) => format!("{km}; this is the last verdict known, as later checks fail: {f}"),
        None => km,
    };
    let verdict_changed = status
        .condition(types::CUSTOMER_KEY_INACCESSIBLE)
        .is_none_or(|c| c.status != ks || c.reason != kr);
    set_condition(
        &mut status.conditions,
        types::CUSTOMER_KEY_INACCESSIBLE,
        ks,
        kr,
        km.clone(),
        generation,
        now,
    );
    (km, verdict_changed)
}

/// Writes `Ready`: the first area condition that is not good (type, reason, message), else the
/// lost key, else success.
fn set_ready(
    status: &mut MediaServicesAccountStatus,
    first_failure: Option<(&str, String, String)>,
    (ks, kr, km): (&str, &str, &str),
    generation: Option<i64>,
    now: Timestamp,
) {
    let (rs, rr, rm) = match first_failure {
        Some((t, reason, message)) => ("False", reason, format!("{t}: {message}")),
        None if ks == "True" => (
            "False",
            kr.to_owned(),
            format!("{}: {km}", types::CUSTOMER_KEY_INACCESSIBLE),
        ),
        None => (
            "True",
            reasons::SUCCEEDED.to_owned(),
            "the account's security state matches the spec".to_owned(),
        ),
    };
    set_condition(
        &mut status.conditions,
        types::READY,
        rs,
        &rr,
        rm,
        generation,
        now,
    );
}

/// The status after the shared key monitor reported a new verdict for the account's key, with
/// no Azure read: `CustomerKeyInaccessible` and `EncryptionReady` follow the verdict, `Ready`
/// is recomputed from the conditions, and everything else is as the last full pass left it
/// (the next resync confirms it). This is what lets one changed key reach a thousand accounts
/// in seconds instead of a thousand full passes through the ARM read budget.
#[must_use]
pub fn key_update(
    previous: &MediaServicesAccountStatus,
    generation: Option<i64>,
    desired: &Desired,
    key: &ObservedKey,
    verdict: &KeyVerdict,
    now: Timestamp,
) -> MediaServicesAccountStatus {
    let mut status = previous.clone();
    let uses_customer_key = previous
        .encryption
        .as_ref()
        .is_some_and(|e| e.current_key_identifier.is_some());
    let (ks, kr, km) = key_condition(desired, uses_customer_key, Some(verdict));
    let failing = key.probe.failing.as_deref().filter(|_| uses_customer_key);
    let (km, verdict_changed) =
        set_key_condition(&mut status, (ks, kr, km), failing, generation, now);
    // EncryptionReady follows a key-access verdict; any other reason it has stays.
    let key_reasons = |r: &str| {
        crate::crd::conditions::key_access::ALL.contains(&r)
            || r == reasons::KEY_ACCESS_MISSING
            || r == reasons::KEY_EXPIRING_SOON
            || r == reasons::SUCCEEDED
    };
    let encryption = status.condition(types::ENCRYPTION_READY).cloned();
    if let Some(e) = encryption.filter(|e| key_reasons(&e.reason)) {
        let (es, er, em) = match verdict {
            KeyVerdict::Inaccessible { cause, message } => ("False", *cause, message.clone()),
            KeyVerdict::Accessible {
                expiring: Some(warning),
            } => ("True", reasons::KEY_EXPIRING_SOON, warning.clone()),
            KeyVerdict::Accessible { expiring: None } if e.reason != reasons::SUCCEEDED => (
                "True",
                reasons::SUCCEEDED,
                format!("the identity can use customer key {}", key.key_id.raw),
            ),
            _ => (e.status.as_str(), "", e.message.clone()),
        };
        if !er.is_empty() {
            set_condition(
                &mut status.conditions,
                types::ENCRYPTION_READY,
                es,
                er,
                em,
                generation,
                now,
            );
        }
    }
    let first_failure = AREAS.iter().find_map(|(_, t)| {
        status
            .condition(t)
            .filter(|c| c.status != "True")
            .map(|c| (*t, c.reason.clone(), c.message.clone()))
    });
    set_ready(&mut status, first_failure, (ks, kr, &km), generation, now);
    if let Some(e) = status.encryption.as_mut() {
        if verdict_changed
            || key.probe.failing != e.key_access_check_error
            || e.last_key_access_check_time.is_none()
        {
            e.last_key_access_check_time = Some(Time(key.probe.checked_at.unwrap_or(now)));
        }
        e.key_access_check_error.clone_from(&key.probe.failing);
        e.effective_key_access_check_interval =
            key.probe.stretched_to.map(|d| format!("{}s", d.as_secs()));
    }
    status.observed_generation = generation;
    kstatus_conditions(&mut status, generation, now);
    status
}

/// `Reconciling` and `Stalled`, kstatus's standard abnormal-true conditions, derived from
/// `Ready`: GitOps tools that read kstatus (Flux) tell "in progress" from "failed" by them.
fn kstatus_conditions(
    status: &mut MediaServicesAccountStatus,
    generation: Option<i64>,
    now: Timestamp,
) {
    let Some(ready) = status.condition(types::READY).cloned() else {
        return;
    };
    let working = matches!(
        ready.reason.as_str(),
        reasons::IN_PROGRESS | reasons::PROPAGATING | reasons::THROTTLED | reasons::TRANSIENT_ERROR
    );
    let (reconciling, stalled) = if ready.status == "True" || ready.reason == reasons::SUSPENDED {
        (false, false)
    } else {
        (working, !working)
    };
    let said = |on: bool, what: &str| {
        if on {
            ("True", ready.reason.clone(), ready.message.clone())
        } else if ready.status == "True" {
            (
                "False",
                reasons::SUCCEEDED.to_owned(),
                format!("not {what}: Ready"),
            )
        } else {
            (
                "False",
                ready.reason.clone(),
                format!("not {what}; Ready is {}", ready.reason),
            )
        }
    };
    for (type_, on, what) in [
        (types::RECONCILING, reconciling, "reconciling"),
        (types::STALLED, stalled, "stalled"),
    ] {
        let (s, r, m) = said(on, what);
        set_condition(&mut status.conditions, type_, s, &r, m, generation, now);
    }
}

/// Default time an account may stay on an older version of a key that tracks the latest.
pub const DEFAULT_ROTATION_GRACE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What the status step derives about the customer key before writing conditions.
#[derive(Debug, Default)]
struct KeyFacts {
    verdict: Option<KeyVerdict>,
    /// The latest version the vault reports, for a spec that tracks the latest.
    latest: Option<String>,
    /// Since when the account has lagged behind `latest`.
    pending_since: Option<Timestamp>,
    /// The warning when it has lagged longer than the grace.
    lagging: Option<String>,
}

fn key_facts(
    desired: &Desired,
    observed: &Observed,
    verdict: Option<&KeyVerdict>,
    previous: Option<&EncryptionStatus>,
    rotation_grace: std::time::Duration,
    now: Timestamp,
) -> KeyFacts {
    let (Some(k), Some(verdict)) = (observed.key.as_ref(), verdict) else {
        return KeyFacts::default();
    };
    let latest = k
        .key
        .as_ref()
        .filter(|_| k.key_id.version.is_none())
        .map(|key| key.version.clone());
    let current = observed
        .account
        .properties
        .as_ref()
        .and_then(|p| p.encryption.as_ref())
        .and_then(|e| e.key_vault_properties.as_ref())
        .and_then(|p| p.current_key_identifier.as_deref())
        .map(last_segment);
    let behind = matches!(
        (&latest, current),
        (Some(l), Some(c)) if !l.eq_ignore_ascii_case(c)
    ) && matches!(verdict, KeyVerdict::Accessible { .. })
        && matches!(
            &desired.encryption,
            Some(DesiredEncryption::CustomerKey { .. })
        );
    let pending_since = behind.then(|| {
        previous
            .and_then(|p| p.rotation_pending_since.as_ref())
            .map_or(now, |t| t.0)
    });
    let lagging = pending_since
        .filter(|since| {
            now.duration_since(*since).as_secs() >= i64::try_from(rotation_grace.as_secs()).unwrap_or(i64::MAX)
        })
        .map(|since| {
            format!(
                "vault has version {} of key {} since {since} at the latest, and the account still uses version {}; Media Services moves to a new version by itself, so check the account's key access if this lasts",
                latest.as_deref().unwrap_or_default(),
                k.key_id.name,
                current.unwrap_or_default()
            )
        });
    KeyFacts {
        verdict: Some(verdict.clone()),
        latest,
        pending_since,
        lagging,
    }
}

/// Condition reason for a failed Azure call.
#[must_use]
pub fn error_reason(error: &AzureError) -> &'static str {
    if matches!(error, AzureError::OperationFailed { .. }) {
        return reasons::OPERATION_FAILED;
    }
    if matches!(error, AzureError::CredentialsRejected { .. }) {
        return reasons::CREDENTIALS_REJECTED;
    }
    if error.code() == Some(NAME_TAKEN) {
        return reasons::ROLE_ASSIGNMENT_NAME_CONFLICT;
    }
    match error.class() {
        ErrorClass::Throttled => reasons::THROTTLED,
        ErrorClass::Propagating => reasons::PROPAGATING,
        ErrorClass::Transient => reasons::TRANSIENT_ERROR,
        ErrorClass::UserActionRequired if error.status() == Some(403) => {
            reasons::OPERATOR_FORBIDDEN
        }
        ErrorClass::UserActionRequired | ErrorClass::NotFound => reasons::USER_ACTION_REQUIRED,
    }
}

/// ARM's code for a role-assignment PUT whose name exists with another principal, role or
/// scope.
const NAME_TAKEN: &str = "RoleAssignmentUpdateNotPermitted";

/// A failed write's condition message: Azure's own, explained where it is cryptic.
fn error_message(error: &AzureError) -> String {
    if error.code() == Some(NAME_TAKEN) {
        return format!(
            "the role-assignment name the operator derives for this grant is already used by an assignment for another principal, role or scope, which the operator did not make and will not change; remove that assignment (or move the object, which changes the name) and the grant is made on the next pass: {error}"
        );
    }
    error.to_string()
}

fn truncate(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

/// Sets (or adds) a condition, keeping `lastTransitionTime` when its status is unchanged.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) {
    let message = truncate(message);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Time(now);
                status.clone_into(&mut c.status);
            }
            reason.clone_into(&mut c.reason);
            c.message = message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
}

const AREAS: [(Area, &str); 4] = [
    (Area::Identity, types::IDENTITY_READY),
    (Area::Storage, types::STORAGE_ACCESS_READY),
    (Area::Encryption, types::ENCRYPTION_READY),
    (Area::AccessGrants, types::ACCESS_GRANTS_READY),
];

/// Transient failures in a row before `Ready` says so (a blip should not flap it).
pub const TRANSIENT_FAILURES_BEFORE_NOT_READY: u32 = 3;

/// Whether a failed Azure call shows on `Ready`: at once when a person must act, after a few in
/// a row when transient, never when throttled (Azure asked to wait, nothing is wrong).
#[must_use]
pub fn failure_shows(class: ErrorClass, failures: u32) -> bool {
    match class {
        ErrorClass::Throttled => false,
        ErrorClass::Transient | ErrorClass::Propagating => {
            failures >= TRANSIENT_FAILURES_BEFORE_NOT_READY
        }
        ErrorClass::UserActionRequired | ErrorClass::NotFound => true,
    }
}

/// The new status.
#[must_use]
pub fn compute(
    previous: &MediaServicesAccountStatus,
    generation: Option<i64>,
    verdict: &Verdict<'_>,
    now: Timestamp,
) -> MediaServicesAccountStatus {
    let mut status = previous.clone();
    status.observed_generation = generation;
    let set = |status: &mut MediaServicesAccountStatus, t: &str, s: &str, r: &str, m: String| {
        set_condition(&mut status.conditions, t, s, r, m, generation, now);
    };
    match verdict {
        Verdict::Suspended => set(
            &mut status,
            types::READY,
            "False",
            reasons::SUSPENDED,
            "reconciliation is suspended by spec.suspend: no Azure calls are made".to_owned(),
        ),
        Verdict::InvalidSpec(message) => set(
            &mut status,
            types::READY,
            "False",
            reasons::INVALID_SPEC,
            format!("{message}; nothing is written to Azure until the spec is fixed"),
        ),
        Verdict::Blocked { reason, message } => {
            set(&mut status, types::READY, "False", reason, message.clone());
        }
        Verdict::Waiting { operation } => set(
            &mut status,
            types::READY,
            "False",
            reasons::IN_PROGRESS,
            format!("waiting for Azure to finish: {operation}"),
        ),
        Verdict::Failed {
            class,
            reason,
            message,
            failures,
        } => {
            if failure_shows(*class, *failures) {
                set(&mut status, types::READY, "False", reason, message.clone());
            }
        }
        Verdict::Reconciled {
            desired,
            observed,
            assessment,
            owner,
            applied,
            failed_operation,
            rotation_grace,
        } => {
            let key = key_facts(
                desired,
                observed,
                assessment.key.as_ref(),
                previous.encryption.as_ref(),
                *rotation_grace,
                now,
            );
            let judged = Judged {
                desired,
                observed,
                problems: &assessment.problems,
                plan: &assessment.plan,
                owner,
                applied: *applied,
                failed_operation: *failed_operation,
                key: &key,
            };
            reconciled(&mut status, &judged, generation, now);
        }
    }
    kstatus_conditions(&mut status, generation, now);
    status
}

/// What a full pass judged and did, as the status step reads it.
struct Judged<'a> {
    desired: &'a Desired,
    observed: &'a Observed,
    problems: &'a [Problem],
    plan: &'a Plan,
    owner: &'a str,
    applied: Option<&'a Applied>,
    failed_operation: Option<(&'a AzureError, Area)>,
    key: &'a KeyFacts,
}

/// One area's condition: status, reason, message.
type AreaState = (&'static str, String, String);

/// The condition of `area` after a full pass: a failed prerequisite of it first, then a failed
/// write, an unmanaged area, a failed operation, a change under way, and otherwise its warnings
/// or success.
fn area_condition(j: &Judged<'_>, area: Area) -> AreaState {
    let Judged {
        desired,
        observed,
        problems,
        plan,
        applied,
        failed_operation,
        key,
        ..
    } = *j;
    let managed = match area {
        Area::Identity => desired.identity.is_some(),
        Area::Storage => desired.storage.is_some(),
        Area::Encryption => desired.encryption.is_some(),
        // Revoking grants the spec dropped is managing them too.
        Area::AccessGrants => {
            !desired.access_grants.is_empty()
                || plan
                    .steps
                    .iter()
                    .any(|s| matches!(s, super::plan::Step::Revoke(Area::AccessGrants, _)))
        }
    };
    let outcome = applied.map(|a| &a.outcome);
    if let Some(p) = problems.iter().find(|p| p.area == area) {
        let reason = if p.propagating {
            reasons::PROPAGATING
        } else {
            p.reason
        };
        return ("False", reason.to_owned(), p.message.clone());
    }
    if let Some(Outcome::Failed { area: a, error } | Outcome::Propagating { area: a, error }) =
        outcome
        && *a == area
    {
        return (
            "False",
            error_reason(error).to_owned(),
            error_message(error),
        );
    }
    if !managed {
        return (
            "True",
            reasons::NOT_MANAGED.to_owned(),
            "this part of the spec is absent, so the operator leaves it as it is in Azure"
                .to_owned(),
        );
    }
    if let Some((error, a)) = failed_operation
        && a == area
    {
        return (
            "False",
            reasons::OPERATION_FAILED.to_owned(),
            error.to_string(),
        );
    }
    if plan.touches(area) {
        return in_progress(j, area);
    }
    match (area, key.verdict.as_ref(), &key.lagging) {
        (
            Area::Encryption,
            Some(KeyVerdict::Accessible {
                expiring: Some(warning),
            }),
            _,
        ) => (
            "True",
            reasons::KEY_EXPIRING_SOON.to_owned(),
            warning.clone(),
        ),
        (Area::Encryption, _, Some(lagging)) => (
            "True",
            reasons::KEY_ROTATION_PENDING.to_owned(),
            lagging.clone(),
        ),
        _ => (
            "True",
            reasons::SUCCEEDED.to_owned(),
            summary(area, desired, observed),
        ),
    }
}

/// An area the plan changes: held back by a failed prerequisite elsewhere, or applied and
/// waiting for Azure to confirm.
fn in_progress(j: &Judged<'_>, area: Area) -> AreaState {
    if j.problems.iter().any(|p| !p.propagating) {
        return (
            "False",
            reasons::BLOCKED.to_owned(),
            "changes are held back until the failed prerequisite on another condition is fixed"
                .to_owned(),
        );
    }
    let done: Vec<&str> = j
        .applied
        .iter()
        .flat_map(|a| a.writes.iter())
        .filter(|w| w.area == area)
        .map(|w| w.message.as_str())
        .collect();
    let message = if done.is_empty() {
        "waiting for the identity change to finish before this part is reconciled".to_owned()
    } else {
        format!("applied, waiting for Azure to confirm: {}", done.join("; "))
    };
    ("False", reasons::IN_PROGRESS.to_owned(), message)
}

fn reconciled(
    status: &mut MediaServicesAccountStatus,
    j: &Judged<'_>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let Judged {
        desired,
        observed,
        problems,
        owner,
        applied,
        key,
        ..
    } = *j;
    let key_verdict = key.verdict.as_ref();
    let mut area_states = Vec::new();
    for (area, type_) in AREAS {
        let (s, reason, message) = area_condition(j, area);
        set_condition(
            &mut status.conditions,
            type_,
            s,
            &reason,
            message.clone(),
            generation,
            now,
        );
        area_states.push((type_, s == "True", reason, message));
    }

    // Customer-key access, judged from the key the account uses now.
    let account_encryption = observed
        .account
        .properties
        .as_ref()
        .and_then(|p| p.encryption.as_ref());
    let uses_customer_key =
        account_encryption.is_some_and(|e| e.key_type.eq_ignore_ascii_case("CustomerKey"));
    let (ks, kr, km) = key_condition(desired, uses_customer_key, key_verdict);
    let failing = observed
        .key
        .as_ref()
        .and_then(|k| k.probe.failing.as_deref())
        .filter(|_| uses_customer_key && key_verdict.is_some());
    let (km, verdict_changed) = set_key_condition(status, (ks, kr, km), failing, generation, now);

    let first_failure = problems
        .iter()
        .find(|p| !p.propagating)
        .and_then(|p| {
            area_states
                .iter()
                .find(|(t, ..)| *t == p.area.condition_type())
        })
        .or_else(|| area_states.iter().find(|(_, ok, _, _)| !ok));
    set_ready(
        status,
        first_failure.map(|(t, _, reason, message)| (*t, reason.clone(), message.clone())),
        (ks, kr, &km),
        generation,
        now,
    );

    status.identity = observed.account.identity.as_ref().map(|i| IdentityStatus {
        principal_id: i.principal_id.clone(),
        tenant_id: i.tenant_id.clone(),
        user_assigned: i
            .user_assigned_identities
            .iter()
            .flatten()
            .map(|(id, r)| UserAssignedIdentityStatus {
                id: id.clone(),
                principal_id: r.principal_id.clone(),
                client_id: r.client_id.clone(),
            })
            .collect(),
    });
    status.encryption = encryption_status(
        status.encryption.take(),
        account_encryption,
        observed.key.as_ref(),
        key,
        verdict_changed,
        now,
    );
    grant_status(status, desired, observed, applied, owner);
    // A wait that ran past its bound still counts from when it began: clearing it would start
    // a new bounded wait on the next pass, and the reason would flip between the two forever.
    let waiting = problems
        .iter()
        .any(|p| p.propagating || p.reason == reasons::USER_ASSIGNED_IDENTITY_NOT_FOUND)
        || applied.is_some_and(|a| matches!(a.outcome, Outcome::Propagating { .. }));
    status.propagating_since = if waiting {
        status.propagating_since.take().or(Some(Time(now)))
    } else {
        None
    };
}

/// `status.storage`, `status.accessGrants` and `status.createdAccessPolicies` after a pass:
/// each grant with the assignment that holds it, preferring the operator's own, and whether the
/// operator made it. A storage grant the operator made on a storage account the spec dropped
/// stays listed until its revocation succeeds, since it is read from nowhere else.
fn grant_status(
    status: &mut MediaServicesAccountStatus,
    desired: &Desired,
    observed: &Observed,
    applied: Option<&Applied>,
    owner: &str,
) {
    let revoked = |id: &str| {
        applied.is_some_and(|a| {
            a.writes
                .iter()
                .any(|w| w.revoked.as_deref().is_some_and(|r| ids_equal(r, id)))
        })
    };
    let mut storage: Vec<StorageStatus> = observed
        .storage
        .iter()
        .filter(|s| s.resource.is_some())
        .map(|s| {
            let held = s
                .principal
                .as_deref()
                .and_then(|p| holding(&s.assignments, &s.id, p, &BLOB_DATA_ROLES, owner));
            StorageStatus {
                id: s.id.to_string(),
                role_assignment_id: held.and_then(|(a, _)| a.id.clone()),
                principal_id: s.principal.clone(),
                created_by_operator: held.is_some_and(|(_, ours)| ours),
            }
        })
        .collect();
    for old in status.storage.drain(..) {
        let pending = old.created_by_operator
            && old
                .role_assignment_id
                .as_deref()
                .is_some_and(|id| !revoked(id))
            && !storage.iter().any(|s| {
                ids_equal(&s.id, &old.id)
                    && s.principal_id.as_deref().map(str::to_ascii_lowercase)
                        == old.principal_id.as_deref().map(str::to_ascii_lowercase)
            });
        if pending {
            storage.push(old);
        }
    }
    status.storage = storage;
    status.access_grants = desired
        .access_grants
        .iter()
        .zip(&observed.grants)
        .filter_map(|(want, seen)| {
            let principal = seen.principal.clone()?;
            let held = holding(
                &seen.assignments,
                &desired.account,
                &principal,
                &[want.role_guid.as_str()],
                owner,
            );
            Some(AccessGrantStatus {
                principal_id: principal,
                role_definition_id: want.role_guid.clone(),
                role_assignment_id: held.and_then(|(a, _)| a.id.clone()),
                created_by_operator: held.is_some_and(|(_, ours)| ours),
            })
        })
        .collect();
    for (vault_id, object_id, tenant_id) in applied
        .iter()
        .flat_map(|a| a.writes.iter())
        .filter_map(|w| w.access_policy.clone())
    {
        if !status.created_access_policies.iter().any(|p| {
            p.vault_id.eq_ignore_ascii_case(&vault_id)
                && p.object_id.eq_ignore_ascii_case(&object_id)
        }) {
            status
                .created_access_policies
                .push(crate::crd::account::CreatedAccessPolicy {
                    vault_id,
                    object_id,
                    tenant_id,
                });
        }
    }
}

fn encryption_status(
    previous: Option<EncryptionStatus>,
    account: Option<&crate::azure::models::media::AccountEncryption>,
    key: Option<&ObservedKey>,
    facts: &KeyFacts,
    verdict_changed: bool,
    now: Timestamp,
) -> Option<EncryptionStatus> {
    let current = account
        .filter(|e| e.key_type.eq_ignore_ascii_case("CustomerKey"))
        .and_then(|e| e.key_vault_properties.as_ref())
        .and_then(|k| k.current_key_identifier.clone());
    let current = current?;
    let version = last_segment(&current).to_owned();
    let previous = previous.unwrap_or_default();
    let rotated = previous
        .key_version
        .as_deref()
        .is_some_and(|v| !v.eq_ignore_ascii_case(&version));
    let error = key.and_then(|k| k.probe.failing.clone());
    // Written when the verdict changes or checks start or stop failing; a healthy key that is
    // checked again and again costs no status write.
    let last_key_access_check_time = match key {
        Some(k)
            if verdict_changed
                || error != previous.key_access_check_error
                || previous.last_key_access_check_time.is_none() =>
        {
            Some(Time(k.probe.checked_at.unwrap_or(now)))
        }
        _ => previous.last_key_access_check_time.clone(),
    };
    Some(EncryptionStatus {
        current_key_identifier: Some(current),
        key_version: Some(version),
        last_rotation_time: if rotated {
            Some(Time(now))
        } else {
            previous.last_rotation_time
        },
        last_key_access_check_time,
        key_access_check_error: error,
        effective_key_access_check_interval: key
            .and_then(|k| k.probe.stretched_to)
            .map(|d| format!("{}s", d.as_secs())),
        latest_key_version: facts.latest.clone(),
        rotation_pending_since: facts.pending_since.map(Time),
    })
}

fn summary(area: Area, desired: &Desired, observed: &Observed) -> String {
    match area {
        Area::Identity => {
            let i = observed.account.identity.clone().unwrap_or_default();
            let mut parts = vec![format!(
                "identity is {}",
                desired
                    .identity
                    .as_ref()
                    .map_or(i.identity_type.as_str(), |d| identity_type_str(d.type_))
            )];
            if let Some(p) = &i.principal_id {
                parts.push(format!("system-assigned principal {p}"));
            }
            let n = i
                .user_assigned_identities
                .as_ref()
                .map_or(0, std::collections::BTreeMap::len);
            if n > 0 {
                parts.push(format!("{n} user-assigned identities attached"));
            }
            parts.join("; ")
        }
        Area::Storage => {
            let n = observed.storage.len();
            match &desired.storage {
                Some(s) if s.managed_identity => format!(
                    "{n} storage account(s) attached with managed-identity authentication; each identity holds blob data access"
                ),
                _ => format!("{n} storage account(s) attached with storage-key authentication"),
            }
        }
        Area::Encryption => match &desired.encryption {
            Some(DesiredEncryption::CustomerKey { key, .. }) => {
                let current = observed
                    .account
                    .properties
                    .as_ref()
                    .and_then(|p| p.encryption.as_ref())
                    .and_then(|e| e.key_vault_properties.as_ref())
                    .and_then(|k| k.current_key_identifier.clone());
                format!(
                    "the account key is encrypted with customer key {}{}",
                    key.raw,
                    current
                        .map(|c| format!(" (in use: {c})"))
                        .unwrap_or_default()
                )
            }
            _ => "the account key is encrypted with a Microsoft-managed key".to_owned(),
        },
        Area::AccessGrants => format!(
            "{} access grant(s) hold their role on the account",
            desired.access_grants.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::assess::{Inputs, assess};
    use crate::reconcile::fixtures::*;
    use crate::reconcile::observe::VaultLookup;
    use crate::reconcile::ownership::Claim;
    use serde_json::json;

    const KEY: &str = "https://media-kv.vault.azure.net/keys/account-key";

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("valid")
    }

    fn pass(
        previous: &MediaServicesAccountStatus,
        desired: &Desired,
        observed: &Observed,
        now: Timestamp,
    ) -> MediaServicesAccountStatus {
        let assessment = assess(
            &Inputs {
                desired,
                observed,
                previous,
                owner: "uid",
                claim: &Claim::Ours,
                failed_operation: false,
            },
            now,
            crate::reconcile::key_access::DEFAULT_EXPIRY_WARNING,
        );
        compute(
            previous,
            Some(1),
            &Verdict::Reconciled {
                desired,
                observed,
                assessment: &assessment,
                owner: "uid",
                applied: None,
                failed_operation: None,
                rotation_grace: DEFAULT_ROTATION_GRACE,
            },
            now,
        )
    }

    fn states(s: &MediaServicesAccountStatus) -> Vec<(String, String, String)> {
        s.conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect()
    }

    fn converged() -> (Desired, Observed) {
        (
            desired(trusted_storage_spec()),
            World::converged_trusted_storage().0,
        )
    }

    /// A storage grant the operator made on a storage account the spec dropped stays in status
    /// (the only record of it) until a pass revokes it; a grant held by someone else's
    /// assignment is listed as not the operator's.
    #[test]
    fn a_dropped_storage_grant_stays_in_status_until_revoked() {
        let (d, o) = converged();
        let archive = StorageStatus {
            id: storage_id("mediaarchive"),
            role_assignment_id: Some(format!(
                "{}/providers/Microsoft.Authorization/roleAssignments/x",
                storage_id("mediaarchive")
            )),
            principal_id: Some(PRINCIPAL.to_owned()),
            created_by_operator: true,
        };
        let previous = MediaServicesAccountStatus {
            storage: vec![archive.clone()],
            ..MediaServicesAccountStatus::default()
        };
        let kept = pass(&previous, &d, &o, at(1000));
        assert_eq!(kept.storage.len(), 2, "{:?}", kept.storage);
        assert!(
            !kept.storage[0].created_by_operator,
            "the fixture's assignment is foreign"
        );
        assert_eq!(kept.storage[1], archive);

        let assessment = assess(
            &Inputs {
                desired: &d,
                observed: &o,
                previous: &previous,
                owner: "uid",
                claim: &Claim::Ours,
                failed_operation: false,
            },
            at(1001),
            crate::reconcile::key_access::DEFAULT_EXPIRY_WARNING,
        );
        let applied = Applied {
            writes: vec![super::super::apply::Write {
                area: Area::Storage,
                reason: "StorageAccessRevoked",
                message: String::new(),
                access_policy: None,
                revoked: archive.role_assignment_id.clone(),
                areas: vec![Area::Storage],
            }],
            outcome: Outcome::Done,
        };
        let revoked = compute(
            &kept,
            Some(1),
            &Verdict::Reconciled {
                desired: &d,
                observed: &o,
                assessment: &assessment,
                owner: "uid",
                applied: Some(&applied),
                failed_operation: None,
                rotation_grace: DEFAULT_ROTATION_GRACE,
            },
            at(1001),
        );
        assert_eq!(revoked.storage.len(), 1);
        assert!(ids_equal(
            &revoked.storage[0].id,
            &storage_id("mediaprimary")
        ));
    }

    /// A credential Entra ID refused is `CredentialsRejected`, not the generic
    /// `UserActionRequired`, with the message naming the Secret and Entra's code.
    #[test]
    fn a_refused_credential_is_credentials_rejected() {
        let e = AzureError::CredentialsRejected {
            operation: crate::azure::Operation::MediaservicesGet,
            resource: "/subscriptions/s/x".into(),
            credential: "Secret team-a/azure-creds".into(),
            code: "AADSTS7000215 (invalid_client)".into(),
            source: Box::new(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "scripted",
            )),
        };
        assert_eq!(error_reason(&e), reasons::CREDENTIALS_REJECTED);
        let message = error_message(&e);
        assert!(
            message.contains("Secret team-a/azure-creds") && message.contains("AADSTS7000215"),
            "{message}"
        );
    }

    /// ARM's cryptic answer to a taken role-assignment name becomes its own reason and a
    /// message that says what to do.
    #[test]
    fn a_taken_assignment_name_is_its_own_reason() {
        let e = AzureError::Service {
            operation: crate::azure::Operation::RoleAssignmentsCreate,
            resource: "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/n".into(),
            status: 400,
            code: NAME_TAKEN.into(),
            message:
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated."
                    .into(),
            retry_after: None,
            source: Box::new(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                "scripted",
            )),
        };
        assert_eq!(error_reason(&e), reasons::ROLE_ASSIGNMENT_NAME_CONFLICT);
        assert!(error_message(&e).contains("already used by an assignment"));
        assert!(error_message(&e).contains("roleAssignments/n"));
    }

    /// A converged account: every condition good, and a second pass gives the identical status,
    /// so the operator writes nothing.
    #[test]
    fn a_converged_account_is_ready_and_a_second_pass_changes_nothing() {
        let (d, o) = converged();
        let first = pass(&MediaServicesAccountStatus::default(), &d, &o, at(1000));
        let expected = [
            ("IdentityReady", "True", "Succeeded"),
            ("StorageAccessReady", "True", "Succeeded"),
            ("EncryptionReady", "True", "NotManaged"),
            ("AccessGrantsReady", "True", "NotManaged"),
            ("CustomerKeyInaccessible", "False", "SystemKey"),
            ("Ready", "True", "Succeeded"),
            ("Reconciling", "False", "Succeeded"),
            ("Stalled", "False", "Succeeded"),
        ];
        assert_eq!(
            states(&first),
            expected.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
        );
        assert_eq!(
            first
                .identity
                .as_ref()
                .and_then(|i| i.principal_id.as_deref()),
            Some(PRINCIPAL)
        );
        assert!(
            first.storage[0].role_assignment_id.is_some(),
            "{:?}",
            first.storage
        );
        let second = pass(&first, &d, &o, at(2000));
        assert_eq!(
            first, second,
            "a pass over an unchanged world changed the status"
        );
    }

    /// `lastTransitionTime` moves only when a condition's status changes; conditions of other
    /// owners are left alone.
    #[test]
    fn transition_times_move_only_on_status_changes_and_foreign_conditions_stay() {
        let (d, o) = converged();
        let mut previous = pass(&MediaServicesAccountStatus::default(), &d, &o, at(1000));
        previous
            .conditions
            .push(k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                type_: "example.com/Audited".into(),
                status: "True".into(),
                reason: "Checked".into(),
                message: String::new(),
                observed_generation: Some(1),
                last_transition_time: Time(at(10)),
            });
        let mut broken = o.clone();
        broken.storage[0].assignments.clear();
        let after = pass(&previous, &d, &broken, at(2000));
        let t = |s: &MediaServicesAccountStatus, ty: &str| {
            s.conditions
                .iter()
                .find(|c| c.type_ == ty)
                .map(|c| c.last_transition_time.0)
        };
        assert_eq!(
            t(&after, "StorageAccessReady"),
            Some(at(2000)),
            "changed status, new time"
        );
        assert_eq!(t(&after, "Ready"), Some(at(2000)));
        assert_eq!(
            t(&after, "IdentityReady"),
            Some(at(1000)),
            "unchanged status, old time"
        );
        assert_eq!(
            t(&after, "example.com/Audited"),
            Some(at(10)),
            "foreign condition touched"
        );
    }

    /// A failed prerequisite shows on its condition and as Ready's reason; the other areas whose
    /// changes it holds back say so.
    #[test]
    fn a_failed_prerequisite_is_ready_reason_and_holds_back_other_changes() {
        let d = desired(json!({
            "identity": { "type": "SystemAssigned" },
            "storage": { "authentication": "ManagedIdentity", "accounts": [
                { "id": storage_id("mediaprimary"), "type": "Primary", "identity": { "useSystemAssignedIdentity": true } } ] },
            "encryption": { "type": "CustomerKey", "keyIdentifier": KEY },
        }));
        let mut v = vault("media-kv", false);
        v.location = Some("northeurope".into());
        let o = World::new_account()
            .with_system_identity()
            .with_storage("mediaprimary", Some(PRINCIPAL), &[], None)
            .with_key(
                KEY,
                VaultLookup::Found(v),
                Some(rsa_key("account-key", "v1", 2048)),
                Some(PRINCIPAL),
            )
            .0;
        let s = pass(&MediaServicesAccountStatus::default(), &d, &o, at(1000));
        let get = |ty: &str| {
            s.condition(ty)
                .map(|c| (c.status.as_str(), c.reason.as_str()))
        };
        assert_eq!(
            get("EncryptionReady"),
            Some(("False", "VaultRegionMismatch"))
        );
        assert_eq!(get("StorageAccessReady"), Some(("False", "Blocked")));
        assert_eq!(get("Ready"), Some(("False", "VaultRegionMismatch")));
        let ready = s.condition("Ready").expect("ready");
        assert!(
            ready.message.starts_with("EncryptionReady: "),
            "{}",
            ready.message
        );
    }

    /// When the account already uses the key and the key is disabled, the account has lost its
    /// key: `CustomerKeyInaccessible=True` with the cause, and `Ready=False`.
    #[test]
    fn a_disabled_key_in_use_raises_customer_key_inaccessible_with_the_cause() {
        let d = desired(
            json!({ "identity": { "type": "SystemAssigned" }, "encryption": { "type": "CustomerKey", "keyIdentifier": KEY } }),
        );
        let mut key = rsa_key("account-key", "v1", 2048);
        key.enabled = false;
        let mut v = vault("media-kv", false);
        v.properties.access_policies = vec![policy(PRINCIPAL, &["get", "wrapKey", "unwrapKey"])];
        let o = World::new_account()
            .with_system_identity()
            .with_key(KEY, VaultLookup::Found(v), Some(key), Some(PRINCIPAL))
            .with_encryption(KEY, &format!("{KEY}/v1"))
            .0;
        let s = pass(&MediaServicesAccountStatus::default(), &d, &o, at(1000));
        let cki = s.condition("CustomerKeyInaccessible").expect("condition");
        assert_eq!(
            (cki.status.as_str(), cki.reason.as_str()),
            ("True", "KeyDisabled")
        );
        assert_eq!(
            s.condition("Ready").map(|c| c.status.as_str()),
            Some("False")
        );
        assert_eq!(
            s.encryption.as_ref().and_then(|e| e.key_version.as_deref()),
            Some("v1")
        );
    }

    /// A new key version in use is recorded as a rotation.
    #[test]
    fn a_new_key_version_in_use_records_the_rotation_time() {
        let account = |current: &str| crate::azure::models::media::AccountEncryption {
            key_type: "CustomerKey".into(),
            key_vault_properties: Some(crate::azure::models::media::KeyVaultProperties {
                key_identifier: Some(KEY.into()),
                current_key_identifier: Some(format!("{KEY}/{current}")),
            }),
            ..Default::default()
        };
        let none = KeyFacts::default();
        let status = |previous: Option<EncryptionStatus>, current: &str, now: i64| {
            encryption_status(
                previous,
                Some(&account(current)),
                None,
                &none,
                false,
                at(now),
            )
            .expect("status")
        };
        let first = status(None, "v1", 1000);
        assert_eq!(first.last_rotation_time, None);
        let same = status(Some(first.clone()), "v1", 2000);
        assert_eq!(same, first);
        let rotated = status(Some(first), "v2", 3000);
        assert_eq!(rotated.key_version.as_deref(), Some("v2"));
        assert_eq!(rotated.last_rotation_time, Some(Time(at(3000))));
    }

    /// `lastKeyAccessCheckTime` is written when the verdict is first known and when checks
    /// start failing, not on every successful check; a failing check keeps the verdict and says
    /// so in the condition and `keyAccessCheckError`.
    #[test]
    fn key_check_time_is_written_on_change_only_and_failing_checks_keep_the_verdict() {
        let (want, world) = byok();
        let mut seen = world.0;
        let first = pass(
            &MediaServicesAccountStatus::default(),
            &want,
            &seen,
            at(1000),
        );
        let check_time = |s: &MediaServicesAccountStatus| {
            s.encryption
                .as_ref()
                .and_then(|e| e.last_key_access_check_time.clone())
        };
        assert_eq!(check_time(&first), Some(Time(at(1000))));
        // Checked again and again, healthy: nothing changes, so nothing is written.
        let again = pass(&first, &want, &seen, at(2000));
        assert_eq!(again, first);
        // Later checks fail: same verdict, marked as the last one known, with its age.
        let key = seen.key.as_mut().expect("key");
        key.probe.checked_at = Some(at(1900));
        key.probe.failing = Some("Throttled: 429".into());
        let stale = pass(&again, &want, &seen, at(3000));
        let cki = stale.condition("CustomerKeyInaccessible").expect("cki");
        assert_eq!(
            (cki.status.as_str(), cki.reason.as_str()),
            ("False", "KeyAccessible")
        );
        assert!(cki.message.contains("Throttled: 429"), "{}", cki.message);
        assert_eq!(check_time(&stale), Some(Time(at(1900))));
        assert_eq!(
            stale
                .encryption
                .as_ref()
                .and_then(|e| e.key_access_check_error.as_deref()),
            Some("Throttled: 429")
        );
        // Still failing the same way: no further write.
        assert_eq!(pass(&stale, &want, &seen, at(4000)), stale);
        // Recovered: the error goes, the check time moves to the successful check.
        let key = seen.key.as_mut().expect("key");
        key.probe.checked_at = Some(at(4900));
        key.probe.failing = None;
        let fresh = pass(&stale, &want, &seen, at(5000));
        assert_eq!(check_time(&fresh), Some(Time(at(4900))));
        assert_eq!(
            fresh
                .encryption
                .as_ref()
                .and_then(|e| e.key_access_check_error.clone()),
            None
        );
    }

    /// A spec that tracks the latest version: the account behind the vault's latest version is
    /// recorded at once and becomes a `KeyRotationPending` warning only after the grace; a
    /// pinned version never is.
    #[test]
    fn an_account_lagging_the_latest_version_warns_after_the_grace() {
        let (want, world) = byok();
        let mut seen = world.0;
        seen.key.as_mut().expect("key").key = Some(rsa_key("account-key", "v2", 2048));
        let first = pass(
            &MediaServicesAccountStatus::default(),
            &want,
            &seen,
            at(1000),
        );
        let enc = first.encryption.clone().expect("encryption");
        assert_eq!(enc.latest_key_version.as_deref(), Some("v2"));
        assert_eq!(enc.rotation_pending_since, Some(Time(at(1000))));
        let reason = |s: &MediaServicesAccountStatus| {
            s.condition("EncryptionReady")
                .map(|c| (c.status.clone(), c.reason.clone()))
        };
        assert_eq!(reason(&first), Some(("True".into(), "Succeeded".into())));
        let grace = i64::try_from(DEFAULT_ROTATION_GRACE.as_secs()).expect("fits");
        let late = pass(&first, &want, &seen, at(1000 + grace));
        assert_eq!(
            reason(&late),
            Some(("True".into(), "KeyRotationPending".into()))
        );
        assert_eq!(
            late.condition("Ready").map(|c| c.status.as_str()),
            Some("True")
        );
        // The account moves: the lag is gone.
        let moved = World(seen.clone())
            .with_encryption(KEY, &format!("{KEY}/v2"))
            .0;
        let done = pass(&late, &want, &moved, at(2000 + grace));
        assert_eq!(reason(&done), Some(("True".into(), "Succeeded".into())));
        assert_eq!(done.encryption.and_then(|e| e.rotation_pending_since), None);
        // Pinned to an older version while a newer exists: no lag at all.
        let v1 = "0123456789abcdef0123456789abcdef";
        let pinned_key = format!("{KEY}/{v1}");
        let pinned = desired(
            json!({ "identity": { "type": "SystemAssigned" }, "encryption": { "type": "CustomerKey", "keyIdentifier": pinned_key } }),
        );
        let mut pinned_seen = seen.clone();
        let pinned_key_seen = pinned_seen.key.as_mut().expect("key");
        pinned_key_seen.key_id = crate::reconcile::desired::KeyId::parse(&pinned_key).expect("id");
        pinned_key_seen.key = Some(rsa_key("account-key", v1, 2048));
        let pinned_status = pass(
            &MediaServicesAccountStatus::default(),
            &pinned,
            &pinned_seen,
            at(1000 + grace),
        );
        assert_eq!(
            pinned_status.encryption.and_then(|e| e.latest_key_version),
            None
        );
    }

    /// A key-only update (the monitor saw the key change) follows the verdict on
    /// `CustomerKeyInaccessible`, `EncryptionReady` and `Ready` without an Azure read, and gives
    /// the same conditions back when the key recovers; another area's failure keeps `Ready`.
    #[test]
    fn a_key_only_update_follows_the_verdict_and_recovers() {
        let (want, world) = byok();
        let converged = pass(
            &MediaServicesAccountStatus::default(),
            &want,
            &world.0,
            at(1000),
        );
        assert_eq!(
            converged.condition("Ready").map(|c| c.status.as_str()),
            Some("True")
        );
        let mut lost_key = world.0.key.clone().expect("key");
        lost_key.key.as_mut().expect("version").enabled = false;
        let lost = key_update(
            &converged,
            Some(1),
            &want,
            &lost_key,
            &verdict(&lost_key),
            at(2000),
        );
        let get = |s: &MediaServicesAccountStatus, t: &str| {
            s.condition(t).map(|c| (c.status.clone(), c.reason.clone()))
        };
        assert_eq!(
            get(&lost, "CustomerKeyInaccessible"),
            Some(("True".into(), "KeyDisabled".into()))
        );
        assert_eq!(
            get(&lost, "EncryptionReady"),
            Some(("False".into(), "KeyDisabled".into()))
        );
        assert_eq!(
            get(&lost, "Ready"),
            Some(("False".into(), "KeyDisabled".into()))
        );
        assert_eq!(
            get(&lost, "Stalled"),
            Some(("True".into(), "KeyDisabled".into()))
        );
        let back = key_update(
            &lost,
            Some(1),
            &want,
            &world.0.key.clone().expect("key"),
            &verdict(&world.0.key.clone().expect("key")),
            at(3000),
        );
        for t in [
            "CustomerKeyInaccessible",
            "Ready",
            "Stalled",
            "Reconciling",
            "IdentityReady",
        ] {
            assert_eq!(get(&back, t), get(&converged, t), "{t}");
        }
        assert_eq!(
            get(&back, "EncryptionReady").map(|(s, _)| s),
            Some("True".into())
        );
        // Another area failing keeps Ready on it.
        let mut other = converged.clone();
        set_condition(
            &mut other.conditions,
            "StorageAccessReady",
            "False",
            "StorageAccessMissing",
            "m".into(),
            Some(1),
            at(1500),
        );
        let both = key_update(
            &other,
            Some(1),
            &want,
            &lost_key,
            &verdict(&lost_key),
            at(2000),
        );
        assert_eq!(
            get(&both, "Ready"),
            Some(("False".into(), "StorageAccessMissing".into()))
        );
        assert_eq!(
            get(&both, "CustomerKeyInaccessible"),
            Some(("True".into(), "KeyDisabled".into()))
        );
    }

    fn verdict(key: &ObservedKey) -> KeyVerdict {
        crate::reconcile::key_access::diagnose(
            key,
            at(2000),
            crate::reconcile::key_access::DEFAULT_EXPIRY_WARNING,
        )
    }

    /// A user-assigned identity that stays missing past the propagation bound stays
    /// `UserAssignedIdentityNotFound`: the wait keeps its start, so the next pass does not begin
    /// a new wait and flip the reason back to `Propagating`.
    #[test]
    fn a_missing_identity_past_the_bound_stays_not_found() {
        let d = desired(
            json!({ "identity": { "type": "UserAssigned", "userAssignedIdentities": [uai_id()] } }),
        );
        let o = World::new_account().with_missing_uai().0;
        let reason =
            |s: &MediaServicesAccountStatus| s.condition("IdentityReady").map(|c| c.reason.clone());
        let first = pass(&MediaServicesAccountStatus::default(), &d, &o, at(1000));
        assert_eq!(reason(&first).as_deref(), Some("Propagating"));
        let late = pass(&first, &d, &o, at(1000 + 301));
        assert_eq!(
            reason(&late).as_deref(),
            Some("UserAssignedIdentityNotFound")
        );
        let again = pass(&late, &d, &o, at(1000 + 400));
        assert_eq!(
            reason(&again).as_deref(),
            Some("UserAssignedIdentityNotFound"),
            "the reason must not flip back to Propagating"
        );
        assert_eq!(again.propagating_since, first.propagating_since);
    }

    /// kstatus readers tell in-progress from failed: `Reconciling` while the operator works
    /// (a write, propagation, throttling, a transient failure), `Stalled` when a person must act,
    /// neither when ready or suspended.
    #[test]
    fn reconciling_and_stalled_follow_ready_as_kstatus_reads_them() {
        let cases = [
            (reasons::IN_PROGRESS, "True", "False"),
            (reasons::PROPAGATING, "True", "False"),
            (reasons::THROTTLED, "True", "False"),
            (reasons::TRANSIENT_ERROR, "True", "False"),
            ("KeyDisabled", "False", "True"),
            (reasons::INVALID_SPEC, "False", "True"),
            (reasons::TENANCY_DENIED, "False", "True"),
            (reasons::ACCOUNT_NOT_FOUND, "False", "True"),
        ];
        for (reason, reconciling, stalled) in cases {
            let s = compute(
                &MediaServicesAccountStatus::default(),
                Some(1),
                &Verdict::Blocked {
                    reason,
                    message: "why".into(),
                },
                at(1),
            );
            let get = |t: &str| s.condition(t).map(|c| c.status.as_str());
            assert_eq!(get("Reconciling"), Some(reconciling), "{reason}");
            assert_eq!(get("Stalled"), Some(stalled), "{reason}");
            let stalled_c = s.condition("Stalled").expect("stalled");
            if stalled == "True" {
                assert_eq!(
                    (stalled_c.reason.as_str(), stalled_c.message.as_str()),
                    (reason, "why")
                );
            }
        }
        let suspended = compute(
            &MediaServicesAccountStatus::default(),
            Some(1),
            &Verdict::Suspended,
            at(1),
        );
        for t in ["Reconciling", "Stalled"] {
            assert_eq!(
                suspended.condition(t).map(|c| c.status.as_str()),
                Some("False"),
                "{t}"
            );
        }
    }

    /// Suspend and invalid specs change only `Ready` (and the kstatus pair derived from it),
    /// with their reasons.
    #[test]
    fn suspend_and_invalid_spec_set_ready_with_their_reasons() {
        let s = compute(
            &MediaServicesAccountStatus::default(),
            Some(3),
            &Verdict::Suspended,
            at(1),
        );
        assert_eq!(
            states(&s),
            [
                ("Ready".into(), "False".into(), "Suspended".into()),
                ("Reconciling".into(), "False".into(), "Suspended".into()),
                ("Stalled".into(), "False".into(), "Suspended".into()),
            ]
        );
        assert_eq!(s.observed_generation, Some(3));
        let s = compute(
            &s,
            Some(4),
            &Verdict::InvalidSpec("spec.x: bad".into()),
            at(2),
        );
        let ready = s.condition("Ready").expect("ready");
        assert_eq!(ready.reason, "InvalidSpec");
        assert!(ready.message.contains("spec.x: bad"));
        assert_eq!(
            ready.last_transition_time,
            Time(at(1)),
            "False stayed False"
        );
    }
}
