//! The swagger specs as test oracles: load every operation of `../shared/azure-specs/`, and
//! validate a response body against the schema an operation documents for a status (JSON
//! Schema draft 4, `$ref`s resolved across files), refusing properties the spec does not
//! declare. Shared by the conformance and scenario tests.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{Value, json};

/// The spec tree; its absence is an error, never a skip.
pub fn specs_root() -> PathBuf {
    let root =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/azure-specs/specification");
    assert!(
        root.is_dir(),
        "the Azure REST specs are missing at {}: check out the shared/ folder beside the repository (see shared/azure-specs/README.md)",
        root.display()
    );
    root.canonicalize().expect("specs path canonicalizes")
}

/// One operation of a spec file.
#[derive(Clone, Debug)]
pub struct Op {
    pub file: PathBuf,
    pub section: &'static str,
    pub id: String,
    pub method: Method,
    pub template: String,
    pub spec: Value,
    pub examples: Vec<PathBuf>,
}

impl Op {
    pub fn data_plane(&self) -> bool {
        self.file.to_string_lossy().contains("/data-plane/")
    }
}

pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable spec dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

pub fn load_ops() -> Vec<Op> {
    let mut files = Vec::new();
    walk(&specs_root(), &mut files);
    let mut ops = Vec::new();
    for file in files
        .iter()
        .filter(|f| !f.components().any(|c| c.as_os_str() == "examples"))
    {
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(file).expect("spec readable"))
                .expect("spec is JSON");
        for section in ["paths", "x-ms-paths"] {
            let Some(paths) = doc[section].as_object() else {
                continue;
            };
            for (template, methods) in paths {
                let Some(methods) = methods.as_object() else {
                    continue;
                };
                for (method, op) in methods {
                    let Some(id) = op["operationId"].as_str() else {
                        continue;
                    };
                    let examples = op["x-ms-examples"]
                        .as_object()
                        .into_iter()
                        .flat_map(|m| m.values())
                        .filter_map(|e| e["$ref"].as_str())
                        .map(|r| file.parent().expect("parent").join(r))
                        .filter(|p| p.exists())
                        .map(|p| p.canonicalize().expect("canonical"))
                        .collect();
                    ops.push(Op {
                        file: file.clone(),
                        section,
                        id: id.to_owned(),
                        method: method.to_ascii_uppercase().parse().expect("HTTP method"),
                        template: template.clone(),
                        spec: op.clone(),
                        examples,
                    });
                }
            }
        }
    }
    ops
}

pub fn op<'a>(ops: &'a [Op], id: &str) -> &'a Op {
    let found: Vec<&Op> = ops.iter().filter(|o| o.id == id).collect();
    assert_eq!(
        found.len(),
        1,
        "operationId {id} must exist exactly once in the specs"
    );
    found[0]
}

pub fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

