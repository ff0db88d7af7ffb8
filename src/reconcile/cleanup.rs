//! Cleanup step, for a deleted resource: what its `deletionPolicy` removes from Azure
//! ([`cleanup_plan`], pure) and doing it ([`run`], I/O).
//!
//! Ownership is exact: a role assignment is the operator's when its name is the one the plan
//! derives from (scope, principal, role, this object's uid), so assignments made by anyone else
//! (or for another object) are never touched; an access-policy entry is the operator's when
//! status recorded that the operator added it. Targets already gone are fine: deleting what is
//! not there counts as done.

use crate::azure::models::keyvault::{AccessPolicyEntry, AccessPolicyUpdateKind};
use std::collections::BTreeMap;

use crate::azure::models::media::MediaAccountUpdate;
use crate::azure::{AzureApi, AzureError, ResourceId, Started};
use crate::crd::account::{DeletionPolicy, MediaServicesAccountStatus};

use super::desired::{Desired, DesiredEncryption};
use super::observe::{Observed, VaultLookup};
use super::plan::is_ours;

/// What to remove.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanupPlan {
    /// Role assignments (full ids) the operator made for this object.
    pub role_assignments: Vec<String>,
    /// Access-policy entries the operator added: (vault, object id, tenant id).
    pub access_policies: Vec<(ResourceId, String, String)>,
    /// Delete the Media Services account itself, after the grants.
    pub delete_account: bool,
    /// The account's tags without this resource's ownership claim, when the account is kept
    /// and carries the claim: written last, so that another resource (or cluster) may take the
    /// account over.
    pub release_claim: Option<BTreeMap<String, String>>,
}

impl CleanupPlan {
    /// Adds a role assignment to remove, once (ids compare case-insensitively).
    fn add_role_assignment(&mut self, id: &str) {
        if !self
            .role_assignments
            .iter()
            .any(|i| i.eq_ignore_ascii_case(id))
        {
            self.role_assignments.push(id.to_owned());
        }
    }
}

/// The cleanup `policy` asks for, given what was observed.
#[must_use]
pub fn cleanup_plan(
    policy: DeletionPolicy,
    desired: &Desired,
    observed: &Observed,
    status: &MediaServicesAccountStatus,
    (owner, claim): (&str, &str),
) -> CleanupPlan {
    let release_claim = (policy != DeletionPolicy::Delete)
        .then(|| super::ownership::tags_released(observed.account.tags.as_ref(), claim))
        .flatten();
    if policy == DeletionPolicy::Retain {
        return CleanupPlan {
            release_claim,
            ..CleanupPlan::default()
        };
    }
    // An account another owner claims is never deleted from here, whatever the policy.
    let foreign = matches!(
        super::ownership::claim(observed.account.tags.as_ref(), claim, None),
        super::ownership::Claim::Foreign(_)
    );
    let mut plan = CleanupPlan {
        delete_account: policy == DeletionPolicy::Delete && !foreign,
        release_claim,
        ..CleanupPlan::default()
    };
    let mut ours =
        |scope: &ResourceId,
         assignments: &[crate::azure::models::authorization::RoleAssignment]| {
            for a in assignments {
                if let Some(id) = &a.id
                    && is_ours(a, scope, owner)
                {
                    plan.add_role_assignment(id);
                }
            }
        };
    for s in &observed.storage {
        ours(&s.id, &s.assignments);
    }
    if let (Some(DesiredEncryption::CustomerKey { .. }), Some(k)) =
        (&desired.encryption, &observed.key)
        && let VaultLookup::Found(v) = &k.vault
        && let Some(vault_id) = v.id.as_deref().and_then(|i| ResourceId::parse(i).ok())
    {
        ours(&vault_id.child("keys", &k.key_id.name), &k.assignments);
    }
    for g in &observed.grants {
        ours(&desired.account, &g.assignments);
    }
    // Grants on storage the spec dropped whose revocation has not happened yet: status is the
    // only record of them (their names were checked when status recorded them as ours).
    let recorded = recorded_plan(policy, status);
    for id in &recorded.role_assignments {
        plan.add_role_assignment(id);
    }
    plan.access_policies = recorded.access_policies;
    plan
}

/// The cleanup `policy` asks for from status alone, for an account that is already gone: the
/// role assignments status records as the operator's (storage and access grants) and the
/// access-policy entries it added. Nothing is left to delete of the account itself.
#[must_use]
pub fn recorded_plan(policy: DeletionPolicy, status: &MediaServicesAccountStatus) -> CleanupPlan {
    if policy == DeletionPolicy::Retain {
        return CleanupPlan::default();
    }
    let role_assignments = status
        .storage
        .iter()
        .filter(|s| s.created_by_operator)
        .filter_map(|s| s.role_assignment_id.clone())
        .chain(
            status
                .access_grants
                .iter()
                .filter(|g| g.created_by_operator)
                .filter_map(|g| g.role_assignment_id.clone()),
        )
        .collect();
    let access_policies = status
        .created_access_policies
        .iter()
        .filter_map(|p| {
            ResourceId::parse(&p.vault_id)
                .ok()
                .map(|vault| (vault, p.object_id.clone(), p.tenant_id.clone()))
        })
        .collect();
    CleanupPlan {
        role_assignments,
        access_policies,
        delete_account: false,
        release_claim: None,
    }
}

