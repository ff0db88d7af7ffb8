#![cfg(feature = "emulator")]
//! Conformance of the Azure emulator to the official REST specifications in
//! `../shared/azure-specs/` (the referee between the emulator and the clients).
//!
//! 1. Every example request in the spec folders is sent, as written, to a fresh emulator seeded
//!    with the world the examples name (`tests/emulator/conformance.yaml`); the status must be one
//!    the example documents, and the body must validate against the operation's response schema
//!    (JSON Schema, draft 4, `$ref`s resolved across the spec files). The few examples whose
//!    parameters cannot be replayed literally are rewritten in a documented way, and the ones for
//!    operations the emulator does not serve are listed explicitly.
//! 2. A scripted sequence exercises the operations the examples do not cover (and error answers)
//!    and validates each real response the same way.

#[path = "emulator/spec.rs"]
mod spec;
#[path = "emulator/support.rs"]
mod support;

use std::collections::BTreeSet;

use ams_security_operator::emulator::{Emulator, EmulatorConfig, Seed, SeedRoleAssignment};
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use spec::{Op, load_ops, op, validate};
use support::{Reply, client, send, start, token_with_secret};

fn conformance_seed(with_example_assignment: bool) -> Seed {
    let text =
        std::fs::read_to_string(support::fixture("conformance.yaml")).expect("conformance.yaml");
    let mut seed = Seed::from_yaml(&text).expect("conformance.yaml is a valid seed");
    if with_example_assignment {
        seed.role_assignments.push(SeedRoleAssignment {
            scope: "/subscriptions/a925f2f7-5c63-4b7b-8799-25a5f97bc3b2".into(),
            role: "0b5fe924-9a61-425c-96af-cfe6e287ca2d".into(),
            principal: "ce2ce14e-85d7-4629-bdbc-454d0519d987".into(),
            name: Some("b0f43c54-e787-4862-89b1-a653fa9cf747".into()),
        });
    }
    seed
}

async fn start_conformance(with_example_assignment: bool) -> Emulator {
    start(EmulatorConfig {
        key_check_interval: None,
        ..EmulatorConfig::with_seed(conformance_seed(with_example_assignment))
    })
    .await
}

fn encode_path_value(name: &str, value: &str) -> String {
    // Scopes and ids carry their own slashes (`x-ms-skip-url-encoding`).
    if ["scope", "roleAssignmentId", "roleId"].contains(&name) {
        return value.trim_start_matches('/').to_owned();
    }
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Builds the request of an example: URL, body.
fn example_request(op: &Op, params: &Value) -> (String, Option<Value>) {
    let template = op.template.split('?').next().unwrap_or_default();
    let mut path = String::new();
    let mut used = BTreeSet::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        path.push_str(&rest[..open]);
        let close = rest[open..].find('}').expect("closing brace") + open;
        let name = &rest[open + 1..close];
        let value = match &params[name] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        path.push_str(&encode_path_value(name, &value));
        used.insert(name.to_owned());
        rest = &rest[close + 1..];
    }
    path.push_str(rest);
    let base = if op.data_plane() {
        params["vaultBaseUrl"]
            .as_str()
            .expect("vaultBaseUrl")
            .trim_end_matches('/')
            .to_owned()
    } else {
        "https://management.azure.com".to_owned()
    };
    let mut query = Vec::new();
    let mut body = None;
    for (k, v) in params.as_object().expect("parameters object") {
        if used.contains(k) || k == "vaultBaseUrl" {
            continue;
        }
        match v {
            Value::Object(_) | Value::Array(_) => body = Some(v.clone()),
            Value::String(s) => query.push((k.clone(), s.clone())),
            other => query.push((k.clone(), other.to_string())),
        }
    }
    let qs = serde_urlencoded::to_string(&query).expect("query encodes");
    (format!("{base}{path}?{qs}"), body)
}

/// Examples of operations the emulator does not serve (the operator does not use them).
const NOT_SERVED: &[&str] = &["accounts-list-media-edge-policies.json"];

async fn caller_token(emu: &Emulator, client: &reqwest::Client, data_plane: bool) -> String {
    let audience = if data_plane {
        support::VAULT_AUDIENCE
    } else {
        support::ARM_AUDIENCE
    };
    token_with_secret(client, emu, "caller", audience).await
}

