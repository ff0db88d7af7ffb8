//! Tenancy: which namespaces may manage which subscriptions (and, optionally, resource groups).
//!
//! The operator's identity can often reach many subscriptions; a namespace should reach only
//! the ones it was given. The map is operator configuration (a YAML file, rendered by the chart
//! from a `ConfigMap`), read once at start-up:
//!
//! ```yaml
//! rules:
//!   - namespaces: [media-team]                 # by name...
//!     subscriptions: [6f1c3b2a-94d1-4c1e-9a55-0d1b2c3d4e5f]
//!     resourceGroups: [media-prod]             # optional: any resource group when absent
//!   - namespaceSelector: { matchLabels: { team: video } }   # ...or by labels
//!     subscriptions: ["*"]
//! ```
//!
//! A resource is allowed when one rule matches its namespace and lists the subscription of
//! every Azure resource its spec names (the account, user-assigned identities, storage
//! accounts; the key's vault is looked up in the account's subscription), and, when the rule
//! names resource groups, the resource groups of the account and its storage accounts (the
//! resources the operator writes to). Without a map every namespace may manage everything the
//! operator's identity can reach, and the operator says so at start-up.
//!
//! Matching is pure; reading the file and the namespace's labels is the caller's.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::azure::ResourceId;
use crate::reconcile::desired::{Desired, IdentityRef, PrincipalRef};

/// The whole map.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tenancy {
    /// Rules, any of which may allow a resource.
    pub rules: Vec<Rule>,
}

/// One rule: namespaces (by name or labels) and what they may manage.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Namespace names (exact).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Namespaces whose labels include all of these.
    #[serde(default)]
    pub namespace_selector: Option<Selector>,
    /// Subscription ids (case-insensitive), or `*` for any.
    pub subscriptions: Vec<String>,
    /// Resource groups (case-insensitive); absent or empty: any.
    #[serde(default)]
    pub resource_groups: Vec<String>,
}

/// A label selector (equality only).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    /// Labels that must all be present with these values.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// Why a map could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// Not valid YAML for the map.
    #[error("the tenancy map {path} is invalid: {message}")]
    Invalid {
        /// Where it came from.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl Tenancy {
    /// Parses a map; `path` names it in errors. A rule must name namespaces or a selector, and
    /// at least one subscription.
    ///
    /// # Errors
    /// [`TenancyError::Invalid`] with the field at fault.
    pub fn from_yaml(text: &str, path: &str) -> Result<Self, TenancyError> {
        let invalid = |message: String| TenancyError::Invalid {
            path: path.to_owned(),
            message,
        };
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let map: Tenancy = serde_path_to_error::deserialize(de)
            .map_err(|e| invalid(format!("{}: {}", e.path(), e.inner())))?;
        for (i, r) in map.rules.iter().enumerate() {
            if r.namespaces.is_empty() && r.namespace_selector.is_none() {
                return Err(invalid(format!(
                    "rules[{i}] names neither namespaces nor a namespaceSelector"
                )));
            }
            if r.subscriptions.is_empty() {
                return Err(invalid(format!("rules[{i}].subscriptions is empty")));
            }
        }
        Ok(map)
    }

    /// Whether any rule uses a label selector (then the namespace's labels are needed).
    #[must_use]
    pub fn uses_selectors(&self) -> bool {
        self.rules.iter().any(|r| r.namespace_selector.is_some())
    }

    /// Whether the resource in `namespace` (with `labels`) may manage what `desired` names.
    ///
    /// # Errors
    /// A message naming what is outside the map, for the `TenancyDenied` condition.
    pub fn check(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        desired: &Desired,
    ) -> Result<(), String> {
        let rules: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.matches_namespace(namespace, labels))
            .collect();
        if rules.is_empty() {
            return Err(format!(
                "namespace {namespace} is not in the operator's tenancy map, so it may not manage any Azure subscription; ask the operator's administrators to add it"
            ));
        }
        let named = named_resources(desired);
        let mut first_refusal = None;
        for r in &rules {
            match r.allows(&named) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    first_refusal.get_or_insert(e);
                }
            }
        }
        Err(format!(
            "namespace {namespace} may not manage {}; the tenancy map allows it {}",
            first_refusal.unwrap_or_default(),
            rules
                .iter()
                .map(|r| r.describe())
                .collect::<Vec<_>>()
                .join(", or ")
        ))
    }
}

/// A resource the spec names, and whether the operator writes to it (then resource groups
/// apply too).
struct Named<'a> {
    id: &'a ResourceId,
    written: bool,
}

fn named_resources(desired: &Desired) -> Vec<Named<'_>> {
    let mut named = vec![Named {
        id: &desired.account,
        written: true,
    }];
    if let Some(i) = &desired.identity {
        named.extend(
            i.user_assigned
                .iter()
                .map(|id| Named { id, written: false }),
        );
    }
    if let Some(s) = &desired.storage {
        for a in &s.accounts {
            named.push(Named {
                id: &a.id,
                written: true,
            });
            if let Some(IdentityRef::User(id)) = &a.identity {
                named.push(Named { id, written: false });
            }
        }
    }
    if let Some(crate::reconcile::desired::DesiredEncryption::CustomerKey {
        identity: IdentityRef::User(id),
        ..
    }) = &desired.encryption
    {
        named.push(Named { id, written: false });
    }
    for g in &desired.access_grants {
        if let PrincipalRef::Identity(id) = &g.principal {
            named.push(Named { id, written: false });
        }
    }
    named
}

