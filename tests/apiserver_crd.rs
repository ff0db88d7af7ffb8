//! The API on a real kube-apiserver (1.20.2 built from Debian's source by
//! `scripts/control-plane.sh`, or the cluster in `AMS_TEST_KUBECONFIG`): the generated CRDs
//! install, the examples apply with kubectl, bad manifests are rejected naming the field,
//! defaults and printer columns work, and status is writable only through `/status`.

mod common;

use ams_security_operator::crd::{FIELD_MANAGER, MediaServicesAccount, conditions};
use common::manifests::{self, Layer};
use common::{kubectl, kubectl_ok, project_path, with_temp_ns};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn dynamic_api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<MediaServicesAccount>(&());
    Api::namespaced_with(client.clone(), ns, &resource)
}

/// Creates `object` and returns the apiserver's rejection message, or `None` if it was accepted.
async fn create_rejection(api: &Api<DynamicObject>, object: &Value) -> Option<String> {
    let object: DynamicObject =
        serde_json::from_value(object.clone()).expect("manifest is an object");
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "expected 422 Invalid, got {status:?}");
            Some(status.message)
        }
        Err(err) => panic!("create failed unexpectedly: {err}"),
    }
}

fn named(object: &Value, name: &str) -> Value {
    let mut object = object.clone();
    object["metadata"]["name"] = json!(name);
    object
}

/// Users install with `kubectl apply -f examples/`: every example must be accepted as written,
/// with kubectl's own client-side validation against the published schema in the path.
#[tokio::test]
async fn every_example_applies_with_kubectl() {
    with_temp_ns("examples", |client, ns| async move {
        let examples = project_path("examples");
        kubectl_ok(&[
            "apply",
            "-n",
            &ns,
            "-f",
            examples.to_str().expect("utf-8 path"),
        ]);
        let api: Api<MediaServicesAccount> = Api::namespaced(client, &ns);
        let mut names: Vec<_> = api
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .into_iter()
            .filter_map(|o| o.metadata.name)
            .collect();
        names.sort();
        let mut expected: Vec<_> = manifests::examples()
            .into_iter()
            .map(|(_, o)| o["metadata"]["name"].as_str().expect("named").to_owned())
            .collect();
        expected.sort();
        assert_eq!(names, expected, "not every example was stored");
    })
    .await;
}

/// Each schema-layer bad manifest is refused by the apiserver itself (every version enforces
/// OpenAPI patterns, enums and required fields), and the message names the field. CEL-layer
/// manifests are refused too where the apiserver evaluates CEL (1.25+); older apiservers admit
/// them, which is why the operator validates every spec again before acting. Validator-layer
/// manifests (unknown fields) are admitted by every apiserver when the client does not ask for
/// strict field validation, as kube and most tools do not: the field is pruned without a word,
/// which is the loophole `ams-security-operator validate` closes.
#[tokio::test]
async fn invalid_manifests_are_rejected_naming_the_field() {
    with_temp_ns("invalid", |client, ns| async move {
        let api = dynamic_api(&client, &ns);
        let enforces_cel = common::server_minor(&client).await >= 25;
        let cases = manifests::invalid();
        let schema_cases = cases.iter().filter(|c| c.layer == Layer::Schema).count();
        assert!(schema_cases >= 20, "only {schema_cases} schema-layer manifests");
        let mut problems = Vec::new();
        let mut admitted_without_cel = Vec::new();
        for case in &cases {
            let name = case.file.trim_end_matches(".yaml");
            let rejection = create_rejection(&api, &named(&case.object, name)).await;
            match (case.layer, rejection) {
                (Layer::Schema, None) => problems.push(format!("{}: accepted", case.file)),
                (Layer::Cel, None) if enforces_cel => problems.push(format!("{}: accepted", case.file)),
                (Layer::Cel, None) => admitted_without_cel.push(name.to_owned()),
                (Layer::Validator, None) => {
                    let stored = serde_json::to_value(api.get(name).await.expect("get admitted object")).expect("serializes");
                    let spec = stored.get("spec").cloned().unwrap_or(Value::Null);
                    if spec.is_null() {
                        problems.push(format!("{}: stored without a spec", case.file));
                    } else if stored.pointer(&manifests::pointer(&case.field)).is_some() {
                        problems.push(format!("{}: {} was stored, not pruned: {spec}", case.file, case.field));
                    }
                }
                (Layer::Validator, Some(message)) => problems.push(format!(
                    "{}: rejected, but the table says only the operator's validator rejects it: {message}",
                    case.file
                )),
                (Layer::Schema, Some(message)) => {
                    // Apiservers before 1.2x name list items without their index.
                    if !message.contains(&case.field) && !message.contains(&manifests::without_indices(&case.field)) {
                        problems.push(format!("{}: message does not name {}: {message}", case.file, case.field));
                    }
                }
                (Layer::Cel, Some(message)) => {
                    let leaf = manifests::leaf(&case.field);
                    if !message.contains(leaf) {
                        problems.push(format!("{}: message does not mention {leaf}: {message}", case.file));
                    }
                }
            }
        }
        if !admitted_without_cel.is_empty() {
            eprintln!(
                "this apiserver does not evaluate CEL; {} CEL-layer manifests were admitted (covered by tests/api_rules.rs and the operator's validator)",
                admitted_without_cel.len()
            );
        }
        assert!(problems.is_empty(), "apiserver disagrees with the table:\n{}", problems.join("\n"));
    })
    .await;
}

