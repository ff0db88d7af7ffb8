#![cfg(feature = "emulator")]
// NB: scenarios read top to bottom as stories; splitting them would hide the sequence.
#![allow(clippy::too_many_lines)]
//! Behaviour scenarios of the Azure emulator, over real HTTPS: authentication and its error
//! shapes, Media Services LROs and rules, customer-key tracking and the inaccessible state,
//! role assignments, Key Vault authorization, soft delete, firewall, throttling and faults.

#[path = "emulator/spec.rs"]
mod spec;
#[path = "emulator/support.rs"]
mod support;

use std::time::Duration;

use ams_security_operator::emulator::{
    AdminCommand, EmulatorConfig, Fault, FaultRule, KeyAccessCause, ThrottleLimits,
};
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::*;

/// A change to the world made through the handle.
type Change = Box<dyn Fn(&ams_security_operator::emulator::Emulator)>;

fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

// ------------------------------------------------------------------ core and Entra

/// Clients correlate support cases by `x-ms-request-id`; ARM refuses requests without a valid
/// api-version before doing anything else.
#[tokio::test]
async fn arm_checks_api_version_per_provider_and_stamps_request_ids() {
    let emu = start_standard().await;
    let arm = Arm::as_sp(&emu, "operator").await;
    let path = account_path("nosuch");
    let missing = send(
        &arm.client,
        Method::GET,
        &format!("{ARM}{path}"),
        Some(&arm.token),
        None,
    )
    .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        missing.error_code(),
        "MissingApiVersionParameter",
        "{:?}",
        missing.body
    );
    // The Key Vault version is wrong for Media Services.
    let wrong = arm.get(&path, KV_API).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        wrong.error_code(),
        "InvalidApiVersionParameter",
        "{:?}",
        wrong.body
    );
    assert!(
        wrong.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2023-01-01")),
        "{:?}",
        wrong.body
    );
    let right = arm.get(&path, MEDIA_API).await;
    assert_eq!(right.status, StatusCode::NOT_FOUND);
    assert!(
        right
            .header("x-ms-ratelimit-remaining-subscription-reads")
            .is_some(),
        "errors report the bucket too"
    );
    assert_eq!(right.error_code(), "ResourceNotFound");
    for r in [&missing, &wrong, &right] {
        assert!(
            r.header("x-ms-request-id").is_some_and(|v| v.len() == 36),
            "request id missing: {:?}",
            r.headers
        );
    }
    finish(emu).await;
}

/// Tokens name the caller (`oid`), tenant, audience and app; ARM refuses a Key Vault token and a
/// missing one with its own error codes.
#[tokio::test]
async fn client_secret_tokens_carry_identity_claims_and_arm_checks_the_audience() {
    let emu = start_standard().await;
    let client = client(&emu);
    let info = emu.service_principal("operator").expect("operator");
    let token = token_with_secret(&client, &emu, "operator", ARM_AUDIENCE).await;
    let claims = jwt_claims(&token);
    assert_eq!(claims["oid"], json!(info.object_id));
    assert_eq!(claims["appid"], json!(info.client_id));
    assert_eq!(claims["tid"], json!(emu.tenant_id()));
    assert_eq!(claims["aud"], json!(ARM_AUDIENCE));
    assert!(claims["exp"].as_i64().expect("exp") > claims["iat"].as_i64().expect("iat"));

    let path = format!("{}?api-version={MEDIA_API}", account_path("x"));
    let none = send(&client, Method::GET, &format!("{ARM}{path}"), None, None).await;
    assert_eq!(
        (none.status, none.error_code()),
        (StatusCode::UNAUTHORIZED, "AuthenticationFailed")
    );
    let vault_token = token_with_secret(&client, &emu, "operator", VAULT_AUDIENCE).await;
    let wrong_aud = send(
        &client,
        Method::GET,
        &format!("{ARM}{path}"),
        Some(&vault_token),
        None,
    )
    .await;
    assert_eq!(
        (wrong_aud.status, wrong_aud.error_code()),
        (
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationTokenAudience"
        )
    );
    let forged = format!("{}x", &token[..token.len() - 1]);
    let bad = send(
        &client,
        Method::GET,
        &format!("{ARM}{path}"),
        Some(&forged),
        None,
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    // Tokens expire on the emulator's clock.
    emu.advance_clock(Duration::from_secs(2 * 3600));
    let expired = send(
        &client,
        Method::GET,
        &format!("{ARM}{path}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (expired.status, expired.error_code()),
        (StatusCode::UNAUTHORIZED, "ExpiredAuthenticationToken")
    );
    finish(emu).await;
}

/// An application holds several secrets; revoking one refuses that one as Entra refuses a
/// wrong secret (401 `invalid_client`, AADSTS7000215) and leaves the others working; tokens
/// last as long as `setTokenLifetime` says.
#[tokio::test]
async fn a_revoked_client_secret_is_refused_and_the_others_keep_working() {
    let emu = start_standard().await;
    let client = client(&emu);
    let info = emu.service_principal("operator").expect("operator");
    emu.add_client_secret("operator", "second-secret")
        .expect("add");
    emu.set_token_lifetime(Some(std::time::Duration::from_secs(60)));
    let url = format!(
        "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
        emu.tenant_id()
    );
    let scope = format!("{ARM_AUDIENCE}/.default");
    let token = |secret: &str| {
        client
            .post(&url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", info.client_id.as_str()),
                ("client_secret", secret),
                ("scope", scope.as_str()),
            ])
            .send()
    };
    let first = info.secret.clone().expect("seeded secret");
    let ok = token("second-secret").await.expect("sent");
    assert_eq!(ok.status(), StatusCode::OK);
    let body: Value = ok.json().await.expect("json");
    assert_eq!(body["expires_in"], json!(60), "{body}");
    emu.revoke_client_secret(&info.client_id, "second-secret")
        .expect("revoke");
    let refused = token("second-secret").await.expect("sent");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(
        (body["error"].as_str(), body["error_codes"][0].as_u64()),
        (Some("invalid_client"), Some(7_000_215)),
        "{body}"
    );
    assert_eq!(token(&first).await.expect("sent").status(), StatusCode::OK);
    assert!(
        emu.revoke_client_secret("operator", "second-secret")
            .is_err(),
        "revoking an unknown secret is an error"
    );
}

/// A wrong secret gets Entra's AADSTS error shape, not a bare 401.
#[tokio::test]
async fn wrong_secret_and_unknown_client_get_aadsts_errors() {
    let emu = start_standard().await;
    let client = client(&emu);
    let info = emu.service_principal("operator").expect("operator");
    let url = format!(
        "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
        emu.tenant_id()
    );
    let scope = format!("{ARM_AUDIENCE}/.default");
    let resp = client
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", info.client_id.as_str()),
            ("client_secret", "nope"),
            ("scope", scope.as_str()),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], json!("invalid_client"));
    assert_eq!(body["error_codes"], json!([7_000_215]));
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("AADSTS7000215:")),
        "{body}"
    );
    for key in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[key].is_string(), "missing {key}: {body}");
    }
    let resp = client
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "00000000-0000-0000-0000-000000000000"),
            ("client_secret", "x"),
            ("scope", scope.as_str()),
        ])
        .send()
        .await
        .expect("sent");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(
        (body["error"].as_str(), body["error_codes"][0].as_u64()),
        (Some("unauthorized_client"), Some(700_016))
    );
    // The v1 endpoint takes a `resource` instead of a scope and issues the same token shape.
    let v1 = client
        .post(format!(
            "https://login.microsoftonline.com/{}/oauth2/token",
            emu.tenant_id()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", info.client_id.as_str()),
            ("client_secret", "operator-secret"),
            ("resource", "https://vault.azure.net"),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(v1.status(), StatusCode::OK);
    let body: Value = v1.json().await.expect("json");
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(jwt_claims(token)["aud"], json!(VAULT_AUDIENCE));
    finish(emu).await;
}

/// Workload identity: a service account token from the emulator's issuer with the seeded
/// subject is exchanged for an access token; another subject is refused with AADSTS70021.
#[tokio::test]
async fn federated_assertion_is_matched_against_the_federated_credential() {
    let emu = start_standard().await;
    let client = client(&emu);
    let info = emu.service_principal("operator").expect("operator");
    let url = format!(
        "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
        emu.tenant_id()
    );
    let exchange = |assertion: String| {
        let client = client.clone();
        let url = url.clone();
        let client_id = info.client_id.clone();
        async move {
            let resp = client
                .post(&url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.as_str()),
                    ("scope", "https://vault.azure.net/.default"),
                ])
                .send()
                .await
                .expect("sent");
            (resp.status(), resp.json::<Value>().await.expect("json"))
        }
    };
    let good = emu
        .mint_service_account_token("system:serviceaccount:ams-system:ams-security-operator")
        .expect("minted");
    let (status, body) = exchange(good).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = jwt_claims(body["access_token"].as_str().expect("token"));
    assert_eq!(
        (claims["oid"].as_str(), claims["aud"].as_str()),
        (Some(info.object_id.as_str()), Some(VAULT_AUDIENCE))
    );

    let other = emu
        .mint_service_account_token("system:serviceaccount:default:intruder")
        .expect("minted");
    let (status, body) = exchange(other).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_codes"], json!([70_021]), "{body}");
    // An assertion not signed by the emulator's issuer key fails signature validation.
    let (status, body) = exchange("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".into()).await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (StatusCode::UNAUTHORIZED, Some(50_013)),
        "{body}"
    );
    finish(emu).await;
}

