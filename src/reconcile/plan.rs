//! Plan step (pure): compares [`Desired`] with [`Observed`] and lists the Azure writes that make
//! them equal, in the order Azure needs them:
//!
//! 1. the account identity, alone: a new system-assigned principal must exist (and be observed
//!    on the next pass) before anything can be granted to it;
//! 2. grants: Storage Blob Data Contributor on each storage account, the encryption identity's
//!    key access, and the access grants;
//! 3. the account's storage and encryption settings, which Azure refuses while the grants they
//!    rely on are missing.
//!
//! A converged account gives an empty plan. Role-assignment names are derived from what they
//! grant and from the Kubernetes object's uid, so a retried or repeated plan writes the same
//! assignment, never a second one. No I/O.

use std::collections::BTreeMap;

use crate::azure::ResourceId;
use crate::azure::models::ResourceIdentityBlock;
use crate::azure::models::UserAssignedIdentityRef;
use crate::azure::models::authorization::{
    KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER, RoleAssignment, STORAGE_BLOB_DATA_CONTRIBUTOR,
    last_segment,
};
use crate::azure::models::media::{
    AccountEncryption, KeyVaultProperties, MediaAccountProperties, MediaStorageAccount,
    ResourceIdentity,
};
use crate::azure::resource_id::ids_equal;
use crate::crd::account::{IdentityType, MediaServicesAccountStatus};

use super::desired::{Desired, DesiredEncryption, DesiredStorage, IdentityRef};
use super::observe::{Observed, VaultLookup};
use super::prereqs::Area;
use super::rules::{BLOB_DATA_ROLES, holds_any};

/// A role assignment to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Where.
    pub scope: ResourceId,
    /// Its name (a GUID derived from scope, principal, role and owner).
    pub name: String,
    /// Role definition GUID.
    pub role_guid: String,
    /// To whom.
    pub principal: String,
}

/// One Azure write.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// PATCH the account's identity block.
    UpdateIdentity(ResourceIdentityBlock),
    /// Create a role assignment; `area` says which condition it serves.
    Grant(Area, Grant),
    /// Add an access-policy entry with get, wrapKey and unwrapKey for the encryption identity.
    GrantKeyAccessPolicy {
        /// The vault.
        vault: ResourceId,
        /// Its tenant.
        tenant_id: String,
        /// The encryption identity's principal.
        principal: String,
    },
    /// PATCH the account's storage and/or encryption settings.
    UpdateAccount(MediaAccountProperties),
    /// Delete a role assignment the operator made for a grant the spec no longer lists: an
    /// access grant on the account, or a storage account's blob access (full id).
    Revoke(Area, String),
    /// PATCH the account's tags to record this resource's ownership claim (the whole tag set,
    /// as ARM replaces it); first, with the first write the operator makes to the account.
    Claim(BTreeMap<String, String>),
}

impl Step {
    /// The condition this write serves.
    #[must_use]
    pub fn area(&self) -> Area {
        match self {
            Step::UpdateIdentity(_) | Step::Claim(_) => Area::Identity,
            Step::Grant(area, _) | Step::Revoke(area, _) => *area,
            Step::UpdateAccount(p) if p.storage_accounts.is_some() => Area::Storage,
            Step::GrantKeyAccessPolicy { .. } | Step::UpdateAccount(_) => Area::Encryption,
        }
    }
}

impl Step {
    /// Every area this write serves: an account update may serve storage and encryption.
    #[must_use]
    pub fn areas(&self) -> Vec<Area> {
        match self {
            Step::UpdateAccount(p) => {
                let mut areas = Vec::new();
                if p.storage_accounts.is_some() {
                    areas.push(Area::Storage);
                }
                if p.encryption.is_some() {
                    areas.push(Area::Encryption);
                }
                if areas.is_empty() {
                    areas.push(self.area());
                }
                areas
            }
            other => vec![other.area()],
        }
    }
}

/// The ordered writes; empty when Azure already matches the spec.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Writes, in order.
    pub steps: Vec<Step>,
    /// The identity changes first and alone; the other areas are planned on the next pass,
    /// once Azure reports the new principals.
    pub deferred: bool,
}

impl Plan {
    /// Whether the plan changes the account's identity (first and alone): principals the spec
    /// names may not exist yet.
    #[must_use]
    pub fn changes_identity(&self) -> bool {
        self.steps
            .iter()
            .find(|s| !matches!(s, Step::Claim(_)))
            .is_some_and(|s| matches!(s, Step::UpdateIdentity(_)))
    }

    /// Whether a write serves `area` (an `UpdateAccount` may serve storage and encryption).
    #[must_use]
    pub fn touches(&self, area: Area) -> bool {
        self.deferred
            || self.steps.iter().any(|s| match s {
                // Recording the claim changes no area's state.
                Step::Claim(_) => false,
                Step::UpdateAccount(p) => match area {
                    Area::Storage => p.storage_accounts.is_some(),
                    Area::Encryption => p.encryption.is_some(),
                    _ => false,
                },
                other => other.area() == area,
            })
    }
}

