//! Key Vault data plane, keys API 7.5, served on `<vault>.vault.azure.net`.
//!
//! Create, get (latest or by version), list keys and versions (`maxresults` + `nextLink`),
//! update attributes, rotate, delete (soft) / get deleted / recover / purge, and
//! wrapKey/unwrapKey/encrypt/decrypt with real RSA. Every call is authenticated (401 challenge
//! as Key Vault sends it) and authorized from the token: access policies in policy mode, role
//! assignments' data actions in RBAC mode, after the vault firewall. Secrets, certificates,
//! import, backup/restore, sign/verify and rotation policies are not emulated.

use axum::body::Body;
use axum::http::{Method, Response, StatusCode};
use base64::Engine as _;
use serde_json::{Value, json};

use super::crypto::{KeyMaterial, b64url, b64url_decode};
use super::entra::{VAULT_AUDIENCES, authenticate};
use super::state::{
    DeletedInfo, Key, KeyVersion, KvDenied, KvOp, Shared, Vault, World, add_key_version,
};
use super::wire::{
    ApiError, AuthFailure, Caller, Req, ResetConnection, empty_response, json_response,
};

/// The data-plane api-version.
pub const API_VERSION: &str = "7.5";

/// The operation name of a data-plane request.
#[must_use]
pub fn operation(req: &Req) -> String {
    let segs: Vec<&str> = req
        .path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let last = segs
        .last()
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    let name = match (
        segs.first().copied().unwrap_or_default(),
        segs.len(),
        &req.method,
    ) {
        ("keys", 1, &Method::GET) => "GetKeys",
        ("keys", 3, &Method::POST) if last == "create" => "CreateKey",
        ("keys", 3, &Method::POST) if last == "rotate" => "RotateKey",
        ("keys", 3, &Method::GET) if last == "versions" => "GetKeyVersions",
        ("keys", 2 | 3, &Method::GET) => "GetKey",
        ("keys", 2 | 3, &Method::PATCH) => "UpdateKey",
        ("keys", 2, &Method::DELETE) => "DeleteKey",
        ("keys", 3 | 4, &Method::POST) => match last.as_str() {
            "wrapkey" => "wrapKey",
            "unwrapkey" => "unwrapKey",
            "encrypt" => "encrypt",
            "decrypt" => "decrypt",
            _ => "KeyVault_Unknown",
        },
        ("deletedkeys", 1, &Method::GET) => "GetDeletedKeys",
        ("deletedkeys", 2, &Method::GET) => "GetDeletedKey",
        ("deletedkeys", 2, &Method::DELETE) => "PurgeDeletedKey",
        ("deletedkeys", 3, &Method::POST) if last == "recover" => "RecoverDeletedKey",
        _ => "KeyVault_Unknown",
    };
    name.to_owned()
}

fn kv_error(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, code, message)
}

fn challenge(tenant: &str, code: &str, message: &str) -> Response<Body> {
    kv_error(StatusCode::UNAUTHORIZED, "Unauthorized", format!("{code}: {message}"))
        .header(
            axum::http::header::WWW_AUTHENTICATE,
            format!("Bearer authorization=\"https://login.microsoftonline.com/{tenant}\", resource=\"https://vault.azure.net\""),
        )
        .into_response()
}

/// Handles a request for vault `vault_name`.
pub fn handle(shared: &Shared, vault_name: &str, req: &Req) -> Response<Body> {
    let tenant = {
        let w = shared.world();
        let Some(v) = w.vault_by_name(vault_name) else {
            // A deleted or unknown vault has no DNS name: the client sees a transport error.
            let mut r = empty_response(StatusCode::BAD_GATEWAY);
            r.extensions_mut().insert(ResetConnection);
            return r;
        };
        v.tenant().to_owned()
    };
    let caller = match authenticate(shared, req, VAULT_AUDIENCES, &tenant) {
        Ok(c) => c,
        Err(f) => {
            let (code, message) = match f {
                AuthFailure::Missing => (
                    "AKV10000",
                    "Request is missing a Bearer or PoP token.".to_owned(),
                ),
                AuthFailure::Invalid => (
                    "AKV10019",
                    "Token validation failed: the signature is invalid.".to_owned(),
                ),
                AuthFailure::Expired => (
                    "AKV10021",
                    "Token validation failed: the token is expired.".to_owned(),
                ),
                AuthFailure::WrongAudience => (
                    "AKV10022",
                    "Invalid audience. Expected https://vault.azure.net.".to_owned(),
                ),
                AuthFailure::WrongTenant => (
                    "AKV10032",
                    format!("Invalid issuer. Expected one of https://sts.windows.net/{tenant}/."),
                ),
            };
            return challenge(&tenant, code, &message);
        }
    };
    let result = match req.query("api-version") {
        None => Err(kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The 'api-version' query parameter is missing.",
        )),
        Some(v) if v != API_VERSION => Err(kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            format!(
                "The specified version ({v}) is not recognized. Consider using the latest supported version ({API_VERSION})."
            ),
        )),
        Some(_) => {
            let mut w = shared.world();
            route(&mut w, vault_name, &caller, req)
        }
    };
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.extensions_mut().insert(caller);
    resp
}

