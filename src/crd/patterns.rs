//! Shape rules for identifiers in the spec, shared by the CRD's OpenAPI schema and the pure Rust
//! validator (`reconcile::validate`), so that `kubectl apply` and the operator agree to the letter.
//!
//! The patterns are RE2-compatible (the apiserver evaluates `pattern` with Go's regexp) and also
//! valid for Rust's `regex` crate. ARM treats resource ids case-insensitively, so provider and
//! collection segments match in any case; names keep the case rules Azure documents.

/// A subscription id: a UUID.
pub const SUBSCRIPTION_ID: &str =
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// A Microsoft Entra object id (principal id): a UUID.
pub const PRINCIPAL_ID: &str = SUBSCRIPTION_ID;

/// The characters of a resource group name other than `.`, as a character-class body.
///
/// Azure's own pattern is `^[-\w\._\(\)]+$`, evaluated by .NET, where `\w` means any Unicode
/// letter (`L`), non-spacing mark (`Mn`), decimal digit (`Nd`) or connector punctuation (`Pc`, which
/// holds `_`). NB: the classes are spelt out because the apiserver evaluates schema patterns with
/// Go's RE2, where `\w` is ASCII-only; `\p{..}` means the same in RE2 and in Rust's `regex`.
macro_rules! resource_group_char {
    () => {
        r"-\p{L}\p{Mn}\p{Nd}\p{Pc}()"
    };
}

/// A resource group name: 1-90 letters (any script), digits, `_`, `-`, `.`, `(`, `)`; not ending
/// in `.`. Lengths count characters, as Kubernetes' `maxLength` does.
pub const RESOURCE_GROUP: &str = concat!(
    "^[",
    resource_group_char!(),
    ".]{0,89}[",
    resource_group_char!(),
    "]$"
);

/// A Media Services account name: 3-24 lowercase letters and digits.
pub const ACCOUNT_NAME: &str = r"^[a-z0-9]{3,24}$";

/// An Azure region in its canonical form, e.g. `westeurope`.
pub const LOCATION: &str = r"^[a-z][a-z0-9]{1,39}$";

/// The ARM id of a user-assigned managed identity.
pub const USER_ASSIGNED_IDENTITY_ID: &str = concat!(
    r"^(?i:/subscriptions/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/resourceGroups/[",
    resource_group_char!(),
    r".]{1,90}/providers/Microsoft\.ManagedIdentity/userAssignedIdentities/)[a-zA-Z0-9][-a-zA-Z0-9_]{2,127}$"
);

/// The ARM id of a storage account (name: 3-24 lowercase letters and digits).
pub const STORAGE_ACCOUNT_ID: &str = concat!(
    r"^(?i:/subscriptions/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/resourceGroups/[",
    resource_group_char!(),
    r".]{1,90}/providers/Microsoft\.Storage/storageAccounts/)[a-z0-9]{3,24}$"
);

/// A Key Vault key identifier: `https://<vault>.vault.<cloud suffix>/keys/<name>[/<version>]`.
///
/// Vault names are 3-24 letters, digits and hyphens, starting with a letter; key names 1-127
/// letters, digits and hyphens; a version is 32 hex digits. Without a version the operator tracks
/// the key's latest version. The DNS suffix is checked against the configured cloud at reconcile
/// time, so sovereign and custom clouds are not ruled out here.
pub const KEY_IDENTIFIER: &str = r"^https://[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]\.vault\.[a-z0-9.-]+[a-z]/keys/[a-zA-Z0-9-]{1,127}(/[0-9a-fA-F]{32})?$";

