//! Status condition types and reasons of `MediaServicesAccount`, documented as API.
//!
//! Conditions follow the Kubernetes convention (`metav1.Condition`, a list-map keyed by `type`).
//! Every type states its **polarity**:
//! - *normal-true* types (`Ready`, `IdentityReady`, `StorageAccessReady`, `EncryptionReady`,
//!   `AccessGrantsReady`) are `True` when all is well.
//! - the *abnormal-true* type `CustomerKeyInaccessible` is `True` when something is wrong: Azure
//!   has lost (or will lose) access to the customer-managed key, and the account accepts only
//!   GET, LIST and DELETE until access is restored. Its reason names the precise cause.
//!
//! Reasons are PascalCase constants; tools (Argo CD health checks, alerts) may match on them, so
//! they are part of the API and change only with a new API version. This module holds names
//! and meanings only; computing conditions is the reconciler's status step.

/// Condition types.
pub mod types {
    /// Normal-true. Summary: `True` when every other condition of this resource is in its good
    /// state for the current `metadata.generation`. Its reason is the first failing step's reason.
    pub const READY: &str = "Ready";
    /// Normal-true. The account's managed identity matches `spec.identity`, and its principals
    /// are known (see `status.identity`).
    pub const IDENTITY_READY: &str = "IdentityReady";
    /// Normal-true. The account's storage accounts and storage authentication match
    /// `spec.storage`, and, with `grantAccess`, each identity holds Storage Blob Data Contributor
    /// on its storage account.
    pub const STORAGE_ACCESS_READY: &str = "StorageAccessReady";
    /// Normal-true. The account's encryption matches `spec.encryption`: with a customer key, the
    /// key passed its prerequisites (RSA 2048/3072/4096, vault in the account's region with
    /// soft-delete and purge protection), the identity can use it, and the account uses the
    /// expected version.
    pub const ENCRYPTION_READY: &str = "EncryptionReady";
    /// Normal-true. Every entry of `spec.accessGrants` holds its role assignment on the account.
    pub const ACCESS_GRANTS_READY: &str = "AccessGrantsReady";
    /// **Abnormal-true.** `True` when the account's identity cannot use the customer-managed key.
    /// The reason is one of [`super::key_access`]'s causes; `False` with reason
    /// [`super::reasons::KEY_ACCESSIBLE`] after a successful check, or
    /// [`super::reasons::SYSTEM_KEY`] when the account does not use a customer key.
    pub const CUSTOMER_KEY_INACCESSIBLE: &str = "CustomerKeyInaccessible";

    /// **Abnormal-true**, kstatus's standard condition: `True` while the operator is still
    /// working towards the spec (a write made, Azure propagating, a retry after throttling or a
    /// transient failure). Flux and other kstatus readers then report the object in progress.
    pub const RECONCILING: &str = "Reconciling";
    /// **Abnormal-true**, kstatus's standard condition: `True` when the operator cannot make
    /// progress until a person acts (a failed prerequisite, an invalid spec, an inaccessible
    /// key, a refused request). kstatus readers then report the object as failed. The reason
    /// and message are `Ready`'s.
    pub const STALLED: &str = "Stalled";

    /// Every condition type this operator owns. Conditions of other types on the same object
    /// belong to someone else and are left as they are.
    pub const ALL: [&str; 8] = [
        READY,
        IDENTITY_READY,
        STORAGE_ACCESS_READY,
        ENCRYPTION_READY,
        ACCESS_GRANTS_READY,
        CUSTOMER_KEY_INACCESSIBLE,
        RECONCILING,
        STALLED,
    ];
}

