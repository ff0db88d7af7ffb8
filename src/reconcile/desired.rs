//! Validate step, second half (pure): turns a spec that passed [`super::validate`] into the
//! typed [`Desired`] value every later step works from, so no later step re-parses a string.
//!
//! It sees only the spec; whether the things it names exist is the observe step's business.

use crate::azure::ResourceId;
use crate::crd::account::{
    AccessGrant, EncryptionType, IdentityType, MediaServicesAccountSpec, ResourceIdentity,
    StorageAccountType, StorageAuthentication,
};

use super::validate::{FieldError, SpecErrors, validate_spec};

/// Which of the account's identities reaches a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityRef {
    /// The system-assigned identity.
    System,
    /// A user-assigned identity, by ARM id.
    User(ResourceId),
}

/// The account identity the spec asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredIdentity {
    /// `identity.type` as Azure spells it.
    pub type_: IdentityType,
    /// The user-assigned identities to attach, in spec order.
    pub user_assigned: Vec<ResourceId>,
}

/// One storage account the spec attaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredStorageAccount {
    /// Its ARM id.
    pub id: ResourceId,
    /// Whether it is the primary one.
    pub primary: bool,
    /// The identity that reaches it (managed-identity authentication only).
    pub identity: Option<IdentityRef>,
}

/// Storage as the spec asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredStorage {
    /// `ManagedIdentity` authentication (trusted storage).
    pub managed_identity: bool,
    /// Whether the operator grants Storage Blob Data Contributor (else it only checks).
    pub grant_access: bool,
    /// The storage accounts, in spec order.
    pub accounts: Vec<DesiredStorageAccount>,
}

/// A parsed Key Vault key identifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyId {
    /// The identifier as written in the spec.
    pub raw: String,
    /// Vault name (the host's first label).
    pub vault_name: String,
    /// Vault URL, `https://{host}/`.
    pub vault_url: String,
    /// Key name.
    pub name: String,
    /// Pinned version; `None` tracks the latest version.
    pub version: Option<String>,
}

impl KeyId {
    /// Parses `https://{vault}.{suffix}/keys/{name}[/{version}]`.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix("https://")?;
        let (host, path) = rest.split_once('/')?;
        let vault_name = host.split('.').next().filter(|n| !n.is_empty())?;
        let mut parts = path.trim_end_matches('/').split('/');
        if parts.next() != Some("keys") {
            return None;
        }
        let name = parts.next().filter(|n| !n.is_empty())?;
        let version = parts.next().map(str::to_owned);
        if parts.next().is_some() || version.as_deref() == Some("") {
            return None;
        }
        Some(Self {
            raw: raw.to_owned(),
            vault_name: vault_name.to_ascii_lowercase(),
            vault_url: format!("https://{}/", host.to_ascii_lowercase()),
            name: name.to_owned(),
            version,
        })
    }

    /// The identifier without a version (`https://{host}/keys/{name}`).
    #[must_use]
    pub fn versionless(&self) -> String {
        format!("{}keys/{}", self.vault_url, self.name)
    }
}

/// Encryption as the spec asks for it.
// NB: one value per reconcile; boxing the key would only add indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DesiredEncryption {
    /// Microsoft-managed key.
    SystemKey,
    /// A customer-managed key.
    CustomerKey {
        /// The key.
        key: KeyId,
        /// The identity that reaches it.
        identity: IdentityRef,
        /// Whether the operator grants the identity access (else it only checks).
        grant_access: bool,
    },
}

/// Whom an access grant is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalRef {
    /// An object id (lower-cased).
    Id(String),
    /// A user-assigned identity whose principal id is looked up.
    Identity(ResourceId),
}

/// One role on the account for another service's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredAccessGrant {
    /// The principal.
    pub principal: PrincipalRef,
    /// The role definition's GUID (lower-cased).
    pub role_guid: String,
}

/// Everything the spec asks for, typed. `None` sections are left as they are in Azure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// The Media Services account.
    pub account: ResourceId,
    /// The account's region as the spec names it.
    pub location: String,
    /// Identity, when managed.
    pub identity: Option<DesiredIdentity>,
    /// Storage, when managed.
    pub storage: Option<DesiredStorage>,
    /// Encryption, when managed.
    pub encryption: Option<DesiredEncryption>,
    /// Access grants (empty: none managed).
    pub access_grants: Vec<DesiredAccessGrant>,
}

impl Desired {
    /// Whether the account is to be encrypted with a customer-managed key.
    #[must_use]
    pub fn uses_customer_key(&self) -> bool {
        matches!(self.encryption, Some(DesiredEncryption::CustomerKey { .. }))
    }

