//! Apply step (I/O): carries out a [`Plan`] through [`AzureApi`], in order, and reports what
//! happened as [`Applied`]: the writes made, and how the pass ended (all done, an operation
//! parked to poll later, waiting on propagation, or failed).
//!
//! It never waits on Azure: a long-running PATCH is parked, and an identity change ends the
//! pass so the next one observes the new principal. A role assignment that Azure reports as
//! already existing (`RoleAssignmentExists`) counts as held.

use crate::azure::models::keyvault::{AccessPolicyEntry, AccessPolicyUpdateKind};
use crate::azure::models::media::{MediaAccountProperties, MediaAccountUpdate};
use crate::azure::{AzureApi, AzureError, ErrorClass, PendingOperation, ResourceId, Started};

use super::plan::{Grant, Plan, Step};
use super::prereqs::Area;

/// One write that Azure accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// Which condition it served.
    pub area: Area,
    /// Event reason, e.g. `StorageAccessGranted`.
    pub reason: &'static str,
    /// What was written, for the event.
    pub message: String,
    /// An access-policy entry this write added (vault id, object id, tenant id), which the
    /// operator then owns.
    pub access_policy: Option<(String, String, String)>,
    /// The role assignment this write revoked (full id).
    pub revoked: Option<String>,
    /// Every condition's area it served: an account update may serve storage and encryption
    /// at once (`area` is the first).
    pub areas: Vec<Area>,
}

/// The event reason of the write that records the ownership claim.
pub const CLAIM_REASON: &str = "OwnershipClaimed";

/// How the pass ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every step was made (or there were none).
    Done,
    /// A long-running operation was started; poll it later.
    Pending {
        /// The step's area.
        area: Area,
        /// The operation.
        operation: PendingOperation,
    },
    /// Azure does not know a new principal yet (`PrincipalNotFound` and kin).
    Propagating {
        /// The step's area.
        area: Area,
        /// Azure's message.
        error: AzureError,
    },
    /// A step failed; later steps were not tried.
    Failed {
        /// The step's area.
        area: Area,
        /// What Azure said.
        error: AzureError,
    },
}

/// What the apply step did.
#[derive(Debug)]
pub struct Applied {
    /// Writes made, in order.
    pub writes: Vec<Write>,
    /// How it ended.
    pub outcome: Outcome,
}

/// Carries out `plan` against the account `account`.
pub async fn apply(api: &dyn AzureApi, account: &ResourceId, plan: &Plan) -> Applied {
    let mut writes = Vec::new();
    for step in &plan.steps {
        let area = step.area();
        let result = run(api, account, step).await;
        match result {
            Ok((mut write, pending)) => {
                write.areas = step.areas();
                writes.push(write);
                if let Some(operation) = pending {
                    return Applied {
                        writes,
                        outcome: Outcome::Pending { area, operation },
                    };
                }
                // The next pass must see the new principals before granting to them.
                if matches!(step, Step::UpdateIdentity(_)) {
                    break;
                }
            }
            Err(error) if error.class() == ErrorClass::Propagating => {
                return Applied {
                    writes,
                    outcome: Outcome::Propagating { area, error },
                };
            }
            Err(error) => {
                return Applied {
                    writes,
                    outcome: Outcome::Failed { area, error },
                };
            }
        }
    }
    Applied {
        writes,
        outcome: Outcome::Done,
    }
}

impl Write {
    fn new(area: Area, reason: &'static str, message: String) -> Self {
        Self {
            area,
            reason,
            message,
            access_policy: None,
            revoked: None,
            areas: Vec::new(),
        }
    }
}

