//! The local endpoints on `localhost`: the managed-identity token endpoint and the admin API.
//!
//! The admin API changes the world out of band (disable/expire/delete a key, restrict its
//! operations, add a version, remove a role assignment or access policy, delete a vault, close
//! a firewall, move the clock) and sets the knobs (latency, faults, throttling, propagation
//! delay, LRO length). The same commands back the `Emulator` handle's methods, so tests
//! in-process and tools over HTTP see one behaviour. Admin calls are never faulted, throttled or authenticated: the listener is
//! loopback-only.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::crypto::KeyMaterial;
use super::entra;
use super::knobs::{FaultRule, ThrottleLimits};
use super::state::{Shared, World, add_key_version, key_of};
use super::wire::{ApiError, Req, json_response};

/// An out-of-band change to the world or its knobs.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", tag = "op", rename_all_fields = "camelCase")]
pub enum AdminCommand {
    /// Disables a key version (the latest when `version` is absent).
    DisableKey {
        /// Vault name.
        vault: String,
        /// Key name.
        key: String,
        /// Version; latest when absent.
        #[serde(default)]
        version: Option<String>,
    },
    /// Enables a key version.
    EnableKey {
        /// Vault name.
        vault: String,
        /// Key name.
        key: String,
        /// Version; latest when absent.
        #[serde(default)]
        version: Option<String>,
    },
    /// Sets a key version's expiry (`at`, unix seconds; now when absent).
    ExpireKey {
        /// Vault name.
        vault: String,
        /// Key name.
        key: String,
        /// Version; latest when absent.
        #[serde(default)]
        version: Option<String>,
        /// Expiry time (unix seconds); the emulator's now when absent.
        #[serde(default)]
        at: Option<i64>,
    },
    /// Sets a key version's not-before time (`at`, unix seconds), or clears it (`at` absent).
    SetKeyNotBefore {
        /// Vault name.
        vault: String,
        /// Key name.
        key: String,
        /// Version; latest when absent.
        #[serde(default)]
        version: Option<String>,
        /// Not-before time (unix seconds); absent clears it.
        #[serde(default)]
        at: Option<i64>,
    },
    /// Sets a key version's permitted operations (`key_ops`), as an `UpdateKey` with
    /// `key_ops` does; e.g. `["wrapKey"]` for a key that may wrap but not unwrap.
    SetKeyOperations {
        /// Vault name.
        vault: String,
        /// Key name.
        key: String,
        /// Version; latest when absent.
        #[serde(default)]
        version: Option<String>,
        /// The operations now permitted (`encrypt`, `decrypt`, `sign`, `verify`, `wrapKey`,
        /// `unwrapKey`, …).
        ops: Vec<String>,
    },
    /// Soft-deletes a key (or removes it when the vault has no soft delete).
    DeleteKey {
        /// Vault name.
        vault: String,
        /// Key name.
        key: String,
    },
    /// Recovers a soft-deleted key.
    RecoverKey {
        /// Vault name.
        vault: String,
        /// Key name.
        key: String,
    },
    /// Adds a key version (same type and size as the latest, or RSA 2048 for a new key).
    AddKeyVersion {
        /// Vault name.
        vault: String,
        /// Key name.
        key: String,
    },
    /// Removes a role assignment by its full id.
    RemoveRoleAssignment {
        /// Full id.
        id: String,
    },
    /// Removes every role assignment of a principal (optionally only at scopes under `scope`).
    RemoveRoleAssignmentsOf {
        /// Object id, seeded name or identity resource id.
        principal: String,
        /// Scope filter.
        #[serde(default)]
        scope: Option<String>,
    },
    /// Removes an access policy entry from a vault.
    RemoveAccessPolicy {
        /// Vault name.
        vault: String,
        /// Object id (or seeded name / identity id).
        object_id: String,
    },
    /// Soft-deletes a vault.
    DeleteVault {
        /// Vault name.
        vault: String,
    },
    /// Recovers a soft-deleted vault.
    RecoverVault {
        /// Vault name.
        vault: String,
    },
    /// What Key Vault does once a soft-deleted vault's retention period has passed: purges it,
    /// purge protection or not (protection only refuses purges asked for earlier).
    PurgeAfterRetention {
        /// Vault name.
        vault: String,
    },
    /// Sets a vault's firewall (`networkAcls`).
    SetVaultFirewall {
        /// Vault name.
        vault: String,
        /// `Allow` or `Deny`.
        default_action: String,
        /// `AzureServices` or `None`.
        #[serde(default)]
        bypass: Option<String>,
        /// Allowed CIDRs.
        #[serde(default)]
        ip_rules: Vec<String>,
    },
    /// Revokes one client secret of an application, as deleting it in Entra does: token
    /// requests with it then fail as Entra answers a wrong secret (401 `invalid_client`,
    /// `AADSTS7000215`). Tokens issued before stay valid until they expire, as in Entra.
    RevokeClientSecret {
        /// The application: seeded name or client id.
        client: String,
        /// The secret to revoke.
        secret: String,
    },
    /// Adds a client secret to an application (a new credential in Entra).
    AddClientSecret {
        /// The application: seeded name or client id.
        client: String,
        /// The new secret.
        secret: String,
    },
    /// Sets the lifetime of the access tokens issued from now on (seconds; absent: Entra's
    /// default of an hour). Under five minutes, the SDKs ask for a token on every call.
    SetTokenLifetime {
        /// Seconds.
        #[serde(default)]
        seconds: Option<u64>,
    },
    /// Moves the emulator clock forward.
    AdvanceClock {
        /// Seconds to add.
        seconds: i64,
    },
    /// Re-runs the customer-key access check of every account now.
    RecheckKeyAccess,
    /// Sets the latency of an operation (or `prefix*`); 0 removes it.
    SetLatency {
        /// Operation pattern.
        operation: String,
        /// Milliseconds.
        millis: u64,
    },
    /// Arms a fault.
    InjectFault(FaultRule),
    /// Disarms every fault.
    ClearFaults,
    /// Turns ARM throttling on with these limits, or off (`null`).
    SetThrottling {
        /// Limits, or `None` to disable.
        #[serde(default)]
        limits: Option<ThrottleLimits>,
    },
    /// Holds (or releases) the background pick-up of new key versions by accounts.
    HoldKeyRotation {
        /// Whether accounts stay on their current version.
        hold: bool,
    },
    /// Sets the role-assignment propagation delay for new principals.
    SetPropagationDelay {
        /// Seconds.
        seconds: u64,
    },
    /// Leaves role assignments younger than this out of list answers (0 turns it off).
    SetRoleAssignmentListLag {
        /// Seconds.
        seconds: u64,
    },
    /// Sets how many status polls a Media Services operation stays `InProgress`.
    SetLroPolls {
        /// Polls.
        polls: u32,
    },
    /// Makes the next Media Services PUT/PATCH operation end `Failed` with this error.
    FailNextOperation {
        /// `error.code` of the operation status.
        code: String,
        /// `error.message` of the operation status.
        message: String,
    },
    /// Mints a "projected service account token" for a federated credential.
    MintServiceAccountToken {
        /// Subject, e.g. `system:serviceaccount:ns:sa`.
        subject: String,
        /// Audience (default `api://AzureADTokenExchange`).
        #[serde(default)]
        audience: Option<String>,
        /// Issuer (default: the emulator's OIDC issuer).
        #[serde(default)]
        issuer: Option<String>,
        /// Lifetime in seconds (default 3600).
        #[serde(default)]
        lifetime_secs: Option<i64>,
    },
    /// Empties the request log and counters.
    ClearRequestLog,
}

