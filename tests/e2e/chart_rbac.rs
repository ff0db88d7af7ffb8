//! The chart's RBAC is sufficient for the real binary, and no more: the chart, rendered by Helm in
//! namespaced mode, is applied to the real apiserver; the operator binary then runs out of
//! cluster as the chart's `ServiceAccount` (a token from the `TokenRequest` API, nothing else in
//! its kubeconfig) with leader election, and reconciles an account to `Ready=True`, holding the
//! Lease, writing status, its finalizer and events, and removing the finalizer on deletion. With
//! the same token, what the chart does not grant is refused by the apiserver.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ams_security_operator::crd::MediaServicesAccount;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};

use super::common::{self, with_temp_ns};
use super::harness::*;

/// The Helm release; the chart names its objects `<release>-ams-security-operator`.
const RELEASE: &str = "rbac";
const FULLNAME: &str = "rbac-ams-security-operator";
/// The chart's default `leaderElection.leaseName`, which the binary also defaults to.
const LEASE: &str = "ams-security-operator";
const CLEANUP_FINALIZER: &str = "ams-security.io/cleanup";

/// The Helm binary from `scripts/helm.sh`.
fn helm() -> PathBuf {
    let out = Command::new(common::project_path("scripts/helm.sh"))
        .output()
        .expect("failed to run scripts/helm.sh");
    assert!(
        out.status.success(),
        "scripts/helm.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim())
}

/// The chart rendered as release `rbac` in `namespace`, watching only `namespace` with a Role
/// there, for the apiserver's version, without its CRDs (the suite installed them).
fn render(namespace: &str, minor: u32) -> String {
    let out = Command::new(helm())
        .current_dir(common::project_path(""))
        .args(["template", RELEASE, "charts/ams-security-operator"])
        .args(["--namespace", namespace, "--skip-crds"])
        .args(["--kube-version", &format!("1.{minor}.0")])
        .args(["--set", "rbac.namespaced=true"])
        .args(["--set", &format!("operator.namespaces={{{namespace}}}")])
        // The apiserver serves no ServiceMonitor kind, and there is no kubelet to run the pod:
        // the operator runs out of cluster with the pod's identity instead.
        .args(["--set", "metrics.serviceMonitor.enabled=false"])
        .args(["--set", "replicaCount=0"])
        .output()
        .expect("failed to run helm");
    assert!(
        out.status.success(),
        "helm template failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 manifest")
}

/// `Kind namespace/name` of each rendered object.
fn rendered_objects(manifest: &str) -> Vec<String> {
    serde_yaml_ng::Deserializer::from_str(manifest)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("rendered YAML"))
        .filter(|doc: &Value| !doc.is_null())
        .map(|doc| {
            format!(
                "{} {}/{}",
                doc["kind"].as_str().unwrap_or_default(),
                doc["metadata"]["namespace"].as_str().unwrap_or("-"),
                doc["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// A kubeconfig for the test apiserver (same server and CA or TLS setting as
/// `AMS_TEST_KUBECONFIG`) whose only credential is `token`.
fn token_kubeconfig(token: &str, path: &Path) {
    let source = PathBuf::from(std::env::var("AMS_TEST_KUBECONFIG").expect("AMS_TEST_KUBECONFIG"));
    let text = std::fs::read_to_string(&source).expect("read AMS_TEST_KUBECONFIG");
    let config: Value = serde_yaml_ng::from_str(&text).expect("AMS_TEST_KUBECONFIG is YAML");
    let current = config["current-context"].as_str().expect("current-context");
    let by_name = |list: &str, name: &str| -> Value {
        config[list]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["name"] == name))
            .unwrap_or_else(|| panic!("no {list} entry {name} in {}", source.display()))
            .clone()
    };
    let context = by_name("contexts", current);
    let cluster_name = context["context"]["cluster"].as_str().expect("cluster");
    let mut cluster = by_name("clusters", cluster_name)["cluster"].clone();
    // A CA file named relative to the source kubeconfig stays valid from the new one.
    if let Some(ca) = cluster["certificate-authority"].as_str()
        && Path::new(ca).is_relative()
    {
        let absolute = source.parent().unwrap_or(Path::new(".")).join(ca);
        cluster["certificate-authority"] = json!(absolute.display().to_string());
    }
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": cluster}],
        "users": [{"name": "chart-sa", "user": {"token": token}}],
        "contexts": [{"name": "chart-sa", "context": {"cluster": "test", "user": "chart-sa"}}],
        "current-context": "chart-sa",
    });
    std::fs::write(path, serde_json::to_vec_pretty(&kubeconfig).expect("JSON"))
        .expect("write the token kubeconfig");
}

async fn client_from(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read the token kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("load the token kubeconfig");
    Client::try_from(config).expect("client builds")
}

/// The status code of a refused call; panics when it went through.
fn refused<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("{what}: expected the apiserver to refuse, got {other:?}"),
    }
}

