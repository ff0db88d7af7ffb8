//! Observe step (I/O): reads, once per reconcile, every Azure resource the [`Desired`] state
//! depends on: the Media Services account, the user-assigned identities it names, its storage
//! accounts and their role assignments, the vault and key and the key grant, and the role
//! assignments of access grants.
//!
//! It reads only and decides nothing: each resource is read at most once per pass, and what it
//! finds is handed on as [`Observed`]. Storage in another subscription is not read at all (the
//! prerequisites step rejects it). Principals not yet known (a system-assigned identity that is
//! not on) are not looked up.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;

use crate::azure::keys::KeyInfo;
use crate::azure::models::authorization::{RoleAssignment, RoleDefinition};
use crate::azure::models::keyvault::{DeletedVault, Vault};
use crate::azure::models::media::MediaAccount;
use crate::azure::models::msi::UserAssignedIdentity;
use crate::azure::models::storage::StorageAccount;
use crate::azure::{AzureApi, AzureError, ResourceId};

use super::desired::{Desired, DesiredEncryption, IdentityRef, KeyId, PrincipalRef};

/// One storage account as found.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedStorage {
    /// Its id.
    pub id: ResourceId,
    /// The resource; `None` when it does not exist or was not read (other subscription).
    pub resource: Option<StorageAccount>,
    /// Principal of the identity that should reach it, when known.
    pub principal: Option<String>,
    /// That principal's role assignments at (or above) the storage scope.
    pub assignments: Vec<RoleAssignment>,
}

/// Where the vault named by the key identifier was found.
#[derive(Clone, Debug, PartialEq)]
pub enum VaultLookup {
    /// A live vault of the account's subscription.
    Found(Vault),
    /// Deleted, within its retention period.
    SoftDeleted(DeletedVault),
    /// Neither live nor deleted in the account's subscription.
    NotFound,
}

/// The customer key and the grant the encryption identity holds on it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedKey {
    /// The key identifier from the spec.
    pub key_id: KeyId,
    /// The vault.
    pub vault: VaultLookup,
    /// The key version in question (pinned, or the latest); `None` when absent or not read.
    pub key: Option<KeyInfo>,
    /// Principal of the encryption identity, when known.
    pub principal: Option<String>,
    /// That principal's role assignments at (or above) the key scope (RBAC vaults only).
    pub assignments: Vec<RoleAssignment>,
    /// The key read was refused to the operator's own identity (status and code): what the
    /// operator cannot see is not a verdict on the account's access.
    pub operator_refused: Option<String>,
    /// Definitions of the roles in `assignments` (RBAC vaults), to judge them by their data
    /// actions.
    pub role_definitions: Vec<RoleDefinition>,
    /// When these facts were read, and whether later reads failed.
    pub probe: ProbeInfo,
}

/// How fresh an [`ObservedKey`] is (set by the shared key monitor; a direct read leaves it at
/// its default: read just now).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeInfo {
    /// When the facts were read (`None`: in this pass).
    pub checked_at: Option<Timestamp>,
    /// Why reads after `checked_at` failed (throttled, refused, unreachable): the facts, and so
    /// the verdict, are the last ones known, not news.
    pub failing: Option<String>,
    /// The interval probes of this key actually run at, when read budgets stretched it past the
    /// interval asked for.
    pub stretched_to: Option<Duration>,
}

/// Which key to read, for which principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRequest {
    /// Subscription of the account (vaults are looked up there).
    pub subscription: String,
    /// The account's region (a deleted vault is looked up there).
    pub location: String,
    /// The key.
    pub key_id: KeyId,
    /// Principal of the encryption identity, when known.
    pub principal: Option<String>,
}

/// Where the observe step gets the customer key's facts: read directly, or from the shared
/// monitor that probes each distinct key once for all its accounts.
#[async_trait]
pub trait KeyReader: Send + Sync {
    /// The facts about the key for `request`.
    async fn read_key(&self, request: &KeyRequest) -> Result<ObservedKey, AzureError>;
}

/// Reads the key through `api` on every call.
pub struct DirectKeys<'a>(pub &'a dyn AzureApi);

#[async_trait]
impl KeyReader for DirectKeys<'_> {
    async fn read_key(&self, request: &KeyRequest) -> Result<ObservedKey, AzureError> {
        probe_key(self.0, request, None, &|_| None).await
    }
}

/// The role assignments of one access grant's principal on the account.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedGrant {
    /// The principal, when resolvable.
    pub principal: Option<String>,
    /// Its role assignments at (or above) the account scope.
    pub assignments: Vec<RoleAssignment>,
    /// Whether the role definition exists (a built-in role always does; a `roleDefinitionId`
    /// is read).
    pub role_exists: bool,
}

