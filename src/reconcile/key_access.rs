//! Key-access diagnosis (pure): can the account's identity still use its customer-managed key,
//! and if not, which link broke first? The links are checked in the order that names the
//! first broken one: the vault exists and is not soft-deleted; its firewall admits the service;
//! the identity holds the access; the key version exists, is enabled, is inside its validity
//! window, and is a key Media Services can use.
//!
//! What the operator itself cannot see is not a verdict: a read refused to the operator's own
//! identity gives [`KeyVerdict::Unknown`], never "inaccessible". No I/O, no clock.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::azure::keys::KeyInfo;
use crate::azure::models::authorization::RoleDefinition;
use crate::azure::models::keyvault::{CMK_KEY_PERMISSIONS, Vault};
use crate::crd::conditions::{key_access, reasons};

use super::observe::{ObservedKey, VaultLookup};
use super::rules::{KEY_OPERATIONS, KEY_WRAP_ROLES, RSA_SIZES, holds_any};

/// Default warning horizon before a key's expiry.
pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// The verdict on one key for one principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyVerdict {
    /// Access works; `expiring` says when the key version expires within the warning horizon.
    Accessible {
        /// A warning message when the version expires within the horizon.
        expiring: Option<String>,
    },
    /// Access is lost; `cause` is one of `conditions::key_access`.
    Inaccessible {
        /// The cause (reason).
        cause: &'static str,
        /// What broke and how to fix it.
        message: String,
    },
    /// The operator cannot tell (its own identity was refused a read).
    Unknown {
        /// Reason.
        reason: &'static str,
        /// What the operator needs.
        message: String,
    },
}

/// Whether a vault's firewall lets Media Services (a trusted Azure service) through.
#[must_use]
pub fn firewall_admits_service(vault: &Vault) -> bool {
    match &vault.properties.network_acls {
        None => true,
        Some(acls) => {
            !acls
                .default_action
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case("Deny"))
                || acls.bypass.as_deref().is_some_and(|b| {
                    b.split(',')
                        .any(|p| p.trim().eq_ignore_ascii_case("AzureServices"))
                })
        }
    }
}

/// The Key Vault data actions Media Services performs with the account key.
pub const CMK_DATA_ACTIONS: [&str; 3] = [
    "Microsoft.KeyVault/vaults/keys/read",
    "Microsoft.KeyVault/vaults/keys/wrap/action",
    "Microsoft.KeyVault/vaults/keys/unwrap/action",
];

/// Whether an action pattern (`*` matches any run of characters, case-insensitive, as Azure
/// RBAC matches them) matches `action`.
fn action_matches(pattern: &str, action: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let action = action.to_ascii_lowercase();
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = action.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether a role's permissions allow every action in `needed`: one of its permission blocks
/// lists each in `dataActions` and none in `notDataActions`.
#[must_use]
pub fn role_covers(role: &RoleDefinition, needed: &[&str]) -> bool {
    needed.iter().all(|action| {
        role.properties.permissions.iter().any(|p| {
            p.data_actions.iter().any(|d| action_matches(d, action))
                && !p.not_data_actions.iter().any(|d| action_matches(d, action))
        })
    })
}

/// Whether the principal holds get, wrapKey and unwrapKey on the key.
///
/// In RBAC vaults an assignment counts when its role's data actions, minus its not-data
/// actions, cover reading, wrapping and unwrapping keys. A role whose definition was not read
/// counts only when it is one of the built-in roles known to grant that.
#[must_use]
pub fn principal_has_access(k: &ObservedKey, vault: &Vault, principal: &str) -> bool {
    if vault.properties.enable_rbac_authorization == Some(true) {
        k.assignments.iter().any(|a| {
            let guid = a.role_definition_guid();
            match k.role_definitions.iter().find(|d| {
                d.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(guid))
            }) {
                Some(role) => role_covers(role, &CMK_DATA_ACTIONS),
                None => holds_any(std::slice::from_ref(a), &KEY_WRAP_ROLES).is_some(),
            }
        })
    } else {
        vault.properties.access_policies.iter().any(|p| {
            p.object_id.eq_ignore_ascii_case(principal) && p.grants_keys(CMK_KEY_PERMISSIONS)
        })
    }
}