fn caller_text(c: &Caller) -> String {
    format!(
        "appid={};oid={};iss=https://sts.windows.net/{}/",
        c.appid, c.oid, c.tid
    )
}

fn authorize(
    w: &World,
    vault: &Vault,
    caller: &Caller,
    op: KvOp,
    key: Option<&str>,
    req: &Req,
) -> Result<(), ApiError> {
    let where_ = format!("{};location={}", vault.name(), vault.location());
    match w.kv_authorize(vault, &caller.oid, op, key, Some(req.peer)) {
        Ok(()) => Ok(()),
        Err(KvDenied::Firewall) => Err(kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("Client address is not authorized and caller is not a trusted service.\r\nClient address: {}\r\nCaller: {}\r\nVault: {where_}", req.peer, caller_text(caller)),
        )
        .inner("ForbiddenByFirewall")),
        Err(KvDenied::Policy { permission }) => Err(kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("The user, group or application '{}' does not have keys {permission} permission on key vault '{where_}'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287", caller_text(caller)),
        )
        .inner("AccessDenied")),
        Err(KvDenied::Rbac { action, scope }) => Err(kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: {}\r\nAction: '{action}'\r\nResource: '{}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\nVault: {where_}\r\n", caller_text(caller), scope.to_ascii_lowercase()),
        )
        .inner("ForbiddenByRbac")),
    }
}

/// The answer for a vault that does not exist (or was deleted) in this emulator's world.
fn vault_not_found() -> ApiError {
    kv_error(
        StatusCode::NOT_FOUND,
        "VaultNotFound",
        "The vault was not found.",
    )
}

fn key_not_found(name: &str) -> ApiError {
    kv_error(
        StatusCode::NOT_FOUND,
        "KeyNotFound",
        format!(
            "A key with (name/id) {name} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
    )
}

fn recovery_level(v: &Vault) -> &'static str {
    match (v.soft_delete(), v.purge_protection()) {
        (true, true) => "Recoverable",
        (true, false) => "Recoverable+Purgeable",
        _ => "Purgeable",
    }
}

fn base_url(v: &Vault) -> String {
    format!("https://{}.vault.azure.net", v.name().to_ascii_lowercase())
}

fn attributes(v: &Vault, k: &KeyVersion) -> Value {
    let mut a = json!({
        "enabled": k.enabled,
        "created": k.created,
        "updated": k.updated,
        "recoveryLevel": recovery_level(v),
        "exportable": false,
    });
    if v.soft_delete() {
        a["recoverableDays"] = json!(v.retention_days());
    }
    if let Some(nbf) = k.nbf {
        a["nbf"] = json!(nbf);
    }
    if let Some(exp) = k.exp {
        a["exp"] = json!(exp);
    }
    a
}

fn bundle(v: &Vault, key: &Key, k: &KeyVersion) -> Value {
    let kid = format!("{}/keys/{}/{}", base_url(v), key.name, k.version);
    let jwk = match &k.material {
        KeyMaterial::Rsa { n, e, .. } => {
            json!({"kid": kid, "kty": k.kty, "key_ops": k.key_ops, "n": b64url(n), "e": b64url(e)})
        }
        KeyMaterial::Ec { crv, x, y } => {
            json!({"kid": kid, "kty": k.kty, "key_ops": k.key_ops, "crv": crv, "x": b64url(x), "y": b64url(y)})
        }
    };
    let mut b = json!({"key": jwk, "attributes": attributes(v, k)});
    if !k.tags.is_empty() {
        b["tags"] = Value::Object(k.tags.clone());
    }
    b
}

fn deleted_bundle(v: &Vault, key: &Key) -> Value {
    let Some(latest) = key.latest() else {
        return json!({});
    };
    let mut b = bundle(v, key, latest);
    if let Some(d) = &key.deleted {
        b["recoveryId"] = json!(format!("{}/deletedkeys/{}", base_url(v), key.name));
        b["deletedDate"] = json!(d.deleted_date);
        b["scheduledPurgeDate"] = json!(d.scheduled_purge_date);
    }
    b
}

