//! Test harness for tests that run against a real kube-apiserver.
//!
//! The apiserver is named by `AMS_TEST_KUBECONFIG` (a separate variable from `KUBECONFIG`, so a
//! test run never lands on the cluster a developer's shell points at). `scripts/test.sh` starts
//! a local 1.20.2 control plane and sets it; `scripts/control-plane.sh up` does the same by hand.
//! When it is missing the tests fail with instructions: they never skip silently.
//!
//! Each test runs in its own labelled namespace, deleted afterwards unless `AMS_TEST_KEEP_NS` is
//! set; when a test fails, the namespace's resources and events are printed first.
#![allow(dead_code, clippy::missing_panics_doc)]

pub mod manifests;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ams_security_operator::crd;
use futures::FutureExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};
use tokio::sync::OnceCell;

/// Label on every namespace the tests create, so leftovers are easy to find and delete.
pub const TEST_LABEL: &str = "ams-security.io/test";

const HOW_TO_START: &str = "these tests need a real kube-apiserver. Run the whole suite with `scripts/test.sh`, or start \
     one with `scripts/control-plane.sh up` and then `eval \"$(scripts/control-plane.sh env)\"` (it builds kube-apiserver \
     1.20.2 from Debian's source package the first time). To use an existing cluster, set AMS_TEST_KUBECONFIG to its \
     kubeconfig.";

fn kubeconfig_path() -> PathBuf {
    match std::env::var_os("AMS_TEST_KUBECONFIG") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!("AMS_TEST_KUBECONFIG is not set: {HOW_TO_START}"),
    }
}

/// A client for the test apiserver. Panics with instructions when none is configured or it
/// does not answer.
pub async fn client() -> Client {
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|err| {
        panic!(
            "failed to read AMS_TEST_KUBECONFIG={}: {err}; {HOW_TO_START}",
            path.display()
        )
    });
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|err| {
            panic!(
                "failed to load AMS_TEST_KUBECONFIG={}: {err}",
                path.display()
            )
        });
    let client = Client::try_from(config).expect("client builds");
    if let Err(err) = tokio::time::timeout(Duration::from_secs(10), client.apiserver_version())
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        panic!(
            "the apiserver in AMS_TEST_KUBECONFIG={} does not answer: {err}; {HOW_TO_START}",
            path.display()
        );
    }
    client
}

/// The apiserver's minor version (e.g. 20 for 1.20.2).
pub async fn server_minor(client: &Client) -> u32 {
    let info = client.apiserver_version().await.expect("version");
    info.minor
        .trim_end_matches('+')
        .parse()
        .expect("numeric minor version")
}

static CRDS: OnceCell<()> = OnceCell::const_new();

/// Installs the generated CRDs (create, or replace when present) and waits until they are
/// established. Once per test process.
///
/// NB: server-side apply of a CRD carrying `x-kubernetes-validations` fails with a 500 on 1.20,
/// so this uses create/replace, as `kubectl apply` (client-side) does.
pub async fn install_crds(client: &Client) {
    CRDS.get_or_init(|| async {
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in crd::all() {
            let name = crd.metadata.name.clone().expect("CRDs are named");
            for attempt in 0.. {
                let result = match api.get_opt(&name).await.expect("get CRD") {
                    None => api.create(&PostParams::default(), &crd).await.map(|_| ()),
                    Some(current) => {
                        let mut desired = crd.clone();
                        desired.metadata.resource_version = current.metadata.resource_version;
                        api.replace(&name, &PostParams::default(), &desired)
                            .await
                            .map(|_| ())
                    }
                };
                match result {
                    Ok(()) => break,
                    Err(kube::Error::Api(status)) if status.code == 409 && attempt < 5 => {}
                    Err(err) => panic!("failed to install CRD {name}: {err}"),
                }
            }
            tokio::time::timeout(
                Duration::from_secs(30),
                await_condition(api.clone(), &name, conditions::is_crd_established()),
            )
            .await
            .unwrap_or_else(|_| panic!("CRD {name} not established within 30s"))
            .expect("watch CRD");
        }
    })
    .await;
}

static NAMESPACE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Runs `test` with a client and a fresh namespace; prints diagnostics and re-raises on failure.
pub async fn with_temp_ns<F, Fut>(prefix: &str, test: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let client = client().await;
    install_crds(&client).await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    let name = format!(
        "ams-{prefix}-{}-{:x}{}",
        std::process::id(),
        nanos & 0xfff,
        NAMESPACE_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.clone());
    ns.metadata.labels = Some([(TEST_LABEL.to_owned(), "true".to_owned())].into());
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create test namespace");

    let outcome = AssertUnwindSafe(test(client.clone(), name.clone()))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        eprintln!("---- diagnostics for namespace {name} ----");
        for args in [
            &["get", "msa", "-o", "yaml"][..],
            &["get", "events", "--sort-by=.lastTimestamp"][..],
        ] {
            let out = kubectl(&[args, &["-n", &name]].concat());
            eprintln!(
                "$ kubectl {}\n{}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    if std::env::var_os("AMS_TEST_KEEP_NS").is_none() {
        // The operator's finalizer would hold its objects (and so the namespace) forever once
        // the test's operator is gone: drop it, as a person would with the release annotation.
        let accounts: Api<crd::MediaServicesAccount> = Api::namespaced(client.clone(), &name);
        if let Ok(list) = accounts.list(&kube::api::ListParams::default()).await {
            for account in list.items {
                if let Some(object) = account.metadata.name.as_deref() {
                    let patch = serde_json::json!({ "metadata": { "finalizers": null } });
                    let _ = accounts
                        .patch(
                            object,
                            &kube::api::PatchParams::default(),
                            &kube::api::Patch::Merge(&patch),
                        )
                        .await;
                }
            }
        }
        // Deletion finishes only where a controller-manager runs; the request is what matters.
        let _ = namespaces.delete(&name, &DeleteParams::default()).await;
    } else {
        eprintln!("keeping namespace {name} (AMS_TEST_KEEP_NS is set)");
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The kubectl to run: `AMS_KUBECTL`, else the one the control-plane script built, else PATH's.
pub fn kubectl_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("AMS_KUBECTL").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("AMS_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|c| c.join("ams-security-operator"))
        });
    cache
        .map(|c| c.join("k8s-1.20.2/bin/kubectl"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("kubectl"))
}

/// Runs kubectl against the test apiserver.
pub fn kubectl(args: &[&str]) -> Output {
    std::process::Command::new(kubectl_binary())
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("failed to run {}: {err}", kubectl_binary().display()))
}

/// Runs kubectl and returns stdout; panics with stderr when it fails.
pub fn kubectl_ok(args: &[&str]) -> String {
    let out = kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Path of a file in the project.
pub fn project_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}