/// Applies a command; returns a JSON result.
pub fn apply(shared: &Shared, cmd: AdminCommand) -> Result<Value, String> {
    if let AdminCommand::MintServiceAccountToken {
        subject,
        audience,
        issuer,
        lifetime_secs,
    } = &cmd
    {
        let aud = audience
            .as_deref()
            .unwrap_or(super::seed::DEFAULT_ASSERTION_AUDIENCE);
        let token = entra::mint_assertion(
            shared,
            issuer.as_deref(),
            subject,
            aud,
            lifetime_secs.unwrap_or(3600),
        )?;
        return Ok(json!({"token": token}));
    }
    let mut w = shared.world();
    apply_to_world(&mut w, cmd)
}

fn with_version<'a>(
    w: &'a mut World,
    vault: &str,
    key: &str,
    version: Option<&str>,
) -> Result<&'a mut super::state::KeyVersion, String> {
    let v = w
        .vault_by_name_mut(vault)
        .ok_or_else(|| format!("no vault named {vault}"))?;
    let k = v
        .keys
        .get_mut(&key.to_ascii_lowercase())
        .ok_or_else(|| format!("no key {key} in {vault}"))?;
    match version {
        Some(ver) => k
            .versions
            .iter_mut()
            .find(|x| x.version.eq_ignore_ascii_case(ver))
            .ok_or_else(|| format!("no version {ver}")),
        None => k
            .versions
            .last_mut()
            .ok_or_else(|| "key has no versions".to_owned()),
    }
}