/// Azure's spelling of an identity type.
#[must_use]
pub fn identity_type_str(t: IdentityType) -> &'static str {
    match t {
        IdentityType::None => "None",
        IdentityType::SystemAssigned => "SystemAssigned",
        IdentityType::UserAssigned => "UserAssigned",
        IdentityType::SystemAssignedUserAssigned => "SystemAssigned,UserAssigned",
    }
}

/// The identity block to send, when the account's identity differs from the spec.
#[must_use]
pub fn identity_update(desired: &Desired, observed: &Observed) -> Option<ResourceIdentityBlock> {
    let want = desired.identity.as_ref()?;
    let have = observed.account.identity.clone().unwrap_or_default();
    let have_user: Vec<String> = have
        .user_assigned_identities
        .iter()
        .flat_map(BTreeMap::keys)
        .map(|k| k.to_ascii_lowercase())
        .collect();
    let mut want_user: Vec<String> = want
        .user_assigned
        .iter()
        .map(|id| id.to_string().to_ascii_lowercase())
        .collect();
    want_user.sort();
    let mut have_sorted = have_user.clone();
    have_sorted.sort();
    let have_user_assigned = have
        .identity_type
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case("UserAssigned"));
    let same = have.has_system_assigned() == want.type_.has_system_assigned()
        && have_user_assigned == want.type_.has_user_assigned()
        && have_sorted == want_user;
    if same {
        return None;
    }
    Some(ResourceIdentityBlock {
        identity_type: identity_type_str(want.type_).to_owned(),
        principal_id: None,
        tenant_id: None,
        user_assigned_identities: (!want.user_assigned.is_empty()).then(|| {
            want.user_assigned
                .iter()
                .map(|id| (id.to_string(), UserAssignedIdentityRef::default()))
                .collect()
        }),
    })
}

/// Who owns the role assignments made for one Kubernetes object, as it goes into their names:
/// the cluster (`--cluster-id`, may be empty), the object's namespace and name, and its uid. The
/// uid alone is unique; the rest keeps names apart even when objects are restored into another
/// cluster or namespace with their uid kept, and makes a name readable back to its object.
#[must_use]
pub fn owner_identity(cluster_id: &str, namespace: &str, name: &str, uid: &str) -> String {
    format!("{cluster_id}/{namespace}/{name}/{uid}")
}

/// The assignment in `assignments` that holds one of `roles` for `principal` at `scope`,
/// preferring the operator's own (by its derived name); `ours` says which it is.
#[must_use]
pub fn holding<'a>(
    assignments: &'a [RoleAssignment],
    scope: &ResourceId,
    principal: &str,
    roles: &[&str],
    owner: &str,
) -> Option<(&'a RoleAssignment, bool)> {
    let candidates = assignments.iter().filter(|a| {
        a.properties.principal_id.eq_ignore_ascii_case(principal)
            && roles
                .iter()
                .any(|r| a.role_definition_guid().eq_ignore_ascii_case(r))
    });
    let mut first = None;
    for a in candidates {
        if is_ours(a, scope, owner) {
            return Some((a, true));
        }
        first = first.or(Some(a));
    }
    first.map(|a| (a, false))
}

/// Whether `assignment` carries the name the operator derives for it and `owner`.
#[must_use]
pub fn is_ours(assignment: &RoleAssignment, scope: &ResourceId, owner: &str) -> bool {
    assignment
        .name
        .as_deref()
        .or(assignment.id.as_deref())
        .is_some_and(|name| {
            carries_derived_name(
                name,
                scope,
                &assignment.properties.principal_id,
                assignment.role_definition_guid(),
                owner,
            )
        })
}

/// Whether the assignment named `name_or_id` (a name, or a full id ending in it) carries the
/// name the operator derives for (`scope`, `principal`, `role_guid`, `owner`).
fn carries_derived_name(
    name_or_id: &str,
    scope: &ResourceId,
    principal: &str,
    role_guid: &str,
    owner: &str,
) -> bool {
    last_segment(name_or_id)
        .eq_ignore_ascii_case(&assignment_name(scope, principal, role_guid, owner))
}

/// A role-assignment name (GUID) derived from what it grants and who owns it
/// ([`owner_identity`]), so the same grant always has the same name and a pass repeated after a
/// crash re-sends it instead of making a second assignment.
#[must_use]
pub fn assignment_name(
    scope: &ResourceId,
    principal: &str,
    role_guid: &str,
    owner: &str,
) -> String {
    let input = format!(
        "ams-security-operator|{}|{}|{}|{owner}",
        scope.to_string().to_ascii_lowercase(),
        principal.to_ascii_lowercase(),
        role_guid.to_ascii_lowercase()
    );
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, input.as_bytes()).to_string()
}