/// Causes of `CustomerKeyInaccessible=True`, used as its reason.
pub mod key_access {
    /// The key (or the pinned version) does not exist, or was deleted.
    pub const KEY_NOT_FOUND: &str = "KeyNotFound";
    /// The key version in use is disabled.
    pub const KEY_DISABLED: &str = "KeyDisabled";
    /// The key version in use is past its expiry (`exp`).
    pub const KEY_EXPIRED: &str = "KeyExpired";
    /// The key version in use is not yet valid (`nbf` in the future).
    pub const KEY_NOT_YET_VALID: &str = "KeyNotYetValid";
    /// The vault does not exist.
    pub const VAULT_NOT_FOUND: &str = "VaultNotFound";
    /// The vault was deleted and is in its soft-delete retention period (it can be recovered).
    pub const VAULT_SOFT_DELETED: &str = "VaultSoftDeleted";
    /// The identity's permission on the key (access policy or role assignment) was removed.
    pub const ACCESS_REVOKED: &str = "AccessRevoked";
    /// The vault's firewall rejects the identity's requests.
    pub const VAULT_FIREWALL_BLOCKED: &str = "VaultFirewallBlocked";
    /// The key cannot serve as a Media Services account key (e.g. an EC key or an RSA size
    /// other than 2048, 3072 or 4096).
    pub const UNSUPPORTED_KEY: &str = "UnsupportedKey";

    /// Every cause, for documentation and exhaustive tests.
    pub const ALL: [&str; 9] = [
        KEY_NOT_FOUND,
        KEY_DISABLED,
        KEY_EXPIRED,
        KEY_NOT_YET_VALID,
        VAULT_NOT_FOUND,
        VAULT_SOFT_DELETED,
        ACCESS_REVOKED,
        VAULT_FIREWALL_BLOCKED,
        UNSUPPORTED_KEY,
    ];
}

/// Reasons shared by the other condition types.
pub mod reasons {
    /// The condition is in its good state.
    pub const SUCCEEDED: &str = "Succeeded";
    /// The step is waiting on a long-running Azure operation started earlier.
    pub const IN_PROGRESS: &str = "InProgress";
    /// The spec breaks a rule the schema could not express (or the apiserver did not enforce);
    /// the message names the field. Nothing is written to Azure until the spec is fixed.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Reconciliation is paused by `spec.suspend`.
    pub const SUSPENDED: &str = "Suspended";
    /// Azure throttled the operator; it retries after the interval Azure asked for.
    pub const THROTTLED: &str = "Throttled";
    /// A grant was just made and Azure has not propagated it yet.
    pub const PROPAGATING: &str = "Propagating";
    /// Azure refused the operator's request for a reason only a person can fix (permissions,
    /// quota, a prerequisite); the message says what.
    pub const USER_ACTION_REQUIRED: &str = "UserActionRequired";
    /// A transient Azure failure; the operator retries with backoff.
    pub const TRANSIENT_ERROR: &str = "TransientError";
    /// `CustomerKeyInaccessible=False`: the last key-access check succeeded.
    pub const KEY_ACCESSIBLE: &str = "KeyAccessible";
    /// `CustomerKeyInaccessible=False`: the account uses Microsoft-managed keys.
    pub const SYSTEM_KEY: &str = "SystemKey";
    /// The section of the spec is absent, so the operator leaves that part of the account as is.
    pub const NOT_MANAGED: &str = "NotManaged";
    /// A long-running Azure operation the operator started ended unsuccessfully; the message
    /// carries Azure's error code and message. The operator tries again after a while.
    pub const OPERATION_FAILED: &str = "OperationFailed";
    /// The credentials the resource names (`credentialsSecretRef`) or the operator's own could
    /// not be used; the message says which and why.
    pub const CREDENTIALS_UNAVAILABLE: &str = "CredentialsUnavailable";
    /// Entra ID refused the credentials the resource's Azure calls (its key checks included)
    /// use: a wrong, expired or revoked client secret, an unknown application, a federated
    /// credential that does not match. The message names the Secret
    /// (`credentialsSecretRef`, as `namespace/name`) or the operator's own identity, and
    /// Entra's error code (e.g. `AADSTS7000215 (invalid_client)`: a wrong secret). Fix what the
    /// Secret holds; the operator notices the change at once. Other resources, whose
    /// credentials come from elsewhere, are not affected.
    pub const CREDENTIALS_REJECTED: &str = "CredentialsRejected";
    /// Azure refused the operator's own identity a read or write it needs; the message names
    /// the resource and the permission to grant the operator.
    pub const OPERATOR_FORBIDDEN: &str = "OperatorForbidden";

