//! Typed ARM resource ids: parse, format, and compare case-insensitively as ARM does.
//!
//! An id is `/subscriptions/{sub}[/resourceGroups/{rg}][/providers/{ns}/{type}/{name}[/{type}/{name}]…]`.
//! This module does not check that a resource exists, nor that a type is one we use.

use std::fmt;
use std::hash::{Hash, Hasher};

/// A parsed ARM resource id.
///
/// Equality and hashing ignore ASCII case, because ARM treats ids case-insensitively and
/// returns them with whatever casing the resource was created with.
#[derive(Clone, Debug)]
pub struct ResourceId {
    subscription: String,
    resource_group: Option<String>,
    provider: Option<String>,
    /// `(type, name)` pairs under the provider, outermost first.
    types: Vec<(String, String)>,
}

/// Why a string is not a resource id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("failed to parse resource id {input:?}: {reason}")]
pub struct ParseResourceIdError {
    input: String,
    reason: &'static str,
}

impl ResourceId {
    /// Parse an ARM resource id.
    pub fn parse(input: &str) -> Result<Self, ParseResourceIdError> {
        let err = |reason| ParseResourceIdError {
            input: input.to_owned(),
            reason,
        };
        let rest = input
            .strip_prefix('/')
            .ok_or_else(|| err("does not start with '/'"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(err("has an empty segment"));
        }
        let mut it = segments.into_iter().peekable();
        match it.next() {
            Some(s) if s.eq_ignore_ascii_case("subscriptions") => {}
            _ => return Err(err("does not start with /subscriptions/")),
        }
        let subscription = it
            .next()
            .ok_or_else(|| err("has no subscription id"))?
            .to_owned();
        let mut resource_group = None;
        if it
            .peek()
            .is_some_and(|s| s.eq_ignore_ascii_case("resourceGroups"))
        {
            it.next();
            resource_group = Some(
                it.next()
                    .ok_or_else(|| err("has no resource group name"))?
                    .to_owned(),
            );
        }
        let mut provider = None;
        let mut types = Vec::new();
        if let Some(s) = it.next() {
            if !s.eq_ignore_ascii_case("providers") {
                return Err(err("expected 'providers'"));
            }
            provider = Some(
                it.next()
                    .ok_or_else(|| err("has no provider namespace"))?
                    .to_owned(),
            );
            let rest: Vec<&str> = it.collect();
            if rest.is_empty() || !rest.len().is_multiple_of(2) {
                return Err(err("resource types and names do not pair up"));
            }
            for pair in rest.chunks(2) {
                types.push((pair[0].to_owned(), pair[1].to_owned()));
            }
        }
        Ok(Self {
            subscription,
            resource_group,
            provider,
            types,
        })
    }

    /// A resource in a resource group: `/subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{type}/{name}`.
    #[must_use]
    pub fn new(
        subscription: &str,
        resource_group: &str,
        provider: &str,
        resource_type: &str,
        name: &str,
    ) -> Self {
        Self {
            subscription: subscription.to_owned(),
            resource_group: Some(resource_group.to_owned()),
            provider: Some(provider.to_owned()),
            types: vec![(resource_type.to_owned(), name.to_owned())],
        }
    }

    /// A Media Services account id.
    #[must_use]
    pub fn media_account(subscription: &str, resource_group: &str, name: &str) -> Self {
        Self::new(
            subscription,
            resource_group,
            "Microsoft.Media",
            "mediaservices",
            name,
        )
    }

    /// A Key Vault (management plane) id.
    #[must_use]
    pub fn vault(subscription: &str, resource_group: &str, name: &str) -> Self {
        Self::new(
            subscription,
            resource_group,
            "Microsoft.KeyVault",
            "vaults",
            name,
        )
    }

    /// A storage account id.
    #[must_use]
    pub fn storage_account(subscription: &str, resource_group: &str, name: &str) -> Self {
        Self::new(
            subscription,
            resource_group,
            "Microsoft.Storage",
            "storageAccounts",
            name,
        )
    }

    /// A user-assigned identity id.
    #[must_use]
    pub fn user_assigned_identity(subscription: &str, resource_group: &str, name: &str) -> Self {
        Self::new(
            subscription,
            resource_group,
            "Microsoft.ManagedIdentity",
            "userAssignedIdentities",
            name,
        )
    }

    /// The subscription id.
    #[must_use]
    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    /// The resource group, if the id is inside one.
    #[must_use]
    pub fn resource_group(&self) -> Option<&str> {
        self.resource_group.as_deref()
    }

    /// The provider namespace, e.g. `Microsoft.Media`.
    #[must_use]
    pub fn provider(&self) -> Option<&str> {
        self.provider.as_deref()
    }

    /// The full type, e.g. `Microsoft.Storage/storageAccounts`.
    #[must_use]
    pub fn resource_type(&self) -> Option<String> {
        let provider = self.provider.as_deref()?;
        let mut out = provider.to_owned();
        for (t, _) in &self.types {
            out.push('/');
            out.push_str(t);
        }
        Some(out)
    }

    /// The innermost resource name.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.types.last().map(|(_, n)| n.as_str())
    }

