//! Decision step (pure): from what the spec asks for and what Azure holds, everything a pass
//! decides before it writes: the verdict on the customer key (computed here once, and handed to
//! the status step), the failed prerequisites, the plan, and whether to apply it now.
//!
//! It reads nothing and writes nothing; the driver (`crate::controller`) does the I/O on either
//! side of it.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::crd::account::MediaServicesAccountStatus;
use crate::crd::conditions::{key_access, types};

use super::desired::{Desired, DesiredEncryption};
use super::key_access::{KeyVerdict, diagnose};
use super::observe::Observed;
use super::plan::{self, Plan};
use super::prereqs::{self, Problem};

/// What a pass decided.
#[derive(Debug)]
pub struct Assessment {
    /// The verdict on the customer key the spec names (`None` without one).
    pub key: Option<KeyVerdict>,
    /// Every failed prerequisite; any that is not propagating holds the whole plan back.
    pub problems: Vec<Problem>,
    /// The writes that make Azure match the spec, in order.
    pub plan: Plan,
    /// Whether to apply the plan now: it has writes, no prerequisite failed, and no parked
    /// operation just failed (a person looks at that first).
    pub apply: bool,
}

/// Decides a pass. `previous` is the status as the pass found it (with a finished parked
/// operation already cleared); `owner` names the operator's role assignments
/// ([`plan::owner_identity`]); `failed_operation` says a parked operation just failed.
#[must_use]
pub fn assess(
    desired: &Desired,
    observed: &Observed,
    previous: &MediaServicesAccountStatus,
    owner: &str,
    failed_operation: bool,
    now: Timestamp,
    expiry_horizon: Duration,
) -> Assessment {
    let key = observed
        .key
        .as_ref()
        .map(|k| diagnose(k, now, expiry_horizon));
    let plan = plan::plan(desired, observed, previous, owner);
    let problems = prereqs::check(
        desired,
        observed,
        previous.propagating_since.as_ref().map(|t| t.0),
        plan.changes_identity(),
        now,
    );
    let apply = problems.is_empty() && !failed_operation && !plan.steps.is_empty();
    Assessment {
        key,
        problems,
        plan,
        apply,
    }
}