/// A role definition: a bare GUID, or its ARM id at tenant or subscription level.
pub const ROLE_DEFINITION_ID: &str = r"^(?i:(/subscriptions/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?/providers/Microsoft\.Authorization/roleDefinitions/)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// A Kubernetes object name (DNS-1123 subdomain).
pub const OBJECT_NAME: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A Go-style duration as Kubernetes writes them, e.g. `30s`, `5m`, `1h30m`. Bounded (at most
/// four terms of at most five digits) so that every value it admits fits CEL's and Go's 64-bit
/// durations; the valid range (10s to 24h) is far inside.
pub const DURATION: &str = r"^([0-9]{1,5}(\.[0-9]{1,9})?(ms|s|m|h)){1,4}$";

/// Longest ARM resource id we accept; ARM's own limit on ids is far above any real id.
pub const MAX_ARM_ID_LENGTH: u32 = 512;

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn matches(pattern: &str, value: &str) -> bool {
        Regex::new(pattern)
            .expect("pattern compiles")
            .is_match(value)
    }

    /// Each pattern is exercised with values users really write, so a typo in a pattern shows
    /// here rather than as a confusing rejection at `kubectl apply` time.
    #[test]
    #[expect(
        clippy::too_many_lines,
        reason = "one table of cases reads best in one place"
    )]
    fn patterns_accept_real_identifiers_and_reject_near_misses() {
        let cases: &[(&str, &str, bool)] = &[
            (
                SUBSCRIPTION_ID,
                "00000000-1111-2222-3333-444444444444",
                true,
            ),
            (
                SUBSCRIPTION_ID,
                "00000000-1111-2222-3333-44444444444",
                false,
            ),
            (RESOURCE_GROUP, "contoso-media_rg.(prod)", true),
            (RESOURCE_GROUP, "ends-with-dot.", false),
            (RESOURCE_GROUP, "", false),
            // Azure's `\w` is .NET's: letters of any script, combining marks, decimal digits of
            // any script, and connector punctuation.
            (RESOURCE_GROUP, "médias-prod", true),
            (RESOURCE_GROUP, "me\u{301}dias", true),
            (RESOURCE_GROUP, "メディア_本番", true),
            (RESOURCE_GROUP, "媒体-٣", true),
            (RESOURCE_GROUP, "rg\u{203f}one", true),
            (RESOURCE_GROUP, "médias.", false),
            (RESOURCE_GROUP, "two words", false),
            (RESOURCE_GROUP, "rg#1", false),
            (RESOURCE_GROUP, "rg/1", false),
            (RESOURCE_GROUP, "①", false),
            (RESOURCE_GROUP, "emoji-🎬", false),
            (ACCOUNT_NAME, "contosomedia01", true),
            (ACCOUNT_NAME, "Contoso", false),
            (ACCOUNT_NAME, "ab", false),
            (ACCOUNT_NAME, "contoso-media", false),
            (LOCATION, "westeurope", true),
            (LOCATION, "West Europe", false),
            (
                USER_ASSIGNED_IDENTITY_ID,
                "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/media-id",
                true,
            ),
            (
                USER_ASSIGNED_IDENTITY_ID,
                "/subscriptions/00000000-1111-2222-3333-444444444444/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/media-id",
                true,
            ),
            (
                USER_ASSIGNED_IDENTITY_ID,
                "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/media",
                false,
            ),
            (
                STORAGE_ACCOUNT_ID,
                "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/contosomedia",
                true,
            ),
            (
                STORAGE_ACCOUNT_ID,
                "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/Contoso-Media",
                false,
            ),
            (
                STORAGE_ACCOUNT_ID,
                "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/médias-prod/providers/Microsoft.Storage/storageAccounts/contosomedia",
                true,
            ),
            (
                USER_ASSIGNED_IDENTITY_ID,
                "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/two words/providers/Microsoft.ManagedIdentity/userAssignedIdentities/media-id",
                false,
            ),
            (
                KEY_IDENTIFIER,
                "https://contoso-kv.vault.azure.net/keys/media-key",
                true,
            ),
            (
                KEY_IDENTIFIER,
                "https://contoso-kv.vault.azure.net/keys/media-key/0123456789abcdef0123456789abcdef",
                true,
            ),
            (
                KEY_IDENTIFIER,
                "https://contoso-kv.vault.usgovcloudapi.net/keys/k",
                true,
            ),
            (
                KEY_IDENTIFIER,
                "http://contoso-kv.vault.azure.net/keys/media-key",
                false,
            ),
            (
                KEY_IDENTIFIER,
                "https://contoso-kv.vault.azure.net/secrets/media-key",
                false,
            ),
            (
                KEY_IDENTIFIER,
                "https://contoso-kv.vault.azure.net/keys/media-key/v1",
                false,
            ),
            (
                KEY_IDENTIFIER,
                "https://contoso-kv.vault.azure.net/keys/media-key/",
                false,
            ),
            (
                ROLE_DEFINITION_ID,
                "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
                true,
            ),
            (
                ROLE_DEFINITION_ID,
                "/providers/Microsoft.Authorization/roleDefinitions/ba92f5b4-2d11-453d-a403-e96b0029c9fe",
                true,
            ),
            (
                ROLE_DEFINITION_ID,
                "/subscriptions/00000000-1111-2222-3333-444444444444/providers/Microsoft.Authorization/roleDefinitions/ba92f5b4-2d11-453d-a403-e96b0029c9fe",
                true,
            ),
            (ROLE_DEFINITION_ID, "Storage Blob Data Contributor", false),
            (OBJECT_NAME, "azure-credentials", true),
            (OBJECT_NAME, "Azure_Credentials", false),
            (DURATION, "30s", true),
            (DURATION, "1h30m", true),
            (DURATION, "30", false),
            (DURATION, "-5s", false),
            (DURATION, "86400s", true),
            (DURATION, "99999999999999999999h", false),
            (DURATION, "1h1m1s1ms1h", false),
        ];
        let ninety = "é".repeat(90);
        let ninety_one = "é".repeat(91);
        let lengths: &[(&str, &str, bool)] = &[
            (RESOURCE_GROUP, &ninety, true),
            (RESOURCE_GROUP, &ninety_one, false),
        ];
        let wrong: Vec<_> = cases
            .iter()
            .chain(lengths)
            .filter(|(pattern, value, expected)| matches(pattern, value) != *expected)
            .map(|(pattern, value, expected)| {
                format!("{value:?} should match={expected} {pattern}")
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "patterns disagree with expectations:\n{}",
            wrong.join("\n")
        );
    }
}