async fn run(
    api: &dyn AzureApi,
    account: &ResourceId,
    step: &Step,
) -> Result<(Write, Option<PendingOperation>), AzureError> {
    let area = step.area();
    match step {
        Step::UpdateIdentity(identity) => {
            let update = MediaAccountUpdate {
                identity: Some(identity.clone()),
                properties: None,
                tags: None,
            };
            let started = api.update_media_account(account, &update).await?;
            let message = format!(
                "set the identity of {account} to {}",
                identity.identity_type
            );
            Ok((
                Write::new(area, "IdentityUpdated", message),
                pending(started),
            ))
        }
        Step::Grant(area, g) => Ok((grant(api, *area, g).await?, None)),
        Step::GrantKeyAccessPolicy {
            vault,
            tenant_id,
            principal,
        } => {
            let entry = AccessPolicyEntry::customer_key(tenant_id, principal);
            api.update_vault_access_policy(vault, AccessPolicyUpdateKind::Add, &[entry])
                .await?;
            let message = format!(
                "added an access policy with get, wrapKey and unwrapKey for principal {principal} to {vault}"
            );
            let write = Write {
                access_policy: Some((vault.to_string(), principal.clone(), tenant_id.clone())),
                ..Write::new(area, "KeyAccessGranted", message)
            };
            Ok((write, None))
        }
        Step::Revoke(area, id) => {
            api.delete_role_assignment(id).await?;
            Ok((revoked(*area, id), None))
        }
        Step::Claim(tags) => {
            let update = MediaAccountUpdate {
                identity: None,
                properties: None,
                tags: Some(tags.clone()),
            };
            // NB: not parked like other account updates: a tag changes nothing the next
            // steps depend on, and the next pass reads the tag back anyway.
            api.update_media_account(account, &update).await?;
            let message = format!(
                "recorded this resource's claim on {account} (tag {})",
                super::ownership::CLAIM_TAG
            );
            Ok((Write::new(area, CLAIM_REASON, message), None))
        }
        Step::UpdateAccount(properties) => {
            let update = MediaAccountUpdate {
                identity: None,
                properties: Some(properties.clone()),
                tags: None,
            };
            let started = api.update_media_account(account, &update).await?;
            Ok((account_updated(area, account, properties), pending(started)))
        }
    }
}

/// Creates a role assignment; one the principal already holds under another name counts.
async fn grant(api: &dyn AzureApi, area: Area, g: &Grant) -> Result<Write, AzureError> {
    let made = match api
        .create_role_assignment(&g.scope, &g.name, &g.role_guid, &g.principal)
        .await
    {
        Ok(_) => true,
        // ARM answers an identical re-PUT of the same name with success; this code means the
        // same principal already holds the same role at this scope under another name (made
        // outside the operator, or before names were derived): the access is there, which is
        // all this step is for.
        Err(e) if e.code() == Some("RoleAssignmentExists") => false,
        Err(e) => return Err(e),
    };
    let (reason, what) = match area {
        Area::Storage => ("StorageAccessGranted", "Storage Blob Data Contributor"),
        Area::Encryption => (
            "KeyAccessGranted",
            "Key Vault Crypto Service Encryption User",
        ),
        _ => ("AccessGranted", "role"),
    };
    let message = if made {
        format!(
            "granted {what} {} to principal {} on {}",
            g.role_guid, g.principal, g.scope
        )
    } else {
        format!(
            "found {what} {} for principal {} on {} already granted",
            g.role_guid, g.principal, g.scope
        )
    };
    Ok(Write::new(area, reason, message))
}

fn revoked(area: Area, id: &str) -> Write {
    let (reason, what) = if area == Area::Storage {
        (
            "StorageAccessRevoked",
            "blob access the operator granted that the spec no longer asks for (the storage account left the spec, or another identity reaches it now)",
        )
    } else {
        (
            "AccessGrantRevoked",
            "an access grant the spec no longer lists",
        )
    };
    Write {
        revoked: Some(id.to_owned()),
        ..Write::new(
            area,
            reason,
            format!("removed role assignment {id}: {what}"),
        )
    }
}

fn account_updated(area: Area, account: &ResourceId, properties: &MediaAccountProperties) -> Write {
    let mut parts = Vec::new();
    if let Some(auth) = &properties.storage_authentication {
        parts.push(format!("storage authentication {auth}"));
    }
    if let Some(e) = &properties.encryption {
        parts.push(format!(
            "encryption {}{}",
            e.key_type,
            e.key_vault_properties
                .as_ref()
                .and_then(|k| k.key_identifier.as_deref())
                .map(|k| format!(" with key {k}"))
                .unwrap_or_default()
        ));
    }
    let message = format!("set {} of {account}", parts.join(" and "));
    Write::new(area, "AccountUpdated", message)
}