pub fn pointer_segment(s: &str) -> String {
    let escaped = s.replace('~', "~0").replace('/', "~1");
    let mut out = String::new();
    for c in escaped.chars() {
        if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Validates `body` against the schema the operation documents for `status` (or `default`).
/// Returns `Ok(false)` when that response has no schema (nothing to validate).
pub fn validate(op: &Op, status: u16, body: &Value) -> Result<bool, String> {
    let key = status.to_string();
    let (resp_key, resp) = if op.spec["responses"].get(&key).is_some() {
        (key.clone(), &op.spec["responses"][&key])
    } else {
        ("default".to_owned(), &op.spec["responses"]["default"])
    };
    let Some(schema) = resp.get("schema") else {
        return Ok(false);
    };
    let target = match schema.get("$ref").and_then(Value::as_str) {
        Some(r) if r.starts_with('#') => format!("{}{r}", file_uri(&op.file)),
        Some(r) => {
            let (path, frag) = r.split_once('#').unwrap_or((r, ""));
            let abs = op
                .file
                .parent()
                .expect("parent")
                .join(path)
                .canonicalize()
                .map_err(|e| format!("{r}: {e}"))?;
            format!("{}#{frag}", file_uri(&abs))
        }
        None => format!(
            "{}#/{}/{}/{}/responses/{}/schema",
            file_uri(&op.file),
            op.section,
            pointer_segment(&op.template),
            op.method.as_str().to_ascii_lowercase(),
            resp_key
        ),
    };
    let root = json!({ "$ref": target });
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .should_ignore_unknown_formats(true)
        .build(&root)
        .map_err(|e| format!("schema {target} does not compile: {e}"))?;
    let mut errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    errors.extend(
        undeclared_in_response(op, status, body)
            .into_iter()
            .map(|p| format!("property not declared by the spec at {p}")),
    );
    if errors.is_empty() {
        Ok(true)
    } else {
        Err(format!(
            "{} {status} body does not match {target}:\n  {}\nbody: {body}",
            op.id,
            errors.join("\n  ")
        ))
    }
}

/// Loads a spec file (cached per call site is unnecessary: the files are small and few).
pub fn load_json(path: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("spec JSON")
}

/// Resolves a `$ref` relative to `file`; returns the target node and the file it lives in.
pub fn resolve_ref(file: &Path, reference: &str) -> (Value, PathBuf) {
    let (path, frag) = reference.split_once('#').unwrap_or((reference, ""));
    let target = if path.is_empty() {
        file.to_path_buf()
    } else {
        file.parent()
            .expect("parent")
            .join(path)
            .canonicalize()
            .expect("ref target exists")
    };
    let doc = load_json(&target);
    let node = doc
        .pointer(frag)
        .unwrap_or_else(|| panic!("{reference} does not resolve in {}", target.display()))
        .clone();
    (node, target)
}

/// Lists the properties of `value` that the schema does not declare (following `$ref` and
/// `allOf`), so the emulator cannot invent fields a client might come to rely on. Schemas
/// that allow additional properties, or declare none, are free-form.
pub fn undeclared(file: &Path, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let (node, target) = resolve_ref(file, r);
        return undeclared(&target, &node, value, at, out);
    }
    match value {
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    undeclared(file, item_schema, item, &format!("{at}/{i}"), out);
                }
            }
        }
        Value::Object(map) => {
            let mut declared: Vec<(String, Value, PathBuf)> = Vec::new();
            let mut additional: Option<(Value, PathBuf)> = None;
            let mut free_form = true;
            let mut stack = vec![(schema.clone(), file.to_path_buf())];
            while let Some((node, node_file)) = stack.pop() {
                if let Some(r) = node.get("$ref").and_then(Value::as_str) {
                    stack.push(resolve_ref(&node_file, r));
                    continue;
                }
                if let Some(props) = node.get("properties").and_then(Value::as_object) {
                    free_form = false;
                    declared.extend(
                        props
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone(), node_file.clone())),
                    );
                }
                match node.get("additionalProperties") {
                    Some(Value::Bool(false)) | None => {}
                    Some(Value::Object(o)) => {
                        additional = Some((Value::Object(o.clone()), node_file.clone()));
                    }
                    Some(_) => return,
                }
                for part in node
                    .get("allOf")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    stack.push((part.clone(), node_file.clone()));
                }
            }
            for (k, v) in map {
                if let Some((_, prop_schema, prop_file)) =
                    declared.iter().find(|(name, _, _)| name == k)
                {
                    undeclared(prop_file, prop_schema, v, &format!("{at}/{k}"), out);
                } else if let Some((add_schema, add_file)) = &additional {
                    undeclared(add_file, add_schema, v, &format!("{at}/{k}"), out);
                } else if !free_form {
                    out.push(format!("{at}/{k}"));
                }
            }
        }
        _ => {}
    }
}

/// [`undeclared`] for the response schema an operation documents for `status`.
pub fn undeclared_in_response(op: &Op, status: u16, body: &Value) -> Vec<String> {
    let resp = op.spec["responses"]
        .get(status.to_string())
        .or_else(|| op.spec["responses"].get("default"));
    let mut out = Vec::new();
    if let Some(schema) = resp.and_then(|r| r.get("schema")) {
        undeclared(&op.file, schema, body, "", &mut out);
    }
    out
}

/// Keywords of a derived request schema; everything else (descriptions, `x-ms-*`, `readOnly`,
/// examples) says nothing about whether a request is valid.
const KEPT: [&str; 12] = [
    "type",
    "enum",
    "required",
    "properties",
    "items",
    "additionalProperties",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
];