/// How a cleanup pass ended.
#[derive(Debug)]
pub enum CleanupOutcome {
    /// Everything is removed: the finalizer may go.
    Done,
    /// The account's delete is running; look again later.
    Deleting,
}

/// What a cleanup pass removed: (event reason, note) per removal.
pub type Removed = Vec<(&'static str, String)>;

/// Removes what `plan` lists; returns what it removed, and how it ended: the first Azure
/// failure stops it (what was removed before stays removed, and a retry skips it).
pub async fn run(
    api: &dyn AzureApi,
    account: &ResourceId,
    plan: &CleanupPlan,
) -> (Removed, Result<CleanupOutcome, AzureError>) {
    let mut done = Vec::new();
    let outcome = remove(api, account, plan, &mut done).await;
    (done, outcome)
}

async fn remove(
    api: &dyn AzureApi,
    account: &ResourceId,
    plan: &CleanupPlan,
    done: &mut Removed,
) -> Result<CleanupOutcome, AzureError> {
    if let Some(tags) = &plan.release_claim {
        release_claim(api, account, tags, done).await;
    }
    for id in &plan.role_assignments {
        if api.delete_role_assignment(id).await? {
            done.push((
                "RoleAssignmentRevoked",
                format!("removed role assignment {id}"),
            ));
        }
    }
    for (vault, object_id, tenant_id) in &plan.access_policies {
        let entry = AccessPolicyEntry::customer_key(tenant_id, object_id);
        match api
            .update_vault_access_policy(vault, AccessPolicyUpdateKind::Remove, &[entry])
            .await
        {
            Ok(()) => done.push((
                "KeyAccessRevoked",
                format!("removed the access policy of principal {object_id} from {vault}"),
            )),
            // The vault (or its entry) is already gone.
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e),
        }
    }
    if plan.delete_account {
        match api.delete_media_account(account).await? {
            Started::Done(existed) => {
                if existed {
                    done.push((
                        "AccountDeleted",
                        format!("deleted Media Services account {account}"),
                    ));
                }
            }
            Started::Pending(_) => {
                done.push((
                    "AccountDeleting",
                    format!("deleting Media Services account {account}"),
                ));
                return Ok(CleanupOutcome::Deleting);
            }
        }
    }
    Ok(CleanupOutcome::Done)
}

