//! Prerequisites step (pure): checks the observed world against what [`Desired`] needs before
//! anything is written: the customer key's setup rules (vault in the account's region with soft
//! delete and purge protection; an RSA 2048/3072/4096 key permitting wrap and unwrap) and the
//! first broken link of its access chain, which [`super::key_access`] alone judges; storage in
//! the account's subscription and reachable through its firewall; and, where the operator only
//! checks grants (`grantAccess: false`), that they are there.
//!
//! Every failed prerequisite is its own [`Problem`] with a reason from
//! [`crate::crd::conditions`] and a message that names the resource and the fix. Any problem
//! means the plan is not applied at all, so nothing is half-applied. No I/O, no clock: `now` is
//! an argument.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::crd::conditions::{key_access, reasons};

use super::desired::{Desired, DesiredEncryption, PrincipalRef};
use super::observe::{Observed, VaultLookup};
use super::rules::{BLOB_DATA_ROLES, holds_any, normalise_location};

/// How long a user-assigned identity that is not found counts as still propagating.
pub const IDENTITY_PROPAGATION_BOUND: Duration = Duration::from_secs(5 * 60);

pub use super::rules::Area;

/// One failed prerequisite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The condition it shows on.
    pub area: Area,
    /// Reason (a constant of `crd::conditions`).
    pub reason: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
    /// Azure is still propagating something new: wait, do not call it a failure yet.
    pub propagating: bool,
}

impl Problem {
    fn new(area: Area, reason: &'static str, message: String) -> Self {
        Self {
            area,
            reason,
            message,
            propagating: false,
        }
    }
}

/// Every failed prerequisite, in a stable order (identity, storage, encryption, grants).
///
/// `propagating_since` is when the operator first waited on a propagation (from status);
/// `identity_changing` says the plan will change the account identity first, so principals
/// that do not exist yet are expected.
#[must_use]
pub fn check(
    desired: &Desired,
    observed: &Observed,
    propagating_since: Option<Timestamp>,
    identity_changing: bool,
    now: Timestamp,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let still_propagating = propagating_since.is_none_or(|since| {
        now.as_second().saturating_sub(since.as_second())
            < i64::try_from(IDENTITY_PROPAGATION_BOUND.as_secs()).unwrap_or(i64::MAX)
    });

    if let Some(actual) = observed.account.location.as_deref()
        && normalise_location(actual) != normalise_location(&desired.location)
    {
        problems.push(Problem::new(
            Area::Identity,
            reasons::ACCOUNT_LOCATION_MISMATCH,
            format!(
                "account {} is in region {actual}, but spec.account.location says {}; correct spec.account.location",
                desired.account, desired.location
            ),
        ));
    }

    let mut missing_identity = |area: Area, id: &crate::azure::ResourceId| {
        if observed.identity(id).is_none() {
            problems.push(Problem {
                area,
                reason: reasons::USER_ASSIGNED_IDENTITY_NOT_FOUND,
                message: if still_propagating {
                    format!("user-assigned identity {id} was not found yet; waiting for Azure to propagate it")
                } else {
                    format!("user-assigned identity {id} does not exist; create it or correct the spec")
                },
                propagating: still_propagating,
            });
        }
    };
    for id in desired.identity.iter().flat_map(|i| i.user_assigned.iter()) {
        missing_identity(Area::Identity, id);
    }
    for g in &desired.access_grants {
        if let PrincipalRef::Identity(id) = &g.principal {
            missing_identity(Area::AccessGrants, id);
        }
    }
    for (i, (g, seen)) in desired
        .access_grants
        .iter()
        .zip(&observed.grants)
        .enumerate()
    {
        if !seen.role_exists {
            problems.push(Problem {
                area: Area::AccessGrants,
                reason: reasons::ROLE_DEFINITION_NOT_FOUND,
                message: format!(
                    "spec.accessGrants[{i}].roleDefinitionId {} names no role definition in subscription {}; use an existing role's id",
                    g.role_guid,
                    desired.account.subscription()
                ),
                propagating: false,
            });
        }
    }

    if let Some(storage) = &desired.storage {
        check_storage(desired, storage, observed, identity_changing, &mut problems);
    }
    if let Some(DesiredEncryption::CustomerKey {
        grant_access,
        identity,
        ..
    }) = &desired.encryption
    {
        check_key(desired, observed, now, &mut problems);
        if observed.principal_of(identity).is_none() && !identity_changing {
            problems.push(Problem {
                area: Area::Encryption,
                reason: reasons::PROPAGATING,
                message: "waiting for Azure to report the principal of the encryption identity"
                    .to_owned(),
                propagating: true,
            });
        } else if !grant_access {
            check_key_access(observed, &mut problems);
        }
    }
    problems
}

