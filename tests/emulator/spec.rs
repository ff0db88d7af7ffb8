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
