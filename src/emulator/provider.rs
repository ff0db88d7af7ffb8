//! What every ARM resource-provider handler shares: the parsed path, the call context, the RBAC
//! checks, and the resource-group and PATCH helpers.
//!
//! `arm` routes to the providers (its own and `media`); both build on this module, so neither
//! imports the other's internals. It neither routes nor authenticates.

use axum::http::StatusCode;
use serde_json::Value;

use super::state::World;
use super::wire::{ApiError, Caller, Req};

/// An ARM path split at its last `/providers/`: the scope, the namespace and what follows.
#[derive(Debug, Clone)]
pub struct ArmPath {
    /// The scope before `/providers/` (empty for tenant-level paths).
    pub scope: String,
    /// Provider namespace as written.
    pub namespace: String,
    /// Segments after the namespace.
    pub rest: Vec<String>,
}

impl ArmPath {
    /// Splits a path.
    #[must_use]
    pub fn parse(path: &str) -> Option<Self> {
        let lower = path.to_ascii_lowercase();
        let idx = lower.rfind("/providers/")?;
        let scope = path[..idx].trim_end_matches('/').to_owned();
        let after: Vec<String> = path[idx + "/providers/".len()..]
            .trim_end_matches('/')
            .split('/')
            .map(str::to_owned)
            .collect();
        let (namespace, rest) = after.split_first()?;
        Some(Self {
            scope,
            namespace: namespace.clone(),
            rest: rest.to_vec(),
        })
    }

    /// Lower-case namespace.
    #[must_use]
    pub fn ns(&self) -> String {
        self.namespace.to_ascii_lowercase()
    }

    /// The i-th segment after the namespace, lower-cased.
    #[must_use]
    pub fn seg(&self, i: usize) -> String {
        self.rest
            .get(i)
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// The subscription in the scope, if any.
    #[must_use]
    pub fn subscription(&self) -> Option<String> {
        let parts: Vec<&str> = self.scope.trim_matches('/').split('/').collect();
        (parts.len() >= 2 && parts[0].eq_ignore_ascii_case("subscriptions"))
            .then(|| parts[1].to_owned())
    }

    /// The resource group in the scope, if any.
    #[must_use]
    pub fn resource_group(&self) -> Option<String> {
        let parts: Vec<&str> = self.scope.trim_matches('/').split('/').collect();
        (parts.len() >= 4 && parts[2].eq_ignore_ascii_case("resourceGroups"))
            .then(|| parts[3].to_owned())
    }

    /// Whether the scope is exactly a resource group.
    #[must_use]
    pub fn scope_is_rg(&self) -> bool {
        self.scope.trim_matches('/').split('/').count() == 4 && self.resource_group().is_some()
    }
}

/// The context handlers get: the caller, the parsed path, the request.
pub struct Ctx<'a> {
    /// Caller.
    pub caller: Caller,
    /// Parsed path.
    pub path: ArmPath,
    /// Request.
    pub req: &'a Req,
    /// Operation name.
    pub op: String,
}

/// 403 `AuthorizationFailed` unless the caller holds `action` at `scope`.
pub fn authorize(w: &World, caller: &Caller, scope: &str, action: &str) -> Result<(), ApiError> {
    if w.has_action(&caller.oid, scope, action) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "AuthorizationFailed",
        format!(
            "The client '{}' with object id '{}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            caller.appid, caller.oid
        ),
    ))
}

/// 403 `LinkedAuthorizationFailed` unless the caller may assign the identity.
pub fn authorize_linked(
    w: &World,
    caller: &Caller,
    scope: &str,
    action: &str,
    linked: &str,
) -> Result<(), ApiError> {
    let linked_action = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action";
    if w.has_action(&caller.oid, linked, linked_action) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "LinkedAuthorizationFailed",
        format!(
            "The client '{}' with object id '{}' has permission to perform action '{action}' on scope '{scope}'; however, it does not have permission to perform action(s) '{linked_action}' on the linked scope(s) '{linked}' (respectively) or the linked scope(s) are invalid.",
            caller.appid, caller.oid
        ),
    ))
}

/// The full resource id of a top-level resource path.
#[must_use]
pub fn resource_id(path: &ArmPath) -> String {
    format!(
        "{}/providers/{}/{}/{}",
        path.scope, path.namespace, path.rest[0], path.rest[1]
    )
}

/// 404 unless the path's resource group exists.
pub fn require_rg(w: &World, path: &ArmPath) -> Result<String, ApiError> {
    let (Some(sub), Some(rg)) = (path.subscription(), path.resource_group()) else {
        return Err(ApiError::bad_request(
            "InvalidResourceId",
            "The resource id is not a resource group scoped id.",
        ));
    };
    w.rg_location(&sub, &rg).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "ResourceGroupNotFound",
            format!("Resource group '{rg}' could not be found."),
        )
    })
}

/// Shallow-merges `patch` into `base` for the keys of a PATCH (objects in `properties` merge one
/// level deep; everything else is replaced).
pub fn merge_patch(base: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        return;
    };
    for (k, v) in patch {
        if k == "properties" && base["properties"].is_object() && v.is_object() {
            if let (Some(bp), Some(vp)) = (base["properties"].as_object_mut(), v.as_object()) {
                for (pk, pv) in vp {
                    bp.insert(pk.clone(), pv.clone());
                }
            }
        } else {
            base[k] = v.clone();
        }
    }
}