/// A self-contained JSON Schema (draft 4) for `schema` in `file`: `$ref`s and `allOf` inlined
/// (a reference cycle becomes `{}`), only validating keywords kept, `x-nullable` turned into an
/// allowed `null`.
pub fn inline_schema(file: &Path, schema: &Value, seen: &mut Vec<String>) -> Value {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let (node, target) = resolve_ref(file, r);
        let key = format!(
            "{}#{}",
            target.display(),
            r.split_once('#').map_or("", |(_, f)| f)
        );
        if seen.contains(&key) {
            return json!({});
        }
        seen.push(key);
        let mut out = inline_schema(&target, &node, seen);
        seen.pop();
        // A property's own `x-nullable` applies to what its `$ref` points at.
        if schema.get("x-nullable") == Some(&Value::Bool(true)) {
            allow_null(&mut out);
        }
        return out;
    }
    let Some(map) = schema.as_object() else {
        return json!({});
    };
    let mut out = serde_json::Map::new();
    for key in KEPT {
        let Some(v) = map.get(key) else { continue };
        let v = match key {
            "properties" => Value::Object(
                v.as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, s)| (k.clone(), inline_schema(file, s, seen)))
                    .collect(),
            ),
            "items" => inline_schema(file, v, seen),
            "additionalProperties" if v.is_object() => inline_schema(file, v, seen),
            _ => v.clone(),
        };
        out.insert(key.to_owned(), v);
    }
    // A flags enum ("any combination of A|B|C", e.g. a storage firewall's `bypass`) takes
    // comma-separated values: its enum becomes the pattern of such lists.
    if let (Some(values), Some(description)) = (
        out.get("enum").and_then(Value::as_array).cloned(),
        map.get("description").and_then(Value::as_str),
    ) && description
        .to_ascii_lowercase()
        .contains("any combination of")
    {
        let alternatives: Vec<String> = values
            .iter()
            .filter_map(Value::as_str)
            .map(regex_escape)
            .collect();
        let one = format!("({})", alternatives.join("|"));
        out.remove("enum");
        out.insert("pattern".to_owned(), json!(format!("^{one}(, ?{one})*$")));
    }
    let mut merged = Value::Object(out);
    for part in map
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let part = inline_schema(file, part, seen);
        merge_into(&mut merged, &part);
    }
    if map.get("x-nullable") == Some(&Value::Bool(true)) {
        allow_null(&mut merged);
    }
    merged
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

fn allow_null(schema: &mut Value) {
    if let Some(t) = schema
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_owned)
    {
        schema["type"] = json!([t, "null"]);
    }
    if let Some(values) = schema.get_mut("enum").and_then(Value::as_array_mut) {
        values.push(Value::Null);
    }
}