/// The service principal of an application, by seeded name or client id.
fn application<'a>(
    w: &'a mut World,
    client: &str,
) -> Result<&'a mut super::state::Principal, String> {
    let oid = w
        .resolve_principal(client)
        .ok_or_else(|| format!("no application {client}"))?;
    w.principals
        .get_mut(&key_of(&oid))
        .filter(|p| p.kind == super::state::PrincipalKind::ServicePrincipal)
        .ok_or_else(|| format!("{client} is not an application"))
}

fn apply_to_world(w: &mut World, cmd: AdminCommand) -> Result<Value, String> {
    let now = w.now_unix();
    apply_rest(w, cmd, now)
}

#[allow(clippy::too_many_lines)]
fn apply_rest(w: &mut World, cmd: AdminCommand, now: i64) -> Result<Value, String> {
    match cmd {
        AdminCommand::DisableKey {
            vault,
            key,
            version,
        } => {
            let v = with_version(w, &vault, &key, version.as_deref())?;
            v.enabled = false;
            v.updated = now;
            Ok(json!({"version": v.version}))
        }
        AdminCommand::EnableKey {
            vault,
            key,
            version,
        } => {
            let v = with_version(w, &vault, &key, version.as_deref())?;
            v.enabled = true;
            v.updated = now;
            Ok(json!({"version": v.version}))
        }
        AdminCommand::ExpireKey {
            vault,
            key,
            version,
            at,
        } => {
            let v = with_version(w, &vault, &key, version.as_deref())?;
            v.exp = Some(at.unwrap_or(now));
            v.updated = now;
            Ok(json!({"version": v.version, "exp": v.exp}))
        }
        AdminCommand::SetKeyNotBefore {
            vault,
            key,
            version,
            at,
        } => {
            let v = with_version(w, &vault, &key, version.as_deref())?;
            v.nbf = at;
            v.updated = now;
            Ok(json!({"version": v.version, "nbf": v.nbf}))
        }
        AdminCommand::SetKeyOperations {
            vault,
            key,
            version,
            ops,
        } => {
            let v = with_version(w, &vault, &key, version.as_deref())?;
            v.key_ops = ops;
            v.updated = now;
            Ok(json!({"version": v.version, "keyOps": v.key_ops}))
        }
        AdminCommand::DeleteKey { vault, key } => {
            let v = w
                .vault_by_name_mut(&vault)
                .ok_or_else(|| format!("no vault named {vault}"))?;
            let soft = v.soft_delete();
            let days = v.retention_days();
            let lname = key.to_ascii_lowercase();
            let k = v
                .keys
                .get_mut(&lname)
                .ok_or_else(|| format!("no key {key}"))?;
            k.deleted = Some(super::state::DeletedInfo {
                deleted_date: now,
                scheduled_purge_date: now + days * 86_400,
            });
            if !soft {
                v.keys.remove(&lname);
            }
            Ok(json!({"softDeleted": soft}))
        }
        AdminCommand::RecoverKey { vault, key } => {
            let v = w
                .vault_by_name_mut(&vault)
                .ok_or_else(|| format!("no vault named {vault}"))?;
            let k = v
                .keys
                .get_mut(&key.to_ascii_lowercase())
                .ok_or_else(|| format!("no key {key}"))?;
            k.deleted = None;
            Ok(json!({}))
        }
        AdminCommand::AddKeyVersion { vault, key } => {
            let v = w
                .vault_by_name_mut(&vault)
                .ok_or_else(|| format!("no vault named {vault}"))?;
            let latest = v
                .keys
                .get(&key.to_ascii_lowercase())
                .and_then(|k| k.latest().cloned());
            let (kty, material) = match latest {
                Some(l) => (
                    l.kty.clone(),
                    match &l.material {
                        KeyMaterial::Rsa { bits, .. } => KeyMaterial::generate_rsa(*bits),
                        KeyMaterial::Ec { crv, .. } => KeyMaterial::generate_ec(crv),
                    }
                    .map_err(|e| e.to_string())?,
                ),
                None => (
                    "RSA".to_owned(),
                    KeyMaterial::generate_rsa(2048).map_err(|e| e.to_string())?,
                ),
            };
            let created = add_key_version(v, &key, &kty, material, None, now);
            let kid = format!(
                "https://{}.vault.azure.net/keys/{}/{}",
                v.name().to_ascii_lowercase(),
                v.keys[&key.to_ascii_lowercase()].name,
                created.version
            );
            Ok(json!({"version": created.version, "kid": kid}))
        }
        AdminCommand::RemoveRoleAssignment { id } => {
            let removed = w.role_assignments.remove(&key_of(&id)).is_some();
            if removed {
                Ok(json!({"removed": 1}))
            } else {
                Err(format!("no role assignment {id}"))
            }
        }
        AdminCommand::RemoveRoleAssignmentsOf { principal, scope } => {
            let oid = w.resolve_principal(&principal).unwrap_or(principal);
            let before = w.role_assignments.len();
            w.role_assignments.retain(|_, ra| {
                !(ra.principal_id.eq_ignore_ascii_case(&oid)
                    && scope
                        .as_deref()
                        .is_none_or(|s| super::state::scope_covers(s, &ra.scope)))
            });
            Ok(json!({"removed": before - w.role_assignments.len()}))
        }
        AdminCommand::RemoveAccessPolicy { vault, object_id } => {
            let oid = w.resolve_principal(&object_id).unwrap_or(object_id);
            let v = w
                .vault_by_name_mut(&vault)
                .ok_or_else(|| format!("no vault named {vault}"))?;
            let policies = v
                .resource
                .pointer_mut("/properties/accessPolicies")
                .and_then(Value::as_array_mut)
                .ok_or("vault has no access policies")?;
            let before = policies.len();
            policies.retain(|p| {
                !p["objectId"]
                    .as_str()
                    .is_some_and(|o| o.eq_ignore_ascii_case(&oid))
            });
            Ok(json!({"removed": before - policies.len()}))
        }
        AdminCommand::DeleteVault { vault } => {
            let at = w.now();
            let v = w
                .vault_by_name_mut(&vault)
                .ok_or_else(|| format!("no vault named {vault}"))?;
            v.deleted_at = Some(at);
            Ok(json!({}))
        }
        AdminCommand::RecoverVault { vault } => {
            let key = w
                .deleted_vault_key(&vault)
                .ok_or_else(|| format!("no deleted vault named {vault}"))?;
            if let Some(v) = w.vaults.get_mut(&key) {
                v.deleted_at = None;
            }
            Ok(json!({}))
        }
        AdminCommand::PurgeAfterRetention { vault } => {
            let key = w
                .deleted_vault_key(&vault)
                .ok_or_else(|| format!("no deleted vault named {vault}"))?;
            w.vaults.remove(&key);
            Ok(json!({}))
        }
        AdminCommand::SetVaultFirewall {
            vault,
            default_action,
            bypass,
            ip_rules,
        } => {
            let v = w
                .vault_by_name_mut(&vault)
                .ok_or_else(|| format!("no vault named {vault}"))?;
            v.resource["properties"]["networkAcls"] = json!({
                "defaultAction": default_action,
                "bypass": bypass.unwrap_or_else(|| "AzureServices".into()),
                "ipRules": ip_rules.iter().map(|r| json!({"value": r})).collect::<Vec<_>>(),
                "virtualNetworkRules": [],
            });
            Ok(v.resource["properties"]["networkAcls"].clone())
        }
        AdminCommand::RevokeClientSecret { client, secret } => {
            let p = application(w, &client)?;
            let before = p.secrets.len();
            p.secrets.retain(|s| *s != secret);
            if p.secrets.len() == before {
                return Err(format!("application {client} has no such secret"));
            }
            Ok(json!({"secrets": p.secrets.len()}))
        }
        AdminCommand::AddClientSecret { client, secret } => {
            let p = application(w, &client)?;
            if !p.secrets.contains(&secret) {
                p.secrets.push(secret);
            }
            Ok(json!({"secrets": p.secrets.len()}))
        }
        AdminCommand::SetTokenLifetime { seconds } => {
            w.knobs.token_lifetime = seconds.map(Duration::from_secs);
            Ok(json!({}))
        }
        AdminCommand::AdvanceClock { seconds } => {
            w.clock_offset += chrono::Duration::seconds(seconds);
            Ok(json!({"now": w.now().to_rfc3339()}))
        }
        AdminCommand::RecheckKeyAccess => {
            let changed = w.recheck_all_key_access();
            Ok(
                json!({"changed": changed.iter().map(|(id, ka)| json!({"id": id, "keyAccess": ka})).collect::<Vec<_>>()}),
            )
        }
        AdminCommand::SetLatency { operation, millis } => {
            if millis == 0 {
                w.knobs.latency.remove(&operation);
            } else {
                w.knobs
                    .latency
                    .insert(operation, Duration::from_millis(millis));
            }
            Ok(json!({}))
        }
        AdminCommand::InjectFault(rule) => {
            w.knobs.faults.push(rule);
            Ok(json!({"armed": w.knobs.faults.len()}))
        }
        AdminCommand::ClearFaults => {
            w.knobs.faults.clear();
            Ok(json!({}))
        }
        AdminCommand::SetThrottling { limits } => {
            w.knobs.throttle = limits;
            w.knobs.buckets.clear();
            Ok(json!({}))
        }
        AdminCommand::HoldKeyRotation { hold } => {
            w.knobs.hold_key_rotation = hold;
            Ok(json!({}))
        }
        AdminCommand::SetPropagationDelay { seconds } => {
            w.knobs.propagation_delay = Duration::from_secs(seconds);
            Ok(json!({}))
        }
        AdminCommand::SetRoleAssignmentListLag { seconds } => {
            w.knobs.role_assignment_list_lag = Duration::from_secs(seconds);
            Ok(json!({}))
        }
        AdminCommand::SetLroPolls { polls } => {
            w.knobs.lro_polls = polls;
            Ok(json!({}))
        }
        AdminCommand::FailNextOperation { code, message } => {
            w.knobs.fail_next_operation = Some((code, message));
            Ok(json!({}))
        }
        AdminCommand::ClearRequestLog => {
            w.log.clear();
            w.counters.clear();
            Ok(json!({}))
        }
        AdminCommand::MintServiceAccountToken { .. } => Err("handled by apply".into()),
    }
}