fn check_storage(
    desired: &Desired,
    storage: &super::desired::DesiredStorage,
    observed: &Observed,
    identity_changing: bool,
    problems: &mut Vec<Problem>,
) {
    for (want, seen) in storage.accounts.iter().zip(&observed.storage) {
        if !want.id.same_subscription(&desired.account) {
            problems.push(Problem::new(
                Area::Storage,
                reasons::STORAGE_IN_OTHER_SUBSCRIPTION,
                format!(
                    "storage account {} is in subscription {}, but the Media Services account is in subscription {}; Media Services can only use storage accounts in its own subscription",
                    want.id,
                    want.id.subscription(),
                    desired.account.subscription()
                ),
            ));
            continue;
        }
        let Some(resource) = &seen.resource else {
            problems.push(Problem::new(
                Area::Storage,
                reasons::STORAGE_ACCOUNT_NOT_FOUND,
                format!("storage account {} does not exist", want.id),
            ));
            continue;
        };
        if !storage.managed_identity {
            continue;
        }
        if let Some(acls) = &resource.properties.network_acls
            && !acls.bypasses_azure_services()
            && !acls.admits_resource(&desired.account.to_string())
        {
            problems.push(Problem::new(
                Area::Storage,
                reasons::STORAGE_FIREWALL_BLOCKED,
                format!(
                    "the firewall of storage account {} denies by default and lets neither trusted Azure services nor {} through; add AzureServices to its bypass list or a resource instance rule for the account",
                    want.id, desired.account
                ),
            ));
        }
        match &seen.principal {
            None if !identity_changing => problems.push(Problem {
                area: Area::Storage,
                reason: reasons::PROPAGATING,
                message: format!(
                    "waiting for Azure to report the principal of the identity for storage account {}",
                    want.id
                ),
                propagating: true,
            }),
            Some(principal)
                if !storage.grant_access
                    && holds_any(&seen.assignments, &BLOB_DATA_ROLES).is_none() =>
            {
                let control_plane_only = seen.assignments.iter().find_map(|a| {
                    crate::roles::CONTROL_PLANE_ONLY
                        .iter()
                        .find(|(guid, _)| a.role_definition_guid().eq_ignore_ascii_case(guid))
                        .map(|(_, name)| *name)
                });
                let (reason, message) = if let Some(name) = control_plane_only {
                    (
                        reasons::STORAGE_CONTRIBUTOR_ONLY,
                        format!(
                            "identity {principal} holds {name} on storage account {}, which grants no access to blob data; assign it Storage Blob Data Contributor (or set grantAccess: true)",
                            want.id
                        ),
                    )
                } else {
                    (
                        reasons::STORAGE_ACCESS_MISSING,
                        format!(
                            "identity {principal} holds no Storage Blob Data Contributor on storage account {}; assign it (or set grantAccess: true)",
                            want.id
                        ),
                    )
                };
                problems.push(Problem::new(Area::Storage, reason, message));
            }
            _ => {}
        }
    }
}

