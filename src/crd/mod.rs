//! The operator's Kubernetes API: custom resource types, their conditions, and the one function
//! that generates the CRD YAML shipped in `crds/` and in the Helm chart.
//!
//! Nothing here talks to a cluster; installing CRDs is the job of `kubectl apply` or the chart.

pub mod account;
pub mod conditions;
pub mod interval;
pub mod patterns;

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use schemars::{Schema, SchemaGenerator};
use serde_json::{Value, json};

pub use account::{MediaServicesAccount, MediaServicesAccountSpec, MediaServicesAccountStatus};

/// API group of every kind this operator serves.
pub const GROUP: &str = "ams-security.io";
/// API version of the kinds.
pub const VERSION: &str = "v1alpha1";

/// Field manager for every server-side apply the operator makes (status included), so ownership
/// of fields is stable across restarts and versions.
pub const FIELD_MANAGER: &str = "ams-security-operator";

/// Finalizer the operator puts on every `MediaServicesAccount`, so deleting one runs its
/// `deletionPolicy` before the object goes.
pub const FINALIZER: &str = "ams-security.io/cleanup";

/// Annotation that releases the finalizer without any cleanup (`"true"`), for when cleanup
/// cannot succeed (credentials gone for good) and a person decides to let the object go.
pub const RELEASE_ANNOTATION: &str = "ams-security.io/release-finalizer";

/// Every CRD this operator serves, in a stable order.
#[must_use]
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![MediaServicesAccount::crd()]
        .into_iter()
        .map(without_nullable)
        .collect()
}

/// Drops `nullable: true` from a CRD's schemas.
///
/// NB: apiservers before 1.23 publish a `nullable` field to OpenAPI v2 without its type and
/// properties, so `kubectl explain` shows nothing below it and kubectl's client-side validation
/// skips it. The operator never writes `null` (every optional field is omitted when unset), so
/// nothing needs `nullable`, and without it users get the field docs and early errors.
fn without_nullable(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.remove("nullable");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            let mut value = serde_json::to_value(&*schema).expect("schema serializes");
            strip(&mut value);
            *schema = serde_json::from_value(value).expect("schema deserializes");
        }
    }
    crd
}

/// A generated CRD file: where it goes and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdFile {
    /// File name, e.g. `mediaservicesaccounts.ams-security.io.yaml`.
    pub file_name: String,
    /// The YAML text, with a header saying it is generated.
    pub contents: String,
}

/// Directories that hold committed copies of the generated CRDs, relative to the project root.
pub const CRD_DIRS: [&str; 2] = ["crds", "charts/ams-security-operator/crds"];

/// Renders every CRD to YAML, one file per kind.
///
/// # Errors
/// Fails only if a CRD cannot be serialized, which would be a bug in the types.
pub fn render() -> Result<Vec<CrdFile>, serde_yaml_ng::Error> {
    all()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let yaml = serde_yaml_ng::to_string(&crd)?;
            Ok(CrdFile {
                file_name: format!("{name}.yaml"),
                contents: format!(
                    "# Generated from the Rust types by `cargo run --bin crdgen`; do not edit.\n{yaml}"
                ),
            })
        })
        .collect()
}

/// Paths of the committed CRD files under `root`, for each directory in [`CRD_DIRS`].
#[must_use]
pub fn committed_paths(root: &Path, file: &CrdFile) -> Vec<PathBuf> {
    CRD_DIRS
        .iter()
        .map(|dir| root.join(dir).join(&file.file_name))
        .collect()
}

/// Schema of `status.conditions`: `metav1.Condition` items as a list-map keyed by `type`, so
/// that server-side apply merges conditions from different managers instead of replacing the list.
pub(crate) fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let item =
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>();
    serde_json::from_value(json!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": item,
    }))
    .expect("static schema is valid")
}

/// Removes `null` from an `Option<UnitEnum>`'s `enum` list. Apiservers before 1.22 reject a CRD
/// whose enum lists `null`, and an omitted field already expresses "unset".
pub(crate) fn remove_null_from_enum(schema: &mut Schema) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(values)) = object.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if let Some(Value::Array(variants)) = object.get_mut("anyOf") {
        variants.retain(|v| v.get("enum").is_none_or(|e| e != &json!([null])));
    }
    if let Some(Value::Array(variants)) = object.get_mut("oneOf") {
        variants.retain(|v| v.get("type") != Some(&json!("null")));
    }
    object.remove("nullable");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No `enum` in any CRD may contain `null`: the 1.20 apiserver rejects the whole CRD and
    /// kubectl's client-side validation rejects such values.
    #[test]
    fn generated_crds_have_no_null_in_any_enum() {
        fn walk(path: &str, value: &Value, found: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::Array(values)) = map.get("enum")
                        && values.iter().any(Value::is_null)
                    {
                        found.push(path.to_owned());
                    }
                    for (key, child) in map {
                        walk(&format!("{path}.{key}"), child, found);
                    }
                }
                Value::Array(items) => {
                    for (i, child) in items.iter().enumerate() {
                        walk(&format!("{path}[{i}]"), child, found);
                    }
                }
                _ => {}
            }
        }
        let mut found = Vec::new();
        for crd in all() {
            walk(
                "",
                &serde_json::to_value(&crd).expect("serializes"),
                &mut found,
            );
        }
        assert!(found.is_empty(), "null inside enum at: {found:?}");
    }

    /// Conditions must be a list-map keyed by `type`, or server-side apply from two field
    /// managers would overwrite each other's conditions.
    #[test]
    fn status_conditions_are_a_list_map_keyed_by_type() {
        let crd = serde_json::to_value(MediaServicesAccount::crd()).expect("serializes");
        let conditions = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
            ["properties"]["conditions"];
        assert_eq!(
            conditions["x-kubernetes-list-type"], "map",
            "{conditions:#}"
        );
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            json!(["type"]),
            "{conditions:#}"
        );
        assert_eq!(
            conditions["items"]["required"],
            json!(["lastTransitionTime", "message", "reason", "status", "type"])
        );
    }
}