/// The plan. `owner` identifies the Kubernetes object ([`owner_identity`]) for assignment
/// names; `previous` is its status, which remembers grants on storage the spec dropped.
///
/// Callers run [`super::prereqs::check`] first and apply nothing when it finds a problem.
// NB: the plan reads top to bottom in the order Azure needs; splitting it would hide that.
#[must_use]
pub fn plan(
    desired: &Desired,
    observed: &Observed,
    previous: &MediaServicesAccountStatus,
    owner: &str,
) -> Plan {
    if let Some(identity) = identity_update(desired, observed) {
        return Plan {
            steps: vec![Step::UpdateIdentity(identity)],
            deferred: true,
        };
    }
    let mut steps = storage_grants(desired, observed, owner);
    steps.extend(key_grant(desired, observed, owner));
    steps.extend(access_grants(desired, observed, owner));
    steps.extend(dropped_access_grants(desired, observed, owner));
    steps.extend(account_update(desired, observed));
    // Last: the account must stop using a storage account before its access goes, and `apply`
    // stops at a parked account update, so these wait for it.
    steps.extend(dropped_storage_grants(desired, observed, previous, owner));
    Plan {
        steps,
        deferred: false,
    }
}

/// A role assignment named for what it grants and who owns it.
fn grant(area: Area, scope: &ResourceId, principal: &str, role: &str, owner: &str) -> Step {
    Step::Grant(
        area,
        Grant {
            scope: scope.clone(),
            name: assignment_name(scope, principal, role, owner),
            role_guid: role.to_owned(),
            principal: principal.to_owned(),
        },
    )
}

/// Storage Blob Data Contributor on each managed storage account whose identity holds no blob
/// data role yet.
fn storage_grants(desired: &Desired, observed: &Observed, owner: &str) -> Vec<Step> {
    let Some(_) = desired
        .storage
        .as_ref()
        .filter(|s| s.managed_identity && s.grant_access)
    else {
        return Vec::new();
    };
    observed
        .storage
        .iter()
        .filter(|seen| {
            seen.resource.is_some() && holds_any(&seen.assignments, &BLOB_DATA_ROLES).is_none()
        })
        .filter_map(|seen| {
            let p = seen.principal.as_deref()?;
            Some(grant(
                Area::Storage,
                &seen.id,
                p,
                STORAGE_BLOB_DATA_CONTRIBUTOR,
                owner,
            ))
        })
        .collect()
}

/// Access to the customer key for the encryption identity when it lacks it: a role assignment
/// in an RBAC vault, an access-policy entry otherwise.
fn key_grant(desired: &Desired, observed: &Observed, owner: &str) -> Option<Step> {
    let (
        Some(DesiredEncryption::CustomerKey {
            grant_access: true, ..
        }),
        Some(k),
    ) = (&desired.encryption, &observed.key)
    else {
        return None;
    };
    let (VaultLookup::Found(vault), Some(principal)) = (&k.vault, &k.principal) else {
        return None;
    };
    let vault_id = vault
        .id
        .as_deref()
        .and_then(|i| ResourceId::parse(i).ok())?;
    if super::key_access::principal_has_access(k, vault, principal) {
        return None;
    }
    Some(
        if vault.properties.enable_rbac_authorization == Some(true) {
            let scope = vault_id.child("keys", &k.key_id.name);
            grant(
                Area::Encryption,
                &scope,
                principal,
                KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
                owner,
            )
        } else {
            Step::GrantKeyAccessPolicy {
                vault: vault_id,
                tenant_id: vault.properties.tenant_id.clone().unwrap_or_default(),
                principal: principal.clone(),
            }
        },
    )
}

/// The access grants the spec lists that the principal does not hold yet.
fn access_grants(desired: &Desired, observed: &Observed, owner: &str) -> Vec<Step> {
    desired
        .access_grants
        .iter()
        .zip(&observed.grants)
        .filter(|(want, seen)| holds_any(&seen.assignments, &[want.role_guid.as_str()]).is_none())
        .filter_map(|(want, seen)| {
            let p = seen.principal.as_deref()?;
            Some(grant(
                Area::AccessGrants,
                &desired.account,
                p,
                &want.role_guid,
                owner,
            ))
        })
        .collect()
}

/// One PATCH of the account's storage and encryption settings that differ from the spec.
fn account_update(desired: &Desired, observed: &Observed) -> Option<Step> {
    let mut properties = MediaAccountProperties::default();
    let current = observed.account.properties.clone().unwrap_or_default();
    if let Some(storage) = &desired.storage
        && !storage_matches(storage, &current)
    {
        properties.storage_accounts = Some(storage_body(storage));
        properties.storage_authentication = Some(
            if storage.managed_identity {
                "ManagedIdentity"
            } else {
                "System"
            }
            .to_owned(),
        );
    }
    if let Some(encryption) = &desired.encryption
        && !encryption_matches(encryption, current.encryption.as_ref())
    {
        properties.encryption = Some(encryption_body(encryption));
    }
    (properties != MediaAccountProperties::default()).then_some(Step::UpdateAccount(properties))
}

