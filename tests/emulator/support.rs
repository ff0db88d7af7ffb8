//! Shared helpers of the emulator tests: start an emulator from a seed, and talk to it over
//! real HTTPS with a client that trusts its CA and resolves every Azure host name to it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ams_security_operator::emulator::{Emulator, EmulatorConfig, Seed};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const SUB: &str = "0000a001-0000-0000-0000-000000000001";
pub const FOREIGN_SUB: &str = "0000b002-0000-0000-0000-000000000002";
pub const RG: &str = "/subscriptions/0000a001-0000-0000-0000-000000000001/resourceGroups/media-rg";
pub const ARM: &str = "https://management.azure.com";
pub const ARM_AUDIENCE: &str = "https://management.azure.com";
pub const VAULT_AUDIENCE: &str = "https://vault.azure.net";

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/emulator")
        .join(name)
}

pub fn standard_seed() -> Seed {
    let text = std::fs::read_to_string(fixture("world.yaml"))
        .expect("tests/emulator/world.yaml is readable");
    Seed::from_yaml(&text).expect("world.yaml is a valid seed")
}

pub async fn start(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("emulator starts")
}

/// The standard world's config: background key checks off (tests trigger them explicitly),
/// response bodies recorded so [`finish`] can hold the traffic to the specs.
pub fn standard_config() -> EmulatorConfig {
    EmulatorConfig {
        key_check_interval: None,
        record_bodies: true,
        ..EmulatorConfig::with_seed(standard_seed())
    }
}

/// Validates every recorded ARM and Key Vault response of the test against the swagger
/// specs (documented status or `default`, schema, no undeclared properties), then stops the
/// emulator. Responses to statuses a spec does not document at all carry no schema to check.
pub async fn finish(emu: Emulator) {
    let ops = crate::spec::load_ops();
    let mut failures = Vec::new();
    for entry in emu.request_log() {
        let Some(body) = &entry.response_body else {
            continue;
        };
        let served = entry.host.starts_with("management.") || entry.host.contains(".vault.");
        if !served || entry.operation.ends_with("_Unknown") {
            continue;
        }
        let Some(op) = ops.iter().find(|o| o.id == entry.operation) else {
            failures.push(format!("operation {} is not in the specs", entry.operation));
            continue;
        };
        if let Err(e) = crate::spec::validate(op, entry.status, body) {
            failures.push(format!("{} {}: {e}", entry.method, entry.uri));
        }
    }
    assert!(
        failures.is_empty(),
        "responses that break the specs:\n{}",
        failures.join("\n\n")
    );
    emu.shutdown().await;
}

/// The standard world with background key checks off (tests trigger them explicitly).
pub async fn start_standard() -> Emulator {
    start(standard_config()).await
}

struct ToEmulator(SocketAddr);

impl reqwest::dns::Resolve for ToEmulator {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let addr = self.0;
        Box::pin(async move { Ok(Box::new(std::iter::once(addr)) as reqwest::dns::Addrs) })
    }
}

/// An HTTPS client that trusts only the emulator's CA and sends every host name to it.
pub fn client(emu: &Emulator) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).expect("CA PEM parses");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .dns_resolver(Arc::new(ToEmulator(emu.addr())))
        .build()
        .expect("client builds")
}

/// A response reduced to what tests look at.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