    /// The Media Services account does not exist. The operator manages the security state of
    /// existing accounts and never creates one.
    pub const ACCOUNT_NOT_FOUND: &str = "AccountNotFound";
    /// `spec.account.location` is not the account's region in Azure.
    pub const ACCOUNT_LOCATION_MISMATCH: &str = "AccountLocationMismatch";
    /// A user-assigned identity the spec names does not exist (after a bounded wait for a new
    /// identity to propagate).
    pub const USER_ASSIGNED_IDENTITY_NOT_FOUND: &str = "UserAssignedIdentityNotFound";
    /// A storage account is in another subscription than the Media Services account; Media
    /// Services can only use storage in its own subscription.
    pub const STORAGE_IN_OTHER_SUBSCRIPTION: &str = "StorageInOtherSubscription";
    /// A storage account the spec names does not exist.
    pub const STORAGE_ACCOUNT_NOT_FOUND: &str = "StorageAccountNotFound";
    /// With `grantAccess: false`, the identity holds only generic Contributor on the storage
    /// account, which grants no blob data access: it needs Storage Blob Data Contributor.
    pub const STORAGE_CONTRIBUTOR_ONLY: &str = "StorageContributorOnly";
    /// With `grantAccess: false`, the identity holds no Storage Blob Data Contributor on the
    /// storage account.
    pub const STORAGE_ACCESS_MISSING: &str = "StorageAccessMissing";
    /// The storage account's firewall denies by default without letting trusted Azure services
    /// or this account (a resource-instance rule) through.
    pub const STORAGE_FIREWALL_BLOCKED: &str = "StorageFirewallBlocked";
    /// The key is not RSA or RSA-HSM (for example an EC key).
    pub const KEY_TYPE_UNSUPPORTED: &str = "KeyTypeUnsupported";
    /// The RSA key is not 2048, 3072 or 4096 bits.
    pub const KEY_SIZE_UNSUPPORTED: &str = "KeySizeUnsupported";
    /// The key's permitted operations lack `wrapKey` or `unwrapKey`.
    pub const KEY_OPERATIONS_MISSING: &str = "KeyOperationsMissing";
    /// The vault is in another region than the account.
    pub const VAULT_REGION_MISMATCH: &str = "VaultRegionMismatch";
    /// The vault has soft delete off.
    pub const VAULT_SOFT_DELETE_DISABLED: &str = "VaultSoftDeleteDisabled";
    /// The vault has purge protection off.
    pub const VAULT_PURGE_PROTECTION_DISABLED: &str = "VaultPurgeProtectionDisabled";
    /// With `grantAccess: false`, the encryption identity has no `get`, `wrapKey` and
    /// `unwrapKey` on the key (access policy, or a role in an RBAC vault).
    pub const KEY_ACCESS_MISSING: &str = "KeyAccessMissing";

    /// The change this condition needs is held back because a prerequisite reported on another
    /// condition failed: the operator applies all of a plan or none of it.
    pub const BLOCKED: &str = "Blocked";

    /// `EncryptionReady=True` with a warning: the key version in use expires within the
    /// operator's warning horizon (default 30 days); access still works.
    pub const KEY_EXPIRING_SOON: &str = "KeyExpiringSoon";

    /// `EncryptionReady=True` with a warning: the spec tracks the key's latest version, the vault
    /// has a newer version than the account uses, and the account has not moved to it within the
    /// operator's rotation grace (default 24 hours). Access still works; nothing is forced.
    pub const KEY_ROTATION_PENDING: &str = "KeyRotationPending";