/// kubectl, with its default validation, refuses the unknown fields the apiserver would prune:
/// client-side against the published schema on apiservers before 1.25, through server-side
/// field validation from 1.25. `--validate=false` (and any client that does not ask) gets them
/// pruned instead. The README's table of who refuses unknown fields rests on this.
#[tokio::test]
async fn kubectl_refuses_unknown_fields_unless_validation_is_off() {
    with_temp_ns("unknown", |_client, ns| async move {
        let mut problems = Vec::new();
        let mut checked = 0;
        for case in manifests::invalid()
            .iter()
            .filter(|c| c.layer == Layer::Validator)
        {
            checked += 1;
            let path = project_path(&format!("tests/manifests/invalid/{}", case.file));
            let path = path.to_str().expect("utf-8 path");
            let strict = kubectl(&["apply", "--dry-run=server", "-n", &ns, "-f", path]);
            let stderr = String::from_utf8_lossy(&strict.stderr);
            let leaf = manifests::leaf(&case.field);
            if strict.status.success() {
                problems.push(format!("{}: kubectl accepted it", case.file));
            } else if !(stderr.contains("unknown field") && stderr.contains(leaf)) {
                problems.push(format!(
                    "{}: kubectl refused it, but not naming {leaf}: {stderr}",
                    case.file
                ));
            }
            let lax = kubectl(&[
                "apply",
                "--validate=false",
                "--dry-run=server",
                "-n",
                &ns,
                "-f",
                path,
            ]);
            if !lax.status.success() {
                problems.push(format!(
                    "{}: refused even with --validate=false: {}",
                    case.file,
                    String::from_utf8_lossy(&lax.stderr)
                ));
            }
        }
        assert!(checked >= 3, "only {checked} validator-layer manifests");
        assert!(
            problems.is_empty(),
            "kubectl disagrees with the README:\n{}",
            problems.join("\n")
        );
    })
    .await;
}

/// Whether every value in `sent` is in `stored` at the same place (`stored` may hold more, such
/// as defaults).
fn contains(stored: &Value, sent: &Value) -> bool {
    match (stored, sent) {
        (Value::Object(stored), Value::Object(sent)) => sent
            .iter()
            .all(|(k, v)| stored.get(k).is_some_and(|s| contains(s, v))),
        (Value::Array(stored), Value::Array(sent)) => {
            stored.len() == sent.len() && stored.iter().zip(sent).all(|(s, v)| contains(s, v))
        }
        _ => stored == sent,
    }
}

/// The valid test manifests are edge cases of the rules (a resource group in another script,
/// one principal with several roles): the apiserver takes each through `kubectl apply` and
/// stores it as written, nothing refused and nothing pruned.
#[tokio::test]
async fn every_valid_manifest_applies_and_is_stored_as_written() {
    with_temp_ns("valid", |client, ns| async move {
        let dir = project_path("tests/manifests/valid");
        kubectl_ok(&["apply", "-n", &ns, "-f", dir.to_str().expect("utf-8 path")]);
        let api = dynamic_api(&client, &ns);
        let mut problems = Vec::new();
        for (file, object) in manifests::valid() {
            let name = object["metadata"]["name"].as_str().expect("named");
            let stored =
                serde_json::to_value(api.get(name).await.expect("stored")).expect("serializes");
            if !contains(&stored["spec"], &object["spec"]) {
                problems.push(format!(
                    "{file}: sent {:#}\nstored {:#}",
                    object["spec"], stored["spec"]
                ));
            }
        }
        assert!(
            problems.is_empty(),
            "valid manifests changed on the way in:\n{}",
            problems.join("\n")
        );
    })
    .await;
}