/// Everything read in one pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The Media Services account.
    pub account: MediaAccount,
    /// Each user-assigned identity the spec names (`None`: does not exist), by lower-cased id.
    pub identities: BTreeMap<String, Option<UserAssignedIdentity>>,
    /// Storage accounts, in spec order.
    pub storage: Vec<ObservedStorage>,
    /// The customer key, when the spec asks for one.
    pub key: Option<ObservedKey>,
    /// Access grants, in spec order.
    pub grants: Vec<ObservedGrant>,
    /// Every role assignment made exactly at the account's scope (any principal), so grants
    /// the operator made and the spec no longer lists can be found and revoked.
    pub account_assignments: Vec<RoleAssignment>,
}

/// What the observe step found.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// The account does not exist: nothing else was read.
    AccountNotFound,
    /// The account and what it depends on.
    Found(Box<Observed>),
}

impl Observed {
    /// The principal id of an identity of the account, as Azure currently reports it.
    #[must_use]
    pub fn principal_of(&self, identity: &IdentityRef) -> Option<String> {
        principal_of(&self.account, &self.identities, identity)
    }

    /// A user-assigned identity as read (`None` when missing or not read).
    #[must_use]
    pub fn identity(&self, id: &ResourceId) -> Option<&UserAssignedIdentity> {
        self.identities
            .get(&id.to_string().to_ascii_lowercase())
            .and_then(Option::as_ref)
    }
}

fn principal_of(
    account: &MediaAccount,
    identities: &BTreeMap<String, Option<UserAssignedIdentity>>,
    identity: &IdentityRef,
) -> Option<String> {
    match identity {
        IdentityRef::System => account
            .identity
            .as_ref()
            .filter(|i| i.has_system_assigned())
            .and_then(|i| i.principal_id.clone()),
        IdentityRef::User(id) => identities
            .get(&id.to_string().to_ascii_lowercase())
            .and_then(Option::as_ref)
            .and_then(|i| i.properties.principal_id.clone()),
    }
    .map(|p| p.to_ascii_lowercase())
}

/// Reads what `desired` depends on.
///
/// # Errors
/// The first failed Azure read (throttled, forbidden, unreachable); nothing is retried here.
pub async fn observe(
    api: &dyn AzureApi,
    desired: &Desired,
    keys: &dyn KeyReader,
) -> Result<Observation, AzureError> {
    let Some(account) = api.get_media_account(&desired.account).await? else {
        return Ok(Observation::AccountNotFound);
    };

    // Every user-assigned identity named anywhere, read once.
    let mut identities = BTreeMap::new();
    let referenced = desired
        .identity
        .iter()
        .flat_map(|i| i.user_assigned.iter())
        .chain(
            desired
                .access_grants
                .iter()
                .filter_map(|g| match &g.principal {
                    PrincipalRef::Identity(id) => Some(id),
                    PrincipalRef::Id(_) => None,
                }),
        );
    for id in referenced {
        if let std::collections::btree_map::Entry::Vacant(slot) =
            identities.entry(id.to_string().to_ascii_lowercase())
        {
            slot.insert(api.get_user_assigned_identity(id).await?);
        }
    }

    let mut storage = Vec::new();
    for sa in desired.storage.iter().flat_map(|s| s.accounts.iter()) {
        if !sa.id.same_subscription(&desired.account) {
            storage.push(ObservedStorage {
                id: sa.id.clone(),
                resource: None,
                principal: None,
                assignments: Vec::new(),
            });
            continue;
        }
        let resource = api.get_storage_account(&sa.id).await?;
        let principal = sa
            .identity
            .as_ref()
            .and_then(|i| principal_of(&account, &identities, i));
        let assignments = match (&resource, &principal) {
            (Some(_), Some(p)) => {
                api.list_role_assignments(&sa.id.to_string(), Some(p))
                    .await?
            }
            _ => Vec::new(),
        };
        storage.push(ObservedStorage {
            id: sa.id.clone(),
            resource,
            principal,
            assignments,
        });
    }

    let key = match &desired.encryption {
        Some(DesiredEncryption::CustomerKey { key, identity, .. }) => {
            let principal = principal_of(&account, &identities, identity);
            // A deleted vault keeps its region; the key's vault must be in the account's.
            let location = super::rules::normalise_location(
                account.location.as_deref().unwrap_or(&desired.location),
            );
            let request = KeyRequest {
                subscription: desired.account.subscription().to_owned(),
                location,
                key_id: key.clone(),
                principal,
            };
            Some(keys.read_key(&request).await?)
        }
        _ => None,
    };

    let (grants, account_assignments) = observe_grants(api, desired, &identities).await?;
    Ok(Observation::Found(Box::new(Observed {
        account,
        identities,
        storage,
        key,
        grants,
        account_assignments,
    })))
}

