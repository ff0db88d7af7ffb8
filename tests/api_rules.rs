//! The API's rules, checked without a cluster: every example and valid test manifest passes the
//! operator's validator and the CRD's CEL rules; every invalid manifest is rejected by the
//! validator naming its field, and each CEL-layer one is also rejected by the CRD's own CEL rules
//! (evaluated with kube's CEL evaluator against the generated schema, so the rules users get are
//! not dead text).

mod common;

use ams_security_operator::crd::{self, MediaServicesAccount};
use ams_security_operator::reconcile::validate::{SpecErrors, validate_object};
use common::manifests::{self, Layer};
use kube::CustomResourceExt;
use kube::core::cel::{CompiledSchema, Validator, compile_schema};
use serde_json::{Value, json};

fn crd_schema() -> serde_json::Value {
    let crd = serde_json::to_value(MediaServicesAccount::crd()).expect("CRD serializes");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

thread_local! {
    /// Compiled once per test thread: some tests evaluate the rules hundreds of times.
    static CEL: (Validator, CompiledSchema) = (Validator::new(), compile_schema(&crd_schema()));
}

fn cel_errors(object: &serde_json::Value) -> Vec<String> {
    match CEL.with(|(validator, schema)| validator.validate_compiled(schema, object, None)) {
        Ok(()) => vec![],
        Err(errors) => errors
            .as_slice()
            .iter()
            .map(|e| format!("{}: {}", e.field_path, e.message))
            .collect(),
    }
}

/// Examples are what users copy, and the valid test manifests are the edge cases the rules must
/// not refuse: each must pass every rule users will meet.
#[test]
fn every_example_and_valid_manifest_passes_the_validator_and_the_cel_rules() {
    let mut problems = Vec::new();
    for (file, object) in manifests::accepted() {
        if let Err(errors) = validate_object(&object) {
            problems.push(format!("{file}: validator: {errors}"));
        }
        let cel = cel_errors(&object);
        if !cel.is_empty() {
            problems.push(format!("{file}: CEL: {cel:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "examples rejected:\n{}",
        problems.join("\n")
    );
}

/// Every bad manifest is rejected by the operator's validator, and the first error names the
/// field the manifest's header says (or a field below it).
#[test]
fn every_invalid_manifest_is_rejected_by_the_validator_naming_its_field() {
    let cases = manifests::invalid();
    assert!(cases.len() >= 20, "only {} invalid manifests", cases.len());
    let mut problems = Vec::new();
    for case in &cases {
        match validate_object(&case.object) {
            Ok(_) => problems.push(format!("{}: accepted", case.file)),
            Err(SpecErrors(errors)) => {
                if !errors.iter().any(|e| e.field.starts_with(&case.field)) {
                    problems.push(format!(
                        "{}: expected an error on {}, got {errors:?}",
                        case.file, case.field
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "validator disagrees with the table:\n{}",
        problems.join("\n")
    );
}

/// Rules that only CEL can express are real: the generated CRD's rules reject each CEL-layer
/// manifest, and the error names the field (in its path or its message).
#[test]
fn cel_rules_in_the_crd_reject_every_cel_layer_manifest() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for case in manifests::invalid()
        .iter()
        .filter(|c| c.layer == Layer::Cel)
    {
        checked += 1;
        let errors = cel_errors(&case.object);
        let leaf = manifests::leaf(&case.field);
        if errors.is_empty() {
            problems.push(format!("{}: accepted by the CEL rules", case.file));
        } else if !errors.iter().any(|e| e.contains(leaf)) {
            problems.push(format!(
                "{}: no CEL error mentions {leaf}: {errors:?}",
                case.file
            ));
        }
    }
    assert!(checked >= 10, "only {checked} CEL-layer manifests");
    assert!(
        problems.is_empty(),
        "CEL rules disagree with the table:\n{}",
        problems.join("\n")
    );
}

/// Every CEL rule is enforced again in Rust; for grant uniqueness, where CEL and Rust compute the
/// key in different ways (a ternary chain and `substring` against `definition_guid` and the last
/// path segment), they must agree on every pair of spellings: principals in either case and
/// form, roles by name, by GUID in either case and by ARM id at either scope.
#[test]
fn cel_rules_and_the_validator_agree_on_which_grants_repeat() {
    const PRINCIPAL: &str = "3c5e7a9b-1d2f-4a6c-8e0b-2d4f6a8c0e1f";
    const IDENTITY: &str = "/subscriptions/6f1c3b2a-94d1-4c1e-9a55-0d1b2c3d4e5f/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/encoder";
    const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
    const CUSTOM: &str = "8d2f3c4b-5a6e-4f70-9b81-a2c3d4e5f607";
    let principals = [
        json!({"principalId": PRINCIPAL}),
        json!({"principalId": PRINCIPAL.to_ascii_uppercase()}),
        json!({"principalId": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"}),
        json!({"identityResourceId": IDENTITY}),
        json!({"identityResourceId": IDENTITY.to_ascii_lowercase()}),
    ];
    let roles = [
        json!({"role": "Reader"}),
        json!({"role": "Contributor"}),
        json!({"roleDefinitionId": READER}),
        json!({"roleDefinitionId": READER.to_ascii_uppercase()}),
        json!({"roleDefinitionId": format!("/subscriptions/6f1c3b2a-94d1-4c1e-9a55-0d1b2c3d4e5f/providers/Microsoft.Authorization/roleDefinitions/{READER}")}),
        json!({"roleDefinitionId": format!("/providers/microsoft.authorization/roledefinitions/{}", CUSTOM.to_ascii_uppercase())}),
        json!({"roleDefinitionId": CUSTOM}),
    ];
    let grants: Vec<Value> = principals
        .iter()
        .flat_map(|p| {
            roles.iter().map(move |r| {
                let mut grant = p.clone();
                grant
                    .as_object_mut()
                    .expect("object")
                    .extend(r.as_object().expect("object").clone());
                grant
            })
        })
        .collect();
    let (mut disagreements, mut repeats, mut distinct) = (Vec::new(), 0, 0);
    for (i, a) in grants.iter().enumerate() {
        for b in &grants[i..] {
            let object = json!({
                "apiVersion": "ams-security.io/v1alpha1", "kind": "MediaServicesAccount",
                "metadata": {"name": "pair"},
                "spec": {
                    "account": {"subscriptionId": "6f1c3b2a-94d1-4c1e-9a55-0d1b2c3d4e5f", "resourceGroup": "media", "name": "contosomedia", "location": "westeurope"},
                    "accessGrants": [a, b]
                }
            });
            let by_validator = validate_object(&object).is_err();
            let by_cel = !cel_errors(&object).is_empty();
            if by_validator == by_cel {
                if by_cel { repeats += 1 } else { distinct += 1 }
            } else {
                disagreements.push(format!(
                    "{a} / {b}: validator refuses={by_validator}, CEL refuses={by_cel}"
                ));
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "CEL and the validator disagree on {} pairs:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    // 5 principal spellings are 3 principals (sizes 2, 1, 2); 7 role spellings are 3 roles
    // (sizes 4, 1, 2). Pairs of one grant: sum over keys of n(n+1)/2 with n = p * r.
    let key_sizes = [2, 1, 2].iter().flat_map(|p| [4, 1, 2].map(|r| p * r));
    let expected_repeats: usize = key_sizes.map(|n| n * (n + 1) / 2).sum();
    assert_eq!(repeats, expected_repeats, "{distinct} pairs were distinct");
}

/// Schema-layer manifests must not depend on CEL: the CEL rules alone accept them, which proves
/// the apiserver test exercises the OpenAPI schema and not a rule 1.20 would drop. The same holds
/// for validator-layer manifests, whose only fault is a field the apiserver prunes.
#[test]
fn schema_and_validator_layer_manifests_break_no_cel_rule_of_their_own() {
    let offenders: Vec<_> = manifests::invalid()
        .into_iter()
        .filter(|c| c.layer != Layer::Cel && c.object.pointer("/spec/account").is_some())
        .filter_map(|c| {
            let errors = cel_errors(&c.object);
            (!errors.is_empty()).then(|| format!("{}: {errors:?}", c.file))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "schema-layer manifests also break CEL rules:\n{}",
        offenders.join("\n")
    );
}

/// A validator-layer manifest is wrong only in its unknown field: every error the validator
/// reports is that field, called unknown. So the apiserver test, which sees such a manifest
/// accepted, shows the pruning loophole and not some other rule.
#[test]
fn validator_layer_manifests_fail_only_on_their_unknown_field() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for case in manifests::invalid()
        .iter()
        .filter(|c| c.layer == Layer::Validator)
    {
        checked += 1;
        match validate_object(&case.object) {
            Ok(_) => problems.push(format!("{}: accepted", case.file)),
            Err(SpecErrors(errors)) => {
                let expected = errors
                    .iter()
                    .all(|e| e.field == case.field && e.message.starts_with("unknown field"));
                if !expected {
                    problems.push(format!(
                        "{}: expected only `{}: unknown field`, got {errors:?}",
                        case.file, case.field
                    ));
                }
            }
        }
    }
    assert!(checked >= 3, "only {checked} validator-layer manifests");
    assert!(
        problems.is_empty(),
        "validator-layer manifests fail for other reasons:\n{}",
        problems.join("\n")
    );
}

/// The binary's `validate` subcommand is what CI pipelines run: it fails on a bad manifest and
/// prints the field, and passes the examples.
#[test]
fn validate_subcommand_reports_fields_and_exit_status() {
    let binary = env!("CARGO_BIN_EXE_ams-security-operator");
    let examples: Vec<_> = ["examples", "tests/manifests/valid"]
        .into_iter()
        .flat_map(|dir| std::fs::read_dir(common::project_path(dir)).expect("manifest dir"))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    let ok = std::process::Command::new(binary)
        .arg("validate")
        .args(&examples)
        .output()
        .expect("runs");
    assert!(
        ok.status.success(),
        "examples failed validation: {}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let bad = common::project_path("tests/manifests/invalid/two-primary-storage-accounts.yaml");
    let out = std::process::Command::new(binary)
        .arg("validate")
        .arg(&bad)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad manifest passed");
    assert!(
        stderr
            .contains("spec.storage.accounts: exactly one storage account must have type Primary"),
        "{stderr}"
    );

    // A typo the apiserver would prune fails the pipeline, named with its path.
    let typo = common::project_path("tests/manifests/invalid/spec-suspended.yaml");
    let out = std::process::Command::new(binary)
        .arg("validate")
        .arg(&typo)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an unknown field passed");
    assert!(
        stderr.contains("spec.suspended: unknown field (did you mean suspend?)"),
        "{stderr}"
    );
}

/// The generated CRDs list every kind once.
#[test]
fn crd_all_lists_each_kind_once() {
    let names: Vec<_> = crd::all()
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names, vec!["mediaservicesaccounts.ams-security.io"]);
}

/// Apiservers from 1.25 refuse a CRD whose CEL rules could exceed the cost budget, which a 1.20
/// test apiserver cannot show. Every rule's cost is estimated against its own schema node (kube's
/// CEL analyser): every list it walks has `maxItems` so the estimate stays within the budget.
/// (The analyser's variable-scope check is not used: it flags comprehension variables such as
/// `a` in `all(a, ...)`, which are valid CEL.)
#[test]
fn every_cel_rule_is_bounded_within_the_cost_budget() {
    use kube::core::cel::estimate_rule_cost;

    fn walk(
        path: &str,
        node: &serde_json::Value,
        found: &mut Vec<(String, String, serde_json::Value)>,
    ) {
        let Some(map) = node.as_object() else { return };
        if let Some(rules) = map
            .get("x-kubernetes-validations")
            .and_then(|r| r.as_array())
        {
            for rule in rules {
                found.push((
                    path.to_owned(),
                    rule["rule"].as_str().expect("rule text").to_owned(),
                    node.clone(),
                ));
            }
        }
        if let Some(props) = map.get("properties").and_then(|p| p.as_object()) {
            for (name, child) in props {
                walk(&format!("{path}.{name}"), child, found);
            }
        }
        if let Some(items) = map.get("items") {
            walk(&format!("{path}[]"), items, found);
        }
    }
    let mut rules = Vec::new();
    walk("", &crd_schema(), &mut rules);
    assert!(
        rules.len() >= 15,
        "expected the CRD's CEL rules, found {}",
        rules.len()
    );
    let warnings: Vec<String> = rules
        .iter()
        .flat_map(|(path, rule, node)| {
            estimate_rule_cost(rule, &compile_schema(node))
                .into_iter()
                .map(move |w| format!("{path}: {rule}: {:?}: {}", w.kind, w.message))
        })
        .collect();
    assert!(
        warnings.is_empty(),
        "CEL analysis warnings:\n{}",
        warnings.join("\n")
    );
}