fn pending<T>(started: Started<T>) -> Option<PendingOperation> {
    match started {
        Started::Done(_) => None,
        Started::Pending(op) => Some(op),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::account::MediaServicesAccountStatus;
    use crate::reconcile::fake::{Answer, FakeAzure};
    use crate::reconcile::fixtures::*;
    use crate::reconcile::plan::plan;

    fn account() -> ResourceId {
        ResourceId::parse(&account_id()).expect("id")
    }

    /// Grants then account: the plan for a fresh trusted-storage setup.
    fn grant_then_account() -> Plan {
        plan(
            &desired(trusted_storage_spec()),
            &World::new_account()
                .with_system_identity()
                .with_storage("mediaprimary", Some(PRINCIPAL), &[], None)
                .0,
            &MediaServicesAccountStatus::default(),
            "uid",
        )
    }

    fn outcome_name(o: &Outcome) -> &'static str {
        match o {
            Outcome::Done => "Done",
            Outcome::Pending { .. } => "Pending",
            Outcome::Propagating { .. } => "Propagating",
            Outcome::Failed { .. } => "Failed",
        }
    }

    /// How a pass ends for each answer Azure gives, and which writes it made before.
    #[tokio::test]
    async fn apply_stops_at_the_first_pending_propagating_or_failed_step() {
        let cases: Vec<(&str, Vec<Answer>, &str, usize, usize)> = vec![
            (
                "all synchronous",
                vec![Answer::Done, Answer::Done],
                "Done",
                2,
                2,
            ),
            (
                "the PATCH is long-running",
                vec![Answer::Done, Answer::Pending],
                "Pending",
                2,
                2,
            ),
            (
                "the grant meets PrincipalNotFound",
                vec![Answer::Error(400, "PrincipalNotFound")],
                "Propagating",
                0,
                1,
            ),
            (
                "the grant is forbidden",
                vec![Answer::Error(403, "AuthorizationFailed")],
                "Failed",
                0,
                1,
            ),
            (
                "our own assignment already exists",
                vec![Answer::Error(409, "RoleAssignmentExists"), Answer::Done],
                "Done",
                2,
                2,
            ),
        ];
        for (name, script, outcome, writes, calls) in cases {
            let fake = FakeAzure::scripted(script);
            let applied = apply(&fake, &account(), &grant_then_account()).await;
            assert_eq!(outcome_name(&applied.outcome), outcome, "{name}");
            assert_eq!(applied.writes.len(), writes, "{name}: {:?}", applied.writes);
            assert_eq!(fake.calls().len(), calls, "{name}: {:?}", fake.calls());
        }
    }

    /// The role assignment is created under the name the plan derived, so a repeat is the same
    /// assignment.
    #[tokio::test]
    async fn grants_use_the_planned_assignment_name() {
        let p = grant_then_account();
        let Step::Grant(_, g) = &p.steps[0] else {
            panic!("first step is a grant: {p:?}");
        };
        let fake = FakeAzure::default();
        apply(&fake, &account(), &p).await;
        assert!(
            fake.calls()[0].ends_with(&format!("/roleAssignments/{}", g.name)),
            "{:?}",
            fake.calls()
        );
    }

    /// An identity change ends the pass even when it finished at once: grants need the new
    /// principal, which only the next observation shows.
    #[tokio::test]
    async fn an_identity_change_ends_the_pass() {
        let p = plan(
            &desired(trusted_storage_spec()),
            &World::new_account()
                .with_storage("mediaprimary", None, &[], None)
                .0,
            &MediaServicesAccountStatus::default(),
            "uid",
        );
        let fake = FakeAzure::default();
        let applied = apply(&fake, &account(), &p).await;
        assert!(matches!(applied.outcome, Outcome::Done));
        assert_eq!(fake.calls(), [format!("PATCH {}", account())]);
    }
}
