//! `Microsoft.Media/mediaservices` (api-version 2023-01-01): accounts and their long-running
//! operations.
//!
//! PUT and PATCH are long-running (201/200 and 202 with `Azure-AsyncOperation` and `Location`
//! polling URLs, as the spec's examples show). The service rules enforced here: identity types
//! (the spaced `SystemAssigned, UserAssigned` is refused), storage accounts (exist, same
//! subscription, one primary, managed-identity access with a blob data role through the storage
//! firewall), customer-managed keys (RSA 2048/3072/4096, vault in the account's region with
//! soft delete and purge protection, identity able to get/wrap/unwrap), and the
//! customer-key-inaccessible state in which only GET, LIST and DELETE succeed. It does not model
//! assets, transforms, streaming, key delivery or private endpoints.

use axum::body::Body;
use axum::http::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::provider::{Ctx, authorize, authorize_linked, require_rg};
use super::state::{
    AsyncOperation, KeyAccess, KeyAccessCause, MediaAccount, ResourceId, World, firewall_allows,
    key_of, norm_location, normalise_media_body, parse_key_identifier,
};
use super::wire::{ApiError, empty_response, json_response, set_header};

const ALLOWED_IDENTITY_TYPES: [&str; 4] = [
    "None",
    "SystemAssigned",
    "UserAssigned",
    "SystemAssigned,UserAssigned",
];

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("BadRequest", message)
}

/// Renders an account with its read-only fields.
#[must_use]
pub fn render(w: &World, a: &MediaAccount) -> Value {
    let mut body = a.resource.clone();
    body["properties"]["provisioningState"] = json!(a.provisioning_state);
    if let Some(sys) = &a.system_principal {
        body["identity"]["principalId"] = json!(sys);
        body["identity"]["tenantId"] = json!(w.tenant_id);
    }
    // NB: `pointer_mut`, not `[]`, which would insert nulls for absent fields.
    if let Some(map) = body
        .pointer_mut("/identity/userAssignedIdentities")
        .and_then(Value::as_object_mut)
    {
        for (uai, v) in map.iter_mut() {
            if let Some(ident) = w.identities.get(&key_of(uai)) {
                *v = json!({
                    "principalId": ident["properties"]["principalId"],
                    "clientId": ident["properties"]["clientId"],
                });
            }
        }
    }
    if body["properties"]["encryption"]["keyVaultProperties"].is_object()
        && let Some(current) = &a.key_access.current_key_identifier
    {
        body["properties"]["encryption"]["keyVaultProperties"]["currentKeyIdentifier"] =
            json!(current);
    }
    body
}

/// Routes a `Microsoft.Media` request.
pub fn route(w: &mut World, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let p = &ctx.path;
    match ctx.op.as_str() {
        "Mediaservices_List" | "Mediaservices_ListBySubscription" => {
            authorize(
                w,
                &ctx.caller,
                &p.scope,
                "Microsoft.Media/mediaservices/read",
            )?;
            if ctx.op == "Mediaservices_List" {
                require_rg(w, p)?;
            }
            let prefix = key_of(&p.scope);
            let items: Vec<Value> = w
                .media
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("{prefix}/")))
                .map(|(_, a)| render(w, a))
                .collect();
            Ok(json_response(StatusCode::OK, &json!({"value": items})))
        }
        "Mediaservices_Get" => {
            let id = account_id(ctx);
            authorize(w, &ctx.caller, &id, "Microsoft.Media/mediaservices/read")?;
            let a = w.media.get(&key_of(&id)).ok_or_else(|| not_found(ctx))?;
            Ok(json_response(StatusCode::OK, &render(w, a)))
        }
        "Mediaservices_Delete" => {
            let id = account_id(ctx);
            authorize(w, &ctx.caller, &id, "Microsoft.Media/mediaservices/delete")?;
            match w.media.remove(&key_of(&id)) {
                Some(a) => {
                    if let Some(sys) = a.system_principal {
                        w.principals.remove(&key_of(&sys));
                    }
                    Ok(empty_response(StatusCode::OK))
                }
                None => Ok(empty_response(StatusCode::NO_CONTENT)),
            }
        }
        "Mediaservices_CreateOrUpdate" | "Mediaservices_Update" => put(w, ctx),
        "Mediaservices_SyncStorageKeys" => {
            let id = account_id(ctx);
            authorize(
                w,
                &ctx.caller,
                &id,
                "Microsoft.Media/mediaservices/syncStorageKeys/action",
            )?;
            let a = w.media.get(&key_of(&id)).ok_or_else(|| not_found(ctx))?;
            refuse_if_inaccessible(a)?;
            Ok(empty_response(StatusCode::OK))
        }
        "MediaServicesOperationStatuses_Get" | "MediaServicesOperationResults_Get" => poll(w, ctx),
        "Locations_CheckNameAvailability" => {
            let body = ctx.req.json()?;
            let name = body["name"].as_str().unwrap_or_default();
            let taken = w.media.values().any(|a| {
                a.resource["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            });
            let valid = !name.is_empty()
                && name.len() <= 24
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            let (ok, reason, message) = match (valid, taken) {
                (false, _) => (
                    false,
                    "Invalid",
                    "Account names must be 3 to 24 lower-case letters and digits.",
                ),
                (true, true) => (false, "AlreadyExists", "The account name is already taken."),
                (true, false) => (true, "None", ""),
            };
            Ok(json_response(
                StatusCode::OK,
                &json!({"nameAvailable": ok, "reason": reason, "message": message}),
            ))
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            "Unknown Microsoft.Media resource type.",
        )),
    }
}