    /// Validates `spec` and types it.
    ///
    /// # Errors
    /// [`SpecErrors`] naming every field that breaks a rule.
    pub fn from_spec(spec: &MediaServicesAccountSpec) -> Result<Self, SpecErrors> {
        validate_spec(spec)?;
        let mut p = Parser::default();
        let a = &spec.account;
        let account = ResourceId::media_account(&a.subscription_id, &a.resource_group, &a.name);
        let identity = spec.identity.as_ref().map(|i| DesiredIdentity {
            type_: i.type_,
            user_assigned: i
                .user_assigned_identities
                .iter()
                .enumerate()
                .filter_map(|(n, u)| p.id(format!("spec.identity.userAssignedIdentities[{n}]"), u))
                .collect(),
        });
        let storage = spec.storage.as_ref().map(|s| {
            let managed_identity = s.authentication == StorageAuthentication::ManagedIdentity;
            let mut accounts = Vec::new();
            for (n, sa) in s.accounts.iter().enumerate() {
                let Some(storage_id) = p.id(format!("spec.storage.accounts[{n}].id"), &sa.id)
                else {
                    continue;
                };
                let identity = if managed_identity {
                    let field = format!("spec.storage.accounts[{n}].identity");
                    match p.identity_ref(field, sa.identity.as_ref()) {
                        Some(i) => Some(i),
                        None => continue,
                    }
                } else {
                    None
                };
                accounts.push(DesiredStorageAccount {
                    id: storage_id,
                    primary: sa.type_ == StorageAccountType::Primary,
                    identity,
                });
            }
            DesiredStorage {
                managed_identity,
                grant_access: s.grant_access,
                accounts,
            }
        });
        let encryption = match &spec.encryption {
            None => None,
            Some(e) if e.type_ == EncryptionType::SystemKey => Some(DesiredEncryption::SystemKey),
            Some(e) => {
                let raw = e.key_identifier.as_deref().unwrap_or_default();
                let key = KeyId::parse(raw);
                if key.is_none() {
                    p.errors.push(FieldError {
                        field: "spec.encryption.keyIdentifier".to_owned(),
                        message: format!("{raw:?} is not a Key Vault key identifier"),
                    });
                }
                let identity =
                    p.identity_ref("spec.encryption.identity".to_owned(), e.identity.as_ref());
                match (key, identity) {
                    (Some(key), Some(identity)) => Some(DesiredEncryption::CustomerKey {
                        key,
                        identity,
                        grant_access: e.grant_access,
                    }),
                    _ => None,
                }
            }
        };
        let access_grants = spec
            .access_grants
            .iter()
            .enumerate()
            .filter_map(|(n, g)| p.access_grant(n, g))
            .collect();
        if !p.errors.is_empty() {
            return Err(SpecErrors(p.errors));
        }
        Ok(Self {
            account,
            location: a.location.clone(),
            identity,
            storage,
            encryption,
            access_grants,
        })
    }
}

/// Collects conversion failures. The validator has already checked every string against the
/// same patterns, so these are reported for totality, not expected.
#[derive(Default)]
struct Parser {
    errors: Vec<FieldError>,
}

impl Parser {
    fn id(&mut self, field: String, text: &str) -> Option<ResourceId> {
        match ResourceId::parse(text) {
            Ok(id) => Some(id),
            Err(e) => {
                self.errors.push(FieldError {
                    field,
                    message: e.to_string(),
                });
                None
            }
        }
    }

    fn identity_ref(&mut self, field: String, r: Option<&ResourceIdentity>) -> Option<IdentityRef> {
        match r.and_then(|r| r.user_assigned_identity.as_deref()) {
            Some(u) => self.id(field, u).map(IdentityRef::User),
            None => Some(IdentityRef::System),
        }
    }

    fn access_grant(&mut self, n: usize, g: &AccessGrant) -> Option<DesiredAccessGrant> {
        let principal = match (&g.principal_id, &g.identity_resource_id) {
            (Some(p), _) => PrincipalRef::Id(p.to_ascii_lowercase()),
            (None, Some(i)) => PrincipalRef::Identity(
                self.id(format!("spec.accessGrants[{n}].identityResourceId"), i)?,
            ),
            (None, None) => return None,
        };
        let role_guid = g.role_definition_guid()?;
        Some(DesiredAccessGrant {
            principal,
            role_guid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_identifiers_parse_with_and_without_a_version() {
        let k = KeyId::parse("https://Fabrikam-KV.vault.azure.net/keys/account-key").expect("ok");
        assert_eq!(k.vault_name, "fabrikam-kv");
        assert_eq!(k.vault_url, "https://fabrikam-kv.vault.azure.net/");
        assert_eq!(k.name, "account-key");
        assert_eq!(k.version, None);
        assert_eq!(
            k.versionless(),
            "https://fabrikam-kv.vault.azure.net/keys/account-key"
        );
        let v = KeyId::parse("https://kv1.vault.azure.net/keys/k/4f9c3a7e1b2d4c6e8f0a1b2c3d4e5f60")
            .expect("ok");
        assert_eq!(
            v.version.as_deref(),
            Some("4f9c3a7e1b2d4c6e8f0a1b2c3d4e5f60")
        );
        for bad in [
            "http://kv1.vault.azure.net/keys/k",
            "https://kv1.vault.azure.net/secrets/k",
            "https://kv1.vault.azure.net/keys/",
            "https://kv1.vault.azure.net/keys/k/v/extra",
        ] {
            assert_eq!(KeyId::parse(bad), None, "{bad}");
        }
    }
}
