#![cfg(feature = "emulator")]
//! The standalone `ams-azure-emulator` binary: it starts from a seed file, writes its CA,
//! prints what a client needs, and serves tokens, ARM and the admin API over HTTPS.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde_json::Value;

struct ToAddr(SocketAddr);

impl reqwest::dns::Resolve for ToAddr {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let addr = self.0;
        Box::pin(async move { Ok(Box::new(std::iter::once(addr)) as reqwest::dns::Addrs) })
    }
}

/// Kills the child even when an assertion fails.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn standalone_binary_serves_a_seeded_world_over_https() {
    let dir = std::env::temp_dir().join(format!("ams-emulator-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca_path = dir.join("ca.pem");
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/emulator/world.yaml");
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_ams-azure-emulator"))
            .args(["--seed", seed, "--bind", "127.0.0.1:0", "--ca-out"])
            .arg(&ca_path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("binary starts"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut addr = None;
    let mut client_id = None;
    let mut tenant = None;
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(a) = line.strip_prefix("ams-azure-emulator listening on https://") {
            addr = Some(a.parse::<SocketAddr>().expect("address"));
        } else if let Some(t) = line.trim().strip_prefix("tenant: ") {
            tenant = Some(t.to_owned());
        } else if let Some(rest) = line
            .trim()
            .strip_prefix("service principal operator: client id ")
        {
            client_id = rest.split(',').next().map(str::to_owned);
        } else if line.trim().starts_with("admin API:") {
            break;
        }
    }
    let (addr, client_id, tenant) = (
        addr.expect("address printed"),
        client_id.expect("client id printed"),
        tenant.expect("tenant printed"),
    );
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca_path).expect("CA written"))
        .expect("CA PEM");
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .dns_resolver(Arc::new(ToAddr(addr)))
        .build()
        .expect("client");
    let port = addr.port();
    let token: Value = client
        .post(format!(
            "https://login.microsoftonline.com:{port}/{tenant}/oauth2/v2.0/token"
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id.as_str()),
            ("client_secret", "operator-secret"),
            ("scope", "https://management.azure.com/.default"),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token JSON");
    let access = token["access_token"].as_str().expect("access token");
    let store = client
        .get(format!(
            "https://management.azure.com:{port}/subscriptions/0000a001-0000-0000-0000-000000000001/resourceGroups/media-rg/providers/Microsoft.Storage/storageAccounts/amsstore?api-version=2025-08-01"
        ))
        .bearer_auth(access)
        .send()
        .await
        .expect("ARM request");
    assert_eq!(store.status(), reqwest::StatusCode::OK);
    let state: Value = client
        .get(format!("https://localhost:{port}/_emulator/state"))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("JSON");
    assert_eq!(state["tenantId"].as_str(), Some(tenant.as_str()));

    links_name_the_port_the_client_addressed(&client, port, access, &tenant, &client_id).await;
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Links the emulator hands out name the port the client used, so they are followable as they
/// are: a long-running operation's URLs, and Key Vault's `nextLink`.
async fn links_name_the_port_the_client_addressed(
    client: &reqwest::Client,
    port: u16,
    access: &str,
    tenant: &str,
    client_id: &str,
) {
    let account = format!(
        "https://management.azure.com:{port}/subscriptions/0000a001-0000-0000-0000-000000000001/resourceGroups/media-rg/providers/Microsoft.Media/mediaservices/binaryacct?api-version=2023-01-01"
    );
    let created = client
        .put(&account)
        .bearer_auth(access)
        .json(&serde_json::json!({
            "location": "westeurope",
            "properties": { "storageAccounts": [ {
                "id": "/subscriptions/0000a001-0000-0000-0000-000000000001/resourceGroups/media-rg/providers/Microsoft.Storage/storageAccounts/amsstore",
                "type": "Primary" } ] },
        }))
        .send()
        .await
        .expect("create account");
    assert!(created.status().is_success(), "{}", created.status());
    for header in ["azure-asyncoperation", "location"] {
        let url = created
            .headers()
            .get(header)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            url.starts_with(&format!("https://management.azure.com:{port}/")),
            "{header}: {url}"
        );
        let polled = client
            .get(&url)
            .bearer_auth(access)
            .send()
            .await
            .expect("poll");
        assert!(
            polled.status().is_success(),
            "{header} {url}: {}",
            polled.status()
        );
    }
    let vault_token: Value = client
        .post(format!(
            "https://login.microsoftonline.com:{port}/{tenant}/oauth2/v2.0/token"
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", "operator-secret"),
            ("scope", "https://vault.azure.net/.default"),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token JSON");
    let vault_access = vault_token["access_token"].as_str().expect("access token");
    let first: Value = client
        .get(format!(
            "https://ams-kv.vault.azure.net:{port}/keys?maxresults=1&api-version=7.5"
        ))
        .bearer_auth(vault_access)
        .send()
        .await
        .expect("list keys")
        .json()
        .await
        .expect("JSON");
    let next = first["nextLink"].as_str().expect("two keys: a nextLink");
    assert!(
        next.starts_with(&format!("https://ams-kv.vault.azure.net:{port}/")),
        "{next}"
    );
    let second = client
        .get(next)
        .bearer_auth(vault_access)
        .send()
        .await
        .expect("follow nextLink");
    assert_eq!(second.status(), reqwest::StatusCode::OK);
}
