//! Azure Resource Manager: routing, api-version, authentication, throttling, authorization,
//! and the Authorization, Key Vault (management), Storage and Managed Identity providers.
//!
//! Media Services lives in `media`. Paths are parsed by their last `/providers/` segment, so
//! role assignments work at any scope. Every call needs a bearer token for an ARM audience and
//! acts as its `oid`; every operation checks the caller's RBAC action at the resource scope.
//! Out of scope: resource groups/subscriptions APIs, tags APIs, private endpoints, locks.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderName, Method, Response, StatusCode};
use serde_json::{Value, json};

use super::entra::{ARM_AUDIENCES, authenticate};
use super::knobs::ArmKind;
use super::media;
use super::provider::{
    ArmPath, Ctx, authorize, authorize_linked, merge_patch, require_rg, resource_id,
};
use super::state::{ResourceId, Shared, World, key_of, scope_covers, scope_norm};
use super::wire::{ApiError, AuthFailure, Caller, Req, empty_response, json_response, set_header};

/// The api-versions each provider accepts (the first is the spec's).
#[must_use]
pub fn api_versions(namespace: &str) -> &'static [&'static str] {
    match namespace.to_ascii_lowercase().as_str() {
        "microsoft.media" => &["2023-01-01"],
        // NB: the spec's own RoleAssignments_Get example carries 2020-10-01-preview.
        "microsoft.authorization" => &["2022-04-01", "2020-10-01-preview"],
        "microsoft.keyvault" => &["2025-05-01"],
        "microsoft.storage" => &["2025-08-01"],
        "microsoft.managedidentity" => &["2026-05-31"],
        _ => &[],
    }
}

/// The operation name (swagger operationId) of an ARM request.
#[must_use]
pub fn operation(req: &Req) -> String {
    let Some(p) = ArmPath::parse(&req.path) else {
        return "Arm_Unknown".into();
    };
    let m = &req.method;
    let name = match (p.ns().as_str(), p.seg(0).as_str(), p.rest.len()) {
        ("microsoft.media", "mediaservices", 1) => {
            if p.scope_is_rg() {
                "Mediaservices_List"
            } else {
                "Mediaservices_ListBySubscription"
            }
        }
        ("microsoft.media", "mediaservices", 2) => match *m {
            Method::GET => "Mediaservices_Get",
            Method::PUT => "Mediaservices_CreateOrUpdate",
            Method::PATCH => "Mediaservices_Update",
            Method::DELETE => "Mediaservices_Delete",
            _ => "Mediaservices_Unknown",
        },
        ("microsoft.media", "mediaservices", 3) if p.seg(2) == "syncstoragekeys" => {
            "Mediaservices_SyncStorageKeys"
        }
        ("microsoft.media", "locations", 4) if p.seg(2) == "mediaservicesoperationstatuses" => {
            "MediaServicesOperationStatuses_Get"
        }
        ("microsoft.media", "locations", 4) if p.seg(2) == "mediaservicesoperationresults" => {
            "MediaServicesOperationResults_Get"
        }
        ("microsoft.media", "locations", 3) if p.seg(2) == "checknameavailability" => {
            "Locations_CheckNameAvailability"
        }
        ("microsoft.authorization", "roleassignments", 1) => "RoleAssignments_ListForScope",
        ("microsoft.authorization", "roleassignments", 2) => match *m {
            Method::GET => "RoleAssignments_Get",
            Method::PUT => "RoleAssignments_Create",
            Method::DELETE => "RoleAssignments_Delete",
            _ => "RoleAssignments_Unknown",
        },
        ("microsoft.authorization", "roledefinitions", 1) => "RoleDefinitions_List",
        ("microsoft.authorization", "roledefinitions", 2) => "RoleDefinitions_Get",
        ("microsoft.keyvault", "vaults", 1) => {
            if p.scope_is_rg() {
                "Vaults_ListByResourceGroup"
            } else {
                "Vaults_ListBySubscription"
            }
        }
        ("microsoft.keyvault", "vaults", 2) => match *m {
            Method::GET => "Vaults_Get",
            Method::PUT => "Vaults_CreateOrUpdate",
            Method::PATCH => "Vaults_Update",
            Method::DELETE => "Vaults_Delete",
            _ => "Vaults_Unknown",
        },
        ("microsoft.keyvault", "vaults", 4) if p.seg(2) == "accesspolicies" => {
            "Vaults_UpdateAccessPolicy"
        }
        ("microsoft.keyvault", "deletedvaults", 1) => "Vaults_ListDeleted",
        ("microsoft.keyvault", "locations", 4) if p.seg(2) == "deletedvaults" => {
            "Vaults_GetDeleted"
        }
        ("microsoft.keyvault", "locations", 5) if p.seg(4) == "purge" => "Vaults_PurgeDeleted",
        ("microsoft.storage", "storageaccounts", 2) => match *m {
            Method::GET => "StorageAccounts_GetProperties",
            Method::PUT => "StorageAccounts_Create",
            Method::PATCH => "StorageAccounts_Update",
            Method::DELETE => "StorageAccounts_Delete",
            _ => "StorageAccounts_Unknown",
        },
        ("microsoft.managedidentity", "userassignedidentities", 2) => match *m {
            Method::GET => "UserAssignedIdentities_Get",
            Method::PUT => "UserAssignedIdentities_CreateOrUpdate",
            Method::PATCH => "UserAssignedIdentities_Update",
            Method::DELETE => "UserAssignedIdentities_Delete",
            _ => "UserAssignedIdentities_Unknown",
        },
        ("microsoft.managedidentity", "identities", 2) => "SystemAssignedIdentities_GetByScope",
        _ => "Arm_Unknown",
    };
    name.to_owned()
}