/// Diagnoses access to the key in `k` at `now`, warning when it expires within `horizon`. A
/// lost access's message ends by naming the vault, key, version and principal concerned.
#[must_use]
pub fn diagnose(k: &ObservedKey, now: Timestamp, horizon: Duration) -> KeyVerdict {
    match links(k, now, horizon, Access::Check) {
        KeyVerdict::Inaccessible { cause, message } => {
            let version = k
                .key
                .as_ref()
                .map(|key| key.version.clone())
                .or_else(|| k.key_id.version.clone())
                .map_or_else(|| "latest version".to_owned(), |v| format!("version {v}"));
            KeyVerdict::Inaccessible {
                cause,
                message: format!(
                    "{message} [vault {}, key {}, {version}, identity {}]",
                    k.key_id.vault_name,
                    k.key_id.name,
                    k.principal.as_deref().unwrap_or("not known yet")
                ),
            }
        }
        other => other,
    }
}

/// The first broken link of the chain other than the identity's own access, for the
/// prerequisites step: before anything is written the operator grants that access itself (or,
/// with `grantAccess: false`, checks it as a setup rule). A key that exists but is not one Media
/// Services can use is left to [`unusable`], which names the exact rule.
#[must_use]
pub fn broken_link(k: &ObservedKey, now: Timestamp) -> Option<(&'static str, String)> {
    match links(k, now, Duration::ZERO, Access::Skip) {
        KeyVerdict::Inaccessible { cause, .. } if cause == key_access::UNSUPPORTED_KEY => None,
        KeyVerdict::Inaccessible { cause, message } => Some((cause, message)),
        KeyVerdict::Unknown { reason, message } => Some((reason, message)),
        KeyVerdict::Accessible { .. } => None,
    }
}

/// Why Media Services cannot use this key version, one entry per rule it breaks: an RSA key of
/// 2048, 3072 or 4096 bits (never EC) that permits wrapKey and unwrapKey. Empty when usable.
#[must_use]
pub fn unusable(key: &KeyInfo, vault_name: &str) -> Vec<(&'static str, String)> {
    let which = format!(
        "key {} version {} in vault {vault_name}",
        key.name, key.version
    );
    let mut broken = Vec::new();
    if !key.kind.is_rsa() {
        broken.push((
            reasons::KEY_TYPE_UNSUPPORTED,
            format!(
                "{which} is of type {:?}; Media Services needs an RSA or RSA-HSM key of 2048, 3072 or 4096 bits (EC keys are not supported)",
                key.kind
            ),
        ));
    } else if !key.rsa_bits.is_some_and(|b| RSA_SIZES.contains(&b)) {
        broken.push((
            reasons::KEY_SIZE_UNSUPPORTED,
            format!(
                "{which} is RSA {}; Media Services needs 2048, 3072 or 4096 bits",
                key.rsa_bits
                    .map_or_else(|| "of unknown size".to_owned(), |b| format!("{b}-bit"))
            ),
        ));
    }
    let missing: Vec<&str> = KEY_OPERATIONS
        .into_iter()
        .filter(|op| !key.key_ops.iter().any(|o| o.eq_ignore_ascii_case(op)))
        .collect();
    if !missing.is_empty() {
        broken.push((
            reasons::KEY_OPERATIONS_MISSING,
            format!(
                "{which} does not permit {}; allow it in the key's permitted operations",
                missing.join(" and ")
            ),
        ));
    }
    broken
}

/// Whether the chain includes the identity's access to the key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Check,
    Skip,
}