/// Rewrites the parameters of the examples that cannot be replayed literally; each rewrite
/// keeps the example's operation and shape and says why.
async fn rewrite_params(
    op: &Op,
    file: &str,
    params: &mut Value,
    emu: &Emulator,
    client: &reqwest::Client,
) {
    match op.id.as_str() {
        // The operation ids in the examples were never issued here: start a real operation and
        // poll that one instead.
        "MediaServicesOperationStatuses_Get" | "MediaServicesOperationResults_Get" => {
            let token = caller_token(emu, client, false).await;
            let url = "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/contoso/providers/Microsoft.Media/mediaservices/contosolro?api-version=2023-01-01";
            let body = json!({"location": "westus", "properties": {"storageAccounts": [{"id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/contoso/providers/Microsoft.Storage/storageAccounts/contososportsstore", "type": "Primary"}], "storageAuthentication": "System"}});
            let r = send(client, Method::PUT, url, Some(&token), Some(&body)).await;
            assert_eq!(
                r.status,
                StatusCode::CREATED,
                "{file}: setup PUT {:?}",
                r.body
            );
            let status_url = r
                .header("azure-asyncoperation")
                .expect("polling URL")
                .to_owned();
            let segments: Vec<&str> = status_url
                .split('?')
                .next()
                .unwrap_or_default()
                .split('/')
                .collect();
            params["operationId"] = json!(segments[segments.len() - 1]);
            params["locationName"] = json!(segments[segments.len() - 3]);
        }
        // The example ciphertext was made with a private key that is not in the example: wrap
        // the wrapKey example's plaintext with the same key version first and unwrap that.
        "unwrapKey" => {
            let token = caller_token(emu, client, true).await;
            let url = format!(
                "https://myvault.vault.azure.net/keys/sdktestkey/{}/wrapkey?api-version=7.5",
                params["key-version"].as_str().unwrap_or_default()
            );
            let r = send(client, Method::POST, &url, Some(&token), Some(&json!({"alg": params["parameters"]["alg"], "value": "ovQIlbB0DgWhZA7sgkPxbg9H-Ly-VlNGPSgGrrZvlIo"}))).await;
            assert_eq!(r.status, StatusCode::OK, "{file}: setup wrap {:?}", r.body);
            params["parameters"]["value"] = r.body["value"].clone();
        }
        // `scope`, `roleDefinitionId` and `roleId` are literal placeholders in these examples.
        "RoleDefinitions_Get" => {
            params["scope"] = json!("subscriptions/a925f2f7-5c63-4b7b-8799-25a5f97bc3b2");
            params["roleDefinitionId"] = json!("0b5fe924-9a61-425c-96af-cfe6e287ca2d");
        }
        "RoleDefinitions_GetById" => {
            params["roleId"] = json!(
                "subscriptions/a925f2f7-5c63-4b7b-8799-25a5f97bc3b2/providers/Microsoft.Authorization/roleDefinitions/0b5fe924-9a61-425c-96af-cfe6e287ca2d"
            );
        }
        _ => {}
    }
}

