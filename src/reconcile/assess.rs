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
use super::ownership::Claim;
use super::plan::{self, Plan, Step};
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

/// What a pass decides from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// What the spec asks for.
    pub desired: &'a Desired,
    /// What Azure holds.
    pub observed: &'a Observed,
    /// The status as the pass found it (with a finished parked operation already cleared).
    pub previous: &'a MediaServicesAccountStatus,
    /// Who owns the operator's role assignments ([`plan::owner_identity`]).
    pub owner: &'a str,
    /// The account's ownership claim as judged for this resource (never another owner's: that
    /// stops the pass before it is assessed).
    pub claim: &'a Claim,
    /// A parked operation just failed.
    pub failed_operation: bool,
}

/// Decides a pass at `now`; a key expiring within `expiry_horizon` warns.
#[must_use]
pub fn assess(inputs: &Inputs<'_>, now: Timestamp, expiry_horizon: Duration) -> Assessment {
    let Inputs {
        desired,
        observed,
        previous,
        owner,
        claim,
        failed_operation,
    } = *inputs;
    let key = observed
        .key
        .as_ref()
        .map(|k| diagnose(k, now, expiry_horizon));
    let mut plan = plan::plan(desired, observed, previous, owner);
    // While the account cannot reach the customer key it uses, Azure takes no PATCH of it:
    // the claim waits (a grant the operator restores must not be held up behind a refused tag
    // write).
    let uses_customer_key = observed
        .account
        .properties
        .as_ref()
        .and_then(|p| p.encryption.as_ref())
        .is_some_and(|e| e.key_type.eq_ignore_ascii_case("CustomerKey"));
    let key_lost = uses_customer_key && matches!(key, Some(KeyVerdict::Inaccessible { .. }));
    if !key_lost && let Some(tags) = claim.to_write(!plan.steps.is_empty()) {
        // With the first PATCH of the account, after the grants: Azure judges a PATCH, tags
        // alone included, by the whole account, which the grants may first have to make valid
        // (a storage grant removed out of band, say).
        let at = plan
            .steps
            .iter()
            .position(|s| matches!(s, Step::UpdateIdentity(_) | Step::UpdateAccount(_)))
            .unwrap_or(plan.steps.len());
        plan.steps.insert(at, Step::Claim(tags.clone()));
    }
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

    fn decide(desired: &Desired, observed: &Observed, claim: &Claim, failed: bool) -> Assessment {
        let inputs = Inputs {
            desired,
            observed,
            previous: &MediaServicesAccountStatus::default(),
            owner: "owner",
            claim,
            failed_operation: failed,
        };
        assess(&inputs, now(), DEFAULT_EXPIRY_WARNING)
    }

    /// The ownership claim goes with the first write, first; a converged account gets none
    /// (never a write in steady state); a hand-over writes it even with nothing else to do.
    #[test]
    fn the_claim_goes_first_with_the_first_write_and_never_alone_in_steady_state() {
        let mine = "c/ns/name/uid";
        let unclaimed = crate::reconcile::ownership::claim(None, mine, None);
        let drifted = decide(
            &desired(trusted_storage_spec()),
            &World::new_account().0,
            &unclaimed,
            false,
        );
        assert!(
            matches!(drifted.plan.steps.first(), Some(Step::Claim(t)) if t.values().any(|v| v == mine)),
            "the claim goes with the first account PATCH: {:?}",
            drifted.plan.steps
        );
        // A grant to restore goes before the claim: Azure judges the claim's PATCH by the
        // whole account.
        let mut lost_grant = World::converged_trusted_storage();
        lost_grant.0.storage[0].assignments.clear();
        let regrant = decide(
            &desired(trusted_storage_spec()),
            &lost_grant.0,
            &unclaimed,
            false,
        );
        assert!(
            matches!(
                regrant.plan.steps.as_slice(),
                [Step::Grant(..), Step::Claim(_)]
            ),
            "{:?}",
            regrant.plan.steps
        );
        assert!(
            drifted.plan.changes_identity(),
            "the identity still goes first after the claim"
        );
        let converged = decide(
            &desired(trusted_storage_spec()),
            &World::converged_trusted_storage().0,
            &unclaimed,
            false,
        );
        assert!(converged.plan.steps.is_empty() && !converged.apply);
        let foreign: std::collections::BTreeMap<String, String> = [(
            crate::reconcile::ownership::CLAIM_TAG.to_owned(),
            "other".to_owned(),
        )]
        .into();
        let handed = crate::reconcile::ownership::claim(Some(&foreign), mine, Some("other"));
        let taken = decide(
            &desired(trusted_storage_spec()),
            &World::converged_trusted_storage().0,
            &handed,
            false,
        );
        assert_eq!(taken.plan.steps.len(), 1, "{:?}", taken.plan.steps);
        assert!(taken.apply);
        // A lost key the account uses: Azure takes no PATCH of it, so the claim waits.
        let (d, mut w) = byok();
        if let Some(k) = w.0.key.as_mut().and_then(|k| k.key.as_mut()) {
            k.enabled = false;
        }
        let lost = decide(&d, &w.0, &handed, false);
        assert!(
            !lost.plan.steps.iter().any(|s| matches!(s, Step::Claim(_))),
            "{:?}",
            lost.plan.steps
        );
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
            let a = decide(
                &row.desired,
                &row.observed,
                &Claim::Ours,
                row.failed_operation,
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
        let a = decide(&d, &w.0, &Claim::Ours, false);
        assert!(
            matches!(a.key, Some(KeyVerdict::Accessible { .. })),
            "{:?}",
            a.key
        );
        let plain = decide(
            &desired(json!({})),
            &World::new_account().0,
            &Claim::Ours,
            false,
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