/// The chain, link by link, in the order that names the first broken one.
fn links(k: &ObservedKey, now: Timestamp, horizon: Duration, access: Access) -> KeyVerdict {
    let vault_name = &k.key_id.vault_name;
    let lost = |cause, message: String| KeyVerdict::Inaccessible { cause, message };
    let vault = match &k.vault {
        VaultLookup::NotFound => {
            return lost(
                key_access::VAULT_NOT_FOUND,
                format!(
                    "no key vault named {vault_name} exists, not even soft-deleted (or the operator may not read it: it needs Microsoft.KeyVault/vaults/read in the account's subscription); a purged vault cannot be recovered: restore the key from a backup into a vault in this subscription and region, or point spec.encryption at another key"
                ),
            );
        }
        VaultLookup::SoftDeleted(d) => {
            return lost(
                key_access::VAULT_SOFT_DELETED,
                format!(
                    "key vault {vault_name} was deleted{} and is in its retention period{}; recover it (az keyvault recover --name {vault_name})",
                    d.properties
                        .deletion_date
                        .as_deref()
                        .map(|t| format!(" at {t}"))
                        .unwrap_or_default(),
                    d.properties
                        .scheduled_purge_date
                        .as_deref()
                        .map(|t| format!(" (purge scheduled for {t})"))
                        .unwrap_or_default()
                ),
            );
        }
        VaultLookup::Found(v) => v,
    };
    if !firewall_admits_service(vault) {
        return lost(
            key_access::VAULT_FIREWALL_BLOCKED,
            format!(
                "the firewall of key vault {vault_name} denies by default and does not let trusted Azure services through; add AzureServices to its bypass list"
            ),
        );
    }
    if access == Access::Check {
        let Some(principal) = k.principal.as_deref() else {
            return KeyVerdict::Unknown {
                reason: reasons::PROPAGATING,
                message: "Azure does not report the encryption identity's principal yet".to_owned(),
            };
        };
        if !principal_has_access(k, vault, principal) {
            return lost(
                key_access::ACCESS_REVOKED,
                format!(
                    "identity {principal} no longer holds get, wrapKey and unwrapKey on key {} in vault {vault_name}; restore the {} (or set grantAccess: true)",
                    k.key_id.name,
                    if vault.properties.enable_rbac_authorization == Some(true) {
                        "Key Vault Crypto Service Encryption User role assignment"
                    } else {
                        "access policy"
                    }
                ),
            );
        }
    }
    if let Some(refused) = &k.operator_refused {
        return KeyVerdict::Unknown {
            reason: reasons::OPERATOR_FORBIDDEN,
            message: format!(
                "the operator may not read key {} in vault {vault_name} ({refused}); grant its identity get on keys (an access policy, or Key Vault Crypto User in RBAC vaults) and let its address through the vault firewall",
                k.key_id.name
            ),
        };
    }
    let Some(key) = &k.key else {
        return lost(
            key_access::KEY_NOT_FOUND,
            match &k.key_id.version {
                Some(v) => format!(
                    "version {v} of key {} does not exist in vault {vault_name}",
                    k.key_id.name
                ),
                None => format!(
                    "key {} does not exist in vault {vault_name}; recover it if it was deleted",
                    k.key_id.name
                ),
            },
        );
    };
    version_verdict(key, vault_name, now, horizon)
}