/// Defaults are part of the API users see: an omitted interval, deletion policy, storage
/// authentication and grant flags are filled in by the apiserver, so `kubectl get -o yaml`
/// shows the behaviour that will apply.
#[tokio::test]
async fn apiserver_fills_in_documented_defaults() {
    with_temp_ns("defaults", |client, ns| async move {
        let api = dynamic_api(&client, &ns);
        let object = json!({
            "apiVersion": "ams-security.io/v1alpha1", "kind": "MediaServicesAccount",
            "metadata": {"name": "defaults"},
            "spec": {
                "account": {"subscriptionId": "6f1c3b2a-94d1-4c1e-9a55-0d1b2c3d4e5f", "resourceGroup": "media", "name": "contosomedia", "location": "westeurope"},
                "storage": {"accounts": [{"id": "/subscriptions/6f1c3b2a-94d1-4c1e-9a55-0d1b2c3d4e5f/resourceGroups/media/providers/Microsoft.Storage/storageAccounts/contosomedia", "type": "Primary"}]}
            }
        });
        assert_eq!(create_rejection(&api, &object).await, None);
        let stored = api.get("defaults").await.expect("get");
        let spec = &stored.data["spec"];
        assert_eq!(spec["keyAccessCheckInterval"], "30s", "{spec:#}");
        assert_eq!(spec["deletionPolicy"], "Retain", "{spec:#}");
        assert_eq!(spec["storage"]["authentication"], "System", "{spec:#}");
        assert_eq!(spec["storage"]["grantAccess"], true, "{spec:#}");
        // The typed view agrees with what the apiserver stored.
        let typed: Api<MediaServicesAccount> = Api::namespaced(client, &ns);
        let account = typed.get("defaults").await.expect("typed get");
        assert_eq!(account.spec.key_access_check_interval.to_string(), "30s");
    })
    .await;
}

fn status_patch(version: &str) -> Value {
    json!({
        "apiVersion": "ams-security.io/v1alpha1", "kind": "MediaServicesAccount",
        "status": {
            "observedGeneration": 1,
            "conditions": [
                {"type": conditions::types::READY, "status": "True", "reason": conditions::reasons::SUCCEEDED,
                 "message": "account matches the spec", "lastTransitionTime": "2026-11-23T10:00:00Z", "observedGeneration": 1},
                {"type": conditions::types::CUSTOMER_KEY_INACCESSIBLE, "status": "False", "reason": conditions::reasons::KEY_ACCESSIBLE,
                 "message": "the identity can use the key", "lastTransitionTime": "2026-11-23T10:00:00Z", "observedGeneration": 1}
            ],
            "encryption": {"currentKeyIdentifier": format!("https://fabrikam-media-kv.vault.azure.net/keys/account-key/{version}"), "keyVersion": version}
        }
    })
}

/// `kubectl get msa` is the first thing an operator on call runs: it must show readiness, key
/// access and the key version at a glance, and the account name with `-o wide`.
#[tokio::test]
async fn printer_columns_show_ready_key_access_and_key_version() {
    with_temp_ns("columns", |client, ns| async move {
        let example = project_path("examples/customer-key-user-assigned.yaml");
        kubectl_ok(&[
            "apply",
            "-n",
            &ns,
            "-f",
            example.to_str().expect("utf-8 path"),
        ]);
        let api: Api<MediaServicesAccount> = Api::namespaced(client, &ns);
        let version = "0123456789abcdef0123456789abcdef";
        api.patch_status(
            "fabrikam-media",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(status_patch(version)),
        )
        .await
        .expect("status apply");

        let table = kubectl_ok(&["get", "msa", "-n", &ns]);
        let mut lines = table.lines();
        let header: Vec<_> = lines.next().expect("header").split_whitespace().collect();
        assert_eq!(
            header,
            ["NAME", "READY", "KEYACCESS", "KEYVERSION", "AGE"],
            "{table}"
        );
        let row: Vec<_> = lines.next().expect("a row").split_whitespace().collect();
        assert_eq!(
            &row[..4],
            ["fabrikam-media", "True", "KeyAccessible", version],
            "{table}"
        );

        let wide = kubectl_ok(&["get", "msa", "-n", &ns, "-o", "wide"]);
        assert!(
            wide.lines().next().is_some_and(|h| h.contains("ACCOUNT")),
            "{wide}"
        );
        assert!(wide.contains("fabrikammedia"), "{wide}");

        // The category lets people list every Azure-facing resource at once.
        let by_category = kubectl_ok(&["get", "azure", "-n", &ns, "-o", "name"]);
        assert!(by_category.contains("fabrikam-media"), "{by_category}");
    })
    .await;
}