/// Handles an ARM request.
pub fn handle(shared: &Arc<Shared>, req: &Req) -> Response<Body> {
    let tenant = shared.world().tenant_id.clone();
    let caller = match authenticate(shared, req, ARM_AUDIENCES, &tenant) {
        Ok(c) => c,
        Err(f) => return arm_auth_error(f).into_response(),
    };
    let op = operation(req);
    let mut resp = match route(shared, req, &caller, &op) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.extensions_mut().insert(caller);
    resp
}

fn arm_auth_error(f: AuthFailure) -> ApiError {
    let (code, message) = match f {
        AuthFailure::Missing => (
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ),
        AuthFailure::Invalid => ("InvalidAuthenticationToken", "The access token is invalid."),
        AuthFailure::Expired => (
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time is earlier than current UTC time.",
        ),
        AuthFailure::WrongAudience => (
            "InvalidAuthenticationTokenAudience",
            "The access token has been obtained for wrong audience or resource. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.azure.com/'.",
        ),
        AuthFailure::WrongTenant => (
            "InvalidAuthenticationTokenTenant",
            "The access token is from the wrong issuer. It must match the tenant associated with this subscription.",
        ),
    };
    ApiError::new(StatusCode::UNAUTHORIZED, code, message).header(
        axum::http::header::WWW_AUTHENTICATE,
        format!("Bearer authorization_uri=\"https://login.windows.net/\", error=\"invalid_token\", error_description=\"{message}\""),
    )
}

fn route(
    shared: &Shared,
    req: &Req,
    caller: &Caller,
    op: &str,
) -> Result<Response<Body>, ApiError> {
    let Some(path) = ArmPath::parse(&req.path) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NoRegisteredProviderFound",
            format!("No provider is registered for the path '{}'.", req.path),
        ));
    };
    let supported = api_versions(&path.namespace);
    if supported.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for namespace '{}'.",
                path.namespace
            ),
        ));
    }
    match req.query("api-version") {
        None => {
            return Err(ApiError::bad_request(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            ));
        }
        Some(v) if !supported.contains(&v) => {
            return Err(ApiError::bad_request(
                "InvalidApiVersionParameter",
                format!(
                    "The api-version '{v}' is invalid. The supported versions are '{}'.",
                    supported.join(",")
                ),
            ));
        }
        Some(_) => {}
    }
    if op.ends_with("_Unknown") {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            format!(
                "The resource type could not be found in the namespace '{}' for api version '{}'.",
                path.namespace, supported[0]
            ),
        ));
    }
    let mut w = shared.world();
    // Throttling: per subscription, principal and request kind.
    let kind = match req.method {
        Method::GET | Method::HEAD => ArmKind::Read,
        Method::DELETE => ArmKind::Delete,
        _ => ArmKind::Write,
    };
    let sub = path.subscription();
    let bucket_scope = sub.clone().unwrap_or_else(|| "tenant".into());
    let remaining = match w.knobs.charge(&bucket_scope, &caller.oid, kind) {
        Ok(left) => left,
        Err(wait) => {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "SubscriptionRequestsThrottled",
                format!("Number of '{}' requests for subscription '{bucket_scope}' actor '{}' exceeded. Please try again after '{wait}' seconds after the last request.", kind.word(), caller.oid),
            )
            .header(axum::http::header::RETRY_AFTER, wait.to_string())
            .header(HeaderName::from_static(kind.header()), "0"));
        }
    };
    if let Some(s) = &sub
        && !w.subscriptions.contains_key(&key_of(s))
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            format!("The subscription '{s}' could not be found."),
        ));
    }
    let ctx = Ctx {
        caller: caller.clone(),
        path,
        req,
        op: op.to_owned(),
    };
    let result = match ctx.path.ns().as_str() {
        "microsoft.media" => media::route(&mut w, &ctx),
        "microsoft.authorization" => route_authorization(&mut w, &ctx),
        "microsoft.keyvault" => route_keyvault(&mut w, &ctx),
        "microsoft.storage" => route_storage(&mut w, &ctx),
        "microsoft.managedidentity" => route_identity(&mut w, &ctx),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            "Unknown resource type.",
        )),
    };
    drop(w);
    // ARM reports what is left in the bucket on every answer past throttling, errors included.
    let mut resp = result.unwrap_or_else(ApiError::into_response);
    set_header(&mut resp, kind.header(), &remaining.to_string());
    Ok(resp)
}

fn list_body(items: &[Value]) -> Value {
    json!({ "value": items })
}

// ---------------------------------------------------------------- Microsoft.Authorization

fn is_guid(s: &str) -> bool {
    super::crypto::is_guid(s)
}

