//! The manifest fixtures: `examples/*.yaml` and `tests/manifests/valid/*.yaml` (must be accepted
//! everywhere; the examples are also what users copy) and `tests/manifests/invalid/*.yaml` (each
//! must be rejected, naming its field).
//!
//! Each invalid manifest starts with a header:
//! ```yaml
//! # why: <the rule, for the reader>
//! # field: <the field path the error must name, e.g. spec.account.name>
//! # rejected-by: schema | cel | validator
//! ```
//! `schema` rules are enforced by every apiserver (OpenAPI patterns, enums, required fields).
//! `cel` rules live in `x-kubernetes-validations`, enforced by apiservers from 1.25 on, and by
//! the operator's own validator everywhere. `validator` marks what only the operator's validator
//! refuses: unknown fields, which the apiserver accepts and prunes (silently before 1.25, and
//! later too unless the client asks for strict field validation).

use std::path::PathBuf;

use serde_json::Value;

/// Which layer of the API must reject a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// The OpenAPI schema: patterns, enums, lengths, required fields.
    Schema,
    /// A CEL rule (`x-kubernetes-validations`).
    Cel,
    /// Only the operator's validator: the apiserver accepts the manifest and prunes the field.
    Validator,
}

/// One invalid manifest and what its rejection must say.
#[derive(Clone, Debug)]
pub struct Invalid {
    /// File name, for messages.
    pub file: String,
    /// The object.
    pub object: Value,
    /// The field path the error must name.
    pub field: String,
    /// The layer that must reject it.
    pub layer: Layer,
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let dir = super::project_path(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("failed to read {}: {err}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML files in {}", dir.display());
    files
}

fn parse(path: &PathBuf) -> (String, Value) {
    let text = std::fs::read_to_string(path).expect("readable manifest");
    let object: Value =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    (text, object)
}

/// Every example, as (file name, object).
pub fn examples() -> Vec<(String, Value)> {
    named_objects("examples")
}

/// Every valid test manifest (edge cases that do not belong among the examples), as
/// (file name, object).
pub fn valid() -> Vec<(String, Value)> {
    named_objects("tests/manifests/valid")
}

/// The examples and the valid test manifests: everything every layer must accept.
pub fn accepted() -> Vec<(String, Value)> {
    let mut all = examples();
    all.extend(valid());
    all
}

fn named_objects(dir: &str) -> Vec<(String, Value)> {
    yaml_files(dir)
        .iter()
        .map(|path| {
            let (_, object) = parse(path);
            (
                path.file_name()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned(),
                object,
            )
        })
        .collect()
}

/// Every invalid manifest with its expectation.
pub fn invalid() -> Vec<Invalid> {
    yaml_files("tests/manifests/invalid")
        .iter()
        .map(|path| {
            let (text, object) = parse(path);
            let header = |key: &str| {
                text.lines()
                    .find_map(|line| line.strip_prefix(&format!("# {key}: ")))
                    .unwrap_or_else(|| panic!("{} lacks a `# {key}:` header", path.display()))
                    .trim()
                    .to_owned()
            };
            let layer = match header("rejected-by").as_str() {
                "schema" => Layer::Schema,
                "cel" => Layer::Cel,
                "validator" => Layer::Validator,
                other => panic!("{}: unknown layer {other:?}", path.display()),
            };
            Invalid {
                file: path
                    .file_name()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned(),
                object,
                field: header("field"),
                layer,
            }
        })
        .collect()
}

/// The last named segment of a field path without indices: `spec.storage.accounts[0].id` → `id`.
pub fn leaf(field: &str) -> &str {
    let last = field.rsplit('.').next().unwrap_or(field);
    last.split('[').next().unwrap_or(last)
}

/// A field path as a JSON pointer: `spec.storage.accounts[0].id` → `/spec/storage/accounts/0/id`.
pub fn pointer(field: &str) -> String {
    field
        .split('.')
        .flat_map(|segment| segment.split(['[', ']']).filter(|s| !s.is_empty()))
        .fold(String::new(), |out, segment| out + "/" + segment)
}

/// A field path without list indices: `spec.storage.accounts[0].id` → `spec.storage.accounts.id`.
pub fn without_indices(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut depth = 0;
    for c in field.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}