/// Revocations of the operator's own role assignments on the account (the name says so) for
/// access grants the spec no longer lists.
fn dropped_access_grants(desired: &Desired, observed: &Observed, owner: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for a in &observed.account_assignments {
        let Some(id) = &a.id else {
            continue;
        };
        let principal = &a.properties.principal_id;
        let role = a.role_definition_guid();
        let wanted = desired
            .access_grants
            .iter()
            .zip(&observed.grants)
            .any(|(want, seen)| {
                want.role_guid.eq_ignore_ascii_case(role)
                    && seen
                        .principal
                        .as_deref()
                        .is_some_and(|p| p.eq_ignore_ascii_case(principal))
            });
        if !wanted && is_ours(a, &desired.account, owner) {
            steps.push(Step::Revoke(Area::AccessGrants, id.clone()));
        }
    }
    steps
}

/// Revocations of the blob access the operator granted on storage accounts the spec's managed
/// storage list no longer names, or granted to a principal that no longer reaches them (the
/// spec moved the storage account to another identity). Status remembers those grants (the
/// storage account is not read once it leaves the spec) until the revocation succeeds; one the
/// operator did not make (its name is not the derived one) is never revoked. Storage that is no
/// longer managed at all (`storage` removed, or `grantAccess: false`) keeps its grants: the
/// account may still use it.
fn dropped_storage_grants(
    desired: &Desired,
    observed: &Observed,
    previous: &MediaServicesAccountStatus,
    owner: &str,
) -> Vec<Step> {
    let Some(storage) = desired
        .storage
        .as_ref()
        .filter(|s| s.managed_identity && s.grant_access)
    else {
        return Vec::new();
    };
    previous
        .storage
        .iter()
        .filter(|s| s.created_by_operator)
        .filter(|s| {
            let listed = storage
                .accounts
                .iter()
                .any(|a| ids_equal(&a.id.to_string(), &s.id));
            // Only a principal actually observed to differ counts: one not known yet (an
            // identity still turning on) is no reason to take access away.
            let moved = observed.storage.iter().any(|o| {
                ids_equal(&o.id.to_string(), &s.id)
                    && o.principal
                        .as_deref()
                        .zip(s.principal_id.as_deref())
                        .is_some_and(|(now, then)| !now.eq_ignore_ascii_case(then))
            });
            !listed || moved
        })
        .filter_map(|s| {
            let id = s.role_assignment_id.as_deref()?;
            let scope = ResourceId::parse(&s.id).ok()?;
            let principal = s.principal_id.as_deref()?;
            carries_derived_name(id, &scope, principal, STORAGE_BLOB_DATA_CONTRIBUTOR, owner)
                .then(|| Step::Revoke(Area::Storage, id.to_owned()))
        })
        .collect()
}

fn resource_identity(identity: Option<&IdentityRef>) -> Option<ResourceIdentity> {
    identity.map(|i| match i {
        IdentityRef::System => ResourceIdentity {
            user_assigned_identity: None,
            use_system_assigned_identity: true,
        },
        IdentityRef::User(id) => ResourceIdentity {
            user_assigned_identity: Some(id.to_string()),
            use_system_assigned_identity: false,
        },
    })
}

/// `None` for "no identity", whatever way Azure writes it.
fn normalised_identity(i: Option<&ResourceIdentity>) -> Option<(bool, String)> {
    let i = i?;
    let user = i
        .user_assigned_identity
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_ascii_lowercase();
    (i.use_system_assigned_identity || !user.is_empty())
        .then_some((i.use_system_assigned_identity, user))
}

fn storage_body(storage: &DesiredStorage) -> Vec<MediaStorageAccount> {
    storage
        .accounts
        .iter()
        .map(|a| MediaStorageAccount {
            id: Some(a.id.to_string()),
            account_type: if a.primary { "Primary" } else { "Secondary" }.to_owned(),
            identity: resource_identity(a.identity.as_ref()),
            status: None,
        })
        .collect()
}

fn storage_matches(storage: &DesiredStorage, current: &MediaAccountProperties) -> bool {
    let auth_matches = current
        .storage_authentication
        .as_deref()
        .unwrap_or("System")
        .eq_ignore_ascii_case(if storage.managed_identity {
            "ManagedIdentity"
        } else {
            "System"
        });
    let key = |a: &MediaStorageAccount| {
        (
            a.id.as_deref()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_ascii_lowercase(),
            a.account_type.to_ascii_lowercase(),
            normalised_identity(a.identity.as_ref()),
        )
    };
    let mut want: Vec<_> = storage_body(storage).iter().map(key).collect();
    let mut have: Vec<_> = current.storage_accounts.iter().flatten().map(key).collect();
    want.sort();
    have.sort();
    auth_matches && want == have
}

fn encryption_body(encryption: &DesiredEncryption) -> AccountEncryption {
    match encryption {
        DesiredEncryption::SystemKey => AccountEncryption {
            key_type: "SystemKey".to_owned(),
            ..AccountEncryption::default()
        },
        DesiredEncryption::CustomerKey { key, identity, .. } => AccountEncryption {
            key_type: "CustomerKey".to_owned(),
            key_vault_properties: Some(KeyVaultProperties {
                key_identifier: Some(key.raw.clone()),
                current_key_identifier: None,
            }),
            identity: resource_identity(Some(identity)),
            status: None,
        },
    }
}