fn render_assignment(ra: &super::state::RoleAssignment) -> Value {
    let mut props = json!({
        "roleDefinitionId": ra.role_definition_id,
        "principalId": ra.principal_id,
        "principalType": ra.principal_type,
        "scope": ra.scope,
        "createdOn": ra.created_on.to_rfc3339(),
        "updatedOn": ra.created_on.to_rfc3339(),
        "createdBy": ra.created_by,
        "updatedBy": ra.created_by,
    });
    if let Some(d) = &ra.description {
        props["description"] = json!(d);
    }
    if let Some(c) = &ra.condition {
        props["condition"] = json!(c);
        props["conditionVersion"] =
            json!(ra.condition_version.clone().unwrap_or_else(|| "2.0".into()));
    }
    json!({
        "id": ra.id,
        "name": ra.name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": props,
    })
}

fn render_role(role: &super::roles::RoleDefinition, scope: &str) -> Value {
    let sub = scope
        .trim_matches('/')
        .split('/')
        .nth(1)
        .filter(|_| scope.to_ascii_lowercase().starts_with("/subscriptions/"));
    let id = match sub {
        Some(s) => format!(
            "/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{}",
            role.id
        ),
        None => format!(
            "/providers/Microsoft.Authorization/roleDefinitions/{}",
            role.id
        ),
    };
    json!({
        "id": id,
        "name": role.id,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": role.name,
            "type": role.role_type,
            "description": role.description,
            "assignableScopes": ["/"],
            "permissions": [{
                "actions": role.actions,
                "notActions": role.not_actions,
                "dataActions": role.data_actions,
                "notDataActions": role.not_data_actions,
            }],
        }
    })
}

fn quoted_arg<'a>(filter: &'a str, func: &str) -> Option<&'a str> {
    let lower = filter.to_ascii_lowercase();
    let start = lower.find(&func.to_ascii_lowercase())? + func.len();
    let rest = &filter[start..];
    let open = rest.find('\'')? + 1;
    let close = rest[open..].find('\'')? + open;
    Some(&rest[open..close])
}

/// A role-assignment `$filter` ARM understands: `atScope()`, `principalId eq '{id}'`,
/// `assignedTo('{id}')`, joined by `and` (but `atScope()` never with `principalId eq`).
/// Returns (at scope only, the principal); anything else is refused as ARM refuses it.
fn role_assignment_filter(filter: &str) -> Result<(bool, Option<String>), ApiError> {
    let unsupported = || {
        ApiError::bad_request(
            "UnsupportedQuery",
            format!(
                "The filter '{filter}' is not supported. Supported filters are either 'atScope()' or 'principalId eq '{{value}}'' or 'assignedTo('{{value}}')'."
            ),
        )
    };
    let quoted = |rest: &str| -> Option<String> {
        let inner = rest.strip_prefix('\'')?.strip_suffix('\'')?;
        (!inner.is_empty() && !inner.contains('\'')).then(|| inner.to_owned())
    };
    let (mut at_scope, mut principal, mut by_principal_id) = (false, None, false);
    if filter.trim().is_empty() {
        return Ok((false, None));
    }
    let lower = filter.to_ascii_lowercase();
    let mut offset = 0;
    for term in lower.split(" and ") {
        let original = filter[offset..offset + term.len()].trim();
        offset += term.len() + " and ".len();
        let term = term.trim();
        if term == "atscope()" && !at_scope {
            at_scope = true;
        } else if let Some(rest) = term.strip_prefix("principalid eq ")
            && principal.is_none()
        {
            principal =
                Some(quoted(&original[original.len() - rest.len()..]).ok_or_else(unsupported)?);
            by_principal_id = true;
        } else if let Some(rest) = term
            .strip_prefix("assignedto(")
            .and_then(|r| r.strip_suffix(')'))
            && principal.is_none()
        {
            let start = "assignedTo(".len();
            principal = Some(quoted(&original[start..start + rest.len()]).ok_or_else(unsupported)?);
        } else {
            return Err(unsupported());
        }
    }
    if at_scope && by_principal_id {
        return Err(unsupported());
    }
    Ok((at_scope, principal))
}