fn account_id(ctx: &Ctx<'_>) -> String {
    super::provider::resource_id(&ctx.path)
}

fn not_found(ctx: &Ctx<'_>) -> ApiError {
    ApiError::arm_not_found(
        "Microsoft.Media/mediaservices",
        &ctx.path.rest[1],
        &ctx.path.resource_group().unwrap_or_default(),
    )
}

fn refuse_if_inaccessible(a: &MediaAccount) -> Result<(), ApiError> {
    match a.key_access.cause {
        Some(cause) => Err(ApiError::bad_request(
            "CustomerKeyInaccessible",
            format!(
                "The Media Services account cannot access its customer-managed key ({}); only GET, LIST and DELETE are allowed until access to the key is restored.",
                cause.describe()
            ),
        )),
        None => Ok(()),
    }
}

// NB: one function keeps the order of the service's checks readable top to bottom.
#[allow(clippy::too_many_lines)]
fn put(w: &mut World, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let p = &ctx.path;
    let id = account_id(ctx);
    let rid = ResourceId::parse(&id).ok_or_else(|| bad("The account id is invalid."))?;
    require_rg(w, p)?;
    authorize(w, &ctx.caller, &id, "Microsoft.Media/mediaservices/write")?;
    let body = ctx.req.json()?;
    let existing = w.media.get(&key_of(&id)).cloned();
    if let Some(a) = &existing {
        refuse_if_inaccessible(a)?;
    }
    let patch = ctx.req.method == Method::PATCH;
    let merged = match (&existing, patch) {
        (None, true) => return Err(not_found(ctx)),
        (Some(a), true) => {
            let mut base = a.resource.clone();
            super::provider::merge_patch(&mut base, &body);
            base
        }
        (_, false) => body,
    };
    let Some(location) = merged["location"].as_str().map(str::to_owned) else {
        return Err(ApiError::bad_request(
            "LocationRequired",
            "The location property is required for this definition.",
        ));
    };
    if let Some(a) = &existing
        && norm_location(a.resource["location"].as_str().unwrap_or_default())
            != norm_location(&location)
    {
        return Err(bad(
            "The location of an existing Media Services account cannot be changed.",
        ));
    }
    let resource = normalise_media_body(&id, &rid.name, merged);

    // Identity.
    let identity_type = resource["identity"]["type"]
        .as_str()
        .unwrap_or("None")
        .to_owned();
    if !ALLOWED_IDENTITY_TYPES.contains(&identity_type.as_str()) {
        return Err(bad(format!(
            "The identity type '{identity_type}' is not supported. Supported values are 'None', 'SystemAssigned', 'UserAssigned' and 'SystemAssigned,UserAssigned' (without a space)."
        )));
    }
    let wants_system = identity_type.contains("SystemAssigned");
    let wants_user = identity_type.contains("UserAssigned");
    let uais: Vec<String> = resource["identity"]["userAssignedIdentities"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    if wants_user && uais.is_empty() {
        return Err(bad(
            "The identity type 'UserAssigned' requires at least one entry in 'userAssignedIdentities'.",
        ));
    }
    if !wants_user && !uais.is_empty() {
        return Err(bad(format!(
            "'userAssignedIdentities' must be empty when the identity type is '{identity_type}'."
        )));
    }
    for uai in &uais {
        if !w.identities.contains_key(&key_of(uai)) {
            return Err(ApiError::bad_request(
                "FailedIdentityOperation",
                format!(
                    "Identity operation for resource '{id}' failed with error 'Resource '{uai}' was not found.'."
                ),
            ));
        }
        authorize_linked(
            w,
            &ctx.caller,
            &id,
            "Microsoft.Media/mediaservices/write",
            uai,
        )?;
    }
    // The system principal survives updates; a new one is issued only when it is turned on.
    let system_principal = if wants_system {
        Some(
            existing
                .as_ref()
                .and_then(|a| a.system_principal.clone())
                .unwrap_or_else(super::crypto::guid),
        )
    } else {
        None
    };
    let has_identity = |entry: &Value| -> Result<Option<String>, ApiError> {
        if entry.is_null() {
            return Ok(None);
        }
        if entry["useSystemAssignedIdentity"].as_bool() == Some(true) {
            return system_principal.clone().map(Some).ok_or_else(|| bad("'useSystemAssignedIdentity' requires the account identity type to include 'SystemAssigned'."));
        }
        match entry["userAssignedIdentity"].as_str() {
            Some(uai) if uais.iter().any(|u| u.eq_ignore_ascii_case(uai)) => Ok(w
                .identities
                .get(&key_of(uai))
                .and_then(|i| i["properties"]["principalId"].as_str().map(str::to_owned))),
            Some(uai) => Err(bad(format!(
                "The user-assigned identity '{uai}' is not assigned to the account."
            ))),
            None => Ok(None),
        }
    };

    // Storage accounts.
    let storage = resource["properties"]["storageAccounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if storage.is_empty() && existing.is_none() {
        return Err(bad(
            "A Media Services account requires one primary storage account in 'storageAccounts'.",
        ));
    }
    let primaries = storage
        .iter()
        .filter(|s| s["type"].as_str() == Some("Primary"))
        .count();
    if !storage.is_empty() && primaries != 1 {
        return Err(bad(format!(
            "Exactly one storage account must be of type 'Primary'; found {primaries}."
        )));
    }
    let managed_auth =
        resource["properties"]["storageAuthentication"].as_str() == Some("ManagedIdentity");
    for sa in &storage {
        let sa_id = sa["id"].as_str().unwrap_or_default();
        let storage_rid = ResourceId::parse(sa_id)
            .filter(|r| r.is("Microsoft.Storage", "storageAccounts"))
            .ok_or_else(|| bad(format!("'{sa_id}' is not a storage account resource id.")))?;
        if !storage_rid
            .subscription
            .eq_ignore_ascii_case(&rid.subscription)
        {
            return Err(bad(format!(
                "The storage account '{sa_id}' is in subscription '{}', but a Media Services account can only use storage accounts in its own subscription '{}'.",
                storage_rid.subscription, rid.subscription
            )));
        }
        let Some(sa_res) = w.storage.get(&key_of(sa_id)) else {
            return Err(bad(format!("The storage account '{sa_id}' was not found.")));
        };
        if managed_auth {
            let Some(principal) = has_identity(&sa["identity"])? else {
                return Err(bad(format!(
                    "With 'storageAuthentication' set to 'ManagedIdentity', storage account '{sa_id}' needs an 'identity'."
                )));
            };
            if !w.has_data_action(
                &principal,
                sa_id,
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
            ) {
                return Err(bad(format!(
                    "The managed identity '{principal}' does not have access to storage account '{sa_id}'. Grant it a blob data role such as 'Storage Blob Data Contributor'."
                )));
            }
            if !storage_firewall_allows(&sa_res["properties"]["networkAcls"], &id, &w.tenant_id) {
                return Err(bad(format!(
                    "The storage account '{sa_id}' firewall does not allow access from the Media Services account (allow trusted Azure services or add a resource access rule)."
                )));
            }
        } else if !sa["identity"].is_null() {
            has_identity(&sa["identity"])?;
        }
    }

    // Encryption.
    let enc = resource["properties"]["encryption"].clone();
    let enc_type = enc["type"].as_str().unwrap_or("SystemKey");
    if !["SystemKey", "CustomerKey"].contains(&enc_type) {
        return Err(bad(format!(
            "The encryption type '{enc_type}' is not supported; use 'SystemKey' or 'CustomerKey'."
        )));
    }
    if enc_type == "CustomerKey" {
        has_identity(&enc["identity"])?;
        if let Some(kid) = enc["keyVaultProperties"]["keyIdentifier"].as_str() {
            check_byok_rules(w, kid, &location)?;
        }
    }

    let tentative = MediaAccount {
        resource: resource.clone(),
        system_principal: system_principal.clone(),
        provisioning_state: "InProgress".into(),
        key_access: KeyAccess::default(),
    };
    let current = if enc_type == "CustomerKey" {
        w.evaluate_key_access(&tentative).map_err(|cause| {
            bad(format!(
                "Unable to access the customer-managed key '{}': {}.",
                enc["keyVaultProperties"]["keyIdentifier"]
                    .as_str()
                    .unwrap_or_default(),
                cause.describe()
            ))
        })?
    } else {
        None
    };

    // Commit.
    let now = w.now();
    if let Some(sys) = &system_principal
        && !w.principals.contains_key(&key_of(sys))
    {
        let oid = w.issue_system_principal(&id, &rid.name, now);
        // Use the id that was validated above.
        if let Some(mut p) = w.principals.remove(&key_of(&oid)) {
            p.object_id.clone_from(sys);
            w.principals.insert(key_of(sys), p);
        }
    }
    if let Some(old) = existing.as_ref().and_then(|a| a.system_principal.clone())
        && system_principal.is_none()
    {
        w.principals.remove(&key_of(&old));
    }
    let mut resource = resource;
    let media_service_id = existing
        .as_ref()
        .and_then(|a| {
            a.resource["properties"]["mediaServiceId"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(super::crypto::guid);
    resource["properties"]["mediaServiceId"] = json!(media_service_id);
    let polls = w.knobs.lro_polls;
    let failure = w.knobs.fail_next_operation.take();
    let account = MediaAccount {
        resource,
        system_principal,
        provisioning_state: match (polls, &failure) {
            (0, Some(_)) => "Failed".into(),
            (0, None) => "Succeeded".into(),
            _ => "InProgress".into(),
        },
        key_access: KeyAccess {
            cause: None,
            current_key_identifier: current,
            checked_at: Some(now),
        },
    };
    let rendered = render(w, &account);
    w.media.insert(key_of(&id), account);
    let op_id = super::crypto::guid();
    let loc = norm_location(&location);
    w.operations.insert(
        key_of(&op_id),
        AsyncOperation {
            id: op_id.clone(),
            subscription: rid.subscription.clone(),
            location: loc.clone(),
            resource_id: id.clone(),
            polls_left: polls,
            start: now,
            end: (polls == 0).then_some(now),
            error: failure,
        },
    );
    let status = if patch {
        StatusCode::ACCEPTED
    } else if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut resp = json_response(status, &rendered);
    set_operation_headers(&mut resp, ctx, &rid.subscription, &loc, &op_id);
    Ok(resp)
}

/// `Azure-AsyncOperation`, `Location` and `Retry-After` of a running operation, as the spec
/// lists them for the 202 of a PATCH and of an operation-result poll.
fn set_operation_headers(
    resp: &mut Response<Body>,
    ctx: &Ctx<'_>,
    subscription: &str,
    location: &str,
    op_id: &str,
) {
    let base = format!(
        "https://{}/subscriptions/{subscription}/providers/Microsoft.Media/locations/{location}",
        ctx.req.authority
    );
    set_header(
        resp,
        "azure-asyncoperation",
        &format!("{base}/mediaServicesOperationStatuses/{op_id}?api-version=2023-01-01"),
    );
    set_header(
        resp,
        "location",
        &format!("{base}/mediaServicesOperationResults/{op_id}?api-version=2023-01-01"),
    );
    set_header(resp, "retry-after", "1");
}

/// BYOK rules that do not depend on the identity: key type/size, vault region and protection.
fn check_byok_rules(w: &World, kid: &str, location: &str) -> Result<(), ApiError> {
    let parsed = parse_key_identifier(kid).ok_or_else(|| bad(format!("'{kid}' is not a Key Vault key identifier (https://{{vault}}.vault.azure.net/keys/{{name}}[/{{version}}]).")))?;
    let Some(vault) = w.vault_by_name(&parsed.vault) else {
        return Err(bad(format!(
            "Unable to access the customer-managed key '{kid}': {}.",
            KeyAccessCause::VaultNotFound.describe()
        )));
    };
    if vault.location() != norm_location(location) {
        return Err(bad(format!(
            "The key vault '{}' is in region '{}', but the Media Services account is in '{}'. The key vault must be in the same region as the account.",
            vault.name(),
            vault.location(),
            norm_location(location)
        )));
    }
    if !vault.soft_delete() || !vault.purge_protection() {
        return Err(bad(format!(
            "The key vault '{}' must have soft delete and purge protection enabled to hold a customer-managed key.",
            vault.name()
        )));
    }
    if let Some(key) = vault.keys.get(&parsed.key.to_ascii_lowercase()) {
        let version = match &parsed.version {
            Some(v) => key.version(v),
            None => key.latest(),
        };
        if let Some(v) = version {
            let rsa_ok = v.kty.starts_with("RSA")
                && v.material
                    .rsa_bits()
                    .is_some_and(|b| [2048, 3072, 4096].contains(&b));
            if !rsa_ok {
                return Err(bad(format!(
                    "The key '{kid}' is of type '{}'{}; Media Services accepts only RSA keys of 2048, 3072 or 4096 bits.",
                    v.kty,
                    v.material
                        .rsa_bits()
                        .map(|b| format!(" ({b} bits)"))
                        .unwrap_or_default()
                )));
            }
        }
    }
    Ok(())
}

/// Whether a storage account's `networkAcls` let the Media Services account `account_id` in.
fn storage_firewall_allows(acls: &Value, account_id: &str, tenant: &str) -> bool {
    if !acls["defaultAction"]
        .as_str()
        .is_some_and(|a| a.eq_ignore_ascii_case("Deny"))
    {
        return true;
    }
    if firewall_allows(&json!({"networkAcls": acls}), None) {
        return true;
    }
    acls["resourceAccessRules"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| {
            let rid = r["resourceId"].as_str().unwrap_or_default();
            let tid_ok = r["tenantId"]
                .as_str()
                .is_none_or(|t| t.eq_ignore_ascii_case(tenant));
            let matches = rid.eq_ignore_ascii_case(account_id)
                || (rid.ends_with("/*")
                    && key_of(account_id).starts_with(&key_of(rid.trim_end_matches('*'))));
            tid_ok && matches
        })
}

fn poll(w: &mut World, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let op_id = ctx.path.rest[3].clone();
    let now = w.now();
    let op = w.operations.get_mut(&key_of(&op_id)).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The operation '{op_id}' was not found."),
        )
    })?;
    let status_call = ctx.op == "MediaServicesOperationStatuses_Get";
    // Each poll while `polls_left > 0` (status: `InProgress`, result: 202) uses one up; the
    // first poll after that completes the operation. Either URL alone therefore terminates.
    let running = op.polls_left > 0;
    if running {
        op.polls_left -= 1;
    }
    if !running && op.end.is_none() {
        op.end = Some(now);
    }
    let op = op.clone();
    if !running && let Some(a) = w.media.get_mut(&key_of(&op.resource_id)) {
        a.provisioning_state = if op.error.is_some() {
            "Failed".into()
        } else {
            "Succeeded".into()
        };
    }
    if status_call {
        let mut body = json!({
            "id": format!("/subscriptions/{}/providers/Microsoft.Media/locations/{}/mediaServicesOperationStatuses/{}", op.subscription, op.location, op.id),
            "name": op.id,
            "status": if running { "InProgress" } else if op.error.is_some() { "Failed" } else { "Succeeded" },
            "startTime": op.start.to_rfc3339(),
        });
        if let Some(end) = op.end {
            body["endTime"] = json!(end.to_rfc3339());
        }
        if let Some((code, message)) = &op.error {
            body["error"] = json!({"code": code, "message": message});
        }
        return Ok(json_response(StatusCode::OK, &body));
    }
    if running {
        let mut resp = empty_response(StatusCode::ACCEPTED);
        set_operation_headers(&mut resp, ctx, &op.subscription, &op.location, &op.id);
        return Ok(resp);
    }
    let a = w.media.get(&key_of(&op.resource_id)).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "The account of this operation no longer exists.",
        )
    })?;
    Ok(json_response(StatusCode::OK, &render(w, a)))
}
