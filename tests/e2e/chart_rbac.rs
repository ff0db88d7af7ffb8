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
    render_release(
        RELEASE,
        namespace,
        minor,
        &[
            "rbac.namespaced=true",
            &format!("operator.namespaces={{{namespace}}}"),
        ],
    )
}

/// The chart rendered as `release` in `namespace` with these `--set` values, for the apiserver's
/// version, without its CRDs.
fn render_release(release: &str, namespace: &str, minor: u32, values: &[&str]) -> String {
    let out = Command::new(helm())
        .current_dir(common::project_path(""))
        .args(["template", release, "charts/ams-security-operator"])
        .args(["--namespace", namespace, "--skip-crds"])
        .args(["--kube-version", &format!("1.{minor}.0")])
        .args(values.iter().flat_map(|v| ["--set", *v]))
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
    apply_and_log_in(client, ns, FULLNAME, &chart, dir).await
}

/// Applies the rendered `chart` with kubectl and writes a kubeconfig holding a `TokenRequest`
/// token of its `ServiceAccount` `service_account` (in `ns`) into `dir`; returns its path.
async fn apply_and_log_in(
    client: &Client,
    ns: &str,
    service_account: &str,
    chart: &str,
    dir: &Path,
) -> PathBuf {
    let manifest_path = dir.join("chart.yaml");
    std::fs::write(&manifest_path, chart).expect("write the rendered chart");
    common::kubectl_ok(&["apply", "-f", manifest_path.to_str().expect("utf-8 path")]);

    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    });
    let issued: TokenRequest = accounts
        .create_subresource("token", service_account, &PostParams::default(), &request)
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

/// Deletes the objects of a rendered chart (its cluster-wide ones outlive the test namespaces)
/// when dropped, also on failure, unless `AMS_TEST_KEEP_NS` keeps them.
struct AppliedChart(PathBuf);

impl Drop for AppliedChart {
    fn drop(&mut self) {
        if std::env::var_os("AMS_TEST_KEEP_NS").is_none()
            && let Some(path) = self.0.to_str()
        {
            let _ = common::kubectl(&["delete", "--ignore-not-found", "--wait=false", "-f", path]);
        }
    }
}

/// The namespace label the tenancy rule of
/// [`a_label_selected_tenancy_rule_follows_namespace_labels_with_the_charts_cluster_rbac`]
/// selects by.
const TENANT_LABEL: &str = "ams-e2e-tenant";

/// Sets (`Some`) or removes (`None`) [`TENANT_LABEL`] on `namespace`.
fn label_tenant(namespace: &str, value: Option<&str>) {
    let label = value.map_or_else(
        || format!("{TENANT_LABEL}-"),
        |v| format!("{TENANT_LABEL}={v}"),
    );
    common::kubectl_ok(&["label", "--overwrite", "namespace", namespace, &label]);
}

/// The chart in cluster mode with a tenancy rule that selects namespaces by label: the rendered
/// `ClusterRole` lets the operator list and watch namespaces, and the real binary, as the chart's
/// `ServiceAccount` and with the chart's tenancy map, reconciles an account in a labelled
/// namespace to `Ready` while the same spec in an unlabelled one is `TenancyDenied` without a
/// single Azure call. Moving the label from one namespace to the other flips both, without a
/// restart and long before any resync: a label change is a trigger, not something the next
/// periodic pass happens to see.
#[tokio::test]
async fn a_label_selected_tenancy_rule_follows_namespace_labels_with_the_charts_cluster_rbac() {
    with_temp_ns("e2e-tenant-a", |client, a| async move {
        with_temp_ns("e2e-tenant-b", |_, b| async move {
            let dir = std::env::temp_dir().join(format!("ams-e2e-tenancy-{a}"));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let _dir = TempDir(dir.clone());
            // The release is named after the namespace, so its cluster-wide names are unique.
            let release = a.as_str();
            let fullname = format!("{release}-ams-security-operator");
            let minor = common::server_minor(&client).await;
            let chart = render_release(
                release,
                &a,
                minor,
                &[
                    &format!("tenancy.rules[0].namespaceSelector.matchLabels.{TENANT_LABEL}={a}"),
                    "tenancy.rules[0].subscriptions={*}",
                    "leaderElection.enabled=false",
                ],
            );
            let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&chart)
                .map(|doc| serde::Deserialize::deserialize(doc).expect("rendered YAML"))
                .filter(|doc: &Value| !doc.is_null())
                .collect();
            let role = docs
                .iter()
                .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == fullname)
                .unwrap_or_else(|| {
                    panic!("no ClusterRole {fullname}: {:?}", rendered_objects(&chart))
                });
            assert!(
                role["rules"].as_array().expect("rules").iter().any(|r| {
                    r["resources"] == json!(["namespaces"])
                        && r["verbs"] == json!(["list", "watch"])
                }),
                "the ClusterRole grants no list and watch on namespaces: {role}"
            );
            // The binary reads the map the chart renders, as the pod would from its mount.
            let map = docs
                .iter()
                .find(|d| d["kind"] == "ConfigMap")
                .and_then(|d| d["data"]["tenancy.yaml"].as_str())
                .expect("the tenancy ConfigMap");
            let tenancy_file = dir.join("tenancy.yaml");
            std::fs::write(&tenancy_file, map).expect("write the tenancy map");
            let _applied = AppliedChart(dir.join("chart.yaml"));
            let kubeconfig = apply_and_log_in(&client, &a, &fullname, &chart, &dir).await;
            label_tenant(&a, Some(&a));

            let emu = emulator().await;
            let mut operator = OperatorProcess::spawn_with_kubeconfig(
                &emu,
                &a,
                &kubeconfig,
                &[
                    "--namespace",
                    b.as_str(),
                    "--tenancy-file",
                    tenancy_file.to_str().expect("utf-8 path"),
                    "--resync-seconds",
                    "600",
                ],
            );
            wait_for_http(&format!("http://{}/readyz", operator.health), 200).await;
            let spec = json!({ "identity": { "type": "SystemAssigned" } });
            // Each namespace's resource names its own account: one Azure account has one owner.
            let mut in_b = manifest("tenant", spec.clone());
            "mediaacct2".clone_into(&mut in_b.spec.account.name);
            create(&client, &b, &in_b).await;
            let denied =
                wait_for_condition(&client, &b, "tenant", "Ready", "False", "TenancyDenied").await;
            let message = &condition(&denied, "Ready").expect("Ready").message;
            assert!(
                message.contains(&format!(
                    "namespace {b} is not in the operator's tenancy map"
                )),
                "{message}"
            );
            assert!(
                emu.request_log().is_empty(),
                "a namespace outside the map called Azure: {:#?}",
                describe(&emu.request_log())
            );
            create(&client, &a, &manifest("tenant", spec)).await;
            wait_ready(&client, &a, "tenant").await;

            // The label moves; the operator keeps running and both follow within the wait
            // (60 s), far inside the resync interval (600 s) and the idle requeue of a denial.
            label_tenant(&a, None);
            label_tenant(&b, Some(&a));
            wait_ready(&client, &b, "tenant").await;
            let denied =
                wait_for_condition(&client, &a, "tenant", "Ready", "False", "TenancyDenied").await;
            let message = &condition(&denied, "Ready").expect("Ready").message;
            assert!(
                message.contains(&format!("namespace {a} is not")),
                "{message}"
            );
            assert!(
                operator.child.try_wait().expect("try_wait").is_none(),
                "the operator exited"
            );
            drop(operator);
            emu.shutdown().await;
        })
        .await;
    })
    .await;
}