/// Every example request is accepted with a documented status, and the real response matches
/// the operation's schema.
#[tokio::test]
async fn every_example_request_is_accepted_with_its_documented_status_and_schema() {
    let ops = load_ops();
    let mut ran = Vec::new();
    let mut skipped = Vec::new();
    let mut failures = Vec::new();
    for op in &ops {
        for example in &op.examples {
            let file = example
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            if NOT_SERVED.contains(&file.as_str()) {
                skipped.push(file);
                continue;
            }
            let doc: Value =
                serde_json::from_str(&std::fs::read_to_string(example).expect("example"))
                    .expect("example JSON");
            let expected: BTreeSet<u16> = doc["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .filter_map(|k| k.parse().ok())
                .collect();
            let creates_example_assignment = file.starts_with("RoleAssignments_CreateFor");
            let emu = start_conformance(!creates_example_assignment).await;
            let client = client(&emu);
            let mut params = doc["parameters"].clone();
            rewrite_params(op, &file, &mut params, &emu, &client).await;
            let (url, body) = example_request(op, &params);
            let token = caller_token(&emu, &client, op.data_plane()).await;
            let send_body = if matches!(op.method, Method::GET | Method::DELETE) {
                None
            } else {
                body.or(Some(json!({})))
            };
            let reply: Reply = send(
                &client,
                op.method.clone(),
                &url,
                Some(&token),
                send_body.as_ref(),
            )
            .await;
            let status = reply.status.as_u16();
            if !expected.contains(&status) {
                failures.push(format!(
                    "{file} ({} {url}): got {status}, documented {expected:?}: {}",
                    op.id, reply.body
                ));
            } else if !reply.body.is_null()
                && let Err(e) = validate(op, status, &reply.body)
            {
                failures.push(format!("{file}: {e}"));
            }
            ran.push(file);
            emu.shutdown().await;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} examples failed:\n{}",
        failures.len(),
        ran.len(),
        failures.join("\n\n")
    );
    assert_eq!(
        skipped, NOT_SERVED,
        "only the listed examples may be skipped"
    );
    // Guard against a silently empty run (a moved spec folder would otherwise pass).
    assert!(
        ran.len() >= 38,
        "expected every example to run, ran {}: {ran:?}",
        ran.len()
    );
}

/// Operations without examples (and error answers) still produce bodies their schemas accept.
#[tokio::test]
#[allow(clippy::too_many_lines)]
async fn scripted_responses_of_the_remaining_operations_match_their_schemas() {
    let ops = load_ops();
    let emu = start_conformance(true).await;
    let client = client(&emu);
    let arm = caller_token(&emu, &client, false).await;
    let kv = caller_token(&emu, &client, true).await;
    let sub = "/subscriptions/00000000-0000-0000-0000-000000000000";
    let rg = format!("{sub}/resourceGroups/contoso");
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([9u8; 32]);
    let new_vault = json!({"location": "southcentralus", "properties": {"tenantId": emu.tenant_id(), "sku": {"family": "A", "name": "standard"}, "enableSoftDelete": true, "enablePurgeProtection": true}});
    // (operationId, method, URL, body, expected status)
    let steps: Vec<(&str, Method, String, Option<Value>, u16)> = vec![
        ("Mediaservices_Get", Method::GET, format!("{rg}/providers/Microsoft.Media/mediaservices/contosotv?api-version=2023-01-01"), None, 200),
        ("Mediaservices_Get", Method::GET, format!("{rg}/providers/Microsoft.Media/mediaservices/nosuch?api-version=2023-01-01"), None, 404),
        ("Mediaservices_Get", Method::GET, format!("{rg}/providers/Microsoft.Media/mediaservices/contosotv?api-version=2019-05-01"), None, 400),
        ("Mediaservices_CreateOrUpdate", Method::PUT, format!("{rg}/providers/Microsoft.Media/mediaservices/spaced?api-version=2023-01-01"), Some(json!({"location": "westus", "identity": {"type": "SystemAssigned, UserAssigned"}})), 400),
        (
            "Mediaservices_CreateOrUpdate",
            Method::PUT,
            format!("{rg}/providers/Microsoft.Media/mediaservices/withsystem?api-version=2023-01-01"),
            Some(json!({"location": "westus", "identity": {"type": "SystemAssigned"}, "properties": {"storageAccounts": [{"id": format!("{rg}/providers/Microsoft.Storage/storageAccounts/contososportsstore"), "type": "Primary"}], "storageAuthentication": "System"}})),
            201,
        ),
        ("Mediaservices_ListBySubscription", Method::GET, format!("{sub}/providers/Microsoft.Media/mediaservices?api-version=2023-01-01"), None, 200),
        ("SystemAssignedIdentities_GetByScope", Method::GET, format!("{rg}/providers/Microsoft.Media/mediaservices/withsystem/providers/Microsoft.ManagedIdentity/identities/default?api-version=2026-05-31"), None, 200),
        ("RoleDefinitions_List", Method::GET, format!("{sub}/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01"), None, 200),
        ("RoleAssignments_ListForSubscription", Method::GET, "/subscriptions/a925f2f7-5c63-4b7b-8799-25a5f97bc3b2/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()".into(), None, 200),
        ("RoleAssignments_Get", Method::GET, "/subscriptions/a925f2f7-5c63-4b7b-8799-25a5f97bc3b2/providers/Microsoft.Authorization/roleAssignments/11111111-1111-1111-1111-111111111111?api-version=2022-04-01".into(), None, 404),
        ("Vaults_ListByResourceGroup", Method::GET, format!("{rg}/providers/Microsoft.KeyVault/vaults?api-version=2025-05-01"), None, 200),
        ("Vaults_ListBySubscription", Method::GET, format!("{sub}/providers/Microsoft.KeyVault/vaults?api-version=2025-05-01"), None, 200),
        ("Vaults_CreateOrUpdate", Method::PUT, format!("{rg}/providers/Microsoft.KeyVault/vaults/scripted-kv?api-version=2025-05-01"), Some(new_vault.clone()), 201),
        ("Vaults_Update", Method::PATCH, format!("{rg}/providers/Microsoft.KeyVault/vaults/scripted-kv?api-version=2025-05-01"), Some(json!({"properties": {"networkAcls": {"defaultAction": "Deny", "bypass": "AzureServices", "ipRules": [{"value": "10.0.0.0/8"}], "virtualNetworkRules": []}}})), 200),
        ("Vaults_Delete", Method::DELETE, format!("{rg}/providers/Microsoft.KeyVault/vaults/scripted-kv?api-version=2025-05-01"), None, 200),
        ("Vaults_ListDeleted", Method::GET, format!("{sub}/providers/Microsoft.KeyVault/deletedVaults?api-version=2025-05-01"), None, 200),
        ("Vaults_GetDeleted", Method::GET, format!("{sub}/providers/Microsoft.KeyVault/locations/southcentralus/deletedVaults/scripted-kv?api-version=2025-05-01"), None, 200),
        ("Vaults_Get", Method::GET, format!("{rg}/providers/Microsoft.KeyVault/vaults/scripted-kv?api-version=2025-05-01"), None, 404),
        (
            "StorageAccounts_Create",
            Method::PUT,
            format!("{rg}/providers/Microsoft.Storage/storageAccounts/scriptedstore?api-version=2025-08-01"),
            Some(json!({"location": "southcentralus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "properties": {"networkAcls": {"defaultAction": "Deny", "bypass": "AzureServices", "resourceAccessRules": [{"tenantId": emu.tenant_id(), "resourceId": format!("{rg}/providers/Microsoft.Media/mediaservices/contosotv")}]}}})),
            200,
        ),
        ("UserAssignedIdentities_Update", Method::PATCH, format!("{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1?api-version=2026-05-31"), Some(json!({"tags": {"a": "b"}})), 200),
        ("UserAssignedIdentities_Get", Method::GET, format!("{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/nosuch?api-version=2026-05-31"), None, 404),
    ];
    let mut failures = Vec::new();
    for (id, method, url, body, expected) in steps {
        let op = op(&ops, id);
        let r = send(
            &client,
            method,
            &format!("https://management.azure.com{url}"),
            Some(&arm),
            body.as_ref(),
        )
        .await;
        check(op, &r, expected, &url, &mut failures);
    }
    let vault = "https://myvault.vault.azure.net";
    let kv_steps: Vec<(&str, Method, String, Option<Value>, u16)> = vec![
        (
            "GetKeys",
            Method::GET,
            "/keys?maxresults=1".into(),
            None,
            200,
        ),
        (
            "CreateKey",
            Method::POST,
            "/keys/scripted/create".into(),
            Some(json!({"kty": "EC", "crv": "P-384"})),
            200,
        ),
        (
            "CreateKey",
            Method::POST,
            "/keys/scripted2/create".into(),
            Some(json!({"kty": "RSA", "key_size": 4096})),
            200,
        ),
        (
            "CreateKey",
            Method::POST,
            "/keys/scripted3/create".into(),
            Some(json!({"kty": "oct"})),
            400,
        ),
        ("GetKey", Method::GET, "/keys/scripted2/".into(), None, 200),
        ("GetKey", Method::GET, "/keys/nosuch/".into(), None, 404),
        (
            "UpdateKey",
            Method::PATCH,
            "/keys/scripted2/".into(),
            Some(
                json!({"attributes": {"exp": 4_102_444_800_i64, "nbf": 1_700_000_000}, "tags": {"t": "v"}}),
            ),
            200,
        ),
        (
            "encrypt",
            Method::POST,
            "/keys/scripted2//encrypt".into(),
            Some(json!({"alg": "RSA-OAEP-256", "value": secret})),
            200,
        ),
        (
            "RotateKey",
            Method::POST,
            "/keys/scripted2/rotate".into(),
            None,
            200,
        ),
        (
            "DeleteKey",
            Method::DELETE,
            "/keys/scripted2".into(),
            None,
            200,
        ),
        (
            "GetDeletedKeys",
            Method::GET,
            "/deletedkeys".into(),
            None,
            200,
        ),
        (
            "GetDeletedKey",
            Method::GET,
            "/deletedkeys/scripted2".into(),
            None,
            200,
        ),
        (
            "RecoverDeletedKey",
            Method::POST,
            "/deletedkeys/scripted2/recover".into(),
            None,
            200,
        ),
        (
            "DeleteKey",
            Method::DELETE,
            "/keys/scripted".into(),
            None,
            200,
        ),
        (
            "PurgeDeletedKey",
            Method::DELETE,
            "/deletedkeys/scripted".into(),
            None,
            204,
        ),
    ];
    for (id, method, path, body, expected) in kv_steps {
        let op = op(&ops, id);
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!("{vault}{path}{sep}api-version=7.5");
        let r = send(&client, method, &url, Some(&kv), body.as_ref()).await;
        check(op, &r, expected, &url, &mut failures);
    }
    // The 401 challenge body is a Key Vault error too.
    let r = send(
        &client,
        Method::GET,
        &format!("{vault}/keys/sdktestkey?api-version=7.5"),
        None,
        None,
    )
    .await;
    check(
        op(&ops, "GetKey"),
        &r,
        401,
        "unauthenticated GetKey",
        &mut failures,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    emu.shutdown().await;
}

fn check(op: &Op, r: &Reply, expected: u16, what: &str, failures: &mut Vec<String>) {
    let status = r.status.as_u16();
    if status != expected {
        failures.push(format!(
            "{} {what}: expected {expected}, got {status}: {}",
            op.id, r.body
        ));
        return;
    }
    let documented = op.spec["responses"].get(status.to_string()).is_some()
        || (status >= 400 && op.spec["responses"].get("default").is_some());
    if !documented {
        failures.push(format!(
            "{} {what}: status {status} is not documented by the spec",
            op.id
        ));
        return;
    }
    if r.body.is_null() {
        return;
    }
    match validate(op, status, &r.body) {
        Ok(true) => {}
        Ok(false) => failures.push(format!(
            "{} {what}: status {status} documents no body, got {}",
            op.id, r.body
        )),
        Err(e) => failures.push(e),
    }
}

/// The request schemas the emulator enforces are exactly those the specs derive to: a change of
/// the specs or of the derivation fails here until the file is regenerated with
/// `AMS_WRITE_REQUEST_SCHEMAS=1 cargo test --all-features --test emulator_conformance request_schemas`.
#[test]
fn the_emulators_request_schemas_are_derived_from_the_specs() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/emulator/request_schemas.json");
    let derived = spec::request_schemas();
    let text = format!(
        "{}\n",
        serde_json::to_string_pretty(&derived).expect("serializes")
    );
    if std::env::var_os("AMS_WRITE_REQUEST_SCHEMAS").is_some() {
        std::fs::write(&path, &text).expect("write request schemas");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} is not what the specs derive to; regenerate it (see this test's doc comment)",
        path.display()
    );
    for op in [
        "mediaservices Mediaservices_Update",
        "storage StorageAccounts_Update",
        "authorization RoleAssignments_Create",
        "keyvault Vaults_UpdateAccessPolicy",
        "keyvault-data wrapKey",
    ] {
        assert!(derived.get(op).is_some(), "{op} has no request schema");
    }
    // A flags enum takes the combinations its description documents, and nothing else.
    let update = &derived["storage StorageAccounts_Update"]["schema"];
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(update)
        .expect("compiles");
    let body = |bypass: &str| serde_json::json!({ "properties": { "networkAcls": { "defaultAction": "Deny", "bypass": bypass } } });
    for ok in [
        "AzureServices",
        "Logging, Metrics",
        "Logging,AzureServices",
        "None",
    ] {
        assert!(validator.is_valid(&body(ok)), "{ok} refused");
    }
    for bad in ["Everything", "Logging Metrics", "Logging, ", ""] {
        assert!(!validator.is_valid(&body(bad)), "{bad} accepted");
    }
}