/// The App Service managed-identity protocol: `X-IDENTITY-HEADER` required, `expires_on` a string.
#[tokio::test]
async fn managed_identity_endpoint_issues_tokens_for_the_default_identity() {
    let emu = start_standard().await;
    let client = client(&emu);
    let url = format!(
        "{}?api-version=2019-08-01&resource=https://management.azure.com/",
        emu.msi_endpoint()
    );
    let denied = client.get(&url).send().await.expect("sent");
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    let resp = client
        .get(&url)
        .header("X-IDENTITY-HEADER", emu.msi_header().expect("header"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    assert!(
        body["expires_on"].is_string(),
        "expires_on must be a string: {body}"
    );
    let (principal, client_id) = emu.user_assigned_identity(&uai_id()).expect("identity");
    assert_eq!(body["client_id"], json!(client_id));
    assert_eq!(
        jwt_claims(body["access_token"].as_str().expect("token"))["oid"],
        json!(principal)
    );
    finish(emu).await;
}

// ------------------------------------------------------------------ Media Services

/// PUT is a long-running operation: 201 with `InProgress` and polling URLs, then `Succeeded`;
/// the user-assigned identity is filled with its principal and client ids.
#[tokio::test]
async fn media_account_create_is_a_long_running_operation() {
    let emu = start(EmulatorConfig {
        lro_polls: 2,
        key_check_interval: None,
        ..standard_config()
    })
    .await;
    let arm = Arm::as_sp(&emu, "operator").await;
    let path = account_path("amsone");
    let created = arm.put(&path, MEDIA_API, &account_body(None)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(
        created.body["properties"]["provisioningState"],
        json!("InProgress")
    );
    assert!(
        created
            .header("location")
            .is_some_and(|l| l.contains("/mediaServicesOperationResults/"))
    );
    let statuses = arm.poll(&created).await;
    assert_eq!(statuses, ["InProgress", "InProgress", "Succeeded"]);
    let got = arm.get(&path, MEDIA_API).await;
    assert_eq!(
        got.body["properties"]["provisioningState"],
        json!("Succeeded")
    );
    let (principal, client_id) = emu.user_assigned_identity(&uai_id()).expect("identity");
    let entry = &got.body["identity"]["userAssignedIdentities"][uai_id()];
    assert_eq!(
        (entry["principalId"].as_str(), entry["clientId"].as_str()),
        (Some(principal.as_str()), Some(client_id.as_str()))
    );
    // Update is a PATCH answered 202.
    let patched = arm
        .patch(&path, MEDIA_API, &json!({"tags": {"team": "video"}}))
        .await;
    assert_eq!(patched.status, StatusCode::ACCEPTED);
    assert_eq!(
        arm.poll(&patched).await.last().map(String::as_str),
        Some("Succeeded")
    );
    let list = arm
        .get(
            &format!("{RG}/providers/Microsoft.Media/mediaservices"),
            MEDIA_API,
        )
        .await;
    assert_eq!(list.body["value"].as_array().map(Vec::len), Some(1));
    // Following only the Location (result) URL terminates too: 202 until done, then the account.
    let via_location = arm
        .patch(&path, MEDIA_API, &json!({"tags": {"team": "news"}}))
        .await;
    let location = via_location
        .header("location")
        .expect("Location")
        .to_owned();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = send(&arm.client, Method::GET, &location, Some(&arm.token), None).await;
        statuses.push(r.status.as_u16());
        if r.status == StatusCode::OK {
            assert_eq!(
                r.body["properties"]["provisioningState"],
                json!("Succeeded")
            );
            assert_eq!(r.body["tags"]["team"], json!("news"));
            break;
        }
    }
    assert_eq!(statuses, [202, 202, 200]);
    // A failing operation reports its error and leaves the account `Failed`.
    emu.fail_next_operation("InternalError", "The storage key sync failed.");
    let failing = arm
        .patch(&path, MEDIA_API, &json!({"tags": {"team": "audio"}}))
        .await;
    assert_eq!(failing.status, StatusCode::ACCEPTED);
    assert_eq!(
        arm.poll(&failing).await,
        ["InProgress", "InProgress", "Failed"]
    );
    let status = send(
        &arm.client,
        Method::GET,
        failing.header("azure-asyncoperation").expect("polling URL"),
        Some(&arm.token),
        None,
    )
    .await;
    assert_eq!(
        status.body["error"]["code"],
        json!("InternalError"),
        "{:?}",
        status.body
    );
    let got = arm.get(&path, MEDIA_API).await;
    assert_eq!(got.body["properties"]["provisioningState"], json!("Failed"));
    assert_eq!(arm.delete(&path, MEDIA_API).await.status, StatusCode::OK);
    assert_eq!(
        arm.delete(&path, MEDIA_API).await.status,
        StatusCode::NO_CONTENT
    );
    finish(emu).await;
}

/// `SystemAssigned,UserAssigned` issues a system principal; the spaced form is refused.
#[tokio::test]
async fn identity_types_follow_the_service_rules() {
    let emu = start_standard().await;
    let arm = Arm::as_sp(&emu, "operator").await;
    let mut body = account_body(None);
    body["identity"]["type"] = json!("SystemAssigned, UserAssigned");
    let spaced = arm.put(&account_path("amstwo"), MEDIA_API, &body).await;
    assert_eq!(spaced.status, StatusCode::BAD_REQUEST, "{:?}", spaced.body);
    body["identity"]["type"] = json!("SystemAssigned,UserAssigned");
    let ok = arm.put(&account_path("amstwo"), MEDIA_API, &body).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{:?}", ok.body);
    let principal = ok.body["identity"]["principalId"]
        .as_str()
        .expect("system principalId")
        .to_owned();
    assert_eq!(ok.body["identity"]["tenantId"], json!(emu.tenant_id()));
    // The system identity is a real principal: ARM's identities/default reports it.
    let default = arm
        .get(
            &format!(
                "{}/providers/Microsoft.ManagedIdentity/identities/default",
                account_path("amstwo")
            ),
            MI_API,
        )
        .await;
    assert_eq!(
        default.body["properties"]["principalId"],
        json!(principal),
        "{:?}",
        default.body
    );
    finish(emu).await;
}

/// Storage from another subscription is refused, and managed-identity storage access needs a
/// blob data role for the identity and a way through the storage firewall.
#[tokio::test]
async fn storage_rules_are_enforced() {
    let emu = start_standard().await;
    let arm = Arm::as_sp(&emu, "operator").await;
    let mut body = account_body(None);
    body["properties"]["storageAccounts"][0]["id"] = json!(format!(
        "/subscriptions/{FOREIGN_SUB}/resourceGroups/other-rg/providers/Microsoft.Storage/storageAccounts/foreignstore"
    ));
    let foreign = arm.put(&account_path("amsthree"), MEDIA_API, &body).await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST);
    assert!(
        foreign.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("own subscription")),
        "{:?}",
        foreign.body
    );
    // A closed storage firewall admits the account only through a resource access rule.
    let closed = json!({"properties": {"networkAcls": {"bypass": "None", "defaultAction": "Deny", "ipRules": [], "virtualNetworkRules": []}}});
    assert_eq!(
        arm.patch(&store_id(), STORAGE_API, &closed).await.status,
        StatusCode::OK
    );
    let blocked = arm
        .put(&account_path("amsthree"), MEDIA_API, &account_body(None))
        .await;
    assert_eq!(blocked.status, StatusCode::BAD_REQUEST);
    assert!(
        blocked.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("firewall")),
        "{:?}",
        blocked.body
    );
    let rule = json!({"properties": {"networkAcls": {"bypass": "None", "defaultAction": "Deny", "resourceAccessRules": [{"tenantId": emu.tenant_id(), "resourceId": account_path("amsthree")}]}}});
    assert_eq!(
        arm.patch(&store_id(), STORAGE_API, &rule).await.status,
        StatusCode::OK
    );
    let admitted = arm
        .put(&account_path("amsthree"), MEDIA_API, &account_body(None))
        .await;
    assert_eq!(admitted.status, StatusCode::CREATED, "{:?}", admitted.body);
    assert_eq!(
        arm.delete(&account_path("amsthree"), MEDIA_API)
            .await
            .status,
        StatusCode::OK
    );
    emu.remove_role_assignments_of(&uai_id(), None)
        .expect("removed");
    let ungranted = arm
        .put(&account_path("amsthree"), MEDIA_API, &account_body(None))
        .await;
    assert_eq!(ungranted.status, StatusCode::BAD_REQUEST);
    assert!(
        ungranted.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Storage Blob Data Contributor")),
        "{:?}",
        ungranted.body
    );
    finish(emu).await;
}