/// Merges an `allOf` part into a schema: properties and required lists are united.
fn merge_into(target: &mut Value, part: &Value) {
    let (Some(t), Some(p)) = (target.as_object_mut(), part.as_object()) else {
        return;
    };
    for (k, v) in p {
        match (k.as_str(), t.get_mut(k)) {
            ("properties", Some(Value::Object(existing))) => {
                for (name, s) in v.as_object().into_iter().flatten() {
                    existing.entry(name.clone()).or_insert_with(|| s.clone());
                }
            }
            ("required", Some(Value::Array(existing))) => {
                for r in v.as_array().into_iter().flatten() {
                    if !existing.contains(r) {
                        existing.push(r.clone());
                    }
                }
            }
            (_, Some(_)) => {}
            (_, None) => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The service an operation belongs to, as the derived request schemas name it.
pub fn service(op: &Op) -> String {
    let rel = op
        .file
        .strip_prefix(specs_root())
        .expect("spec files are under the spec root");
    let folder = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    if op.data_plane() {
        format!("{folder}-data")
    } else {
        folder
    }
}

/// The request-body schema of every operation that takes a body, derived from the specs:
/// `{ "<service> <operationId>": { "required": bool, "schema": {...} } }`, keys sorted, where
/// the service is the spec folder (`mediaservices`, `storage`, `keyvault`, `authorization`,
/// `msi`) or `keyvault-data` for the Key Vault data plane (operation ids repeat across services). The emulator embeds
/// this (as `src/emulator/request_schemas.json`) to refuse what Azure would refuse.
pub fn request_schemas() -> Value {
    let mut out = serde_json::Map::new();
    for op in load_ops() {
        for param in op.spec["parameters"].as_array().into_iter().flatten() {
            let (param, file) = match param.get("$ref").and_then(Value::as_str) {
                Some(r) => resolve_ref(&op.file, r),
                None => (param.clone(), op.file.clone()),
            };
            if param["in"] != "body" {
                continue;
            }
            let schema = inline_schema(&file, &param["schema"], &mut Vec::new());
            let entry = json!({
                "required": param["required"].as_bool().unwrap_or(false),
                "schema": schema,
            });
            if let Some(previous) = out.insert(format!("{} {}", service(&op), op.id), entry.clone())
            {
                assert_eq!(
                    previous, entry,
                    "two operations named {} take different bodies",
                    op.id
                );
            }
        }
    }
    let mut keys: Vec<_> = out.keys().cloned().collect();
    keys.sort();
    Value::Object(
        keys.into_iter()
            .map(|k| {
                let v = out[&k].clone();
                (k, v)
            })
            .collect(),
    )
}

/// The JSON Schema reference of the body an operation takes (resolved through a `$ref`'d
/// parameter), and whether the body is required; `None` when it takes no body.
pub fn request_body_target(op: &Op) -> Option<(String, bool)> {
    for (i, param) in op.spec["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let (node, target) = match param.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let (node, file) = resolve_ref(&op.file, r);
                let frag = r.split_once('#').map_or("", |(_, f)| f);
                (node, format!("{}#{frag}/schema", file_uri(&file)))
            }
            None => (
                param.clone(),
                format!(
                    "{}#/{}/{}/{}/parameters/{i}/schema",
                    file_uri(&op.file),
                    op.section,
                    pointer_segment(&op.template),
                    op.method.as_str().to_ascii_lowercase()
                ),
            ),
        };
        if node["in"] == "body" {
            return Some((target, node["required"].as_bool().unwrap_or(false)));
        }
    }
    None
}

/// The service of a logged request, named as [`service`] names an operation's.
fn logged_service(r: &ams_security_operator::emulator::LoggedRequest) -> Option<&'static str> {
    if r.host.contains(".vault.") {
        return Some("keyvault-data");
    }
    let lower = r.uri.to_ascii_lowercase();
    let path = lower.split('?').next().unwrap_or_default();
    let provider = path.rsplit("/providers/").next()?.split('/').next()?;
    Some(match provider {
        "microsoft.media" => "mediaservices",
        "microsoft.storage" => "storage",
        "microsoft.keyvault" => "keyvault",
        "microsoft.authorization" => "authorization",
        "microsoft.managedidentity" => "msi",
        _ => return None,
    })
}

/// Checks every request body in `log` against the request schema its operation documents in
/// the specs, straight from the spec files (not the emulator's derived copy). Every logged
/// write must map to a spec operation. Returns each violation, naming the request.
pub fn check_requests(
    log: &[ams_security_operator::emulator::LoggedRequest],
) -> Result<usize, Vec<String>> {
    let ops = load_ops();
    let mut problems = Vec::new();
    let mut checked = 0;
    for r in log {
        if !(r.host.starts_with("management.") || r.host.contains(".vault.")) {
            continue;
        }
        let Some(service) = logged_service(r) else {
            continue;
        };
        let Some(op) = ops
            .iter()
            .find(|o| o.id == r.operation && self::service(o) == service)
        else {
            if r.method != "GET" && r.method != "HEAD" && r.method != "DELETE" {
                problems.push(format!(
                    "{} {} ({}): no spec operation",
                    r.method, r.uri, r.operation
                ));
            }
            continue;
        };
        let Some((target, required)) = request_body_target(op) else {
            continue;
        };
        let Some(body) = &r.request_body else {
            if required {
                problems.push(format!(
                    "{} {} ({}): the spec requires a body; none was sent",
                    r.method, r.uri, r.operation
                ));
            }
            continue;
        };
        let root = json!({ "$ref": target });
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema {target} does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        checked += 1;
        if !errors.is_empty() {
            problems.push(format!(
                "{} {} ({}) sent a body the spec refuses:\n    {}\n    body: {body}",
                r.method,
                r.uri,
                r.operation,
                errors.join("\n    ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(checked)
    } else {
        Err(problems)
    }
}