/// The access grants' principals and their assignments on the account, and every assignment
/// made exactly at the account's scope.
async fn observe_grants(
    api: &dyn AzureApi,
    desired: &Desired,
    identities: &BTreeMap<String, Option<UserAssignedIdentity>>,
) -> Result<(Vec<ObservedGrant>, Vec<RoleAssignment>), AzureError> {
    let mut grants = Vec::new();
    let mut by_principal: BTreeMap<String, Vec<RoleAssignment>> = BTreeMap::new();
    let mut roles: BTreeMap<String, bool> = BTreeMap::new();
    for g in &desired.access_grants {
        let principal = match &g.principal {
            PrincipalRef::Id(p) => Some(p.clone()),
            PrincipalRef::Identity(id) => identities
                .get(&id.to_string().to_ascii_lowercase())
                .and_then(Option::as_ref)
                .and_then(|i| i.properties.principal_id.as_ref())
                .map(|p| p.to_ascii_lowercase()),
        };
        let assignments = match &principal {
            Some(p) => {
                if !by_principal.contains_key(p) {
                    let found = api
                        .list_role_assignments(&desired.account.to_string(), Some(p))
                        .await?;
                    by_principal.insert(p.clone(), found);
                }
                by_principal[p].clone()
            }
            None => Vec::new(),
        };
        let built_in = crate::crd::account::BuiltInRole::ALL
            .iter()
            .any(|r| r.definition_guid().eq_ignore_ascii_case(&g.role_guid));
        let role_exists = if built_in {
            true
        } else if let Some(known) = roles.get(&g.role_guid) {
            *known
        } else {
            let scope = format!("/subscriptions/{}", desired.account.subscription());
            let found = api
                .get_role_definition(&scope, &g.role_guid)
                .await?
                .is_some();
            roles.insert(g.role_guid.clone(), found);
            found
        };
        grants.push(ObservedGrant {
            principal,
            assignments,
            role_exists,
        });
    }

    let account_scope = desired.account.to_string();
    let account_assignments = api
        .list_role_assignments(&account_scope, None)
        .await?
        .into_iter()
        .filter(|a| {
            a.properties
                .scope
                .as_deref()
                .is_some_and(|s| crate::azure::resource_id::ids_equal(s, &account_scope))
        })
        .collect();
    Ok((grants, account_assignments))
}

/// Reads the vault, the key version and the principal's grant on it. `vaults` is the
/// subscription's vault list when a probe round already read it (shared by every key of the
/// round); `known_role` answers role definitions read earlier.
///
/// # Errors
/// The first failed read other than the operator's own 403 on the key (which is reported in
/// [`ObservedKey::operator_refused`]).
pub async fn probe_key(
    api: &dyn AzureApi,
    request: &KeyRequest,
    vaults: Option<&[Vault]>,
    known_role: &(dyn Fn(&str) -> Option<RoleDefinition> + Send + Sync),
) -> Result<ObservedKey, AzureError> {
    let key_id = &request.key_id;
    let listed;
    let vaults = if let Some(v) = vaults {
        v
    } else {
        listed = api.list_vaults(&request.subscription).await?;
        &listed[..]
    };
    let vault = vaults.iter().find(|v| {
        v.name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(&key_id.vault_name))
    });
    let vault = if let Some(v) = vault {
        VaultLookup::Found(v.clone())
    } else {
        match api
            .get_deleted_vault(&request.subscription, &request.location, &key_id.vault_name)
            .await?
        {
            Some(d) => VaultLookup::SoftDeleted(d),
            None => VaultLookup::NotFound,
        }
    };
    let mut operator_refused = None;
    let mut role_definitions: Vec<RoleDefinition> = Vec::new();
    let (key, assignments) = match &vault {
        VaultLookup::Found(v) => {
            let key = match api
                .get_key(&key_id.vault_url, &key_id.name, key_id.version.as_deref())
                .await
            {
                Ok(key) => key,
                Err(e) if e.status() == Some(403) => {
                    operator_refused =
                        Some(format!("HTTP 403 {}", e.code().unwrap_or("Forbidden")));
                    None
                }
                Err(e) => return Err(e),
            };
            let rbac = v.properties.enable_rbac_authorization == Some(true);
            let assignments = match (&request.principal, &v.id, rbac) {
                (Some(p), Some(vault_id), true) => {
                    let scope = format!("{vault_id}/keys/{}", key_id.name);
                    api.list_role_assignments(&scope, Some(p)).await?
                }
                _ => Vec::new(),
            };
            for a in &assignments {
                let guid = a.role_definition_guid().to_ascii_lowercase();
                if role_definitions.iter().any(|d| {
                    d.name
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(&guid))
                }) {
                    continue;
                }
                let definition = if let Some(d) = known_role(&guid) {
                    Some(d)
                } else {
                    let scope = format!("/subscriptions/{}", request.subscription);
                    api.get_role_definition(&scope, &guid).await?
                };
                if let Some(mut d) = definition {
                    d.name = Some(guid);
                    role_definitions.push(d);
                }
            }
            (key, assignments)
        }
        _ => (None, Vec::new()),
    };
    Ok(ObservedKey {
        key_id: key_id.clone(),
        vault,
        key,
        principal: request.principal.clone(),
        assignments,
        operator_refused,
        role_definitions,
        probe: ProbeInfo::default(),
    })
}