/// BYOK rules: only RSA 2048/3072/4096, the vault in the account's region with soft delete and
/// purge protection, and an identity that can reach the key.
#[tokio::test]
async fn customer_key_rules_are_enforced() {
    let emu = start_standard().await;
    let arm = Arm::as_sp(&emu, "operator").await;
    let cases = [
        (
            "https://ams-kv.vault.azure.net/keys/eckey",
            "RSA keys of 2048, 3072 or 4096",
        ),
        (
            "https://ams-kv-east.vault.azure.net/keys/cmk",
            "same region",
        ),
        (
            "https://ams-kv-nopurge.vault.azure.net/keys/cmk",
            "purge protection",
        ),
        // The identity has no data action in the RBAC vault.
        (
            "https://ams-kv-rbac.vault.azure.net/keys/cmk",
            "lacks get, wrapKey and unwrapKey",
        ),
    ];
    for (kid, expected) in cases {
        let r = arm
            .put(
                &account_path("amsfour"),
                MEDIA_API,
                &account_body(Some(kid)),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{kid}: {:?}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(expected),
            "{kid}: expected '{expected}' in {message}"
        );
    }
    let ok = arm
        .put(
            &account_path("amsfour"),
            MEDIA_API,
            &account_body(Some("https://ams-kv.vault.azure.net/keys/cmk")),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{:?}", ok.body);
    finish(emu).await;
}

/// With no version pinned, `currentKeyIdentifier` follows the latest enabled version.
#[tokio::test]
async fn current_key_identifier_follows_the_latest_enabled_version() {
    let emu = start_standard().await;
    let arm = Arm::as_sp(&emu, "operator").await;
    let path = account_path("amsfive");
    let created = arm
        .put(
            &path,
            MEDIA_API,
            &account_body(Some("https://ams-kv.vault.azure.net/keys/cmk")),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let current = |r: &Reply| {
        r.body["properties"]["encryption"]["keyVaultProperties"]["currentKeyIdentifier"]
            .as_str()
            .map(str::to_owned)
    };
    let v1 = current(&created).expect("current key id");
    assert!(
        v1.starts_with("https://ams-kv.vault.azure.net/keys/cmk/"),
        "{v1}"
    );
    assert_eq!(
        created.body["properties"]["encryption"]["keyVaultProperties"]["keyIdentifier"],
        json!("https://ams-kv.vault.azure.net/keys/cmk")
    );
    let v2 = emu.add_key_version("ams-kv", "cmk").expect("new version");
    emu.recheck_key_access();
    assert_eq!(
        current(&arm.get(&path, MEDIA_API).await).as_deref(),
        Some(v2.as_str())
    );
    emu.disable_key("ams-kv", "cmk", None)
        .expect("disabled latest");
    emu.recheck_key_access();
    assert_eq!(
        current(&arm.get(&path, MEDIA_API).await),
        Some(v1),
        "falls back to the latest enabled version"
    );
    finish(emu).await;
}

/// Losing key access (each cause) puts the account in the inaccessible state: GET and LIST work,
/// writes fail with a clear error; restoring access leaves the state.
#[tokio::test]
async fn losing_and_regaining_key_access_enters_and_leaves_the_inaccessible_state() {
    let emu = start_standard().await;
    let arm = Arm::as_sp(&emu, "operator").await;
    let path = account_path("amssix");
    let kid = "https://ams-kv.vault.azure.net/keys/cmk";
    assert_eq!(
        arm.put(&path, MEDIA_API, &account_body(Some(kid)))
            .await
            .status,
        StatusCode::CREATED
    );
    let account_id = account_path("amssix");
    let uai_principal = emu.principal_id(&uai_id()).expect("uai principal");

    let scenarios: Vec<(KeyAccessCause, Change, Change)> = vec![
        (
            KeyAccessCause::KeyDisabled,
            Box::new(|e| e.disable_key("ams-kv", "cmk", None).expect("ok")),
            Box::new(|e| e.enable_key("ams-kv", "cmk", None).expect("ok")),
        ),
        (
            KeyAccessCause::KeyDeleted,
            Box::new(|e| e.delete_key("ams-kv", "cmk").expect("ok")),
            Box::new(|e| e.recover_key("ams-kv", "cmk").expect("ok")),
        ),
        (
            KeyAccessCause::VaultDeleted,
            Box::new(|e| e.delete_vault("ams-kv").expect("ok")),
            Box::new(|e| e.recover_vault("ams-kv").expect("ok")),
        ),
        (
            KeyAccessCause::FirewallBlocked,
            Box::new(|e| e.close_vault_firewall("ams-kv", "None").expect("ok")),
            Box::new(|e| e.open_vault_firewall("ams-kv").expect("ok")),
        ),
        (
            KeyAccessCause::PermissionDenied,
            Box::new(move |e| {
                e.remove_access_policy("ams-kv", &uai_principal)
                    .expect("ok");
            }),
            // Restored through ARM below, as an operator would.
            Box::new(|_| {}),
        ),
    ];
    for (cause, breaker, fixer) in scenarios {
        breaker(&emu);
        emu.recheck_key_access();
        let state = emu.key_access(&account_id).expect("account known");
        assert_eq!(state.cause, Some(cause), "after breaking for {cause:?}");
        let get = arm.get(&path, MEDIA_API).await;
        assert_eq!(
            get.status,
            StatusCode::OK,
            "GET still works in the inaccessible state"
        );
        let list = arm
            .get(
                &format!("{RG}/providers/Microsoft.Media/mediaservices"),
                MEDIA_API,
            )
            .await;
        assert_eq!(list.status, StatusCode::OK);
        let refused = arm
            .patch(&path, MEDIA_API, &json!({"tags": {"x": "y"}}))
            .await;
        assert_eq!(
            (refused.status, refused.error_code()),
            (StatusCode::BAD_REQUEST, "CustomerKeyInaccessible"),
            "{cause:?}: {:?}",
            refused.body
        );
        if cause == KeyAccessCause::PermissionDenied {
            // Restore through ARM, as an operator would.
            let oid = emu.principal_id(&uai_id()).expect("uai");
            let r = arm
                .put(
                    &format!("{RG}/providers/Microsoft.KeyVault/vaults/ams-kv/accessPolicies/add"),
                    KV_API,
                    &json!({"properties": {"accessPolicies": [{"tenantId": emu.tenant_id(), "objectId": oid, "permissions": {"keys": ["get", "wrapKey", "unwrapKey"]}}]}}),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        }
        fixer(&emu);
        emu.recheck_key_access();
        assert_eq!(
            emu.key_access(&account_id).expect("known").cause,
            None,
            "recovered from {cause:?}"
        );
        let accepted = arm
            .patch(&path, MEDIA_API, &json!({"tags": {"x": "y"}}))
            .await;
        assert_eq!(
            accepted.status,
            StatusCode::ACCEPTED,
            "{cause:?}: {:?}",
            accepted.body
        );
    }
    // Expiry on the emulator clock.
    emu.admin(AdminCommand::ExpireKey {
        vault: "ams-kv".into(),
        key: "cmk".into(),
        version: None,
        at: Some(emu.now().timestamp() + 60),
    })
    .expect("ok");
    emu.recheck_key_access();
    assert_eq!(emu.key_access(&account_id).expect("known").cause, None);
    emu.advance_clock(Duration::from_secs(120));
    emu.recheck_key_access();
    assert_eq!(
        emu.key_access(&account_id).expect("known").cause,
        Some(KeyAccessCause::KeyExpired)
    );
    finish(emu).await;
}

/// The background task notices lost access without being asked.
#[tokio::test]
async fn background_check_detects_lost_key_access() {
    let emu = start(EmulatorConfig {
        key_check_interval: Some(Duration::from_millis(50)),
        ..standard_config()
    })
    .await;
    let arm = Arm::as_sp(&emu, "operator").await;
    assert_eq!(
        arm.put(
            &account_path("amsseven"),
            MEDIA_API,
            &account_body(Some("https://ams-kv.vault.azure.net/keys/cmk"))
        )
        .await
        .status,
        StatusCode::CREATED
    );
    emu.disable_key("ams-kv", "cmk", None).expect("ok");
    let mut cause = None;
    for _ in 0..100 {
        cause = emu
            .key_access(&account_path("amsseven"))
            .and_then(|k| k.cause);
        if cause.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cause, Some(KeyAccessCause::KeyDisabled));
    finish(emu).await;
}

// ------------------------------------------------------------------ role assignments

/// Create, idempotent re-create, conflicts, filters and delete, as the 2022-04-01 API behaves.
#[tokio::test]
async fn role_assignment_lifecycle() {
    let emu = start_standard().await;
    let arm = Arm::as_sp(&emu, "operator").await;
    let principal = emu.principal_id("outsider").expect("outsider");
    let scope = store_id();
    let name = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
    let path = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}");
    let body = |role: &str| json!({"properties": {"roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}"), "principalId": principal, "principalType": "ServicePrincipal"}});
    let sbdc = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
    let created = arm.put(&path, AUTHZ_API, &body(sbdc)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.body["properties"]["scope"], json!(scope));
    assert_eq!(
        arm.put(&path, AUTHZ_API, &body(sbdc)).await.status,
        StatusCode::OK,
        "identical re-create"
    );
    let update = arm
        .put(
            &path,
            AUTHZ_API,
            &body("acdd72a7-3385-48ef-bd42-f606fba81ae7"),
        )
        .await;
    assert_eq!(
        (update.status, update.error_code()),
        (StatusCode::BAD_REQUEST, "RoleAssignmentUpdateNotPermitted")
    );
    let dup = arm.put(&format!("{scope}/providers/Microsoft.Authorization/roleAssignments/6b2b7e2a-1c1d-4d1e-9f00-5c9c1f7a0b11"), AUTHZ_API, &body(sbdc)).await;
    assert_eq!(
        (dup.status, dup.error_code()),
        (StatusCode::CONFLICT, "RoleAssignmentExists")
    );
    let not_guid = arm
        .put(
            &format!("{scope}/providers/Microsoft.Authorization/roleAssignments/not-a-guid"),
            AUTHZ_API,
            &body(sbdc),
        )
        .await;
    assert_eq!(not_guid.status, StatusCode::BAD_REQUEST);

    let list = |filter: String| {
        let arm = &arm;
        async move {
            let r = arm.get(&format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments?$filter={filter}"), AUTHZ_API).await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            r.body["value"].as_array().cloned().unwrap_or_default()
        }
    };
    let mine = list(format!("principalId eq '{principal}'")).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(list(format!("assignedTo('{principal}')")).await.len(), 1);
    // atScope() at the subscription does not include the storage-level assignment.
    assert!(
        list("atScope()".into())
            .await
            .iter()
            .all(|ra| ra["properties"]["scope"] != json!(scope))
    );
    assert_eq!(arm.get(&path, AUTHZ_API).await.status, StatusCode::OK);
    assert_eq!(arm.delete(&path, AUTHZ_API).await.status, StatusCode::OK);
    assert_eq!(
        arm.delete(&path, AUTHZ_API).await.status,
        StatusCode::NO_CONTENT
    );
    let gone = arm.get(&path, AUTHZ_API).await;
    assert_eq!(
        (gone.status, gone.error_code()),
        (StatusCode::NOT_FOUND, "RoleAssignmentNotFound")
    );
    finish(emu).await;
}

/// Granting needs `Microsoft.Authorization/roleAssignments/write` at the scope.
#[tokio::test]
async fn a_caller_without_write_permission_cannot_grant() {
    let emu = start_standard().await;
    let outsider = Arm::as_sp(&emu, "outsider").await;
    let principal = emu.principal_id("outsider").expect("outsider");
    let path = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/0e3b8c2a-8d4f-4a8b-9a0e-1c2d3e4f5a6b",
        store_id()
    );
    let body = json!({"properties": {"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c", "principalId": principal}});
    let r = outsider.put(&path, AUTHZ_API, &body).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::FORBIDDEN, "AuthorizationFailed"),
        "{:?}",
        r.body
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Microsoft.Authorization/roleAssignments/write"))
    );
    // Nor read a Media Services account.
    let r = outsider.get(&account_path("x"), MEDIA_API).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    finish(emu).await;
}