impl Rule {
    fn matches_namespace(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.namespaces.iter().any(|n| n == namespace)
            || self.namespace_selector.as_ref().is_some_and(|s| {
                s.match_labels
                    .iter()
                    .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
            })
    }

    fn allows(&self, named: &[Named<'_>]) -> Result<(), String> {
        for n in named {
            let sub = n.id.subscription();
            if !self
                .subscriptions
                .iter()
                .any(|s| s == "*" || s.eq_ignore_ascii_case(sub))
            {
                return Err(format!("subscription {sub} (named by {})", n.id));
            }
            if n.written && !self.resource_groups.is_empty() {
                let rg = n.id.resource_group().unwrap_or_default();
                if !self
                    .resource_groups
                    .iter()
                    .any(|g| g.eq_ignore_ascii_case(rg))
                {
                    return Err(format!("resource group {rg} (of {})", n.id));
                }
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let groups = if self.resource_groups.is_empty() {
            String::new()
        } else {
            format!(" in resource groups {}", self.resource_groups.join(", "))
        };
        format!("subscriptions {}{groups}", self.subscriptions.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::fixtures::*;
    use serde_json::json;

    const MAP: &str = r#"
rules:
  - namespaces: [media-team]
    subscriptions: [00000000-1111-2222-3333-444444444444]
    resourceGroups: [MEDIA]
  - namespaceSelector: { matchLabels: { team: video } }
    subscriptions: ["*"]
"#;

    fn map() -> Tenancy {
        Tenancy::from_yaml(MAP, "test").expect("valid map")
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Namespaces match by name or by labels; a namespace no rule names may manage nothing.
    #[test]
    fn a_namespace_is_matched_by_name_or_labels_and_otherwise_refused() {
        let d = desired(trusted_storage_spec());
        let t = map();
        assert_eq!(t.check("media-team", &labels(&[]), &d), Ok(()));
        assert_eq!(
            t.check("anything", &labels(&[("team", "video")]), &d),
            Ok(())
        );
        let refused = t
            .check("other", &labels(&[("team", "audio")]), &d)
            .expect_err("not in the map");
        assert!(refused.contains("namespace other is not in"), "{refused}");
        assert!(t.uses_selectors());
    }

    /// Every subscription the spec names must be allowed, and the resource groups of what the
    /// operator writes to; the message names the first resource outside the map.
    #[test]
    fn every_named_subscription_and_each_written_resource_group_must_be_allowed() {
        let t = map();
        // The fixture account is in resource group "media" (allowed, case-insensitive).
        let ok = desired(trusted_storage_spec());
        assert_eq!(t.check("media-team", &labels(&[]), &ok), Ok(()));

        let mut other_rg = ok.clone();
        other_rg.account = ResourceId::media_account(SUB, "elsewhere", "acct");
        let e = t
            .check("media-team", &labels(&[]), &other_rg)
            .expect_err("resource group");
        assert!(e.contains("resource group elsewhere"), "{e}");
        assert!(e.contains("in resource groups MEDIA"), "{e}");

        let foreign_uai = desired(json!({
            "identity": { "type": "UserAssigned", "userAssignedIdentities": [
                "/subscriptions/99999999-0000-0000-0000-000000000000/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/foreign-id"
            ] },
        }));
        let e = t
            .check("media-team", &labels(&[]), &foreign_uai)
            .expect_err("subscription");
        assert!(
            e.contains("subscription 99999999-0000-0000-0000-000000000000"),
            "{e}"
        );
        // An identity is read, not written: its resource group does not matter, only its
        // subscription.
        let local_uai = desired(json!({
            "identity": { "type": "UserAssigned", "userAssignedIdentities": [uai_id()] },
        }));
        assert_eq!(t.check("media-team", &labels(&[]), &local_uai), Ok(()));
    }

    /// A malformed map is refused with the field at fault, never half-read.
    #[test]
    fn a_malformed_map_names_the_field_at_fault() {
        let cases = [
            ("rules:\n  - namespaces: [a]\n", "subscriptions"),
            ("rules:\n  - subscriptions: [x]\n", "neither namespaces"),
            (
                "rules:\n  - namespaces: [a]\n    subscriptions: []\n",
                "subscriptions is empty",
            ),
            (
                "rules:\n  - namespaces: [a]\n    subscription: [x]\n",
                "subscription",
            ),
            ("rules: 3\n", "rules"),
        ];
        for (text, needle) in cases {
            let e = Tenancy::from_yaml(text, "map.yaml")
                .expect_err(text)
                .to_string();
            assert!(
                e.contains(needle) && e.contains("map.yaml"),
                "{text:?}: {e}"
            );
        }
    }
}
