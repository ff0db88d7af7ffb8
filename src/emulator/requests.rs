//! Request validation: every request body is checked against the request schema its operation
//! documents in the REST specifications, before the operation runs, and refused as the service
//! would refuse it: ARM with 400 `InvalidRequestContent`, Key Vault with 400 `BadParameter`,
//! each naming the property path.
//!
//! The schemas are derived from `shared/azure-specs/` by the conformance tests and committed as
//! `request_schemas.json` (a test fails when they drift), so the emulator needs no spec files
//! at run time. One validator per operation, compiled once. Enum lists are enforced whether or
//! not the spec marks them extensible (`modelAsString`): the services refuse values they do not
//! know, and the response checks hold the emulator to the same lists.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::Value;

use super::wire::{ApiError, HostKind, Req};

/// The derived schemas, as committed.
const SCHEMAS: &str = include_str!("request_schemas.json");

struct Check {
    required: bool,
    validator: jsonschema::Validator,
}

static CHECKS: LazyLock<HashMap<String, Check>> = LazyLock::new(|| {
    let all: serde_json::Map<String, Value> = serde_json::from_str(SCHEMAS).unwrap_or_default();
    all.into_iter()
        .filter_map(|(key, entry)| {
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft4)
                .build(&entry["schema"])
                .ok()?;
            Some((
                key,
                Check {
                    required: entry["required"].as_bool().unwrap_or(false),
                    validator,
                },
            ))
        })
        .collect()
});

/// The spec folder of an ARM provider namespace.
fn service(kind: &HostKind, req: &Req) -> Option<&'static str> {
    match kind {
        HostKind::Vault(_) => Some("keyvault-data"),
        HostKind::Arm => {
            let lower = req.path.to_ascii_lowercase();
            let provider = lower.rsplit("/providers/").next()?.split('/').next()?;
            Some(match provider {
                "microsoft.media" => "mediaservices",
                "microsoft.storage" => "storage",
                "microsoft.keyvault" => "keyvault",
                "microsoft.authorization" => "authorization",
                "microsoft.managedidentity" => "msi",
                _ => return None,
            })
        }
        _ => None,
    }
}

/// `/properties/storageAccounts/0/id` as a user reads it: `properties.storageAccounts[0].id`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(&segment);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

fn refuse(kind: &HostKind, message: String) -> ApiError {
    match kind {
        HostKind::Vault(_) => ApiError::bad_request("BadParameter", message),
        _ => ApiError::bad_request("InvalidRequestContent", message),
    }
}

/// Checks the body of `req` for operation `op` (and the paging parameter Key Vault
/// interprets); `Err` is the answer to send instead.
pub fn check(kind: &HostKind, op: &str, req: &Req) -> Result<(), ApiError> {
    // The Key Vault list operations declare `maxresults` as an integer from 1 to 25.
    if matches!(kind, HostKind::Vault(_))
        && let Some(max) = req.query("maxresults")
        && !max.parse::<u32>().is_ok_and(|m| (1..=25).contains(&m))
    {
        return Err(refuse(
            kind,
            format!(
                "The request content was invalid: 'maxresults': {max:?} is not an integer from 1 to 25."
            ),
        ));
    }
    let Some(service) = service(kind, req) else {
        return Ok(());
    };
    let Some(check) = CHECKS.get(&format!("{service} {op}")) else {
        return Ok(());
    };
    if req.body.is_empty() {
        return if check.required {
            Err(refuse(
                kind,
                "The request content was invalid: a request body is required.".to_owned(),
            ))
        } else {
            Ok(())
        };
    }
    let body: Value = serde_json::from_slice(&req.body).map_err(|e| {
        refuse(
            kind,
            format!("The request content was invalid and could not be deserialized: {e}."),
        )
    })?;
    let mut problems: Vec<String> = check
        .validator
        .iter_errors(&body)
        .map(|e| {
            let path = dotted(&e.instance_path().to_string());
            if path.is_empty() {
                format!("{e}")
            } else {
                format!("'{path}': {e}")
            }
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    problems.sort();
    problems.dedup();
    Err(refuse(
        kind,
        format!("The request content was invalid: {}.", problems.join("; ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_derived_schema_compiles() {
        let all: serde_json::Map<String, Value> =
            serde_json::from_str(SCHEMAS).expect("request_schemas.json is JSON");
        assert_eq!(CHECKS.len(), all.len(), "a schema failed to compile");
        assert!(all.len() > 20, "{}", all.len());
    }

    #[test]
    fn pointers_read_as_property_paths() {
        assert_eq!(
            dotted("/properties/storageAccounts/0/id"),
            "properties.storageAccounts[0].id"
        );
        assert_eq!(dotted(""), "");
        assert_eq!(dotted("/a~1b"), "a/b");
    }
}