// NB: a route table per provider reads best as one match.
#[allow(clippy::too_many_lines)]
fn route_authorization(w: &mut World, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let scope = scope_norm(&ctx.path.scope);
    match (
        ctx.path.seg(0).as_str(),
        ctx.path.rest.len(),
        &ctx.req.method,
    ) {
        ("roledefinitions", 2, &Method::GET) => {
            let guid = &ctx.path.rest[1];
            let role = w
                .roles
                .iter()
                .find(|r| r.id.eq_ignore_ascii_case(guid))
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "RoleDefinitionDoesNotExist",
                        format!("The specified role definition with ID '{guid}' does not exist."),
                    )
                })?;
            Ok(json_response(StatusCode::OK, &render_role(role, &scope)))
        }
        ("roledefinitions", 1, &Method::GET) => {
            let filter = ctx.req.query("$filter").unwrap_or_default().trim();
            // ARM filters role definitions by `roleName eq '…'` or `type eq '…'`; anything
            // else is refused, not ignored.
            let name = quoted_arg(filter, "roleName eq");
            let kind = quoted_arg(filter, "type eq");
            if !filter.is_empty() && name.is_none() && kind.is_none() {
                return Err(ApiError::bad_request(
                    "UnsupportedQuery",
                    format!(
                        "The filter '{filter}' is not supported. Supported filters are 'roleName eq '{{value}}'' and 'type eq '{{value}}''."
                    ),
                ));
            }
            let items: Vec<Value> = w
                .roles
                .iter()
                .filter(|r| name.is_none_or(|n| r.name.eq_ignore_ascii_case(n)))
                .filter(|r| kind.is_none_or(|k| k.eq_ignore_ascii_case(r.role_type)))
                .map(|r| render_role(r, &scope))
                .collect();
            Ok(json_response(StatusCode::OK, &list_body(&items)))
        }
        ("roleassignments", 1, &Method::GET) => {
            authorize(
                w,
                &ctx.caller,
                &scope,
                "Microsoft.Authorization/roleAssignments/read",
            )?;
            let (at_scope, principal) =
                role_assignment_filter(ctx.req.query("$filter").unwrap_or_default())?;
            let lag = chrono::Duration::from_std(w.knobs.role_assignment_list_lag)
                .unwrap_or_else(|_| chrono::Duration::zero());
            let listed_before = w.now() - lag;
            let items: Vec<Value> = w
                .role_assignments
                .values()
                .filter(|ra| ra.created_on <= listed_before)
                .filter(|ra| {
                    let above = scope_covers(&ra.scope, &scope);
                    let below = scope_covers(&scope, &ra.scope);
                    if at_scope { above } else { above || below }
                })
                .filter(|ra| {
                    principal
                        .as_deref()
                        .is_none_or(|p| ra.principal_id.eq_ignore_ascii_case(p))
                })
                .map(render_assignment)
                .collect();
            Ok(json_response(StatusCode::OK, &list_body(&items)))
        }
        ("roleassignments", 2, m) => {
            let name = ctx.path.rest[1].clone();
            let id = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}");
            let id = id.replacen("//", "/", 1);
            match *m {
                Method::GET => {
                    authorize(
                        w,
                        &ctx.caller,
                        &scope,
                        "Microsoft.Authorization/roleAssignments/read",
                    )?;
                    let ra = w.role_assignments.get(&key_of(&id)).ok_or_else(|| {
                        ApiError::new(
                            StatusCode::NOT_FOUND,
                            "RoleAssignmentNotFound",
                            format!("The role assignment '{name}' is not found."),
                        )
                    })?;
                    Ok(json_response(StatusCode::OK, &render_assignment(ra)))
                }
                Method::DELETE => {
                    authorize(
                        w,
                        &ctx.caller,
                        &scope,
                        "Microsoft.Authorization/roleAssignments/delete",
                    )?;
                    match w.role_assignments.remove(&key_of(&id)) {
                        Some(ra) => Ok(json_response(StatusCode::OK, &render_assignment(&ra))),
                        None => Ok(empty_response(StatusCode::NO_CONTENT)),
                    }
                }
                Method::PUT => create_role_assignment(w, ctx, &scope, &name, &id),
                _ => Err(ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "The method is not allowed.",
                )),
            }
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            "Unknown Microsoft.Authorization resource type.",
        )),
    }
}

fn create_role_assignment(
    w: &mut World,
    ctx: &Ctx<'_>,
    scope: &str,
    name: &str,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    if !is_guid(name) {
        return Err(ApiError::bad_request(
            "InvalidRoleAssignmentId",
            format!(
                "The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."
            ),
        ));
    }
    authorize(
        w,
        &ctx.caller,
        scope,
        "Microsoft.Authorization/roleAssignments/write",
    )?;
    let body = ctx.req.json()?;
    let props = &body["properties"];
    let (Some(role_def), Some(principal)) = (
        props["roleDefinitionId"].as_str(),
        props["principalId"].as_str(),
    ) else {
        return Err(ApiError::bad_request(
            "InvalidRequestContent",
            "The request content must contain 'properties.roleDefinitionId' and 'properties.principalId'.",
        ));
    };
    let guid = role_def.rsplit('/').next().unwrap_or(role_def).to_owned();
    if w.role_by_name_or_guid(&guid).is_none() {
        return Err(ApiError::bad_request(
            "RoleDefinitionDoesNotExist",
            format!("The specified role definition with ID '{guid}' does not exist."),
        ));
    }
    let principal_type = props["principalType"].as_str();
    let now = w.now();
    let delay = chrono::Duration::from_std(w.knobs.propagation_delay)
        .unwrap_or_else(|_| chrono::Duration::zero());
    let known = w.principals.get(&key_of(principal)).map(|p| p.created_at);
    let visible = match known {
        None => false,
        // NB: as documented, naming the principalType skips the directory lookup that lags.
        Some(created) => principal_type.is_some() || now - created >= delay,
    };
    if !visible {
        let tenant = w.tenant_id.clone();
        return Err(ApiError::bad_request(
            "PrincipalNotFound",
            format!(
                "Principal {} does not exist in the directory {tenant}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
                principal.replace('-', "")
            ),
        ));
    }
    if let Some(existing) = w.role_assignments.get(&key_of(id)) {
        let same = existing.principal_id.eq_ignore_ascii_case(principal)
            && existing.role_guid.eq_ignore_ascii_case(&guid);
        if !same {
            return Err(ApiError::bad_request(
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            ));
        }
        return Ok(json_response(StatusCode::OK, &render_assignment(existing)));
    }
    if let Some(dup) = w.role_assignments.values().find(|ra| {
        key_of(&ra.scope) == key_of(scope)
            && ra.principal_id.eq_ignore_ascii_case(principal)
            && ra.role_guid.eq_ignore_ascii_case(&guid)
            && ra.condition.is_none()
            && props["condition"].is_null()
    }) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "RoleAssignmentExists",
            format!(
                "The role assignment already exists. The ID of the existing role assignment is {}.",
                dup.name.replace('-', "")
            ),
        ));
    }
    let ptype = principal_type.map_or_else(|| w.principal_type_of(principal), str::to_owned);
    let mut ra = w.insert_role_assignment(
        scope,
        name,
        &guid,
        principal,
        &ptype,
        props["description"].as_str().map(str::to_owned),
        &ctx.caller.oid,
    );
    // Keep the caller's form of the role definition id, as Azure echoes it.
    role_def.clone_into(&mut ra.role_definition_id);
    if let Some(c) = props["condition"].as_str() {
        ra.condition = Some(c.to_owned());
        ra.condition_version = props["conditionVersion"].as_str().map(str::to_owned);
    }
    w.role_assignments.insert(key_of(&ra.id), ra.clone());
    Ok(json_response(StatusCode::CREATED, &render_assignment(&ra)))
}