fn encryption_matches(want: &DesiredEncryption, have: Option<&AccountEncryption>) -> bool {
    let have_type = have.map_or("SystemKey", |e| e.key_type.as_str());
    match want {
        DesiredEncryption::SystemKey => have_type.eq_ignore_ascii_case("SystemKey"),
        DesiredEncryption::CustomerKey { key, identity, .. } => {
            let Some(have) = have else {
                return false;
            };
            have_type.eq_ignore_ascii_case("CustomerKey")
                && have
                    .key_vault_properties
                    .as_ref()
                    .and_then(|k| k.key_identifier.as_deref())
                    .is_some_and(|k| ids_equal(k, &key.raw))
                && normalised_identity(have.identity.as_ref())
                    == normalised_identity(resource_identity(Some(identity)).as_ref())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::account::StorageStatus;
    use crate::reconcile::fixtures::*;
    use crate::reconcile::observe::VaultLookup;
    use serde_json::json;

    const SBDC: &str = STORAGE_BLOB_DATA_CONTRIBUTOR;
    const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";

    fn kinds(plan: &Plan) -> Vec<String> {
        plan.steps
            .iter()
            .map(|s| match s {
                Step::UpdateIdentity(i) => format!("UpdateIdentity({})", i.identity_type),
                Step::Grant(area, g) => format!("Grant({area:?}, {})", g.role_guid),
                Step::GrantKeyAccessPolicy { .. } => "GrantKeyAccessPolicy".to_owned(),
                Step::Revoke(area, _) => format!("Revoke({area:?})"),
                Step::Claim(_) => "Claim".to_owned(),
                Step::UpdateAccount(p) => format!(
                    "UpdateAccount(storage={}, encryption={})",
                    p.storage_accounts.is_some(),
                    p.encryption.is_some()
                ),
            })
            .collect()
    }

    /// A situation named, and the steps planned for it, as `kinds` spells them.
    type Case = (&'static str, Desired, Observed, Vec<&'static str>);

    /// The identity, then blob access for it, then the account's storage authentication.
    fn storage_cases() -> Vec<Case> {
        vec![
            (
                "new account: the identity alone comes first",
                desired(trusted_storage_spec()),
                World::new_account()
                    .with_storage("mediaprimary", None, &[], None)
                    .0,
                vec!["UpdateIdentity(SystemAssigned)"],
            ),
            (
                "identity on: grant, then switch storage authentication",
                desired(trusted_storage_spec()),
                World::new_account()
                    .with_system_identity()
                    .with_storage("mediaprimary", Some(PRINCIPAL), &[], None)
                    .0,
                vec![
                    "Grant(Storage, ba92f5b4-2d11-453d-a403-e96b0029c9fe)",
                    "UpdateAccount(storage=true, encryption=false)",
                ],
            ),
            (
                "generic Contributor does not count as blob access",
                desired(trusted_storage_spec()),
                World::new_account()
                    .with_system_identity()
                    .with_storage("mediaprimary", Some(PRINCIPAL), &[CONTRIBUTOR], None)
                    .with_trusted_storage_applied()
                    .0,
                vec!["Grant(Storage, ba92f5b4-2d11-453d-a403-e96b0029c9fe)"],
            ),
            (
                "converged trusted storage: nothing",
                desired(trusted_storage_spec()),
                World::converged_trusted_storage().0,
                vec![],
            ),
            (
                "grantAccess false: no grant, only the account",
                desired(checked_storage_spec()),
                World::new_account()
                    .with_system_identity()
                    .with_storage("mediaprimary", Some(PRINCIPAL), &[], None)
                    .0,
                vec!["UpdateAccount(storage=true, encryption=false)"],
            ),
            (
                "user-assigned identity attached: its principal gets the storage grant",
                desired(json!({
                    "identity": { "type": "UserAssigned", "userAssignedIdentities": [uai_id()] },
                    "storage": { "authentication": "ManagedIdentity", "accounts": [
                        { "id": storage_id("mediaprimary"), "type": "Primary", "identity": { "userAssignedIdentity": uai_id() } } ] },
                })),
                {
                    let mut w = World::new_account().with_uai().with_storage(
                        "mediaprimary",
                        Some(UAI_PRINCIPAL),
                        &[],
                        None,
                    );
                    w.0.account.identity = Some(ResourceIdentityBlock {
                        identity_type: "UserAssigned".into(),
                        principal_id: None,
                        tenant_id: None,
                        user_assigned_identities: Some(
                            [(uai_id(), UserAssignedIdentityRef::default())].into(),
                        ),
                    });
                    w.0
                },
                vec![
                    "Grant(Storage, ba92f5b4-2d11-453d-a403-e96b0029c9fe)",
                    "UpdateAccount(storage=true, encryption=false)",
                ],
            ),
        ]
    }

    /// Key access for the identity, by access policy or RBAC role, then the account's
    /// encryption.
    fn customer_key_cases() -> Vec<Case> {
        let cmk = "https://media-kv.vault.azure.net/keys/account-key";
        let mut cmk_spec = trusted_storage_spec();
        cmk_spec["encryption"] = json!({ "type": "CustomerKey", "keyIdentifier": cmk });
        let rbac_key =
            "https://media-kv.vault.azure.net/keys/account-key/0123456789abcdef0123456789abcdef";
        vec![
            (
                "customer key in a policy vault: access policy, then encryption",
                desired(cmk_spec.clone()),
                World::new_account()
                    .with_system_identity()
                    .with_storage("mediaprimary", Some(PRINCIPAL), &[SBDC], None)
                    .with_trusted_storage_applied()
                    .with_key(
                        cmk,
                        VaultLookup::Found(vault("media-kv", false)),
                        Some(rsa_key("account-key", "v1", 2048)),
                        Some(PRINCIPAL),
                    )
                    .0,
                vec![
                    "GrantKeyAccessPolicy",
                    "UpdateAccount(storage=false, encryption=true)",
                ],
            ),
            (
                "customer key in an RBAC vault: role at the key, then encryption",
                desired(
                    json!({ "identity": { "type": "SystemAssigned" }, "encryption": { "type": "CustomerKey", "keyIdentifier": rbac_key } }),
                ),
                World::new_account()
                    .with_system_identity()
                    .with_key(
                        rbac_key,
                        VaultLookup::Found(vault("media-kv", true)),
                        Some(rsa_key("account-key", "v1", 2048)),
                        Some(PRINCIPAL),
                    )
                    .0,
                vec![
                    "Grant(Encryption, e147488a-f6f5-4113-8e2d-b22465e65bf6)",
                    "UpdateAccount(storage=false, encryption=true)",
                ],
            ),
            (
                "RBAC key role already held: only the encryption",
                desired(
                    json!({ "identity": { "type": "SystemAssigned" }, "encryption": { "type": "CustomerKey", "keyIdentifier": rbac_key } }),
                ),
                World::new_account()
                    .with_system_identity()
                    .with_key(
                        rbac_key,
                        VaultLookup::Found(vault("media-kv", true)),
                        Some(rsa_key("account-key", "v1", 2048)),
                        Some(PRINCIPAL),
                    )
                    .with_key_assignments(vec![assignment(
                        &format!("{}/keys/account-key", vault_id("media-kv")),
                        PRINCIPAL,
                        KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
                    )])
                    .0,
                vec!["UpdateAccount(storage=false, encryption=true)"],
            ),
            (
                "customer key converged, identifier compared case-insensitively",
                desired(cmk_spec),
                {
                    let mut v = vault("media-kv", false);
                    v.properties.access_policies =
                        vec![policy(PRINCIPAL, &["Get", "WrapKey", "UnwrapKey"])];
                    World::new_account()
                        .with_system_identity()
                        .with_storage("mediaprimary", Some(PRINCIPAL), &[SBDC], None)
                        .with_trusted_storage_applied()
                        .with_key(
                            cmk,
                            VaultLookup::Found(v),
                            Some(rsa_key("account-key", "v1", 2048)),
                            Some(PRINCIPAL),
                        )
                        .with_encryption(
                            "https://MEDIA-KV.vault.azure.net/keys/account-key",
                            "https://media-kv.vault.azure.net/keys/account-key/v1",
                        )
                        .0
                },
                vec![],
            ),
        ]
    }

    /// Roles the spec grants on the account, and those it no longer does.
    fn access_grant_cases() -> Vec<Case> {
        vec![
            (
                "access grant missing: a role at the account",
                desired(
                    json!({ "accessGrants": [ { "principalId": "44444444-aaaa-bbbb-cccc-000000000004", "role": "Reader" } ] }),
                ),
                World::new_account()
                    .with_grant("44444444-aaaa-bbbb-cccc-000000000004", &[])
                    .0,
                vec!["Grant(AccessGrants, acdd72a7-3385-48ef-bd42-f606fba81ae7)"],
            ),
            (
                "a grant the operator made and the spec dropped is revoked; a foreign one is not",
                desired(
                    json!({ "accessGrants": [ { "principalId": "44444444-aaaa-bbbb-cccc-000000000004", "role": "Reader" } ] }),
                ),
                {
                    let reader = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
                    let operator_role = "e4395492-1534-4db2-bedf-88c14621589c";
                    let scope = ResourceId::parse(&account_id()).expect("id");
                    let mut dropped = assignment(
                        &account_id(),
                        "55555555-aaaa-bbbb-cccc-000000000005",
                        operator_role,
                    );
                    dropped.name = Some(assignment_name(
                        &scope,
                        "55555555-aaaa-bbbb-cccc-000000000005",
                        operator_role,
                        "uid-1",
                    ));
                    let foreign = assignment(
                        &account_id(),
                        "66666666-aaaa-bbbb-cccc-000000000006",
                        operator_role,
                    );
                    let mut kept = assignment(
                        &account_id(),
                        "44444444-aaaa-bbbb-cccc-000000000004",
                        reader,
                    );
                    kept.name = Some(assignment_name(
                        &scope,
                        "44444444-aaaa-bbbb-cccc-000000000004",
                        reader,
                        "uid-1",
                    ));
                    let mut w = World::new_account()
                        .with_grant("44444444-aaaa-bbbb-cccc-000000000004", &[reader]);
                    w.0.account_assignments = vec![dropped, foreign, kept];
                    w.0
                },
                vec!["Revoke(AccessGrants)"],
            ),
            (
                "access grant held: nothing",
                desired(
                    json!({ "accessGrants": [ { "principalId": "44444444-aaaa-bbbb-cccc-000000000004", "role": "Reader" } ] }),
                ),
                World::new_account()
                    .with_grant(
                        "44444444-aaaa-bbbb-cccc-000000000004",
                        &["acdd72a7-3385-48ef-bd42-f606fba81ae7"],
                    )
                    .0,
                vec![],
            ),
        ]
    }

    /// The plan for each situation, as a table: what Azure needs, in the order it needs it,
    /// and nothing at all once converged.
    #[test]
    fn plans_follow_identity_then_grants_then_account_and_are_empty_when_converged() {
        let cases = [storage_cases(), customer_key_cases(), access_grant_cases()];
        let mut wrong = Vec::new();
        for (name, desired, observed, expected) in cases.into_iter().flatten() {
            let got = kinds(&plan(
                &desired,
                &observed,
                &MediaServicesAccountStatus::default(),
                "uid-1",
            ));
            if got != expected {
                wrong.push(format!(
                    "{name}:\n  expected {expected:?}\n  got      {got:?}"
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// While the identity changes, every other area is deferred to the next pass.
    #[test]
    fn an_identity_change_defers_every_other_area() {
        let p = plan(
            &desired(trusted_storage_spec()),
            &World::new_account()
                .with_storage("mediaprimary", None, &[], None)
                .0,
            &MediaServicesAccountStatus::default(),
            "uid-1",
        );
        assert!(p.deferred);
        assert!(p.touches(Area::Storage) && p.touches(Area::Encryption));
    }

    /// Assignment names are stable for the same grant and owner (a retry reuses the name), and
    /// differ when any of scope, principal, role or owner differs.
    #[test]
    fn assignment_names_are_deterministic_and_distinct() {
        let scope = ResourceId::parse(&storage_id("mediaprimary")).expect("id");
        let other = ResourceId::parse(&storage_id("mediaarchive")).expect("id");
        let a = assignment_name(&scope, PRINCIPAL, SBDC, "uid-1");
        assert_eq!(
            a,
            assignment_name(&scope, &PRINCIPAL.to_uppercase(), SBDC, "uid-1")
        );
        let variants = [
            assignment_name(&other, PRINCIPAL, SBDC, "uid-1"),
            assignment_name(&scope, UAI_PRINCIPAL, SBDC, "uid-1"),
            assignment_name(&scope, PRINCIPAL, CONTRIBUTOR, "uid-1"),
            assignment_name(&scope, PRINCIPAL, SBDC, "uid-2"),
        ];
        for v in &variants {
            assert_ne!(&a, v);
        }
        assert!(uuid::Uuid::parse_str(&a).is_ok(), "{a} is not a GUID");
    }

    /// The owner string carries cluster, namespace, name and uid, so names differ across
    /// clusters and across objects even with the same uid, and stay the same across restarts.
    #[test]
    fn owner_identity_keeps_clusters_and_objects_apart() {
        let scope = ResourceId::parse(&storage_id("mediaprimary")).expect("id");
        let name = |o: &str| assignment_name(&scope, PRINCIPAL, SBDC, o);
        let base = owner_identity("cluster-a", "media", "contoso", "uid-1");
        assert_eq!(
            name(&base),
            name(&owner_identity("cluster-a", "media", "contoso", "uid-1"))
        );
        for other in [
            owner_identity("cluster-b", "media", "contoso", "uid-1"),
            owner_identity("cluster-a", "media2", "contoso", "uid-1"),
            owner_identity("cluster-a", "media", "fabrikam", "uid-1"),
            owner_identity("cluster-a", "media", "contoso", "uid-2"),
        ] {
            assert_ne!(name(&base), name(&other), "{other}");
        }
    }

    fn storage_entry(name: &str, principal: &str, assignment: &str, ours: bool) -> StorageStatus {
        StorageStatus {
            id: storage_id(name),
            role_assignment_id: Some(format!(
                "{}/providers/Microsoft.Authorization/roleAssignments/{assignment}",
                storage_id(name)
            )),
            principal_id: Some(principal.to_owned()),
            created_by_operator: ours,
        }
    }

    fn derived(storage: &str, principal: &str) -> String {
        let scope = ResourceId::parse(&storage_id(storage)).expect("id");
        assignment_name(&scope, principal, SBDC, "owner")
    }

    /// Blob access the operator granted on a storage account the spec dropped is revoked after
    /// the account update that lets go of it, by the id status remembered; one it granted to
    /// a principal that no longer reaches the storage account is revoked too. Adopted grants,
    /// entries whose name is not the derived one, and storage that is no longer managed for
    /// grants (`grantAccess: false`) keep their access.
    #[test]
    fn storage_grants_the_spec_dropped_are_revoked_after_the_account_lets_go() {
        let previous = MediaServicesAccountStatus {
            storage: vec![
                storage_entry("mediaprimary", PRINCIPAL, "fixture", false),
                storage_entry(
                    "mediaarchive",
                    PRINCIPAL,
                    &derived("mediaarchive", PRINCIPAL),
                    true,
                ),
                storage_entry(
                    "mediaold",
                    PRINCIPAL,
                    "0f0f0f0f-0000-4000-8000-000000000001",
                    true,
                ),
                storage_entry(
                    "mediaforeign",
                    PRINCIPAL,
                    &derived("mediaforeign", PRINCIPAL),
                    false,
                ),
            ],
            ..MediaServicesAccountStatus::default()
        };
        let mut world = World::converged_trusted_storage();
        // Azure still lists the archive account on the Media Services account.
        if let Some(list) = world
            .0
            .account
            .properties
            .as_mut()
            .and_then(|p| p.storage_accounts.as_mut())
        {
            list.push(MediaStorageAccount {
                id: Some(storage_id("mediaarchive")),
                account_type: "Secondary".to_owned(),
                identity: None,
                status: None,
            });
        }
        let d = desired(trusted_storage_spec());
        let p = plan(&d, &world.0, &previous, "owner");
        assert_eq!(
            kinds(&p),
            [
                "UpdateAccount(storage=true, encryption=false)",
                "Revoke(Storage)"
            ]
        );
        assert_eq!(
            p.steps.last(),
            Some(&Step::Revoke(
                Area::Storage,
                previous.storage[1].role_assignment_id.clone().expect("id")
            ))
        );

        // The account already let go: the revocation alone.
        let converged = World::converged_trusted_storage();
        assert_eq!(
            kinds(&plan(&d, &converged.0, &previous, "owner")),
            ["Revoke(Storage)"]
        );
        // Not granting any more: nothing is taken away.
        let checked = desired(checked_storage_spec());
        assert!(
            plan(&checked, &converged.0, &previous, "owner")
                .steps
                .is_empty()
        );

        // The storage account is now reached by another principal: the old grant goes.
        let moved = MediaServicesAccountStatus {
            storage: vec![storage_entry(
                "mediaprimary",
                UAI_PRINCIPAL,
                &derived("mediaprimary", UAI_PRINCIPAL),
                true,
            )],
            ..MediaServicesAccountStatus::default()
        };
        assert_eq!(
            kinds(&plan(&d, &converged.0, &moved, "owner")),
            ["Revoke(Storage)"]
        );
        // A principal not observed yet is no reason to revoke.
        let mut unknown = World::converged_trusted_storage();
        unknown.0.storage[0].principal = None;
        assert!(
            !kinds(&plan(&d, &unknown.0, &moved, "owner"))
                .iter()
                .any(|k| k.starts_with("Revoke"))
        );
    }

    /// The operator's own assignment is preferred when several hold the same access, and an
    /// equivalent one made by someone else is adopted as not ours.
    #[test]
    fn holding_prefers_the_operators_own_assignment() {
        let scope = ResourceId::parse(&storage_id("mediaprimary")).expect("id");
        let foreign = assignment(&storage_id("mediaprimary"), PRINCIPAL, SBDC);
        let mut ours = assignment(&storage_id("mediaprimary"), PRINCIPAL, SBDC);
        ours.name = Some(assignment_name(&scope, PRINCIPAL, SBDC, "owner"));
        let both = [foreign.clone(), ours.clone()];
        let (held, mine) = holding(&both, &scope, PRINCIPAL, &[SBDC], "owner").expect("held");
        assert!(mine && held.name == ours.name);
        let only_foreign = [foreign];
        let (_, mine) = holding(&only_foreign, &scope, PRINCIPAL, &[SBDC], "owner").expect("held");
        assert!(!mine);
        assert!(holding(&only_foreign, &scope, UAI_PRINCIPAL, &[SBDC], "owner").is_none());
    }

    /// The identity block uses Azure's spelling and lists exactly the spec's identities.
    #[test]
    fn identity_update_uses_azure_spelling_and_the_spec_identities() {
        let d = desired(
            json!({ "identity": { "type": "SystemAssigned,UserAssigned", "userAssignedIdentities": [uai_id()] } }),
        );
        let block =
            identity_update(&d, &World::new_account().with_system_identity().0).expect("differs");
        assert_eq!(block.identity_type, "SystemAssigned,UserAssigned");
        let ids: Vec<_> = block
            .user_assigned_identities
            .expect("listed")
            .into_keys()
            .collect();
        assert_eq!(ids, [uai_id()]);
    }
}