fn page(req: &Req, v: &Vault, path: &str, items: Vec<Value>) -> Value {
    let max = req
        .query("maxresults")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, 25);
    let skip = req
        .query("$skiptoken")
        .and_then(|t| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.strip_prefix("emulator-offset:")
                .and_then(|n| n.parse::<usize>().ok())
        })
        .unwrap_or(0);
    let total = items.len();
    let value: Vec<Value> = items.into_iter().skip(skip).take(max).collect();
    let next = skip + value.len();
    let next_link = (next < total).then(|| {
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("emulator-offset:{next}"));
        // Key Vault writes the port into its links (`:443`); the emulator writes the one the
        // client addressed, so a client on another port follows the link unchanged.
        let port = req
            .authority
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .unwrap_or(443);
        format!(
            "{}:{port}{path}?api-version={API_VERSION}&$skiptoken={token}&maxresults={max}",
            base_url(v)
        )
    });
    // NB: the last page omits `nextLink`; the 7.5 schema types it as a string, not nullable.
    let mut page = json!({"value": value});
    if let Some(link) = next_link {
        page["nextLink"] = json!(link);
    }
    page
}

// NB: one dispatch function mirrors the operation table of the keys API.
#[allow(clippy::too_many_lines)]
fn route(
    w: &mut World,
    vault_name: &str,
    caller: &Caller,
    req: &Req,
) -> Result<Response<Body>, ApiError> {
    let op = operation(req);
    let segs: Vec<String> = req
        .path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let now = w.now_unix();
    let Some(vault) = w.vault_by_name(vault_name).cloned() else {
        return Err(vault_not_found());
    };
    let name = segs.get(1).cloned().unwrap_or_default();
    let lname = name.to_ascii_lowercase();
    let ok = |v: &Value| Ok(json_response(StatusCode::OK, v));
    match op.as_str() {
        "GetKeys" => {
            authorize(w, &vault, caller, KvOp::List, None, req)?;
            let items = vault
                .keys
                .values()
                .filter(|k| k.deleted.is_none())
                .filter_map(|k| k.latest().map(|l| json!({"kid": format!("{}/keys/{}", base_url(&vault), k.name), "attributes": attributes(&vault, l)})))
                .collect();
            ok(&page(req, &vault, "/keys", items))
        }
        "GetKeyVersions" => {
            authorize(w, &vault, caller, KvOp::List, Some(&name), req)?;
            let key = vault
                .keys
                .get(&lname)
                .filter(|k| k.deleted.is_none())
                .ok_or_else(|| key_not_found(&name))?;
            let items = key
                .versions
                .iter()
                .map(|k| json!({"kid": format!("{}/keys/{}/{}", base_url(&vault), key.name, k.version), "attributes": attributes(&vault, k)}))
                .collect();
            ok(&page(
                req,
                &vault,
                &format!("/keys/{}/versions", key.name),
                items,
            ))
        }
        "GetKey" => {
            authorize(w, &vault, caller, KvOp::Get, Some(&name), req)?;
            let key = vault
                .keys
                .get(&lname)
                .filter(|k| k.deleted.is_none())
                .ok_or_else(|| key_not_found(&name))?;
            let version = match segs.get(2) {
                Some(v) => key
                    .version(v)
                    .ok_or_else(|| key_not_found(&format!("{name}/{v}")))?,
                None => key.latest().ok_or_else(|| key_not_found(&name))?,
            };
            ok(&bundle(&vault, key, version))
        }
        "CreateKey" | "RotateKey" => {
            let create = op == "CreateKey";
            authorize(
                w,
                &vault,
                caller,
                if create { KvOp::Create } else { KvOp::Update },
                Some(&name),
                req,
            )?;
            let body = req.json()?;
            if let Some(existing) = vault.keys.get(&lname) {
                if existing.deleted.is_some() {
                    return Err(kv_error(
                        StatusCode::CONFLICT,
                        "Conflict",
                        format!(
                            "Key {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged."
                        ),
                    ));
                }
            } else if !create {
                return Err(key_not_found(&name));
            }
            let (kty, material) = if create {
                let kty = body["kty"]
                    .as_str()
                    .ok_or_else(|| {
                        kv_error(
                            StatusCode::BAD_REQUEST,
                            "BadParameter",
                            "Property 'kty' is required.",
                        )
                    })?
                    .to_owned();
                let material = match kty.as_str() {
                    "RSA" | "RSA-HSM" => {
                        let size =
                            u32::try_from(body["key_size"].as_u64().unwrap_or(2048)).unwrap_or(0);
                        KeyMaterial::generate_rsa(size).map_err(|e| {
                            kv_error(StatusCode::BAD_REQUEST, "BadParameter", e.to_string())
                        })?
                    }
                    "EC" | "EC-HSM" => {
                        KeyMaterial::generate_ec(body["crv"].as_str().unwrap_or("P-256")).map_err(
                            |e| kv_error(StatusCode::BAD_REQUEST, "BadParameter", e.to_string()),
                        )?
                    }
                    other => {
                        return Err(kv_error(
                            StatusCode::BAD_REQUEST,
                            "BadParameter",
                            format!(
                                "The key type '{other}' is not supported; use RSA, RSA-HSM, EC or EC-HSM."
                            ),
                        ));
                    }
                };
                (kty, material)
            } else {
                let latest = vault.keys[&lname]
                    .latest()
                    .ok_or_else(|| key_not_found(&name))?;
                let material = match &latest.material {
                    KeyMaterial::Rsa { bits, .. } => KeyMaterial::generate_rsa(*bits),
                    KeyMaterial::Ec { crv, .. } => KeyMaterial::generate_ec(crv),
                }
                .map_err(|e| {
                    kv_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "InternalError",
                        e.to_string(),
                    )
                })?;
                (latest.kty.clone(), material)
            };
            let v = w
                .vault_by_name_mut(vault_name)
                .ok_or_else(vault_not_found)?;
            let attrs = body.get("attributes");
            let mut created = add_key_version(v, &name, &kty, material, attrs, now);
            if let Some(ops) = body["key_ops"].as_array() {
                created.key_ops = ops
                    .iter()
                    .filter_map(|o| o.as_str().map(str::to_owned))
                    .collect();
            }
            if let Some(tags) = body["tags"].as_object() {
                created.tags.clone_from(tags);
            }
            let key = v.keys.get_mut(&lname).ok_or_else(|| key_not_found(&name))?;
            if let Some(last) = key.versions.last_mut() {
                *last = created.clone();
            }
            let (key, v) = (key.clone(), v.clone());
            ok(&bundle(&v, &key, &created))
        }
        "UpdateKey" => {
            authorize(w, &vault, caller, KvOp::Update, Some(&name), req)?;
            let body = req.json()?;
            let v = w
                .vault_by_name_mut(vault_name)
                .ok_or_else(vault_not_found)?;
            let key = v
                .keys
                .get_mut(&lname)
                .filter(|k| k.deleted.is_none())
                .ok_or_else(|| key_not_found(&name))?;
            let idx = match segs.get(2) {
                Some(ver) => key
                    .versions
                    .iter()
                    .position(|k| k.version.eq_ignore_ascii_case(ver)),
                None => key.versions.len().checked_sub(1),
            }
            .ok_or_else(|| key_not_found(&name))?;
            let kv = &mut key.versions[idx];
            let attrs = &body["attributes"];
            if let Some(e) = attrs["enabled"].as_bool() {
                kv.enabled = e;
            }
            if attrs.get("exp").is_some() {
                kv.exp = attrs["exp"].as_i64();
            }
            if attrs.get("nbf").is_some() {
                kv.nbf = attrs["nbf"].as_i64();
            }
            if let Some(ops) = body["key_ops"].as_array() {
                kv.key_ops = ops
                    .iter()
                    .filter_map(|o| o.as_str().map(str::to_owned))
                    .collect();
            }
            if let Some(tags) = body["tags"].as_object() {
                kv.tags.clone_from(tags);
            }
            kv.updated = now;
            let kv = kv.clone();
            let (key, v) = (key.clone(), v.clone());
            ok(&bundle(&v, &key, &kv))
        }
        "DeleteKey" => {
            authorize(w, &vault, caller, KvOp::Delete, Some(&name), req)?;
            let v = w
                .vault_by_name_mut(vault_name)
                .ok_or_else(vault_not_found)?;
            let soft = v.soft_delete();
            let days = v.retention_days();
            let key = v
                .keys
                .get_mut(&lname)
                .filter(|k| k.deleted.is_none())
                .ok_or_else(|| key_not_found(&name))?;
            key.deleted = Some(DeletedInfo {
                deleted_date: now,
                scheduled_purge_date: now + days * 86_400,
            });
            let key = key.clone();
            if !soft {
                v.keys.remove(&lname);
            }
            let v = v.clone();
            ok(&deleted_bundle(&v, &key))
        }
        "GetDeletedKeys" => {
            authorize(w, &vault, caller, KvOp::List, None, req)?;
            let items = vault
                .keys
                .values()
                .filter(|k| k.deleted.is_some())
                .map(|k| {
                    let mut item = deleted_bundle(&vault, k);
                    item["kid"] = json!(format!("{}/keys/{}", base_url(&vault), k.name));
                    if let Some(o) = item.as_object_mut() {
                        o.remove("key");
                    }
                    item
                })
                .collect();
            ok(&page(req, &vault, "/deletedkeys", items))
        }
        "GetDeletedKey" => {
            authorize(w, &vault, caller, KvOp::Get, Some(&name), req)?;
            let key = vault
                .keys
                .get(&lname)
                .filter(|k| k.deleted.is_some())
                .ok_or_else(|| deleted_not_found(&name))?;
            ok(&deleted_bundle(&vault, key))
        }
        "RecoverDeletedKey" => {
            authorize(w, &vault, caller, KvOp::Recover, Some(&name), req)?;
            let v = w
                .vault_by_name_mut(vault_name)
                .ok_or_else(vault_not_found)?;
            let key = v
                .keys
                .get_mut(&lname)
                .filter(|k| k.deleted.is_some())
                .ok_or_else(|| deleted_not_found(&name))?;
            key.deleted = None;
            let key = key.clone();
            let v = v.clone();
            let latest = key.latest().ok_or_else(|| key_not_found(&name))?;
            ok(&bundle(&v, &key, latest))
        }
        "PurgeDeletedKey" => {
            authorize(w, &vault, caller, KvOp::Purge, Some(&name), req)?;
            if vault.keys.get(&lname).is_none_or(|k| k.deleted.is_none()) {
                return Err(deleted_not_found(&name));
            }
            if vault.purge_protection() {
                return Err(kv_error(StatusCode::FORBIDDEN, "Forbidden", "Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed.").inner("PurgeProtectionEnabled"));
            }
            if let Some(v) = w.vault_by_name_mut(vault_name) {
                v.keys.remove(&lname);
            }
            Ok(empty_response(StatusCode::NO_CONTENT))
        }
        "wrapKey" | "unwrapKey" | "encrypt" | "decrypt" => {
            let kop = match op.as_str() {
                "wrapKey" => KvOp::WrapKey,
                "unwrapKey" => KvOp::UnwrapKey,
                "encrypt" => KvOp::Encrypt,
                _ => KvOp::Decrypt,
            };
            authorize(w, &vault, caller, kop, Some(&name), req)?;
            let key = vault
                .keys
                .get(&lname)
                .filter(|k| k.deleted.is_none())
                .ok_or_else(|| key_not_found(&name))?;
            let version = if segs.len() == 4 {
                key.version(&segs[2])
                    .ok_or_else(|| key_not_found(&format!("{name}/{}", segs[2])))?
            } else {
                key.latest().ok_or_else(|| key_not_found(&name))?
            };
            let opname = kop.permission();
            if let Err(cause) = version.usable_at(now) {
                let (inner, what) = match cause {
                    super::state::KeyAccessCause::KeyDisabled => ("KeyDisabled", "a disabled key"),
                    super::state::KeyAccessCause::KeyExpired => ("KeyExpired", "an expired key"),
                    _ => ("KeyNotYetValid", "a key that is not yet valid"),
                };
                return Err(kv_error(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    format!("Operation {opname} is not allowed on {what}."),
                )
                .inner(inner));
            }
            if !version
                .key_ops
                .iter()
                .any(|o| o.eq_ignore_ascii_case(opname))
            {
                return Err(kv_error(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    format!("Operation {opname} is not permitted on this key."),
                ));
            }
            let body = req.json()?;
            let alg = body["alg"].as_str().unwrap_or_default();
            let input = body["value"]
                .as_str()
                .and_then(b64url_decode)
                .ok_or_else(|| {
                    kv_error(
                        StatusCode::BAD_REQUEST,
                        "BadParameter",
                        "Property 'value' must be base64url.",
                    )
                })?;
            let out = if matches!(kop, KvOp::WrapKey | KvOp::Encrypt) {
                version.material.wrap(alg, &input)
            } else {
                version.material.unwrap_key(alg, &input)
            }
            .map_err(|e| kv_error(StatusCode::BAD_REQUEST, "BadParameter", e.to_string()))?;
            ok(
                &json!({"kid": format!("{}/keys/{}/{}", base_url(&vault), key.name, version.version), "value": b64url(&out)}),
            )
        }
        _ => Err(kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            format!(
                "The operation {} {} is not supported by the emulator.",
                req.method, req.path
            ),
        )),
    }
}

fn deleted_not_found(name: &str) -> ApiError {
    kv_error(
        StatusCode::NOT_FOUND,
        "KeyNotFound",
        format!("Deleted Key not found: {name}"),
    )
}