/// A fresh principal is not visible to role assignments for the configured delay unless the
/// request names its principalType, as documented.
#[tokio::test]
async fn propagation_delay_yields_principal_not_found_for_new_principals() {
    let emu = start(EmulatorConfig {
        propagation_delay: Duration::from_secs(30),
        key_check_interval: None,
        ..standard_config()
    })
    .await;
    let arm = Arm::as_sp(&emu, "operator").await;
    let ident = arm
        .put(
            &format!("{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/fresh"),
            MI_API,
            &json!({"location": "westeurope"}),
        )
        .await;
    assert_eq!(ident.status, StatusCode::CREATED, "{:?}", ident.body);
    let principal = ident.body["properties"]["principalId"]
        .as_str()
        .expect("principalId")
        .to_owned();
    let path = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/9d5f3c1e-2b4a-4c6d-8e0f-1a2b3c4d5e6f",
        store_id()
    );
    let body = json!({"properties": {"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/ba92f5b4-2d11-453d-a403-e96b0029c9fe", "principalId": principal}});
    let early = arm.put(&path, AUTHZ_API, &body).await;
    assert_eq!(
        (early.status, early.error_code()),
        (StatusCode::BAD_REQUEST, "PrincipalNotFound"),
        "{:?}",
        early.body
    );
    emu.advance_clock(Duration::from_secs(31));
    let later = arm.put(&path, AUTHZ_API, &body).await;
    assert_eq!(later.status, StatusCode::CREATED, "{:?}", later.body);
    finish(emu).await;
}