// ---------------------------------------------------------------- Microsoft.KeyVault (management)

fn render_deleted_vault(v: &super::state::Vault) -> Value {
    let deleted = v.deleted_at.unwrap_or_default();
    let purge = deleted + chrono::Duration::days(v.retention_days());
    let sub = ResourceId::parse(v.id())
        .map(|r| r.subscription)
        .unwrap_or_default();
    let loc = v.resource["location"].as_str().unwrap_or_default();
    json!({
        "id": format!("/subscriptions/{sub}/providers/Microsoft.KeyVault/locations/{loc}/deletedVaults/{}", v.name()),
        "name": v.name(),
        "type": "Microsoft.KeyVault/deletedVaults",
        "properties": {
            "vaultId": v.id(),
            "location": loc,
            "deletionDate": deleted.to_rfc3339(),
            "scheduledPurgeDate": purge.to_rfc3339(),
            "tags": v.resource.get("tags").cloned().unwrap_or_else(|| json!({})),
            "purgeProtectionEnabled": v.purge_protection(),
        }
    })
}

// NB: a route table per provider reads best as one match.
#[allow(clippy::too_many_lines)]
fn route_keyvault(w: &mut World, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let p = &ctx.path;
    match ctx.op.as_str() {
        "Vaults_ListByResourceGroup" | "Vaults_ListBySubscription" => {
            if ctx.op == "Vaults_ListByResourceGroup" {
                require_rg(w, p)?;
            }
            authorize(w, &ctx.caller, &p.scope, "Microsoft.KeyVault/vaults/read")?;
            let scope = key_of(&p.scope);
            let items: Vec<Value> = w
                .vaults
                .iter()
                .filter(|(k, v)| {
                    k.starts_with(&format!("{scope}/"))
                        && k.contains("/providers/microsoft.keyvault/vaults/")
                        && v.deleted_at.is_none()
                })
                .map(|(_, v)| v.resource.clone())
                .collect();
            Ok(json_response(StatusCode::OK, &list_body(&items)))
        }
        "Vaults_ListDeleted" => {
            authorize(
                w,
                &ctx.caller,
                &p.scope,
                "Microsoft.KeyVault/deletedVaults/read",
            )?;
            let sub = p.subscription().unwrap_or_default().to_ascii_lowercase();
            let items: Vec<Value> = w
                .vaults
                .values()
                .filter(|v| {
                    v.deleted_at.is_some()
                        && ResourceId::parse(v.id())
                            .is_some_and(|r| r.subscription.eq_ignore_ascii_case(&sub))
                })
                .map(render_deleted_vault)
                .collect();
            Ok(json_response(StatusCode::OK, &list_body(&items)))
        }
        "Vaults_GetDeleted" | "Vaults_PurgeDeleted" => {
            authorize(
                w,
                &ctx.caller,
                &p.scope,
                "Microsoft.KeyVault/deletedVaults/read",
            )?;
            let name = p.rest[3].clone();
            let key = w.deleted_vault_key(&name).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "DeletedVaultNotFound",
                    format!("Deleted vault '{name}' was not found."),
                )
            })?;
            if ctx.op == "Vaults_GetDeleted" {
                return Ok(json_response(
                    StatusCode::OK,
                    &render_deleted_vault(&w.vaults[&key]),
                ));
            }
            if w.vaults[&key].purge_protection() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "ConflictError",
                    format!(
                        "Vault '{name}' has purge protection enabled and cannot be purged until its scheduled purge date."
                    ),
                ));
            }
            w.vaults.remove(&key);
            Ok(empty_response(StatusCode::ACCEPTED))
        }
        "Vaults_Get" => {
            let id = resource_id(p);
            authorize(w, &ctx.caller, &id, "Microsoft.KeyVault/vaults/read")?;
            let rg = p.resource_group().unwrap_or_default();
            let v = w
                .vaults
                .get(&key_of(&id))
                .filter(|v| v.deleted_at.is_none())
                .ok_or_else(|| {
                    ApiError::arm_not_found("Microsoft.KeyVault/vaults", &p.rest[1], &rg)
                })?;
            Ok(json_response(StatusCode::OK, &v.resource))
        }
        "Vaults_Delete" => {
            let id = resource_id(p);
            authorize(w, &ctx.caller, &id, "Microsoft.KeyVault/vaults/delete")?;
            let now = w.now();
            match w
                .vaults
                .get_mut(&key_of(&id))
                .filter(|v| v.deleted_at.is_none())
            {
                Some(v) if v.soft_delete() => {
                    v.deleted_at = Some(now);
                    Ok(empty_response(StatusCode::OK))
                }
                Some(_) => {
                    w.vaults.remove(&key_of(&id));
                    Ok(empty_response(StatusCode::OK))
                }
                None => Ok(empty_response(StatusCode::NO_CONTENT)),
            }
        }
        "Vaults_CreateOrUpdate" | "Vaults_Update" => put_vault(w, ctx),
        "Vaults_UpdateAccessPolicy" => update_access_policy(w, ctx),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            "Unknown Microsoft.KeyVault resource type.",
        )),
    }
}