/// Removes the temporary directory (token and kubeconfig) when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Renders the chart for `ns`, checks it holds the RBAC under test and nothing cluster-scoped,
/// applies it with kubectl (as `helm template | kubectl apply` would), and writes a kubeconfig
/// holding a `TokenRequest` token of the chart's `ServiceAccount` into `dir`; returns its path.
async fn install_and_log_in(client: &Client, ns: &str, dir: &Path) -> PathBuf {
    let minor = common::server_minor(client).await;
    let chart = render(ns, minor);
    let objects = rendered_objects(&chart);
    assert!(
        objects.iter().all(|o| !o.contains(" -/")),
        "namespaced mode renders nothing cluster-scoped (nothing to clean up beyond the namespace): {objects:?}"
    );
    for expected in [
        format!("ServiceAccount {ns}/{FULLNAME}"),
        format!("Role {ns}/{FULLNAME}"),
        format!("RoleBinding {ns}/{FULLNAME}"),
        format!("Role {ns}/{FULLNAME}-leader-election"),
        format!("RoleBinding {ns}/{FULLNAME}-leader-election"),
    ] {
        assert!(
            objects.contains(&expected),
            "{expected} not rendered: {objects:?}"
        );
    }
    let manifest_path = dir.join("chart.yaml");
    std::fs::write(&manifest_path, &chart).expect("write the rendered chart");
    common::kubectl_ok(&["apply", "-f", manifest_path.to_str().expect("utf-8 path")]);

    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    });
    let issued: TokenRequest = accounts
        .create_subresource("token", FULLNAME, &PostParams::default(), &request)
        .await
        .expect("TokenRequest for the chart's ServiceAccount");
    let token = issued.status.expect("a TokenRequest status").token;
    let kubeconfig = dir.join("kubeconfig");
    token_kubeconfig(&token, &kubeconfig);
    kubeconfig
}

/// With the chart's token: a credentials Secret may be read by name in the watched namespace
/// `ns` but not in `other`, and a `MediaServicesAccount`'s spec cannot be replaced (PUT): both
/// refused with 403, and the spec stays as it was.
async fn assert_refused_beyond_the_chart(client: &Client, as_sa: &Client, ns: &str, other: &str) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "credentials"},
        "stringData": {"clientSecret": "not-a-secret"},
    }))
    .expect("secret");
    for namespace in [ns, other] {
        Api::<Secret>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &secret)
            .await
            .expect("create a Secret");
    }
    Api::<Secret>::namespaced(as_sa.clone(), ns)
        .get("credentials")
        .await
        .expect("a credentials Secret in the watched namespace may be read by name");
    let code = refused(
        Api::<Secret>::namespaced(as_sa.clone(), other)
            .get("credentials")
            .await,
        "reading a Secret in another namespace",
    );
    assert_eq!(code, 403, "reading a Secret in another namespace");

    create(
        client,
        ns,
        &manifest("spec", json!({ "identity": { "type": "SystemAssigned" } })),
    )
    .await;
    let sa_msas: Api<MediaServicesAccount> = Api::namespaced(as_sa.clone(), ns);
    let mut changed = sa_msas.get("spec").await.expect("get may");
    changed.spec.account.name = "someoneelses".into();
    let code = refused(
        sa_msas
            .replace("spec", &PostParams::default(), &changed)
            .await,
        "replacing a MediaServicesAccount's spec",
    );
    assert_eq!(code, 403, "replacing a MediaServicesAccount's spec (PUT)");
    let stored = Api::<MediaServicesAccount>::namespaced(client.clone(), ns)
        .get("spec")
        .await
        .expect("get");
    assert_eq!(
        stored.spec.account.name, ACCOUNT,
        "the spec was not changed"
    );
}

#[tokio::test]
async fn the_binary_reconciles_with_only_the_charts_rbac_and_is_refused_the_rest() {
    with_temp_ns("e2e-chart-rbac", |client, ns| async move {
        with_temp_ns("e2e-chart-other", |_, other| async move {
            let dir = std::env::temp_dir().join(format!("ams-e2e-chart-rbac-{ns}"));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let _dir = TempDir(dir.clone());
            let kubeconfig = install_and_log_in(&client, &ns, &dir).await;

            // The real binary, as that ServiceAccount, with leader election in its namespace.
            let emu = emulator().await;
            let operator = OperatorProcess::spawn_with_kubeconfig(
                &emu,
                &ns,
                &kubeconfig,
                &[
                    "--leader-election",
                    "--leader-election-namespace",
                    ns.as_str(),
                ],
            );
            wait_for_http(&format!("http://{}/readyz", operator.health), 200).await;
            create(
                &client,
                &ns,
                &manifest("rbac", json!({ "identity": { "type": "SystemAssigned" } })),
            )
            .await;
            let ready = wait_ready(&client, &ns, "rbac").await;
            assert!(
                ready
                    .metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == CLEANUP_FINALIZER),
                "the finalizer was not added: {:?}",
                ready.metadata.finalizers
            );
            assert!(
                operator.reconciles().await >= 1.0,
                "the binary reconciled nothing"
            );
            let lease = Api::<Lease>::namespaced(client.clone(), &ns)
                .get(LEASE)
                .await
                .expect("the operator created its Lease");
            let holder = lease
                .spec
                .and_then(|s| s.holder_identity)
                .unwrap_or_default();
            assert!(!holder.is_empty(), "nobody holds the Lease");
            let reasons = wait_for_any_event(&client, &ns, "rbac").await;
            eprintln!("as {FULLNAME}: Ready=True, lease held by {holder}, events {reasons:?}");

            // Deletion: the operator runs its cleanup and removes its finalizer.
            let msas: Api<MediaServicesAccount> = Api::namespaced(client.clone(), &ns);
            msas.delete("rbac", &DeleteParams::default())
                .await
                .expect("delete");
            let deadline = Instant::now() + Duration::from_secs(60);
            while msas.get_opt("rbac").await.expect("get").is_some() {
                assert!(
                    Instant::now() < deadline,
                    "the operator did not remove its finalizer within 60 s"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }

            let as_sa = client_from(&kubeconfig).await;
            assert_refused_beyond_the_chart(&client, &as_sa, &ns, &other).await;
            drop(operator);
            emu.shutdown().await;
        })
        .await;
    })
    .await;
}

/// Waits (up to 20 s) until the object has at least one event; returns their reasons.
async fn wait_for_any_event(client: &Client, namespace: &str, name: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reasons = event_reasons(client, namespace, name).await;
        if !reasons.is_empty() {
            return reasons;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: the operator wrote no event within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