/// Built-in role definitions carry their well-known ids and data actions.
#[tokio::test]
async fn built_in_role_definitions_carry_data_actions() {
    let emu = start_standard().await;
    let arm = Arm::as_sp(&emu, "operator").await;
    let r = arm.get(&format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/ba92f5b4-2d11-453d-a403-e96b0029c9fe"), AUTHZ_API).await;
    assert_eq!(
        r.body["properties"]["roleName"],
        json!("Storage Blob Data Contributor")
    );
    assert!(
        r.body["properties"]["permissions"][0]["dataActions"]
            .as_array()
            .is_some_and(|a| a.contains(&json!(
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"
            )))
    );
    let list = arm.get(&format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName eq 'Key Vault Crypto Service Encryption User'"), AUTHZ_API).await;
    assert_eq!(
        list.body["value"][0]["name"],
        json!("e147488a-f6f5-4113-8e2d-b22465e65bf6")
    );
    finish(emu).await;
}

// ------------------------------------------------------------------ Key Vault

/// An unauthenticated call gets Key Vault's challenge, which SDKs parse to find the tenant.
#[tokio::test]
async fn unauthenticated_key_vault_call_gets_the_bearer_challenge() {
    let emu = start_standard().await;
    let client = client(&emu);
    let r = send(
        &client,
        Method::GET,
        "https://ams-kv.vault.azure.net/keys/cmk?api-version=7.5",
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!("Bearer authorization=\"https://login.microsoftonline.com/{}\", resource=\"https://vault.azure.net\"", emu.tenant_id()).as_str())
    );
    finish(emu).await;
}

/// Key lifecycle over the data plane: create, versions with paging, update, wrap/unwrap with
/// real RSA, soft delete, recover, and purge refused under purge protection.
#[tokio::test]
async fn key_lifecycle_with_real_rsa_and_soft_delete() {
    let emu = start_standard().await;
    let kv = Vault::as_sp(&emu, "operator", "ams-kv").await;
    let created = kv
        .call(
            Method::POST,
            "/keys/k1/create",
            Some(&json!({"kty": "RSA", "key_size": 3072})),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(created.body["key"]["n"].as_str().expect("n"))
        .expect("b64");
    assert_eq!(n.len(), 384, "a 3072-bit modulus");
    for _ in 0..2 {
        assert_eq!(
            kv.call(
                Method::POST,
                "/keys/k1/create",
                Some(&json!({"kty": "RSA"}))
            )
            .await
            .status,
            StatusCode::OK
        );
    }
    let page1 = kv
        .call(Method::GET, "/keys/k1/versions?maxresults=2", None)
        .await;
    assert_eq!(page1.body["value"].as_array().map(Vec::len), Some(2));
    let next = page1.body["nextLink"]
        .as_str()
        .expect("nextLink")
        .to_owned();
    let page2 = send(&kv.client, Method::GET, &next, Some(&kv.token), None).await;
    assert_eq!(
        page2.body["value"].as_array().map(Vec::len),
        Some(1),
        "{:?}",
        page2.body
    );
    assert!(
        page2.body.get("nextLink").is_none(),
        "the last page has no nextLink"
    );

    let kid = created.body["key"]["kid"].as_str().expect("kid").to_owned();
    let version = kid.rsplit('/').next().expect("version").to_owned();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
    let wrapped = kv
        .call(
            Method::POST,
            &format!("/keys/k1/{version}/wrapkey"),
            Some(&json!({"alg": "RSA-OAEP-256", "value": secret})),
        )
        .await;
    assert_eq!(wrapped.status, StatusCode::OK, "{:?}", wrapped.body);
    assert_eq!(wrapped.body["kid"], json!(kid));
    let unwrapped = kv
        .call(
            Method::POST,
            &format!("/keys/k1/{version}/unwrapkey"),
            Some(&json!({"alg": "RSA-OAEP-256", "value": wrapped.body["value"]})),
        )
        .await;
    assert_eq!(unwrapped.body["value"], json!(secret));
    // Another version cannot unwrap it.
    let other = kv
        .call(
            Method::POST,
            "/keys/k1/unwrapkey",
            Some(&json!({"alg": "RSA-OAEP-256", "value": wrapped.body["value"]})),
        )
        .await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);

    let disabled = kv
        .call(
            Method::PATCH,
            &format!("/keys/k1/{version}"),
            Some(&json!({"attributes": {"enabled": false}})),
        )
        .await;
    assert_eq!(disabled.body["attributes"]["enabled"], json!(false));
    let refused = kv
        .call(
            Method::POST,
            &format!("/keys/k1/{version}/wrapkey"),
            Some(&json!({"alg": "RSA-OAEP", "value": secret})),
        )
        .await;
    assert_eq!(
        (
            refused.status,
            refused.body["error"]["innererror"]["code"].as_str()
        ),
        (StatusCode::FORBIDDEN, Some("KeyDisabled"))
    );

    let deleted = kv.call(Method::DELETE, "/keys/k1", None).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert!(
        deleted.body["recoveryId"]
            .as_str()
            .is_some_and(|r| r.ends_with("/deletedkeys/k1"))
    );
    assert_eq!(
        kv.call(Method::GET, "/keys/k1", None).await.error_code(),
        "KeyNotFound"
    );
    assert_eq!(
        kv.call(
            Method::POST,
            "/keys/k1/create",
            Some(&json!({"kty": "RSA"}))
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
    let purge = kv.call(Method::DELETE, "/deletedkeys/k1", None).await;
    assert_eq!(
        purge.status,
        StatusCode::FORBIDDEN,
        "purge protection: {:?}",
        purge.body
    );
    assert_eq!(
        kv.call(Method::POST, "/deletedkeys/k1/recover", None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        kv.call(Method::GET, "/keys/k1", None).await.status,
        StatusCode::OK
    );
    finish(emu).await;
}

/// Policy mode checks access policies, RBAC mode checks data actions, and the firewall applies
/// before either.
#[tokio::test]
async fn key_vault_authorization_follows_the_permission_model_and_firewall() {
    let emu = start_standard().await;
    let outsider = Vault::as_sp(&emu, "outsider", "ams-kv").await;
    let r = outsider.call(Method::GET, "/keys/cmk", None).await;
    assert_eq!(
        (r.status, r.body["error"]["innererror"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("AccessDenied")),
        "{:?}",
        r.body
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not have keys get permission"))
    );

    let rbac_out = Vault {
        name: "ams-kv-rbac".into(),
        ..outsider
    };
    let r = rbac_out.call(Method::GET, "/keys/cmk", None).await;
    assert_eq!(
        r.body["error"]["innererror"]["code"].as_str(),
        Some("ForbiddenByRbac"),
        "{:?}",
        r.body
    );
    let admin = Vault::as_sp(&emu, "operator", "ams-kv-rbac").await;
    assert_eq!(
        admin.call(Method::GET, "/keys/cmk", None).await.status,
        StatusCode::OK
    );
    // Grant the outsider the crypto service encryption role on the key through ARM.
    let arm = Arm::as_sp(&emu, "operator").await;
    let key_scope = format!("{RG}/providers/Microsoft.KeyVault/vaults/ams-kv-rbac/keys/cmk");
    let grant = arm
        .put(
            &format!("{key_scope}/providers/Microsoft.Authorization/roleAssignments/5c1f2e3d-4b5a-4978-8a6b-7c8d9e0f1a2b"),
            AUTHZ_API,
            &json!({"properties": {"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/e147488a-f6f5-4113-8e2d-b22465e65bf6", "principalId": emu.principal_id("outsider"), "principalType": "ServicePrincipal"}}),
        )
        .await;
    assert_eq!(grant.status, StatusCode::CREATED, "{:?}", grant.body);
    assert_eq!(
        rbac_out.call(Method::GET, "/keys/cmk", None).await.status,
        StatusCode::OK
    );
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([1u8; 16]);
    assert_eq!(
        rbac_out
            .call(
                Method::POST,
                "/keys/cmk/wrapkey",
                Some(&json!({"alg": "RSA-OAEP", "value": secret}))
            )
            .await
            .status,
        StatusCode::OK
    );
    let create = rbac_out
        .call(
            Method::POST,
            "/keys/new/create",
            Some(&json!({"kty": "RSA"})),
        )
        .await;
    assert_eq!(
        create.status,
        StatusCode::FORBIDDEN,
        "the role has no create data action"
    );

    emu.close_vault_firewall("ams-kv-rbac", "AzureServices")
        .expect("closed");
    let blocked = admin.call(Method::GET, "/keys/cmk", None).await;
    assert_eq!(
        blocked.body["error"]["innererror"]["code"].as_str(),
        Some("ForbiddenByFirewall"),
        "{:?}",
        blocked.body
    );
    emu.admin(AdminCommand::SetVaultFirewall {
        vault: "ams-kv-rbac".into(),
        default_action: "Deny".into(),
        bypass: None,
        ip_rules: vec!["127.0.0.0/8".into()],
    })
    .expect("ok");
    assert_eq!(
        admin.call(Method::GET, "/keys/cmk", None).await.status,
        StatusCode::OK,
        "an IP rule lets loopback in"
    );
    // A deleted vault has no DNS name any more: the call fails before any HTTP answer.
    emu.delete_vault("ams-kv-rbac").expect("deleted");
    let gone = admin
        .client
        .get("https://ams-kv-rbac.vault.azure.net/keys/cmk?api-version=7.5")
        .bearer_auth(&admin.token)
        .send()
        .await;
    assert!(gone.is_err(), "expected a transport error, got {gone:?}");
    finish(emu).await;
}

// ------------------------------------------------------------------ ARM management of vaults, storage, identities

/// Access policies: add merges permissions, replace overwrites, remove takes permissions away;
/// a deleted vault is listed as deleted and its name cannot be reused.
#[tokio::test]
async fn vault_management_access_policies_and_soft_delete() {
    let emu = start_standard().await;
    let arm = Arm::as_sp(&emu, "operator").await;
    let vault = format!("{RG}/providers/Microsoft.KeyVault/vaults/newvault");
    let body = json!({"location": "westeurope", "properties": {"tenantId": emu.tenant_id(), "sku": {"family": "A", "name": "standard"}, "enablePurgeProtection": true, "accessPolicies": []}});
    let created = arm.put(&vault, KV_API, &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(
        created.body["properties"]["vaultUri"],
        json!("https://newvault.vault.azure.net/")
    );
    let oid = emu.principal_id("outsider").expect("oid");
    let entry = |perms: &[&str]| json!({"properties": {"accessPolicies": [{"tenantId": emu.tenant_id(), "objectId": oid, "permissions": {"keys": perms}}]}});
    arm.put(
        &format!("{vault}/accessPolicies/add"),
        KV_API,
        &entry(&["get"]),
    )
    .await;
    let added = arm
        .put(
            &format!("{vault}/accessPolicies/add"),
            KV_API,
            &entry(&["wrapKey"]),
        )
        .await;
    assert_eq!(
        added.body["properties"]["accessPolicies"][0]["permissions"]["keys"],
        json!(["get", "wrapKey"])
    );
    let replaced = arm
        .put(
            &format!("{vault}/accessPolicies/replace"),
            KV_API,
            &entry(&["list"]),
        )
        .await;
    assert_eq!(
        replaced.body["properties"]["accessPolicies"][0]["permissions"]["keys"],
        json!(["list"])
    );
    let removed = arm
        .put(
            &format!("{vault}/accessPolicies/remove"),
            KV_API,
            &entry(&["list"]),
        )
        .await;
    assert_eq!(removed.body["properties"]["accessPolicies"], json!([]));
    // Purge protection cannot be turned off.
    let mut off = body.clone();
    off["properties"]["enablePurgeProtection"] = json!(false);
    assert_eq!(
        arm.put(&vault, KV_API, &off).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(arm.delete(&vault, KV_API).await.status, StatusCode::OK);
    let deleted = arm
        .get(
            &format!("/subscriptions/{SUB}/providers/Microsoft.KeyVault/deletedVaults"),
            KV_API,
        )
        .await;
    assert_eq!(
        deleted.body["value"][0]["properties"]["vaultId"],
        json!(vault),
        "{:?}",
        deleted.body
    );
    assert_eq!(
        arm.put(&vault, KV_API, &body).await.status,
        StatusCode::CONFLICT
    );
    finish(emu).await;
}

/// Storage networkAcls round-trip through PUT and PATCH.
#[tokio::test]
async fn storage_network_acls_round_trip() {
    let emu = start_standard().await;
    let arm = Arm::as_sp(&emu, "operator").await;
    let patch = json!({"properties": {"networkAcls": {"bypass": "AzureServices", "defaultAction": "Deny", "resourceAccessRules": [{"tenantId": emu.tenant_id(), "resourceId": account_path("amsx")}], "ipRules": [], "virtualNetworkRules": []}}});
    let r = arm.patch(&store_id(), STORAGE_API, &patch).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let got = arm.get(&store_id(), STORAGE_API).await;
    assert_eq!(
        got.body["properties"]["networkAcls"]["defaultAction"],
        json!("Deny")
    );
    assert_eq!(
        got.body["properties"]["networkAcls"]["resourceAccessRules"][0]["resourceId"],
        json!(account_path("amsx"))
    );
    finish(emu).await;
}

// ------------------------------------------------------------------ knobs

/// A token bucket sized like ARM's: remaining requests are reported, an empty bucket gets 429
/// with Retry-After.
#[tokio::test]
async fn throttling_reports_remaining_requests_and_answers_429() {
    let emu = start(EmulatorConfig {
        throttle: Some(ThrottleLimits {
            read_bucket: 3,
            read_refill_per_sec: 1,
            ..ThrottleLimits::default()
        }),
        key_check_interval: None,
        ..standard_config()
    })
    .await;
    let arm = Arm::as_sp(&emu, "operator").await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = arm.get(&store_id(), STORAGE_API).await;
        remaining.push(
            r.header("x-ms-ratelimit-remaining-subscription-reads")
                .map(str::to_owned),
        );
    }
    assert_eq!(
        remaining,
        [
            Some("2".to_owned()),
            Some("1".to_owned()),
            Some("0".to_owned())
        ]
    );
    let throttled = arm.get(&store_id(), STORAGE_API).await;
    assert_eq!(
        (throttled.status, throttled.error_code()),
        (
            StatusCode::TOO_MANY_REQUESTS,
            "SubscriptionRequestsThrottled"
        )
    );
    assert_eq!(throttled.header("retry-after"), Some("1"));
    // Writes have their own bucket.
    let w = arm
        .patch(&store_id(), STORAGE_API, &json!({"tags": {}}))
        .await;
    assert_eq!(w.status, StatusCode::OK);
    assert_eq!(
        w.header("x-ms-ratelimit-remaining-subscription-writes"),
        Some("199")
    );
    finish(emu).await;
}

/// Faults: a 503 once then success, a dropped connection, latency; all counted and logged.
#[tokio::test]
async fn injected_faults_latency_and_counters() {
    let emu = start_standard().await;
    let arm = Arm::as_sp(&emu, "operator").await;
    emu.inject_fault(FaultRule {
        operation: "StorageAccounts_*".into(),
        fault: Fault::ServerError { status: 503 },
        times: Some(1),
    });
    assert_eq!(
        arm.get(&store_id(), STORAGE_API).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        arm.get(&store_id(), STORAGE_API).await.status,
        StatusCode::OK
    );
    emu.inject_fault(FaultRule {
        operation: "StorageAccounts_GetProperties".into(),
        fault: Fault::Throttle {
            retry_after_secs: 7,
        },
        times: Some(1),
    });
    let t = arm.get(&store_id(), STORAGE_API).await;
    assert_eq!(
        (t.status, t.header("retry-after")),
        (StatusCode::TOO_MANY_REQUESTS, Some("7"))
    );
    assert_eq!(
        t.header("x-ms-ratelimit-remaining-subscription-reads"),
        Some("0")
    );
    emu.inject_fault(FaultRule {
        operation: "StorageAccounts_GetProperties".into(),
        fault: Fault::ConnectionReset,
        times: Some(1),
    });
    let reset = arm
        .client
        .get(format!("{ARM}{}?api-version={STORAGE_API}", store_id()))
        .bearer_auth(&arm.token)
        .send()
        .await;
    assert!(reset.is_err(), "the connection must drop: {reset:?}");
    emu.set_latency("StorageAccounts_GetProperties", Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert_eq!(
        arm.get(&store_id(), STORAGE_API).await.status,
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(emu.call_count("StorageAccounts_GetProperties"), 5);
    assert!(
        emu.request_log()
            .iter()
            .any(|r| r.operation == "StorageAccounts_GetProperties" && r.status == 503)
    );
    finish(emu).await;
}

/// The admin HTTP API applies the same commands as the handle.
#[tokio::test]
async fn admin_http_api_changes_the_world() {
    let emu = start_standard().await;
    let client = client(&emu);
    let r = send(
        &client,
        Method::POST,
        &format!("{}/admin", emu.admin_url()),
        None,
        Some(&json!({"op": "disableKey", "vault": "ams-kv", "key": "cmk"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let state = send(
        &client,
        Method::GET,
        &format!("{}/state", emu.admin_url()),
        None,
        None,
    )
    .await;
    let vault = state.body["vaults"]
        .as_array()
        .expect("vaults")
        .iter()
        .find(|v| v["id"].as_str().is_some_and(|i| i.ends_with("/ams-kv")))
        .cloned()
        .expect("ams-kv");
    let cmk = vault["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["name"] == json!("cmk"))
        .cloned()
        .expect("cmk");
    assert_eq!(cmk["versions"][0]["enabled"], json!(false));
    let bad = send(
        &client,
        Method::POST,
        &format!("{}/admin", emu.admin_url()),
        None,
        Some(&json!({"op": "disableKey", "vault": "nope", "key": "cmk"})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let counters = send(
        &client,
        Method::GET,
        &format!("{}/counters", emu.admin_url()),
        None,
        None,
    )
    .await;
    assert_eq!(counters.body["Admin_admin"], json!(2));
    finish(emu).await;
}

/// The emulator refuses what Azure would refuse, before it touches the world: each malformed
/// request gets 400 with the service's code and a message naming the property. (Found by
/// trying them with curl: each was once accepted and stored.)
#[tokio::test]
async fn malformed_requests_are_refused_naming_the_property() {
    let emu = start_standard().await;
    let arm = Arm::as_sp(&emu, "operator").await;
    let kv = Vault::as_sp(&emu, "operator", "ams-kv").await;
    let account = account_path("amsone");
    let store = store_id();
    let assignment = format!(
        "{store}/providers/Microsoft.Authorization/roleAssignments/5d6c7b8a-0000-4000-8000-000000000001"
    );
    let policy = format!("{RG}/providers/Microsoft.KeyVault/vaults/ams-kv/accessPolicies/add");
    let sp = emu
        .service_principal("operator")
        .expect("operator")
        .object_id;
    let tenant = emu.tenant_id();
    let role = |props: Value| json!({ "properties": props });
    let acl = |acls: Value| json!({ "properties": { "networkAcls": acls } });
    let entry = |e: Value| json!({ "properties": { "accessPolicies": [e] } });
    let m = "2023-01-01";
    let s = "2025-08-01";
    let a = "2022-04-01";
    let v = "2025-05-01";
    let cases: Vec<(&str, Method, &str, &str, Value, &str)> = vec![
        (
            "identity type not a string",
            Method::PATCH,
            &account,
            m,
            json!({ "identity": { "type": 123 } }),
            "identity.type",
        ),
        (
            "unknown storage authentication",
            Method::PATCH,
            &account,
            m,
            json!({ "properties": { "storageAuthentication": "Bogus" } }),
            "properties.storageAuthentication",
        ),
        (
            "storage authentication a number",
            Method::PATCH,
            &account,
            m,
            json!({ "properties": { "storageAuthentication": 5 } }),
            "properties.storageAuthentication",
        ),
        (
            "encryption type a boolean",
            Method::PATCH,
            &account,
            m,
            json!({ "properties": { "encryption": { "type": true } } }),
            "properties.encryption.type",
        ),
        (
            "storage accounts not a list",
            Method::PATCH,
            &account,
            m,
            json!({ "properties": { "storageAccounts": "x" } }),
            "properties.storageAccounts",
        ),
        (
            "storage account without type",
            Method::PATCH,
            &account,
            m,
            json!({ "properties": { "storageAccounts": [ { "id": store } ] } }),
            "properties.storageAccounts[0]",
        ),
        (
            "encryption without type",
            Method::PATCH,
            &account,
            m,
            json!({ "properties": { "encryption": {} } }),
            "properties.encryption",
        ),
        (
            "encryption identity without the system flag",
            Method::PATCH,
            &account,
            m,
            json!({ "properties": { "encryption": { "type": "CustomerKey", "identity": {} } } }),
            "properties.encryption.identity",
        ),
        (
            "unknown public network access",
            Method::PATCH,
            &account,
            m,
            json!({ "properties": { "publicNetworkAccess": "Sometimes" } }),
            "properties.publicNetworkAccess",
        ),
        (
            "unknown firewall default action",
            Method::PATCH,
            &store,
            s,
            acl(json!({ "defaultAction": "Maybe" })),
            "properties.networkAcls.defaultAction",
        ),
        (
            "firewall default action a number",
            Method::PATCH,
            &store,
            s,
            acl(json!({ "defaultAction": 7 })),
            "properties.networkAcls.defaultAction",
        ),
        (
            "firewall without default action",
            Method::PATCH,
            &store,
            s,
            acl(json!({ "bypass": "AzureServices" })),
            "properties.networkAcls",
        ),
        (
            "unknown firewall bypass",
            Method::PATCH,
            &store,
            s,
            acl(json!({ "defaultAction": "Deny", "bypass": "Everything" })),
            "properties.networkAcls.bypass",
        ),
        (
            "IP rule value a number",
            Method::PATCH,
            &store,
            s,
            acl(json!({ "defaultAction": "Deny", "ipRules": [ { "value": 5 } ] })),
            "properties.networkAcls.ipRules[0].value",
        ),
        (
            "unknown principal type",
            Method::PUT,
            &assignment,
            a,
            role(
                json!({ "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/ba92f5b4-2d11-453d-a403-e96b0029c9fe", "principalId": sp, "principalType": "Robot" }),
            ),
            "properties.principalType",
        ),
        (
            "role assignment without principal",
            Method::PUT,
            &assignment,
            a,
            role(
                json!({ "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/ba92f5b4-2d11-453d-a403-e96b0029c9fe" }),
            ),
            "properties",
        ),
        (
            "unknown key permission",
            Method::PUT,
            &policy,
            v,
            entry(
                json!({ "tenantId": tenant, "objectId": sp, "permissions": { "keys": ["fly"] } }),
            ),
            "properties.accessPolicies[0].permissions.keys[0]",
        ),
        (
            "access policy without object id",
            Method::PUT,
            &policy,
            v,
            entry(json!({ "tenantId": tenant, "permissions": { "keys": ["get"] } })),
            "properties.accessPolicies[0]",
        ),
        (
            "access policy without tenant",
            Method::PUT,
            &policy,
            v,
            entry(json!({ "objectId": sp, "permissions": { "keys": ["get"] } })),
            "properties.accessPolicies[0]",
        ),
        (
            "key permissions a string",
            Method::PUT,
            &policy,
            v,
            entry(json!({ "tenantId": tenant, "objectId": sp, "permissions": { "keys": "get" } })),
            "properties.accessPolicies[0].permissions.keys",
        ),
    ];
    let mut wrong = Vec::new();
    for (name, method, path, api, body, property) in &cases {
        let reply = arm.call(method.clone(), path, api, Some(body)).await;
        let message = reply.body["error"]["message"].as_str().unwrap_or_default();
        if reply.status != StatusCode::BAD_REQUEST
            || reply.error_code() != "InvalidRequestContent"
            || !message.contains(&format!("'{property}'"))
        {
            wrong.push(format!(
                "{name}: {} {} {message}",
                reply.status,
                reply.error_code()
            ));
        }
    }
    let vault_cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "unknown wrap algorithm",
            "/keys/cmk/wrapkey",
            json!({ "alg": "ROT13", "value": "AAAA" }),
            "alg",
        ),
        (
            "wrap without a value",
            "/keys/cmk/wrapkey",
            json!({ "alg": "RSA-OAEP" }),
            "",
        ),
        (
            "unknown key type",
            "/keys/newkey/create",
            json!({ "kty": "DSA" }),
            "kty",
        ),
        (
            "key size a string",
            "/keys/newkey/create",
            json!({ "kty": "RSA", "key_size": "big" }),
            "key_size",
        ),
    ];
    for (name, path, body, property) in &vault_cases {
        let reply = kv.call(Method::POST, path, Some(body)).await;
        let message = reply.body["error"]["message"].as_str().unwrap_or_default();
        let named = property.is_empty() || message.contains(&format!("'{property}'"));
        if reply.status != StatusCode::BAD_REQUEST || reply.error_code() != "BadParameter" || !named
        {
            wrong.push(format!(
                "{name}: {} {} {message}",
                reply.status,
                reply.error_code()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "not refused as Azure would:\n{}",
        wrong.join("\n")
    );

    // Nothing was stored: the storage account still has no firewall, no assignment exists.
    let stored = arm.get(&store, s).await;
    assert!(
        stored.body["properties"]["networkAcls"]["defaultAction"] != "Maybe",
        "{}",
        stored.body
    );
    assert_eq!(arm.get(&assignment, a).await.status, StatusCode::NOT_FOUND);
    finish(emu).await;
}

/// A `$filter` ARM does not support (role assignments, role definitions) and a Key Vault
/// `maxresults` outside 1..=25 are refused, not ignored.
#[tokio::test]
async fn unsupported_role_assignment_filters_are_refused() {
    let emu = start_standard().await;
    let arm = Arm::as_sp(&emu, "operator").await;
    let sp = emu
        .service_principal("operator")
        .expect("operator")
        .object_id;
    let list = |filter: String| {
        format!("{RG}/providers/Microsoft.Authorization/roleAssignments?$filter={filter}")
    };
    for filter in [
        "principalId ne 'x'".to_owned(),
        format!("atScope() and principalId eq '{sp}'"),
        "roleDefinitionId eq 'x'".to_owned(),
        "principalId eq x".to_owned(),
    ] {
        let reply = arm.get(&list(filter.clone()), "2022-04-01").await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{filter}: {}",
            reply.body
        );
        assert_eq!(reply.error_code(), "UnsupportedQuery", "{filter}");
    }
    for filter in [
        format!("principalId eq '{sp}'"),
        format!("assignedTo('{sp}')"),
        format!("atScope() and assignedTo('{sp}')"),
        "atScope()".to_owned(),
    ] {
        let reply = arm.get(&list(filter.clone()), "2022-04-01").await;
        assert_eq!(reply.status, StatusCode::OK, "{filter}: {}", reply.body);
    }
    let mine = arm
        .get(&list(format!("principalId eq '{sp}'")), "2022-04-01")
        .await;
    let all = mine.body["value"].as_array().expect("value");
    assert!(
        !all.is_empty()
            && all
                .iter()
                .all(|a| a["properties"]["principalId"] == sp.as_str()),
        "{}",
        mine.body
    );
    finish(emu).await;
}

/// A running operation's result URL answers 202 with the headers the spec lists for it, and
/// seeded role assignments name an object id as their creator, as real ones do.
#[tokio::test]
async fn result_polls_carry_operation_headers_and_seeded_assignments_name_their_creator() {
    let emu = start(EmulatorConfig {
        lro_polls: 2,
        ..standard_config()
    })
    .await;
    let arm = Arm::as_sp(&emu, "operator").await;
    let created = arm
        .put(&account_path("amsone"), "2023-01-01", &account_body(None))
        .await;
    assert!(created.status.is_success(), "{}", created.body);
    let result = created.header("location").expect("Location").to_owned();
    let reply = send(&arm.client, Method::GET, &result, Some(&arm.token), None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    for header in ["location", "azure-asyncoperation", "retry-after"] {
        assert!(reply.header(header).is_some(), "202 without {header}");
    }
    let assignments = arm
        .get(
            &format!("{RG}/providers/Microsoft.Authorization/roleAssignments"),
            "2022-04-01",
        )
        .await;
    let guid = regex::Regex::new(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
        .expect("regex");
    for a in assignments.body["value"].as_array().expect("value") {
        for field in ["createdBy", "updatedBy"] {
            let who = a["properties"][field].as_str().unwrap_or_default();
            assert!(guid.is_match(who), "{field} of {} is {who:?}", a["id"]);
        }
    }
    finish(emu).await;
}