/// A JSON snapshot of the world for tests and humans.
#[must_use]
pub fn snapshot(w: &World) -> Value {
    json!({
        "tenantId": w.tenant_id,
        "oidcIssuer": w.oidc_issuer,
        "now": w.now().to_rfc3339(),
        "principals": w.principals.values().collect::<Vec<_>>(),
        "roleAssignments": w.role_assignments.values().collect::<Vec<_>>(),
        "mediaAccounts": w.media.values().map(|a| json!({
            "id": a.resource["id"],
            "provisioningState": a.provisioning_state,
            "systemPrincipal": a.system_principal,
            "keyAccess": a.key_access,
        })).collect::<Vec<_>>(),
        "vaults": w.vaults.values().map(|v| json!({
            "id": v.id(),
            "deleted": v.deleted_at.is_some(),
            "keys": v.keys.values().map(|k| json!({
                "name": k.name,
                "deleted": k.deleted.is_some(),
                "versions": k.versions.iter().map(|x| json!({"version": x.version, "kty": x.kty, "enabled": x.enabled, "exp": x.exp, "nbf": x.nbf})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// The operation name of a local request.
#[must_use]
pub fn operation(req: &Req) -> String {
    if req.path == "/msi/token" {
        return "ManagedIdentityToken".into();
    }
    match req.path.strip_prefix("/_emulator/") {
        Some(rest) => format!("Admin_{}", rest.replace('/', "_")),
        None => "Local_Unknown".into(),
    }
}

/// Handles a request to `localhost`.
pub fn handle(shared: &Shared, req: &Req) -> Response<Body> {
    if req.path == "/msi/token" && req.method == Method::GET {
        return entra::msi_token(shared, req);
    }
    let result = match (req.method.clone(), req.path.as_str()) {
        (Method::GET, "/_emulator/state") => Ok(snapshot(&shared.world())),
        (Method::GET, "/_emulator/requests") => Ok(json!({"value": shared.world().log})),
        (Method::GET, "/_emulator/counters") => Ok(json!(shared.world().counters)),
        (Method::POST, "/_emulator/admin") => {
            match serde_json::from_slice::<AdminCommand>(&req.body) {
                Ok(cmd) => apply(shared, cmd),
                Err(e) => Err(format!("not an admin command: {e}")),
            }
        }
        _ => {
            return ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("No local endpoint {} {}.", req.method, req.path),
            )
            .into_response();
        }
    };
    match result {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => ApiError::bad_request("AdminCommandFailed", e).into_response(),
    }
}