pub async fn send(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let mut req = client.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("request to {url} failed: {e:?}"));
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body reads");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// Gets a token from the Entra endpoint with a client secret.
pub async fn token_with_secret(
    client: &reqwest::Client,
    emu: &Emulator,
    sp: &str,
    audience: &str,
) -> String {
    let info = emu.service_principal(sp).expect("seeded service principal");
    let resp = client
        .post(format!(
            "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
            emu.tenant_id()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", info.client_id.as_str()),
            ("client_secret", info.secret.as_deref().unwrap_or_default()),
            ("scope", &format!("{audience}/.default")),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(resp.status(), StatusCode::OK, "token endpoint refused {sp}");
    let body: Value = resp.json().await.expect("token JSON");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// An ARM caller with a token.
pub struct Arm {
    pub client: reqwest::Client,
    pub token: String,
}

impl Arm {
    pub async fn as_sp(emu: &Emulator, sp: &str) -> Self {
        let client = client(emu);
        let token = token_with_secret(&client, emu, sp, ARM_AUDIENCE).await;
        Self { client, token }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        api_version: &str,
        body: Option<&Value>,
    ) -> Reply {
        let sep = if path.contains('?') { '&' } else { '?' };
        send(
            &self.client,
            method,
            &format!("{ARM}{path}{sep}api-version={api_version}"),
            Some(&self.token),
            body,
        )
        .await
    }

    pub async fn get(&self, path: &str, api_version: &str) -> Reply {
        self.call(Method::GET, path, api_version, None).await
    }
    pub async fn put(&self, path: &str, api_version: &str, body: &Value) -> Reply {
        self.call(Method::PUT, path, api_version, Some(body)).await
    }
    pub async fn patch(&self, path: &str, api_version: &str, body: &Value) -> Reply {
        self.call(Method::PATCH, path, api_version, Some(body))
            .await
    }
    pub async fn delete(&self, path: &str, api_version: &str) -> Reply {
        self.call(Method::DELETE, path, api_version, None).await
    }

    /// Follows an `Azure-AsyncOperation` header until a terminal status; returns the statuses seen.
    pub async fn poll(&self, reply: &Reply) -> Vec<String> {
        let url = reply
            .header("azure-asyncoperation")
            .expect("Azure-AsyncOperation header")
            .to_owned();
        let mut seen = Vec::new();
        for _ in 0..20 {
            let r = send(&self.client, Method::GET, &url, Some(&self.token), None).await;
            assert_eq!(r.status, StatusCode::OK, "operation status: {:?}", r.body);
            let status = r.body["status"].as_str().expect("status").to_owned();
            seen.push(status.clone());
            if status != "InProgress" {
                return seen;
            }
        }
        panic!("operation never finished: {seen:?}");
    }
}

pub const MEDIA_API: &str = "2023-01-01";
pub const AUTHZ_API: &str = "2022-04-01";
pub const KV_API: &str = "2025-05-01";
pub const STORAGE_API: &str = "2025-08-01";
pub const MI_API: &str = "2026-05-31";

pub fn uai_id() -> String {
    format!("{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ams-id")
}

pub fn account_path(name: &str) -> String {
    format!("{RG}/providers/Microsoft.Media/mediaservices/{name}")
}

pub fn store_id() -> String {
    format!("{RG}/providers/Microsoft.Storage/storageAccounts/amsstore")
}

/// A Media Services account body with a user-assigned identity used for storage and
/// (when `key` is set) for the customer-managed key.
pub fn account_body(key: Option<&str>) -> Value {
    let uai = uai_id();
    let mut body = json!({
        "location": "westeurope",
        "identity": {"type": "UserAssigned", "userAssignedIdentities": {uai.clone(): {}}},
        "properties": {
            "storageAccounts": [{
                "id": store_id(),
                "type": "Primary",
                "identity": {"userAssignedIdentity": uai, "useSystemAssignedIdentity": false},
            }],
            "storageAuthentication": "ManagedIdentity",
        }
    });
    if let Some(kid) = key {
        body["properties"]["encryption"] = json!({
            "type": "CustomerKey",
            "keyVaultProperties": {"keyIdentifier": kid},
            "identity": {"userAssignedIdentity": uai, "useSystemAssignedIdentity": false},
        });
    }
    body
}

/// A Key Vault data-plane caller.
pub struct Vault {
    pub client: reqwest::Client,
    pub token: String,
    pub name: String,
}

impl Vault {
    pub async fn as_sp(emu: &Emulator, sp: &str, vault: &str) -> Self {
        let client = client(emu);
        let token = token_with_secret(&client, emu, sp, VAULT_AUDIENCE).await;
        Self {
            client,
            token,
            name: vault.to_owned(),
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!(
            "https://{}.vault.azure.net{path}{sep}api-version=7.5",
            self.name
        );
        send(&self.client, method, &url, Some(&self.token), body).await
    }
}