    /// The operator's tenancy map does not let this namespace manage a subscription or resource
    /// group the spec names; no Azure call is made for the resource.
    pub const TENANCY_DENIED: &str = "TenancyDenied";

    /// An access grant's `roleDefinitionId` names no role definition in the account's
    /// subscription.
    pub const ROLE_DEFINITION_NOT_FOUND: &str = "RoleDefinitionNotFound";

    /// The role-assignment name the operator derives for a grant is taken, at that scope, by an
    /// assignment for another principal or role that the operator did not make (Azure:
    /// `RoleAssignmentUpdateNotPermitted`). The operator never changes or removes it; a person
    /// must.
    pub const ROLE_ASSIGNMENT_NAME_CONFLICT: &str = "RoleAssignmentNameConflict";

    /// Another `MediaServicesAccount` in this cluster, older than this one (creation time, then
    /// uid), already manages the Azure account this one names; this one makes no Azure call
    /// until that one is deleted or stops naming it, then takes over at once.
    pub const ACCOUNT_CLAIMED: &str = "AccountClaimed";

    /// The Azure account carries another owner's claim (the `ams-security-operator-owner` tag: a
    /// resource of another cluster, or one that no longer exists); no write is made. Hand the
    /// account over with the `ams-security.io/take-over-from` annotation set to that claim.
    pub const ACCOUNT_OWNED_ELSEWHERE: &str = "AccountOwnedElsewhere";

    /// Every reason of this module, for documentation and exhaustive tests.
    pub const ALL: [&str; 38] = [
        SUCCEEDED,
        IN_PROGRESS,
        INVALID_SPEC,
        SUSPENDED,
        THROTTLED,
        PROPAGATING,
        USER_ACTION_REQUIRED,
        TRANSIENT_ERROR,
        KEY_ACCESSIBLE,
        SYSTEM_KEY,
        NOT_MANAGED,
        OPERATION_FAILED,
        CREDENTIALS_UNAVAILABLE,
        CREDENTIALS_REJECTED,
        OPERATOR_FORBIDDEN,
        ACCOUNT_NOT_FOUND,
        ACCOUNT_LOCATION_MISMATCH,
        USER_ASSIGNED_IDENTITY_NOT_FOUND,
        STORAGE_IN_OTHER_SUBSCRIPTION,
        STORAGE_ACCOUNT_NOT_FOUND,
        STORAGE_CONTRIBUTOR_ONLY,
        STORAGE_ACCESS_MISSING,
        STORAGE_FIREWALL_BLOCKED,
        KEY_TYPE_UNSUPPORTED,
        KEY_SIZE_UNSUPPORTED,
        KEY_OPERATIONS_MISSING,
        VAULT_REGION_MISMATCH,
        VAULT_SOFT_DELETE_DISABLED,
        VAULT_PURGE_PROTECTION_DISABLED,
        KEY_ACCESS_MISSING,
        BLOCKED,
        KEY_EXPIRING_SOON,
        KEY_ROTATION_PENDING,
        TENANCY_DENIED,
        ROLE_DEFINITION_NOT_FOUND,
        ROLE_ASSIGNMENT_NAME_CONFLICT,
        ACCOUNT_CLAIMED,
        ACCOUNT_OWNED_ELSEWHERE,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Reasons are matched by tools, so they must be unique PascalCase words: a duplicate or a
    /// reason with spaces would make two causes indistinguishable in an alert rule.
    #[test]
    fn condition_types_and_reasons_are_unique_pascal_case() {
        let all: Vec<&str> = types::ALL
            .iter()
            .chain(key_access::ALL.iter())
            .chain(reasons::ALL.iter())
            .copied()
            .collect();
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len(), "duplicate names in {all:?}");
        for name in all {
            let first = name.chars().next().expect("non-empty");
            assert!(
                first.is_ascii_uppercase() && name.chars().all(|c| c.is_ascii_alphanumeric()),
                "{name:?} is not PascalCase"
            );
        }
    }
}