/// The customer key's setup rules (vault region, soft delete, purge protection; a key Media
/// Services can use), then the first broken link of the key-access chain, judged by
/// [`key_access`](super::key_access), the one home of those rules.
fn check_key(desired: &Desired, observed: &Observed, now: Timestamp, problems: &mut Vec<Problem>) {
    let Some(k) = &observed.key else {
        return;
    };
    let mut push =
        |(reason, message)| problems.push(Problem::new(Area::Encryption, reason, message));
    let vault_name = &k.key_id.vault_name;
    if let VaultLookup::Found(vault) = &k.vault {
        let account_location = observed
            .account
            .location
            .as_deref()
            .unwrap_or(&desired.location);
        if let Some(vault_location) = vault.location.as_deref()
            && normalise_location(vault_location) != normalise_location(account_location)
        {
            push((
                reasons::VAULT_REGION_MISMATCH,
                format!(
                    "key vault {vault_name} is in region {vault_location}, but the account is in {account_location}; use a vault in the account's region"
                ),
            ));
        }
        if vault.properties.enable_soft_delete == Some(false) {
            push((
                reasons::VAULT_SOFT_DELETE_DISABLED,
                format!(
                    "key vault {vault_name} has soft delete off; a customer-managed key needs soft delete and purge protection"
                ),
            ));
        }
        if vault.properties.enable_purge_protection != Some(true) {
            push((
                reasons::VAULT_PURGE_PROTECTION_DISABLED,
                format!(
                    "key vault {vault_name} has purge protection off; turn it on (it cannot be turned off again), as a customer-managed key requires"
                ),
            ));
        }
    }
    let broken = super::key_access::broken_link(k, now);
    let stops_before_the_key = broken.as_ref().is_some_and(|(reason, _)| {
        [
            key_access::VAULT_NOT_FOUND,
            key_access::VAULT_SOFT_DELETED,
            reasons::OPERATOR_FORBIDDEN,
        ]
        .contains(reason)
    });
    if let Some(link) = broken {
        push(link);
    }
    if let (Some(key), false) = (&k.key, stops_before_the_key) {
        for rule in super::key_access::unusable(key, vault_name) {
            push(rule);
        }
    }
}