// NB: a route table per provider reads best as one match.
#[allow(clippy::too_many_lines)]
fn put_vault(w: &mut World, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let p = &ctx.path;
    let id = resource_id(p);
    let rg_loc = require_rg(w, p)?;
    let _ = rg_loc;
    authorize(w, &ctx.caller, &id, "Microsoft.KeyVault/vaults/write")?;
    let body = ctx.req.json()?;
    let name = p.rest[1].clone();
    let existing = w
        .vaults
        .get(&key_of(&id))
        .filter(|v| v.deleted_at.is_none())
        .cloned();
    let patch = ctx.req.method == Method::PATCH;
    if patch && existing.is_none() {
        return Err(ApiError::arm_not_found(
            "Microsoft.KeyVault/vaults",
            &name,
            &p.resource_group().unwrap_or_default(),
        ));
    }
    if !patch {
        if body["location"].as_str().is_none() || !body["properties"].is_object() {
            return Err(ApiError::bad_request(
                "BadRequest",
                "The request must contain 'location' and 'properties'.",
            ));
        }
        if body["properties"]["tenantId"].as_str().is_none()
            || !body["properties"]["sku"].is_object()
        {
            return Err(ApiError::bad_request(
                "BadRequest",
                "The request must contain 'properties.tenantId' and 'properties.sku'.",
            ));
        }
    }
    // Vault names are global (they are DNS names).
    if existing.is_none()
        && let Some(other) = w
            .vaults
            .values()
            .find(|v| v.name().eq_ignore_ascii_case(&name))
    {
        if other.deleted_at.is_none() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "VaultAlreadyExists",
                format!(
                    "The vault name '{name}' is already in use. Vault names are globally unique so it is possible that the name is already taken."
                ),
            ));
        }
        let recover = body["properties"]["createMode"].as_str() == Some("recover")
            && key_of(other.id()) == key_of(&id);
        if recover && let Some(v) = w.vaults.get_mut(&key_of(&id)) {
            v.deleted_at = None;
            return Ok(json_response(StatusCode::OK, &v.resource));
        }
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "ConflictError",
            format!(
                "A vault with the same name already exists in deleted state. You need to either recover or purge existing key vault. Vault '{name}'."
            ),
        ));
    }
    let mut resource = match (&existing, patch) {
        (Some(v), true) => {
            let mut r = v.resource.clone();
            merge_patch(&mut r, &body);
            r
        }
        _ => body.clone(),
    };
    if let Some(old) = &existing {
        if old.purge_protection()
            && resource["properties"]["enablePurgeProtection"].as_bool() == Some(false)
        {
            return Err(ApiError::bad_request(
                "BadRequest",
                "The property \"enablePurgeProtection\" cannot be set to false. Enabling the purge protection for a vault is an irreversible action.",
            ));
        }
        if old.purge_protection()
            && resource["properties"]
                .get("enablePurgeProtection")
                .is_none()
        {
            resource["properties"]["enablePurgeProtection"] = json!(true);
        }
        if old.soft_delete() && resource["properties"]["enableSoftDelete"].as_bool() == Some(false)
        {
            return Err(ApiError::bad_request(
                "BadRequest",
                "The property \"enableSoftDelete\" cannot be set to false. Enabling the soft delete for a vault is an irreversible action.",
            ));
        }
        if let Some(loc) = old.resource.get("location") {
            if resource.get("location").is_some_and(|l| {
                super::state::norm_location(l.as_str().unwrap_or_default())
                    != super::state::norm_location(loc.as_str().unwrap_or_default())
            }) {
                return Err(ApiError::bad_request(
                    "LocationNotAvailableForResourceType",
                    "The location of an existing vault cannot be changed.",
                ));
            }
            resource["location"] = loc.clone();
        }
    }
    if let Some(props) = resource["properties"].as_object_mut() {
        props.remove("createMode");
    }
    let created = w
        .put_vault(&id, &resource)
        .map_err(|e| ApiError::bad_request("InvalidResourceId", e))?;
    let v = &w.vaults[&key_of(&id)];
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, &v.resource))
}