/// Whether a key-only update can stand in for a full pass when the key monitor reports a new
/// `verdict`: the last full pass saw this generation and finished (nothing parked, nothing
/// propagating), and the verdict asks for no write (a revoked grant the operator restores needs
/// the full pass).
#[must_use]
pub fn key_only(
    previous: &MediaServicesAccountStatus,
    generation: Option<i64>,
    desired: &Desired,
    verdict: &KeyVerdict,
) -> bool {
    let restores = matches!(
        &desired.encryption,
        Some(DesiredEncryption::CustomerKey {
            grant_access: true,
            ..
        })
    ) && matches!(
        verdict,
        KeyVerdict::Inaccessible {
            cause: key_access::ACCESS_REVOKED,
            ..
        }
    );
    previous.observed_generation == generation
        && previous.pending_operation.is_none()
        && previous.condition(types::READY).is_some()
        && previous.propagating_since.is_none()
        && !restores
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::fixtures::*;
    use crate::reconcile::key_access::DEFAULT_EXPIRY_WARNING;
    use serde_json::json;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).expect("valid")
    }

    /// One row: what the pass finds, and what it must decide.
    struct Row {
        name: &'static str,
        desired: Desired,
        observed: Observed,
        failed_operation: bool,
        apply: bool,
        writes: usize,
        problems: Vec<&'static str>,
    }

    /// The decision in every shape a pass meets: in sync, drifted, blocked by a prerequisite,
    /// held by a failed operation, and an identity change that must go first and alone.
    #[test]
    fn a_pass_applies_only_a_plan_with_writes_and_no_failed_prerequisite_or_operation() {
        let mut closed = World::new_account().with_system_identity().0;
        closed.account.location = Some("northeurope".into());
        let rows = vec![
            Row {
                name: "converged",
                desired: desired(trusted_storage_spec()),
                observed: World::converged_trusted_storage().0,
                failed_operation: false,
                apply: false,
                writes: 0,
                problems: vec![],
            },
            Row {
                name: "identity first and alone",
                desired: desired(trusted_storage_spec()),
                observed: World::new_account().0,
                failed_operation: false,
                apply: true,
                writes: 1,
                problems: vec![],
            },
            Row {
                name: "identity change held by a failed operation",
                desired: desired(trusted_storage_spec()),
                observed: World::new_account().0,
                failed_operation: true,
                apply: false,
                writes: 1,
                problems: vec![],
            },
            Row {
                name: "a failed prerequisite holds everything back",
                desired: desired(json!({ "identity": { "type": "SystemAssigned" } })),
                observed: closed,
                failed_operation: false,
                apply: false,
                writes: 0,
                problems: vec!["AccountLocationMismatch"],
            },
        ];
        let mut wrong = Vec::new();
        for row in rows {
            let a = assess(
                &row.desired,
                &row.observed,
                &MediaServicesAccountStatus::default(),
                "owner",
                row.failed_operation,
                now(),
                DEFAULT_EXPIRY_WARNING,
            );
            let problems: Vec<&str> = a.problems.iter().map(|p| p.reason).collect();
            if a.apply != row.apply || a.plan.steps.len() != row.writes || problems != row.problems
            {
                wrong.push(format!(
                    "{}: apply {} writes {} problems {problems:?}; expected {} {} {:?}",
                    row.name,
                    a.apply,
                    a.plan.steps.len(),
                    row.apply,
                    row.writes,
                    row.problems
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// The key verdict is part of the decision, so the status step never computes its own.
    #[test]
    fn the_key_verdict_is_decided_once_with_the_plan() {
        let (d, w) = byok();
        let a = assess(
            &d,
            &w.0,
            &MediaServicesAccountStatus::default(),
            "owner",
            false,
            now(),
            DEFAULT_EXPIRY_WARNING,
        );
        assert!(
            matches!(a.key, Some(KeyVerdict::Accessible { .. })),
            "{:?}",
            a.key
        );
        let plain = assess(
            &desired(json!({})),
            &World::new_account().0,
            &MediaServicesAccountStatus::default(),
            "owner",
            false,
            now(),
            DEFAULT_EXPIRY_WARNING,
        );
        assert_eq!(plain.key, None);
    }

    /// A key-only update stands in for a full pass only when the last pass finished this
    /// generation, and never when the operator must restore a revoked grant.
    #[test]
    fn a_key_only_update_needs_a_finished_pass_and_no_restore() {
        let (d, _) = byok();
        let mut done = MediaServicesAccountStatus {
            observed_generation: Some(3),
            ..MediaServicesAccountStatus::default()
        };
        crate::reconcile::status::set_condition(
            &mut done.conditions,
            types::READY,
            "True",
            "Succeeded",
            String::new(),
            Some(3),
            now(),
        );
        let lost = |cause| KeyVerdict::Inaccessible {
            cause,
            message: String::new(),
        };
        assert!(key_only(
            &done,
            Some(3),
            &d,
            &lost(key_access::KEY_DISABLED)
        ));
        assert!(!key_only(
            &done,
            Some(4),
            &d,
            &lost(key_access::KEY_DISABLED)
        ));
        assert!(!key_only(
            &done,
            Some(3),
            &d,
            &lost(key_access::ACCESS_REVOKED)
        ));
        let mut parked = done.clone();
        parked.pending_operation = Some(
            serde_json::from_value(json!({
                "operation": "Mediaservices_Update",
                "condition": "EncryptionReady",
                "resourceId": account_id(),
                "apiVersion": "2023-01-01",
                "pollingMethod": "AzureAsyncOperation",
                "pollingUrl": "https://management.azure.com/op",
                "startedAt": "2026-01-01T00:00:00Z",
            }))
            .expect("a parked operation as status records it"),
        );
        assert!(!key_only(
            &parked,
            Some(3),
            &d,
            &lost(key_access::KEY_DISABLED)
        ));
        assert!(!key_only(
            &MediaServicesAccountStatus::default(),
            Some(3),
            &d,
            &lost(key_access::KEY_DISABLED)
        ));
    }
}