fn check_key_access(observed: &Observed, problems: &mut Vec<Problem>) {
    let Some(k) = &observed.key else {
        return;
    };
    let (VaultLookup::Found(vault), Some(principal)) = (&k.vault, &k.principal) else {
        return;
    };
    let rbac = vault.properties.enable_rbac_authorization == Some(true);
    if !super::key_access::principal_has_access(k, vault, principal) {
        let how = if rbac {
            "assign it Key Vault Crypto Service Encryption User on the key"
        } else {
            "add an access policy with get, wrapKey and unwrapKey"
        };
        problems.push(Problem::new(
            Area::Encryption,
            reasons::KEY_ACCESS_MISSING,
            format!(
                "identity {principal} may not use key {} in vault {}; {how} (or set grantAccess: true)",
                k.key_id.name, k.key_id.vault_name
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::keys::KeyKind;
    use crate::azure::models::keyvault::DeletedVault;
    use crate::azure::models::storage::{NetworkRuleSet, ResourceAccessRule};
    use crate::reconcile::fixtures::*;
    use serde_json::json;

    const KEY: &str = "https://media-kv.vault.azure.net/keys/account-key";
    type Case = (
        &'static str,
        Desired,
        Observed,
        Vec<(&'static str, &'static str)>,
    );
    const CONTRIBUTOR_ROLE: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).expect("valid")
    }

    fn odt(second: i64) -> azure_core::time::OffsetDateTime {
        azure_core::time::OffsetDateTime::from_unix_timestamp(second).expect("valid")
    }

    fn cmk_spec() -> Desired {
        desired(
            json!({ "identity": { "type": "SystemAssigned" }, "encryption": { "type": "CustomerKey", "keyIdentifier": KEY } }),
        )
    }

    fn with_key(vault: VaultLookup, key: Option<KeyInfo>) -> Observed {
        World::new_account()
            .with_system_identity()
            .with_key(KEY, vault, key, Some(PRINCIPAL))
            .0
    }

    fn good_vault() -> VaultLookup {
        VaultLookup::Found(vault("media-kv", false))
    }

    use crate::azure::keys::KeyInfo;

    fn deny(bypass: &str, rules: Vec<ResourceAccessRule>) -> NetworkRuleSet {
        NetworkRuleSet {
            bypass: Some(bypass.to_owned()),
            resource_access_rules: rules,
            default_action: "Deny".to_owned(),
            ..NetworkRuleSet::default()
        }
    }

    /// A good customer key, and each way the key itself falls short.
    fn key_cases() -> Vec<Case> {
        let key = rsa_key("account-key", "v1", 3072);
        vec![
            (
                "good customer key",
                cmk_spec(),
                with_key(good_vault(), Some(key.clone())),
                vec![],
            ),
            (
                "EC key",
                cmk_spec(),
                with_key(
                    good_vault(),
                    Some(KeyInfo {
                        kind: KeyKind::Ec,
                        rsa_bits: None,
                        ..key.clone()
                    }),
                ),
                vec![("EncryptionReady", "KeyTypeUnsupported")],
            ),
            (
                "RSA 1024",
                cmk_spec(),
                with_key(
                    good_vault(),
                    Some(KeyInfo {
                        rsa_bits: Some(1024),
                        ..key.clone()
                    }),
                ),
                vec![("EncryptionReady", "KeySizeUnsupported")],
            ),
            (
                "disabled",
                cmk_spec(),
                with_key(
                    good_vault(),
                    Some(KeyInfo {
                        enabled: false,
                        ..key.clone()
                    }),
                ),
                vec![("EncryptionReady", "KeyDisabled")],
            ),
            (
                "expired",
                cmk_spec(),
                with_key(
                    good_vault(),
                    Some(KeyInfo {
                        expires: Some(odt(1_700_000_000)),
                        ..key.clone()
                    }),
                ),
                vec![("EncryptionReady", "KeyExpired")],
            ),
            (
                "not yet valid",
                cmk_spec(),
                with_key(
                    good_vault(),
                    Some(KeyInfo {
                        not_before: Some(odt(1_900_000_000)),
                        ..key.clone()
                    }),
                ),
                vec![("EncryptionReady", "KeyNotYetValid")],
            ),
            (
                "no unwrap",
                cmk_spec(),
                with_key(
                    good_vault(),
                    Some(KeyInfo {
                        key_ops: vec!["wrapKey".into()],
                        ..key.clone()
                    }),
                ),
                vec![("EncryptionReady", "KeyOperationsMissing")],
            ),
            (
                "key missing",
                cmk_spec(),
                with_key(good_vault(), None),
                vec![("EncryptionReady", "KeyNotFound")],
            ),
        ]
    }

    /// The key's vault: gone, elsewhere, or unprotected.
    fn vault_cases() -> Vec<Case> {
        let key = rsa_key("account-key", "v1", 3072);
        vec![
            (
                "vault missing",
                cmk_spec(),
                with_key(VaultLookup::NotFound, None),
                vec![("EncryptionReady", "VaultNotFound")],
            ),
            (
                "vault deleted",
                cmk_spec(),
                with_key(VaultLookup::SoftDeleted(DeletedVault::default()), None),
                vec![("EncryptionReady", "VaultSoftDeleted")],
            ),
            (
                "vault in another region",
                cmk_spec(),
                {
                    let mut v = vault("media-kv", false);
                    v.location = Some("northeurope".into());
                    with_key(VaultLookup::Found(v), Some(key.clone()))
                },
                vec![("EncryptionReady", "VaultRegionMismatch")],
            ),
            (
                "no purge protection and no soft delete",
                cmk_spec(),
                {
                    let mut v = vault("media-kv", false);
                    v.properties.enable_purge_protection = Some(false);
                    v.properties.enable_soft_delete = Some(false);
                    with_key(VaultLookup::Found(v), Some(key.clone()))
                },
                vec![
                    ("EncryptionReady", "VaultSoftDeleteDisabled"),
                    ("EncryptionReady", "VaultPurgeProtectionDisabled"),
                ],
            ),
        ]
    }

    /// Key access the operator is told not to grant.
    fn key_access_cases() -> Vec<Case> {
        let key = rsa_key("account-key", "v1", 3072);
        vec![
            (
                "grantAccess false without a policy",
                desired(
                    json!({ "identity": { "type": "SystemAssigned" }, "encryption": { "type": "CustomerKey", "keyIdentifier": KEY, "grantAccess": false } }),
                ),
                with_key(good_vault(), Some(key.clone())),
                vec![("EncryptionReady", "KeyAccessMissing")],
            ),
            (
                "grantAccess false with a policy",
                desired(
                    json!({ "identity": { "type": "SystemAssigned" }, "encryption": { "type": "CustomerKey", "keyIdentifier": KEY, "grantAccess": false } }),
                ),
                {
                    let mut v = vault("media-kv", false);
                    v.properties.access_policies =
                        vec![policy(PRINCIPAL, &["get", "wrapKey", "unwrapKey"])];
                    with_key(VaultLookup::Found(v), Some(key.clone()))
                },
                vec![],
            ),
        ]
    }

    /// Storage accounts: where they are, their firewall, the access they give.
    fn storage_cases() -> Vec<Case> {
        vec![
            (
                "storage in another subscription",
                desired(json!({ "storage": { "accounts": [
                { "id": storage_id("mediaprimary"), "type": "Primary" },
                { "id": "/subscriptions/00000000-1111-2222-3333-555555555555/resourceGroups/x/providers/Microsoft.Storage/storageAccounts/far", "type": "Secondary" } ] } })),
                {
                    let mut w = World::new_account().with_storage("mediaprimary", None, &[], None);
                    w.0.storage.push(crate::reconcile::observe::ObservedStorage {
                        id: crate::azure::ResourceId::parse("/subscriptions/00000000-1111-2222-3333-555555555555/resourceGroups/x/providers/Microsoft.Storage/storageAccounts/far").expect("id"),
                        resource: None, principal: None, assignments: vec![],
                    });
                    w.0
                },
                vec![("StorageAccessReady", "StorageInOtherSubscription")],
            ),
            (
                "storage missing",
                desired(trusted_storage_spec()),
                {
                    let mut w = World::new_account().with_system_identity().with_storage(
                        "mediaprimary",
                        Some(PRINCIPAL),
                        &[],
                        None,
                    );
                    w.0.storage[0].resource = None;
                    w.0
                },
                vec![("StorageAccessReady", "StorageAccountNotFound")],
            ),
            (
                "firewall closed",
                desired(trusted_storage_spec()),
                World::new_account()
                    .with_system_identity()
                    .with_storage(
                        "mediaprimary",
                        Some(PRINCIPAL),
                        &[],
                        Some(deny("None", vec![])),
                    )
                    .0,
                vec![("StorageAccessReady", "StorageFirewallBlocked")],
            ),
            (
                "firewall closed but trusted services pass",
                desired(trusted_storage_spec()),
                World::new_account()
                    .with_system_identity()
                    .with_storage(
                        "mediaprimary",
                        Some(PRINCIPAL),
                        &[],
                        Some(deny("Logging, AzureServices", vec![])),
                    )
                    .0,
                vec![],
            ),
            (
                "firewall closed with a rule for the account",
                desired(trusted_storage_spec()),
                World::new_account()
                    .with_system_identity()
                    .with_storage(
                        "mediaprimary",
                        Some(PRINCIPAL),
                        &[],
                        Some(deny(
                            "None",
                            vec![ResourceAccessRule {
                                tenant_id: TENANT.into(),
                                resource_id: account_id(),
                            }],
                        )),
                    )
                    .0,
                vec![],
            ),
            (
                "grantAccess false with Contributor only",
                desired(checked_storage_spec()),
                World::new_account()
                    .with_system_identity()
                    .with_storage("mediaprimary", Some(PRINCIPAL), &[CONTRIBUTOR_ROLE], None)
                    .0,
                vec![("StorageAccessReady", "StorageContributorOnly")],
            ),
            (
                "grantAccess false with nothing",
                desired(checked_storage_spec()),
                World::new_account()
                    .with_system_identity()
                    .with_storage("mediaprimary", Some(PRINCIPAL), &[], None)
                    .0,
                vec![("StorageAccessReady", "StorageAccessMissing")],
            ),
        ]
    }

    /// The Media Services account itself.
    fn account_cases() -> Vec<Case> {
        vec![(
            "account location differs",
            desired(json!({})),
            {
                let mut w = World::new_account();
                w.0.account.location = Some("North Europe".into());
                w.0
            },
            vec![("IdentityReady", "AccountLocationMismatch")],
        )]
    }

    /// Each broken prerequisite gives its own reason on its own condition; a good world gives
    /// none.
    #[test]
    fn every_failed_prerequisite_has_its_own_reason() {
        let cases = [
            key_cases(),
            vault_cases(),
            key_access_cases(),
            storage_cases(),
            account_cases(),
        ];
        let mut wrong = Vec::new();
        for (name, desired, observed, expected) in cases.into_iter().flatten() {
            let got: Vec<(&str, &str)> = check(&desired, &observed, None, false, now())
                .iter()
                .map(|p| (p.area.condition_type(), p.reason))
                .collect();
            if got != expected {
                wrong.push(format!("{name}: expected {expected:?}, got {got:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// A user-assigned identity that is not found is propagation for a bounded time after the
    /// wait began, then a reason for a person to act.
    #[test]
    fn a_missing_identity_is_propagating_only_for_a_bounded_time() {
        let d = desired(
            json!({ "identity": { "type": "UserAssigned", "userAssignedIdentities": [uai_id()] } }),
        );
        let o = World::new_account().with_missing_uai().0;
        let fresh = check(&d, &o, None, true, now());
        assert_eq!(fresh.len(), 1, "{fresh:?}");
        assert!(
            fresh[0].propagating && fresh[0].reason == reasons::USER_ASSIGNED_IDENTITY_NOT_FOUND
        );
        let since = Timestamp::from_second(now().as_second() - 600).expect("valid");
        let stale = check(&d, &o, Some(since), true, now());
        assert!(!stale[0].propagating, "{stale:?}");
        assert!(
            stale[0].message.contains("does not exist"),
            "{}",
            stale[0].message
        );
    }

    /// Messages name the resource and the fix.
    #[test]
    fn messages_name_the_resource_and_the_fix() {
        let problems = check(
            &cmk_spec(),
            &with_key(
                good_vault(),
                Some(KeyInfo {
                    enabled: false,
                    ..rsa_key("account-key", "v1", 2048)
                }),
            ),
            None,
            false,
            now(),
        );
        let m = &problems[0].message;
        assert!(
            m.contains("account-key") && m.contains("v1") && m.contains("enable it"),
            "{m}"
        );
    }

    /// A `roleDefinitionId` that names no role is its own reason on `AccessGrantsReady`; a
    /// built-in role is never looked up.
    #[test]
    fn a_role_definition_that_does_not_exist_is_refused() {
        let custom = "0b1d2c3e-4f50-6172-8394-a5b6c7d8e9f0";
        let d = desired(json!({
            "accessGrants": [ { "principalId": PRINCIPAL, "roleDefinitionId": custom } ],
        }));
        let mut o = World::new_account().with_grant(PRINCIPAL, &[]).0;
        assert!(check(&d, &o, None, false, now()).is_empty());
        o.grants[0].role_exists = false;
        let problems = check(&d, &o, None, false, now());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].reason, reasons::ROLE_DEFINITION_NOT_FOUND);
        assert_eq!(problems[0].area, Area::AccessGrants);
        assert!(
            problems[0].message.contains(custom),
            "{}",
            problems[0].message
        );
        assert!(!problems[0].propagating);
    }
}