fn policy_key(p: &Value) -> (String, String, String) {
    (
        p["tenantId"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase(),
        p["objectId"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase(),
        p["applicationId"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase(),
    )
}

fn merge_perms(base: &mut Value, add: &Value, remove: bool) {
    for kind in ["keys", "secrets", "certificates", "storage"] {
        let Some(list) = add["permissions"][kind].as_array() else {
            continue;
        };
        let mut current: Vec<Value> = base["permissions"][kind]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for perm in list {
            let s = perm.as_str().unwrap_or_default();
            let pos = current
                .iter()
                .position(|c| c.as_str().is_some_and(|c| c.eq_ignore_ascii_case(s)));
            match (remove, pos) {
                (true, Some(i)) => {
                    current.remove(i);
                }
                (false, None) => current.push(perm.clone()),
                _ => {}
            }
        }
        base["permissions"][kind] = Value::Array(current);
    }
}

fn update_access_policy(w: &mut World, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let p = &ctx.path;
    let id = format!(
        "{}/providers/{}/{}/{}",
        p.scope, p.namespace, p.rest[0], p.rest[1]
    );
    authorize(
        w,
        &ctx.caller,
        &id,
        "Microsoft.KeyVault/vaults/accessPolicies/write",
    )?;
    let kind = p.seg(3);
    if !["add", "replace", "remove"].contains(&kind.as_str()) {
        return Err(ApiError::bad_request(
            "BadRequest",
            format!(
                "The operation kind '{}' is not one of add, replace, remove.",
                p.rest[3]
            ),
        ));
    }
    let body = ctx.req.json()?;
    let Some(entries) = body["properties"]["accessPolicies"].as_array().cloned() else {
        return Err(ApiError::bad_request(
            "BadRequest",
            "The request must contain 'properties.accessPolicies'.",
        ));
    };
    let rg = p.resource_group().unwrap_or_default();
    let vault = w
        .vaults
        .get_mut(&key_of(&id))
        .filter(|v| v.deleted_at.is_none())
        .ok_or_else(|| ApiError::arm_not_found("Microsoft.KeyVault/vaults", &p.rest[1], &rg))?;
    let mut policies: Vec<Value> = vault.props()["accessPolicies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for entry in &entries {
        let k = policy_key(entry);
        let pos = policies.iter().position(|q| policy_key(q) == k);
        match (kind.as_str(), pos) {
            ("add", Some(i)) => merge_perms(&mut policies[i], entry, false),
            ("add" | "replace", None) => policies.push(entry.clone()),
            ("replace", Some(i)) => policies[i] = entry.clone(),
            ("remove", Some(i)) => {
                merge_perms(&mut policies[i], entry, true);
                let empty = ["keys", "secrets", "certificates", "storage"]
                    .iter()
                    .all(|k| {
                        policies[i]["permissions"][k]
                            .as_array()
                            .is_none_or(Vec::is_empty)
                    });
                if empty {
                    policies.remove(i);
                }
            }
            _ => {}
        }
    }
    vault.resource["properties"]["accessPolicies"] = Value::Array(policies.clone());
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "id": format!("{id}/accessPolicies/"),
            "type": "Microsoft.KeyVault/vaults/accessPolicies",
            "properties": {"accessPolicies": policies},
        }),
    ))
}

// ---------------------------------------------------------------- Microsoft.Storage

fn route_storage(w: &mut World, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let p = &ctx.path;
    let id = resource_id(p);
    let rg = p.resource_group().unwrap_or_default();
    let name = p.rest[1].clone();
    match ctx.req.method {
        Method::GET => {
            authorize(
                w,
                &ctx.caller,
                &id,
                "Microsoft.Storage/storageAccounts/read",
            )?;
            let sa = w.storage.get(&key_of(&id)).ok_or_else(|| {
                ApiError::arm_not_found("Microsoft.Storage/storageAccounts", &name, &rg)
            })?;
            Ok(json_response(StatusCode::OK, sa))
        }
        Method::DELETE => {
            authorize(
                w,
                &ctx.caller,
                &id,
                "Microsoft.Storage/storageAccounts/delete",
            )?;
            let status = if w.storage.remove(&key_of(&id)).is_some() {
                StatusCode::OK
            } else {
                StatusCode::NO_CONTENT
            };
            Ok(empty_response(status))
        }
        Method::PUT | Method::PATCH => {
            require_rg(w, p)?;
            authorize(
                w,
                &ctx.caller,
                &id,
                "Microsoft.Storage/storageAccounts/write",
            )?;
            let body = ctx.req.json()?;
            let resource = if ctx.req.method == Method::PATCH {
                let mut base = w.storage.get(&key_of(&id)).cloned().ok_or_else(|| {
                    ApiError::arm_not_found("Microsoft.Storage/storageAccounts", &name, &rg)
                })?;
                merge_patch(&mut base, &body);
                base
            } else {
                if body["location"].as_str().is_none()
                    || !body["sku"].is_object()
                    || body["kind"].as_str().is_none()
                {
                    return Err(ApiError::bad_request(
                        "InvalidRequestContent",
                        "The request must contain 'sku', 'kind' and 'location'.",
                    ));
                }
                body
            };
            check_user_identities(w, ctx, &id, &resource)?;
            w.store_storage(&id, &resource)
                .map_err(|e| ApiError::bad_request("InvalidResourceId", e))?;
            Ok(json_response(StatusCode::OK, &w.storage[&key_of(&id)]))
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The method is not allowed.",
        )),
    }
}