    /// Whether the full type equals `provider/type[/type…]`, ignoring case.
    #[must_use]
    pub fn is_type(&self, full_type: &str) -> bool {
        self.resource_type()
            .is_some_and(|t| t.eq_ignore_ascii_case(full_type))
    }

    /// Whether both ids are in the same subscription (ignoring case).
    #[must_use]
    pub fn same_subscription(&self, other: &ResourceId) -> bool {
        self.subscription.eq_ignore_ascii_case(&other.subscription)
    }

    /// A child resource of this one, e.g. a role assignment under a storage account scope is
    /// not a child; a vault's access policy is.
    #[must_use]
    pub fn child(&self, resource_type: &str, name: &str) -> Self {
        let mut c = self.clone();
        c.types.push((resource_type.to_owned(), name.to_owned()));
        c
    }

    fn canonical(&self) -> String {
        self.to_string().to_ascii_lowercase()
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/subscriptions/{}", self.subscription)?;
        if let Some(rg) = &self.resource_group {
            write!(f, "/resourceGroups/{rg}")?;
        }
        if let Some(p) = &self.provider {
            write!(f, "/providers/{p}")?;
            for (t, n) in &self.types {
                write!(f, "/{t}/{n}")?;
            }
        }
        Ok(())
    }
}

impl PartialEq for ResourceId {
    fn eq(&self, other: &Self) -> bool {
        self.canonical() == other.canonical()
    }
}

impl Eq for ResourceId {}

impl Hash for ResourceId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.canonical().hash(state);
    }
}

impl std::str::FromStr for ResourceId {
    type Err = ParseResourceIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for ResourceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ResourceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Compare two id strings as ARM does (ASCII case-insensitive, trailing slash ignored).
#[must_use]
pub fn ids_equal(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORAGE: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/contosorg/providers/Microsoft.Storage/storageAccounts/contososportsstore";

    #[test]
    fn parses_and_formats_a_storage_account_id_round_trip() {
        let id = ResourceId::parse(STORAGE).expect("valid");
        assert_eq!(id.subscription(), "00000000-0000-0000-0000-000000000000");
        assert_eq!(id.resource_group(), Some("contosorg"));
        assert_eq!(id.provider(), Some("Microsoft.Storage"));
        assert_eq!(
            id.resource_type().as_deref(),
            Some("Microsoft.Storage/storageAccounts")
        );
        assert_eq!(id.name(), Some("contososportsstore"));
        assert_eq!(id.to_string(), STORAGE);
        assert_eq!(
            id,
            ResourceId::storage_account(
                "00000000-0000-0000-0000-000000000000",
                "contosorg",
                "contososportsstore"
            )
        );
    }

    #[test]
    fn comparison_ignores_case_as_arm_does() {
        let a = ResourceId::parse(STORAGE).expect("valid");
        let b = ResourceId::parse(
            &STORAGE
                .to_ascii_uppercase()
                .replace("/SUBSCRIPTIONS/", "/subscriptions/"),
        )
        .expect("valid");
        assert_eq!(a, b);
        let mut set = std::collections::HashSet::new();
        set.insert(a);
        assert!(set.contains(&b), "hash must agree with eq");
        assert!(b.is_type("microsoft.storage/STORAGEACCOUNTS"));
        assert!(ids_equal(STORAGE, &format!("{}/", STORAGE.to_lowercase())));
    }

    #[test]
    fn parses_nested_types_and_subscription_scopes() {
        let id = ResourceId::parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v/accessPolicies/add").expect("valid");
        assert_eq!(
            id.resource_type().as_deref(),
            Some("Microsoft.KeyVault/vaults/accessPolicies")
        );
        assert_eq!(id.name(), Some("add"));
        let sub = ResourceId::parse("/subscriptions/s").expect("valid");
        assert_eq!(sub.resource_group(), None);
        assert_eq!(sub.name(), None);
        let sub_provider = ResourceId::parse("/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/ba92f5b4-2d11-453d-a403-e96b0029c9fe").expect("valid");
        assert_eq!(
            sub_provider.name(),
            Some("ba92f5b4-2d11-453d-a403-e96b0029c9fe")
        );
        assert!(!sub_provider.same_subscription(&ResourceId::parse(STORAGE).expect("valid")));
    }

    #[test]
    fn rejects_malformed_ids() {
        for bad in [
            "",
            "subscriptions/s",
            "/tenants/t",
            "/subscriptions",
            "/subscriptions/s/resourceGroups",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts",
            "/subscriptions/s//resourceGroups/rg",
            "/subscriptions/s/resourceGroups/rg/things/x",
        ] {
            assert!(
                ResourceId::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn serde_uses_the_string_form() {
        let id = ResourceId::parse(STORAGE).expect("valid");
        let json = serde_json::to_string(&id).expect("serializes");
        assert_eq!(json, format!("\"{STORAGE}\""));
        let back: ResourceId = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, id);
    }
}