/// The checks of the key version itself: enabled, inside its validity window, usable by
/// Media Services; and whether it expires within the warning horizon.
fn version_verdict(
    key: &KeyInfo,
    vault_name: &str,
    now: Timestamp,
    horizon: Duration,
) -> KeyVerdict {
    let lost = |cause, message: String| KeyVerdict::Inaccessible { cause, message };
    let which = format!(
        "key {} version {} in vault {vault_name}",
        key.name, key.version
    );
    if !key.enabled {
        return lost(
            key_access::KEY_DISABLED,
            format!("{which} is disabled; enable it"),
        );
    }
    if let Some(nbf) = key.not_before
        && nbf.unix_timestamp() > now.as_second()
    {
        return lost(
            key_access::KEY_NOT_YET_VALID,
            format!("{which} is not valid before {nbf}; wait or move its activation date"),
        );
    }
    if let Some(exp) = key.expires
        && exp.unix_timestamp() <= now.as_second()
    {
        return lost(
            key_access::KEY_EXPIRED,
            format!("{which} expired at {exp}; extend its expiry or rotate to a new version"),
        );
    }
    if !unusable(key, vault_name).is_empty() {
        return lost(
            key_access::UNSUPPORTED_KEY,
            format!("{which} is not an RSA 2048/3072/4096 key that permits wrapKey and unwrapKey"),
        );
    }
    let horizon_secs = i64::try_from(horizon.as_secs()).unwrap_or(i64::MAX);
    let expiring = key
        .expires
        .filter(|exp| exp.unix_timestamp() <= now.as_second().saturating_add(horizon_secs))
        .map(|exp| format!("{which} expires at {exp}; rotate it or extend its expiry before then"));
    KeyVerdict::Accessible { expiring }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::keys::KeyKind;
    use crate::azure::models::keyvault::{DeletedVault, VaultNetworkRuleSet};
    use crate::reconcile::desired::KeyId;
    use crate::reconcile::fixtures::*;

    const KEY: &str = "https://media-kv.vault.azure.net/keys/account-key";

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).expect("valid")
    }

    fn odt(second: i64) -> azure_core::time::OffsetDateTime {
        azure_core::time::OffsetDateTime::from_unix_timestamp(second).expect("valid")
    }

    fn granted_vault() -> Vault {
        let mut v = vault("media-kv", false);
        v.properties.access_policies = vec![policy(PRINCIPAL, &["get", "wrapKey", "unwrapKey"])];
        v
    }

    fn key(vault: VaultLookup, key: Option<KeyInfo>) -> ObservedKey {
        ObservedKey {
            key_id: KeyId::parse(KEY).expect("id"),
            vault,
            key,
            principal: Some(PRINCIPAL.to_owned()),
            assignments: Vec::new(),
            operator_refused: None,
            role_definitions: Vec::new(),
            probe: super::super::observe::ProbeInfo::default(),
        }
    }

    fn good() -> ObservedKey {
        key(
            VaultLookup::Found(granted_vault()),
            Some(rsa_key("account-key", "v1", 3072)),
        )
    }

    fn verdict_name(v: &KeyVerdict) -> String {
        match v {
            KeyVerdict::Accessible { expiring: None } => "Accessible".into(),
            KeyVerdict::Accessible { expiring: Some(_) } => "Accessible+Expiring".into(),
            KeyVerdict::Inaccessible { cause, .. } => format!("Inaccessible:{cause}"),
            KeyVerdict::Unknown { reason, .. } => format!("Unknown:{reason}"),
        }
    }

    /// The granted vault behind a firewall that lets `bypass` through.
    fn closed(bypass: &str) -> Vault {
        let mut v = granted_vault();
        v.properties.network_acls = Some(VaultNetworkRuleSet {
            bypass: Some(bypass.into()),
            default_action: Some("Deny".into()),
        });
        v
    }

    /// Key `k` in the granted vault.
    fn with_key(k: KeyInfo) -> ObservedKey {
        key(VaultLookup::Found(granted_vault()), Some(k))
    }

    /// A case named, what is observed, and the verdict `verdict_name` must give.
    type Case = (&'static str, ObservedKey, &'static str);

    /// A good key, and the vault gone or closed.
    fn vault_cases() -> Vec<Case> {
        let base = rsa_key("account-key", "v1", 3072);
        vec![
            ("all good", good(), "Accessible"),
            (
                "vault gone",
                key(VaultLookup::NotFound, None),
                "Inaccessible:VaultNotFound",
            ),
            (
                "vault soft-deleted",
                key(VaultLookup::SoftDeleted(DeletedVault::default()), None),
                "Inaccessible:VaultSoftDeleted",
            ),
            (
                "firewall closed to services",
                key(VaultLookup::Found(closed("None")), Some(base.clone())),
                "Inaccessible:VaultFirewallBlocked",
            ),
            (
                "firewall closed but services pass",
                key(
                    VaultLookup::Found(closed("AzureServices")),
                    Some(base.clone()),
                ),
                "Accessible",
            ),
        ]
    }

    /// The principal's access, by access policy or by RBAC role.
    fn access_cases() -> Vec<Case> {
        let base = rsa_key("account-key", "v1", 3072);
        vec![
            (
                "policy removed",
                key(
                    VaultLookup::Found(vault("media-kv", false)),
                    Some(base.clone()),
                ),
                "Inaccessible:AccessRevoked",
            ),
            (
                "policy without unwrap",
                {
                    let mut v = vault("media-kv", false);
                    v.properties.access_policies = vec![policy(PRINCIPAL, &["get", "wrapKey"])];
                    key(VaultLookup::Found(v), Some(base.clone()))
                },
                "Inaccessible:AccessRevoked",
            ),
            (
                "RBAC role removed",
                key(
                    VaultLookup::Found(vault("media-kv", true)),
                    Some(base.clone()),
                ),
                "Inaccessible:AccessRevoked",
            ),
            (
                "RBAC role held",
                {
                    let mut k = key(
                        VaultLookup::Found(vault("media-kv", true)),
                        Some(base.clone()),
                    );
                    k.assignments = vec![assignment(
                        &vault_id("media-kv"),
                        PRINCIPAL,
                        "e147488a-f6f5-4113-8e2d-b22465e65bf6",
                    )];
                    k
                },
                "Accessible",
            ),
        ]
    }

    /// The key itself: gone, unusable, or close to expiry.
    fn key_cases() -> Vec<Case> {
        let base = rsa_key("account-key", "v1", 3072);
        vec![
            (
                "key deleted",
                key(VaultLookup::Found(granted_vault()), None),
                "Inaccessible:KeyNotFound",
            ),
            (
                "key disabled",
                with_key(KeyInfo {
                    enabled: false,
                    ..base.clone()
                }),
                "Inaccessible:KeyDisabled",
            ),
            (
                "key expired",
                with_key(KeyInfo {
                    expires: Some(odt(1_700_000_000)),
                    ..base.clone()
                }),
                "Inaccessible:KeyExpired",
            ),
            (
                "key not yet valid",
                with_key(KeyInfo {
                    not_before: Some(odt(1_900_000_000)),
                    ..base.clone()
                }),
                "Inaccessible:KeyNotYetValid",
            ),
            (
                "EC key",
                with_key(KeyInfo {
                    kind: KeyKind::Ec,
                    rsa_bits: None,
                    ..base.clone()
                }),
                "Inaccessible:UnsupportedKey",
            ),
            (
                "RSA 1024",
                with_key(KeyInfo {
                    rsa_bits: Some(1024),
                    ..base.clone()
                }),
                "Inaccessible:UnsupportedKey",
            ),
            (
                "expires within the horizon",
                with_key(KeyInfo {
                    expires: Some(odt(1_800_000_000 + 86_400)),
                    ..base.clone()
                }),
                "Accessible+Expiring",
            ),
            (
                "expires beyond the horizon",
                with_key(KeyInfo {
                    expires: Some(odt(1_800_000_000 + 90 * 86_400)),
                    ..base.clone()
                }),
                "Accessible",
            ),
        ]
    }

    /// What the operator cannot see (yet): the verdict is Unknown, with the reason.
    fn unseen_cases() -> Vec<Case> {
        vec![
            (
                "operator refused the key read",
                {
                    let mut k = key(VaultLookup::Found(granted_vault()), None);
                    k.operator_refused = Some("403 ForbiddenByFirewall".into());
                    k
                },
                "Unknown:OperatorForbidden",
            ),
            (
                "principal not known yet",
                {
                    let mut k = good();
                    k.principal = None;
                    k
                },
                "Unknown:Propagating",
            ),
        ]
    }

    /// Several links broken at once: the first is named.
    fn precedence_cases() -> Vec<Case> {
        let base = rsa_key("account-key", "v1", 3072);
        vec![
            (
                "vault gone and key disabled: the vault is named",
                key(
                    VaultLookup::NotFound,
                    Some(KeyInfo {
                        enabled: false,
                        ..base.clone()
                    }),
                ),
                "Inaccessible:VaultNotFound",
            ),
            (
                "grant removed and key disabled: the grant is named",
                key(
                    VaultLookup::Found(vault("media-kv", false)),
                    Some(KeyInfo {
                        enabled: false,
                        ..base.clone()
                    }),
                ),
                "Inaccessible:AccessRevoked",
            ),
            (
                "disabled and expired: disabled is named",
                with_key(KeyInfo {
                    enabled: false,
                    expires: Some(odt(1)),
                    ..base.clone()
                }),
                "Inaccessible:KeyDisabled",
            ),
        ]
    }

    /// Every cause, each case of what the operator cannot see, and the precedence when several
    /// links are broken at once (the first broken link is named).
    #[test]
    fn every_cause_is_diagnosed_and_the_first_broken_link_wins() {
        let cases = [
            vault_cases(),
            access_cases(),
            key_cases(),
            unseen_cases(),
            precedence_cases(),
        ];
        let mut wrong = Vec::new();
        for (name, k, expected) in cases.into_iter().flatten() {
            let verdict = diagnose(&k, now(), DEFAULT_EXPIRY_WARNING);
            let got = verdict_name(&verdict);
            if got != expected {
                wrong.push(format!("{name}: expected {expected}, got {got}"));
            }
            // Every lost access names the vault, key and principal concerned.
            if let KeyVerdict::Inaccessible { message, .. } = &verdict
                && !(message.contains("media-kv")
                    && message.contains("account-key")
                    && message.contains(PRINCIPAL))
            {
                wrong.push(format!(
                    "{name}: the message does not name vault, key and principal: {message}"
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// Messages name the vault, the key, the version and the principal where they apply.
    #[test]
    fn messages_name_what_broke() {
        let KeyVerdict::Inaccessible { message, .. } = diagnose(
            &key(
                VaultLookup::Found(vault("media-kv", false)),
                Some(rsa_key("account-key", "v1", 2048)),
            ),
            now(),
            DEFAULT_EXPIRY_WARNING,
        ) else {
            panic!("inaccessible");
        };
        assert!(
            message.contains(PRINCIPAL)
                && message.contains("account-key")
                && message.contains("media-kv"),
            "{message}"
        );
        let mut k = good();
        k.key = Some(KeyInfo {
            enabled: false,
            ..rsa_key("account-key", "v7", 2048)
        });
        let KeyVerdict::Inaccessible { message, .. } = diagnose(&k, now(), DEFAULT_EXPIRY_WARNING)
        else {
            panic!("inaccessible");
        };
        assert!(message.contains("v7"), "{message}");
    }

    fn role(guid: &str, data: &[&str], not_data: &[&str]) -> RoleDefinition {
        RoleDefinition {
            id: None,
            name: Some(guid.into()),
            properties: crate::azure::models::authorization::RoleDefinitionProperties {
                permissions: vec![crate::azure::models::authorization::Permission {
                    data_actions: data.iter().map(|s| (*s).to_owned()).collect(),
                    not_data_actions: not_data.iter().map(|s| (*s).to_owned()).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        }
    }

    /// A role counts by its data actions minus its not-data actions, with Azure's `*`
    /// wildcards and case-insensitively; control-plane actions never count.
    #[test]
    fn a_role_covers_the_key_only_by_data_actions_minus_not_data_actions() {
        let cases: [(&str, &[&str], &[&str], bool); 7] = [
            ("exact", &CMK_DATA_ACTIONS, &[], true),
            (
                "keys wildcard",
                &["Microsoft.KeyVault/vaults/keys/*"],
                &[],
                true,
            ),
            (
                "vault wildcard",
                &["microsoft.keyvault/VAULTS/*"],
                &[],
                true,
            ),
            ("everything", &["*"], &[], true),
            (
                "unwrap excluded",
                &["Microsoft.KeyVault/vaults/keys/*"],
                &["Microsoft.KeyVault/vaults/keys/unwrap/action"],
                false,
            ),
            (
                "read only",
                &["Microsoft.KeyVault/vaults/keys/read"],
                &[],
                false,
            ),
            (
                "secrets only",
                &["Microsoft.KeyVault/vaults/secrets/*"],
                &[],
                false,
            ),
        ];
        for (name, data, not_data, want) in cases {
            assert_eq!(
                role_covers(&role("r", data, not_data), &CMK_DATA_ACTIONS),
                want,
                "{name}"
            );
        }
        assert!(action_matches("a/*/c", "a/b/x/c"));
        assert!(!action_matches("a/*/c", "a/b/x/d"));
        assert!(!action_matches("a/b", "a/b/c"));
    }

    /// In an RBAC vault a custom role counts when its definition covers the key; a role whose
    /// definition was not read counts only when it is a known built-in key-wrapping role.
    #[test]
    fn rbac_access_is_judged_by_the_role_definition() {
        let rbac_vault = vault("media-kv", true);
        let scope = format!("{}/keys/account-key", vault_id("media-kv"));
        let custom = "aaaaaaaa-0000-0000-0000-00000000c0de";
        let mut k = key(
            VaultLookup::Found(rbac_vault.clone()),
            Some(rsa_key("account-key", "v1", 2048)),
        );
        k.assignments = vec![assignment(&scope, PRINCIPAL, custom)];
        assert!(
            !principal_has_access(&k, &rbac_vault, PRINCIPAL),
            "unknown role, no definition"
        );
        k.role_definitions = vec![role(custom, &["Microsoft.KeyVault/vaults/keys/*"], &[])];
        assert!(principal_has_access(&k, &rbac_vault, PRINCIPAL));
        k.role_definitions = vec![role(
            custom,
            &["Microsoft.KeyVault/vaults/keys/*"],
            &["Microsoft.KeyVault/vaults/keys/wrap/action"],
        )];
        assert!(!principal_has_access(&k, &rbac_vault, PRINCIPAL));
        k.assignments = vec![assignment(&scope, PRINCIPAL, KEY_WRAP_ROLES[0])];
        k.role_definitions.clear();
        assert!(
            principal_has_access(&k, &rbac_vault, PRINCIPAL),
            "known built-in"
        );
    }
}