/// Status belongs to the operator: writes through the main resource never change it, writes
/// through `/status` never change the spec, and only spec changes bump `metadata.generation`.
#[tokio::test]
async fn status_is_writable_only_through_the_status_subresource() {
    with_temp_ns("status", |client, ns| async move {
        let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), &ns);
        let (_, mut object) = manifests::examples()
            .into_iter()
            .find(|(file, _)| file == "customer-key-user-assigned.yaml")
            .expect("example present");
        object["status"] = status_patch("11111111111111111111111111111111")["status"].clone();
        let created = api
            .create(
                &PostParams::default(),
                &serde_json::from_value(object).expect("typed"),
            )
            .await
            .expect("create");
        assert_eq!(
            created.status, None,
            "status sent on create must be dropped"
        );
        let name = created.metadata.name.clone().expect("named");
        assert_eq!(created.metadata.generation, Some(1));

        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(status_patch("22222222222222222222222222222222")),
        )
        .await
        .expect("status apply");
        let after_status = api.get(&name).await.expect("get");
        let encryption = after_status
            .status
            .as_ref()
            .and_then(|s| s.encryption.as_ref())
            .expect("status written");
        assert_eq!(
            encryption.key_version.as_deref(),
            Some("22222222222222222222222222222222")
        );
        assert_eq!(
            after_status.metadata.generation,
            Some(1),
            "a status write must not bump generation"
        );

        // A merge patch of status through the main resource is ignored.
        let sneaky =
            json!({"status": {"encryption": {"keyVersion": "33333333333333333333333333333333"}}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&sneaky))
            .await
            .expect("patch main");
        let after_main = api.get(&name).await.expect("get");
        assert_eq!(
            after_main
                .status
                .as_ref()
                .and_then(|s| s.encryption.as_ref())
                .and_then(|e| e.key_version.as_deref()),
            Some("22222222222222222222222222222222"),
            "status changed through the main resource"
        );

        // A spec change through /status is ignored; through the main resource it bumps generation.
        let spec_via_status = json!({"spec": {"suspend": true}});
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&spec_via_status),
        )
        .await
        .expect("patch status");
        assert!(
            !api.get(&name).await.expect("get").spec.suspend,
            "spec changed through /status"
        );
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&spec_via_status),
        )
        .await
        .expect("patch spec");
        let suspended = api.get(&name).await.expect("get");
        assert!(suspended.spec.suspend);
        assert_eq!(suspended.metadata.generation, Some(2));
    })
    .await;
}

/// The committed CRD files install with the command the README gives users, and re-applying
/// them (an upgrade) succeeds too. Clusters before 1.25 need `--validate=false` because kubectl
/// there does not know the CEL field; newer ones take the plain command.
#[tokio::test]
async fn committed_crds_apply_with_the_documented_kubectl_command() {
    let client = common::client().await;
    let crds = project_path("crds");
    let crds = crds.to_str().expect("utf-8 path");
    let mut args = vec!["apply", "-f", crds];
    if common::server_minor(&client).await < 25 {
        let refused = kubectl(&args);
        assert!(
            !refused.status.success()
                && String::from_utf8_lossy(&refused.stderr).contains("x-kubernetes-validations"),
            "kubectl without --validate=false was expected to refuse the CEL field here; the README's advice is stale"
        );
        args.insert(1, "--validate=false");
    }
    for _ in 0..2 {
        kubectl_ok(&args);
    }
    kubectl_ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=60s",
        "crd/mediaservicesaccounts.ams-security.io",
    ]);
}

/// `kubectl explain` shows the field docs written on the Rust types: the API documents itself.
#[tokio::test]
async fn kubectl_explain_shows_field_documentation() {
    let client = common::client().await;
    common::install_crds(&client).await;
    // The apiserver publishes a new CRD's schema to its OpenAPI document asynchronously.
    let mut last = String::new();
    for _ in 0..40 {
        let out = kubectl(&["explain", "msa.spec.encryption"]);
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && last.contains("keyIdentifier") && last.contains("track") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("kubectl explain did not show the keyIdentifier docs:\n{last}");
}
