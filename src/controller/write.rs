//! The one way status reaches the apiserver: a JSON merge patch of exactly what changed, with
//! the object's `resourceVersion` as a precondition, so a status someone else changed since
//! the read is never overwritten (the apiserver answers 409 and the reconcile runs again).
//! Callers skip it when nothing changed.
//!
//! NB: server-side apply would be the natural choice, but the 1.20 apiserver turns a field the
//! manager stops sending (a cleared `pendingOperation`) into `null`, which the schema then
//! refuses; a merge patch says "remove" explicitly.

use std::fmt::Debug;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::crd::MediaServicesAccount;
use crate::crd::account::MediaServicesAccountStatus;

use super::error::Error;

/// Writes `status` over `previous` on `account`.
///
/// # Errors
/// [`Error::WriteStatus`] with the apiserver's refusal.
pub async fn account_status(
    kube: &kube::Client,
    account: &MediaServicesAccount,
    previous: &MediaServicesAccountStatus,
    status: &MediaServicesAccountStatus,
) -> Result<(), Error> {
    let api: Api<MediaServicesAccount> =
        Api::namespaced(kube.clone(), &account.namespace().unwrap_or_default());
    let old = serde_json::to_value(previous).unwrap_or_default();
    let new = serde_json::to_value(status).unwrap_or_default();
    self::status(
        &api,
        &account.name_any(),
        account.resource_version(),
        &old,
        &new,
    )
    .await
    .map_err(|source| Error::WriteStatus {
        object: format!(
            "{}/{}",
            account.namespace().unwrap_or_default(),
            account.name_any()
        ),
        source,
    })
}

/// Patches the status of `name` from `old` to `new` (both the JSON of the whole status),
/// provided the object is still at `resource_version`.
///
/// # Errors
/// The apiserver's refusal (409 when the object moved on).
pub async fn status<K>(
    api: &Api<K>,
    name: &str,
    resource_version: Option<String>,
    old: &Value,
    new: &Value,
) -> Result<(), kube::Error>
where
    K: Clone + DeserializeOwned + Debug,
{
    let patch = json!({
        "metadata": { "resourceVersion": resource_version },
        "status": merge_diff(old, new),
    });
    tracing::debug!(object = %name, patch = %patch["status"], "writing status");
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The JSON merge patch (RFC 7386) that turns `old` into `new`: changed members, `null` for
/// removed ones; arrays and scalars are replaced whole.
#[must_use]
pub fn merge_diff(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = serde_json::Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) if ov == nv => {}
                    Some(ov) => {
                        patch.insert(k.clone(), merge_diff(ov, nv));
                    }
                    None => {
                        patch.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The patch carries exactly what changed: a changed member, a removed one as `null`, and
    /// arrays whole; applying it (RFC 7386) gives the new value.
    #[test]
    fn the_patch_holds_only_changes_and_removes_with_null() {
        let old = json!({ "a": 1, "b": { "c": 2, "d": 3 }, "list": [1, 2], "gone": "x" });
        let new = json!({ "a": 1, "b": { "c": 2, "d": 4 }, "list": [1], "added": true });
        assert_eq!(
            merge_diff(&old, &new),
            json!({ "b": { "d": 4 }, "list": [1], "gone": null, "added": true })
        );
        assert_eq!(merge_diff(&new, &new), json!({}));
    }
}