/// Removes this resource's ownership claim from the account, first, while the account is as the
/// operator kept it (Azure judges a PATCH, tags alone included, by the whole account, and the
/// revocations after it may leave it invalid). Best effort: a claim that cannot be removed (the
/// account's key is inaccessible, say) never holds up the revocations; the event says so.
async fn release_claim(
    api: &dyn AzureApi,
    account: &ResourceId,
    tags: &BTreeMap<String, String>,
    done: &mut Removed,
) {
    let update = MediaAccountUpdate {
        identity: None,
        properties: None,
        tags: Some(tags.clone()),
    };
    let tag = super::ownership::CLAIM_TAG;
    // Accepted is enough: nothing else waits on the tag, and a retry finds it gone.
    match api.update_media_account(account, &update).await {
        Ok(_) => done.push((
            "ClaimReleased",
            format!("removed this resource's ownership claim (tag {tag}) from {account}"),
        )),
        Err(e) => done.push((
            "ClaimKept",
            format!(
                "could not remove this resource's ownership claim (tag {tag}) from {account}: {e}; another owner takes the account over with the {} annotation",
                super::ownership::HANDOVER_ANNOTATION
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::models::authorization::STORAGE_BLOB_DATA_CONTRIBUTOR;
    use crate::crd::account::CreatedAccessPolicy;
    use crate::reconcile::fixtures::*;
    use crate::reconcile::plan::assignment_name;

    /// Only assignments whose name the operator derives for this object are removed: one made
    /// by someone else for the same principal and role, or by another object, stays.
    #[test]
    fn only_the_operators_own_assignments_are_revoked() {
        let d = desired(trusted_storage_spec());
        let mut world = World::converged_trusted_storage();
        let scope = ResourceId::parse(&storage_id("mediaprimary")).expect("id");
        let name =
            |owner: &str| assignment_name(&scope, PRINCIPAL, STORAGE_BLOB_DATA_CONTRIBUTOR, owner);
        let mut ours = assignment(
            &storage_id("mediaprimary"),
            PRINCIPAL,
            STORAGE_BLOB_DATA_CONTRIBUTOR,
        );
        ours.name = Some(name("uid-1"));
        ours.id = Some(format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/{}",
            storage_id("mediaprimary"),
            name("uid-1")
        ));
        let mut other_object = ours.clone();
        other_object.name = Some(name("uid-2"));
        other_object.id = Some(format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/{}",
            storage_id("mediaprimary"),
            name("uid-2")
        ));
        let foreign = assignment(
            &storage_id("mediaprimary"),
            PRINCIPAL,
            STORAGE_BLOB_DATA_CONTRIBUTOR,
        );
        world.0.storage[0].assignments = vec![ours.clone(), other_object, foreign];
        let status = MediaServicesAccountStatus {
            created_access_policies: vec![CreatedAccessPolicy {
                vault_id: vault_id("media-kv"),
                object_id: PRINCIPAL.into(),
                tenant_id: TENANT.into(),
            }],
            ..MediaServicesAccountStatus::default()
        };

        let revoke = cleanup_plan(
            DeletionPolicy::RevokeGrants,
            &d,
            &world.0,
            &status,
            ("uid-1", "c/ns/n/uid-1"),
        );
        assert_eq!(revoke.role_assignments, [ours.id.clone().expect("id")]);
        assert_eq!(revoke.access_policies.len(), 1);
        assert!(!revoke.delete_account);

        let delete = cleanup_plan(
            DeletionPolicy::Delete,
            &d,
            &world.0,
            &status,
            ("uid-1", "c/ns/n/uid-1"),
        );
        assert!(delete.delete_account);
        assert_eq!(delete.role_assignments, revoke.role_assignments);

        let retain = cleanup_plan(
            DeletionPolicy::Retain,
            &d,
            &world.0,
            &status,
            ("uid-1", "c/ns/n/uid-1"),
        );
        assert_eq!(retain, CleanupPlan::default());
    }

    /// A kept account loses only this resource's ownership claim (other tags stay); a deleted
    /// one needs no tag write; another owner's claim is never removed.
    #[test]
    fn a_kept_account_loses_only_our_claim() {
        use crate::reconcile::ownership::CLAIM_TAG;
        let d = desired(trusted_storage_spec());
        let mut world = World::converged_trusted_storage();
        let status = MediaServicesAccountStatus::default();
        let mine = "c/ns/n/uid-1";
        world.0.account.tags = Some(
            [
                ("env".to_owned(), "prod".to_owned()),
                (CLAIM_TAG.to_owned(), mine.to_owned()),
            ]
            .into(),
        );
        let kept: BTreeMap<String, String> = [("env".to_owned(), "prod".to_owned())].into();
        for policy in [DeletionPolicy::Retain, DeletionPolicy::RevokeGrants] {
            let plan = cleanup_plan(policy, &d, &world.0, &status, ("uid-1", mine));
            assert_eq!(plan.release_claim.as_ref(), Some(&kept), "{policy:?}");
        }
        let delete = cleanup_plan(
            DeletionPolicy::Delete,
            &d,
            &world.0,
            &status,
            ("uid-1", mine),
        );
        assert_eq!(delete.release_claim, None);
        assert!(delete.delete_account);
        let not_ours = cleanup_plan(
            DeletionPolicy::Delete,
            &d,
            &world.0,
            &status,
            ("uid-2", "c/ns/n/uid-2"),
        );
        assert!(
            !not_ours.delete_account,
            "an account another owner claims is never deleted"
        );
        let other = cleanup_plan(
            DeletionPolicy::Retain,
            &d,
            &world.0,
            &status,
            ("uid-2", "c/ns/n/uid-2"),
        );
        assert_eq!(other, CleanupPlan::default());
    }

    /// For an account already gone, status is the record: only what it lists as the
    /// operator's is revoked, and nothing is deleted.
    #[test]
    fn an_account_already_gone_is_cleaned_up_from_status() {
        use crate::crd::account::{AccessGrantStatus, StorageStatus};
        let status = MediaServicesAccountStatus {
            storage: vec![
                StorageStatus {
                    id: storage_id("mediaprimary"),
                    role_assignment_id: Some("ours-storage".into()),
                    principal_id: Some(PRINCIPAL.into()),
                    created_by_operator: true,
                },
                StorageStatus {
                    id: storage_id("mediaarchive"),
                    role_assignment_id: Some("adopted-storage".into()),
                    principal_id: Some(PRINCIPAL.into()),
                    created_by_operator: false,
                },
            ],
            access_grants: vec![
                AccessGrantStatus {
                    principal_id: PRINCIPAL.into(),
                    role_definition_id: "r".into(),
                    role_assignment_id: Some("ours-grant".into()),
                    created_by_operator: true,
                },
                AccessGrantStatus {
                    principal_id: PRINCIPAL.into(),
                    role_definition_id: "s".into(),
                    role_assignment_id: Some("adopted-grant".into()),
                    created_by_operator: false,
                },
            ],
            created_access_policies: vec![CreatedAccessPolicy {
                vault_id: vault_id("media-kv"),
                object_id: PRINCIPAL.into(),
                tenant_id: TENANT.into(),
            }],
            ..MediaServicesAccountStatus::default()
        };
        let plan = recorded_plan(DeletionPolicy::Delete, &status);
        assert_eq!(plan.role_assignments, ["ours-storage", "ours-grant"]);
        assert_eq!(plan.access_policies.len(), 1);
        assert!(!plan.delete_account, "nothing left to delete");
        assert_eq!(
            recorded_plan(DeletionPolicy::Retain, &status),
            CleanupPlan::default()
        );
    }
}