/// Checks the user-assigned identities a resource body names exist and may be assigned, and
/// fills their principal/client ids.
fn check_user_identities(
    w: &World,
    ctx: &Ctx<'_>,
    id: &str,
    resource: &Value,
) -> Result<(), ApiError> {
    let Some(map) = resource["identity"]["userAssignedIdentities"].as_object() else {
        return Ok(());
    };
    for uai in map.keys() {
        if !w.identities.contains_key(&key_of(uai)) {
            return Err(ApiError::bad_request(
                "FailedIdentityOperation",
                format!(
                    "Identity operation for resource '{id}' failed with error 'Resource '{uai}' was not found.'."
                ),
            ));
        }
        authorize_linked(w, &ctx.caller, id, "write", uai)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- Microsoft.ManagedIdentity

// NB: a route table per provider reads best as one match.
#[allow(clippy::too_many_lines)]
fn route_identity(w: &mut World, ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let p = &ctx.path;
    if ctx.op == "SystemAssignedIdentities_GetByScope" {
        let scope = scope_norm(&p.scope);
        authorize(
            w,
            &ctx.caller,
            &scope,
            "Microsoft.ManagedIdentity/identities/read",
        )?;
        let principal = w
            .media
            .get(&key_of(&scope))
            .and_then(|a| a.system_principal.clone())
            .and_then(|oid| w.principals.get(&key_of(&oid)).cloned())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    format!("The resource '{scope}' has no system-assigned identity."),
                )
            })?;
        let location = w
            .media
            .get(&key_of(&scope))
            .and_then(|a| a.resource["location"].as_str().map(str::to_owned))
            .unwrap_or_default();
        return Ok(json_response(
            StatusCode::OK,
            &json!({
                "id": format!("{scope}/providers/Microsoft.ManagedIdentity/identities/default"),
                "name": "default",
                "type": "Microsoft.ManagedIdentity/identities",
                "location": location,
                "properties": {
                    "tenantId": w.tenant_id,
                    "principalId": principal.object_id,
                    "clientId": principal.client_id,
                    "clientSecretUrl": format!("https://control-{}.identity.azure.net{scope}/credentials?tid={}&oid={}&aid={}", super::state::norm_location(&location), w.tenant_id, principal.object_id, principal.client_id),
                }
            }),
        ));
    }
    let id = resource_id(p);
    let rg = p.resource_group().unwrap_or_default();
    let name = p.rest[1].clone();
    match ctx.req.method {
        Method::GET => {
            authorize(
                w,
                &ctx.caller,
                &id,
                "Microsoft.ManagedIdentity/userAssignedIdentities/read",
            )?;
            let ident = w.identities.get(&key_of(&id)).ok_or_else(|| {
                ApiError::arm_not_found(
                    "Microsoft.ManagedIdentity/userAssignedIdentities",
                    &name,
                    &rg,
                )
            })?;
            Ok(json_response(StatusCode::OK, ident))
        }
        Method::DELETE => {
            authorize(
                w,
                &ctx.caller,
                &id,
                "Microsoft.ManagedIdentity/userAssignedIdentities/delete",
            )?;
            match w.identities.remove(&key_of(&id)) {
                Some(ident) => {
                    if let Some(oid) = ident["properties"]["principalId"].as_str() {
                        w.principals.remove(&key_of(oid));
                    }
                    Ok(empty_response(StatusCode::OK))
                }
                None => Ok(empty_response(StatusCode::NO_CONTENT)),
            }
        }
        Method::PUT | Method::PATCH => {
            let rg_loc = require_rg(w, p)?;
            authorize(
                w,
                &ctx.caller,
                &id,
                "Microsoft.ManagedIdentity/userAssignedIdentities/write",
            )?;
            let body = ctx.req.json()?;
            let exists = w.identities.contains_key(&key_of(&id));
            if ctx.req.method == Method::PATCH && !exists {
                return Err(ApiError::arm_not_found(
                    "Microsoft.ManagedIdentity/userAssignedIdentities",
                    &name,
                    &rg,
                ));
            }
            let mut body = body;
            if body.get("location").is_none() && !exists {
                body["location"] = json!(rg_loc);
            }
            let now = w.now();
            let created = w
                .put_identity(&id, &body, None, None, now)
                .map_err(|e| ApiError::bad_request("InvalidResourceId", e))?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(status, &w.identities[&key_of(&id)]))
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The method is not allowed.",
        )),
    }
}
