//! Key-access monitoring benchmark: the operator's shared key monitor against a naive
//! per-account poller, on the Azure emulator (50 ms latency on every call, ARM throttling on)
//! and the real kube-apiserver.
//!
//! Run with `scripts/bench.sh` (starts the control plane and runs
//! `cargo bench --features emulator,test-endpoints --bench key_monitor`). Arguments after `--`:
//! `--rows 1,100` (accounts per row; the 1,000-distinct-keys row is `1000x1000`),
//! `--window SECONDS` (steady-state window, default 30), `--samples N` (detection samples per
//! row, default 6; the naive side takes at most 4). The defaults keep the whole run under 30
//! minutes on 2 cores.
//!
//! Per row, in one process:
//! 1. A generated world: accounts spread over subscriptions, each account encrypted with one of
//!    the row's keys through that key's user-assigned identity; everything already converged.
//! 2. The operator's real binary (`ams-security-operator run`, workload identity) as a child
//!    process, watching the row's namespace, with the resources created on the apiserver.
//!    Cold convergence is the time from its start until every resource is Ready.
//! 3. Steady state: Azure reads and writes over the window (the emulator's call counters),
//!    operator RSS from /proc.
//! 4. Detection: a key disabled out of band at a random moment; the time until an account using
//!    it shows `CustomerKeyInaccessible=True`, watched through the apiserver.
//! 5. The operator stops; a naive poller (each account reads its own vault, grants and key every
//!    interval, as per-object tools do) runs for the same window, with its own principal, and
//!    its reads, 429s and detection are measured the same way.
//!
//! Nothing here asserts a time: it prints a table (docs/benchmarks.md keeps the results).
#![allow(clippy::cast_precision_loss, clippy::too_many_lines, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ams_security_operator::crd::MediaServicesAccount;
use ams_security_operator::emulator::{Emulator, EmulatorConfig, Seed, ThrottleLimits};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::Mutex;

const INTERVAL: Duration = Duration::from_secs(10);
const LATENCY: Duration = Duration::from_millis(50);
const OPERATOR_SUBJECT: &str = "system:serviceaccount:ams-system:ams-security-operator";
const MAX_SUBSCRIPTIONS: usize = 10;

#[derive(Clone, Copy, Debug)]
struct Row {
    accounts: usize,
    keys: usize,
}

impl Row {
    fn label(self) -> String {
        format!("{} accounts / {} keys", self.accounts, self.keys)
    }
    fn subscriptions(self) -> usize {
        self.keys.clamp(1, MAX_SUBSCRIPTIONS)
    }
}

fn sub_id(s: usize) -> String {
    format!("00000000-0000-4000-8000-{s:012}")
}

/// Where key `k` lives: subscription, vault, key name, its identity.
struct KeyPlace {
    sub: String,
    vault: String,
    key: String,
    uai: String,
}

fn key_place(row: Row, k: usize) -> KeyPlace {
    let s = k % row.subscriptions();
    // Ten keys per vault at most: keys of one vault share its reads in a round.
    let vault = format!("bkv-{s}-{}", (k / row.subscriptions()) / 10);
    KeyPlace {
        sub: sub_id(s),
        vault,
        key: format!("key-{k}"),
        uai: format!(
            "/subscriptions/{}/resourceGroups/media/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-{k}",
            sub_id(s)
        ),
    }
}

fn account_name(i: usize) -> String {
    format!("media{i:05}")
}

/// The world: converged accounts, their keys and identities, the operator's and the naive
/// poller's principals with read access everywhere.
fn seed(row: Row) -> String {
    let mut y = String::from("subscriptions:\n");
    for s in 0..row.subscriptions() {
        let _ = writeln!(
            y,
            "  - id: {}\n    resourceGroups: [{{ name: media, location: westeurope }}]",
            sub_id(s)
        );
    }
    y.push_str(
        "servicePrincipals:\n  - name: operator\n    federatedCredentials:\n      - subject: ",
    );
    y.push_str(OPERATOR_SUBJECT);
    y.push_str("\n  - name: naive\n    secrets: [naive-secret]\nuserAssignedIdentities:\n");
    for k in 0..row.keys {
        let _ = writeln!(y, "  - id: {}", key_place(row, k).uai);
    }
    y.push_str("storageAccounts:\n");
    for s in 0..row.subscriptions() {
        let _ = writeln!(
            y,
            "  - id: /subscriptions/{}/resourceGroups/media/providers/Microsoft.Storage/storageAccounts/bst{s}",
            sub_id(s)
        );
    }
    let mut vaults: BTreeMap<(String, String), Vec<KeyPlace>> = BTreeMap::new();
    for k in 0..row.keys {
        let p = key_place(row, k);
        vaults
            .entry((p.sub.clone(), p.vault.clone()))
            .or_default()
            .push(p);
    }
    y.push_str("vaults:\n");
    for ((sub, vault), keys) in &vaults {
        let _ = writeln!(
            y,
            "  - id: /subscriptions/{sub}/resourceGroups/media/providers/Microsoft.KeyVault/vaults/{vault}\n    enablePurgeProtection: true\n    accessPolicies:\n      - {{ objectId: operator, permissions: {{ keys: [get, list] }} }}\n      - {{ objectId: naive, permissions: {{ keys: [get, list] }} }}"
        );
        for p in keys {
            let _ = writeln!(
                y,
                "      - {{ objectId: {}, permissions: {{ keys: [get, wrapKey, unwrapKey] }} }}",
                p.uai
            );
        }
        y.push_str("    keys:\n");
        for p in keys {
            let _ = writeln!(y, "      - {{ name: {}, kty: RSA, keySize: 2048 }}", p.key);
        }
    }
    y.push_str("mediaAccounts:\n");
    for i in 0..row.accounts {
        let p = key_place(row, i % row.keys);
        let s = (i % row.keys) % row.subscriptions();
        let _ = writeln!(
            y,
            "  - id: /subscriptions/{sub}/resourceGroups/media/providers/Microsoft.Media/mediaservices/{name}\n    body:\n      identity: {{ type: UserAssigned, userAssignedIdentities: {{ \"{uai}\": {{}} }} }}\n      properties:\n        storageAccounts: [{{ id: /subscriptions/{sub}/resourceGroups/media/providers/Microsoft.Storage/storageAccounts/bst{s}, type: Primary }}]\n        encryption: {{ type: CustomerKey, keyVaultProperties: {{ keyIdentifier: \"https://{vault}.vault.azure.net/keys/{key}\" }}, identity: {{ userAssignedIdentity: \"{uai}\" }} }}",
            sub = p.sub,
            name = account_name(i),
            uai = p.uai,
            vault = p.vault,
            key = p.key,
        );
    }
    y.push_str("roleAssignments:\n");
    for s in 0..row.subscriptions() {
        let _ = writeln!(
            y,
            "  - {{ scope: /subscriptions/{}, role: Owner, principal: operator }}\n  - {{ scope: /subscriptions/{}, role: Reader, principal: naive }}",
            sub_id(s),
            sub_id(s)
        );
    }
    y
}

fn manifest(row: Row, i: usize) -> MediaServicesAccount {
    let p = key_place(row, i % row.keys);
    serde_json::from_value(json!({
        "apiVersion": "ams-security.io/v1alpha1",
        "kind": "MediaServicesAccount",
        "metadata": { "name": account_name(i) },
        "spec": {
            "account": { "subscriptionId": p.sub, "resourceGroup": "media", "name": account_name(i), "location": "westeurope" },
            "identity": { "type": "UserAssigned", "userAssignedIdentities": [p.uai] },
            "encryption": {
                "type": "CustomerKey",
                "keyIdentifier": format!("https://{}.vault.azure.net/keys/{}", p.vault, p.key),
                "identity": { "userAssignedIdentity": p.uai },
                "grantAccess": false,
            },
            "keyAccessCheckInterval": format!("{}s", INTERVAL.as_secs()),
        },
    }))
    .expect("bench manifest")
}

fn condition(o: &MediaServicesAccount, type_: &str) -> Option<(String, String)> {
    o.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

fn ready(o: &MediaServicesAccount) -> bool {
    condition(o, "Ready").is_some_and(|(s, _)| s == "True")
}

fn key_lost(o: &MediaServicesAccount) -> bool {
    condition(o, "CustomerKeyInaccessible").is_some_and(|(s, _)| s == "True")
}

/// Reads and writes of Azure in the emulator's counters (token requests apart).
fn split_counts(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> (u64, u64) {
    let mut reads = 0;
    let mut writes = 0;
    for (op, n) in after {
        let d = n - before.get(op).copied().unwrap_or(0);
        if op.contains("Token") {
            continue;
        }
        if op.contains("Get") || op.contains("List") {
            reads += d;
        } else {
            writes += d;
        }
    }
    (reads, writes)
}

fn percentile(samples: &[Duration], p: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort();
    // Nearest rank: the smallest sample with at least p% of the samples at or below it.
    let rank = (1..=v.len())
        .find(|r| (*r as f64) >= (p / 100.0) * (v.len() as f64))
        .unwrap_or(v.len());
    Some(v[rank - 1])
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "–".into(), |d| format!("{:.1} s", d.as_secs_f64()))
}

fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A random-ish fraction in [0, 1) without another crate.
fn fraction() -> f64 {
    use std::hash::BuildHasher;
    let h = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    (h % 10_000) as f64 / 10_000.0
}

#[derive(Default)]
struct Figures {
    cold: Option<Duration>,
    reads_h: f64,
    writes_h: f64,
    rss_mib: f64,
    hwm_mib: f64,
    detection: Vec<Duration>,
    /// Until every account of the disabled key showed it.
    detection_all: Vec<Duration>,
    naive_reads_h: f64,
    naive_429_h: f64,
    naive_detection: Vec<Duration>,
}

struct Operator {
    child: tokio::process::Child,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn start_operator(emu: &Emulator, namespace: &str) -> Operator {
    let dir = std::env::temp_dir().join(format!("ams-bench-{}-{namespace}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, emu.ca_pem()).expect("write CA");
    let token = dir.join("token");
    std::fs::write(
        &token,
        emu.mint_service_account_token(OPERATOR_SUBJECT)
            .expect("mint token"),
    )
    .expect("write token");
    let port = emu.addr().port();
    let kubeconfig = std::env::var("AMS_TEST_KUBECONFIG").expect("AMS_TEST_KUBECONFIG");
    // `AMS_BENCH_WRAP="heaptrack -o /tmp/ams-heap"` runs the operator under a profiler.
    let wrap: Vec<String> = std::env::var("AMS_BENCH_WRAP")
        .map(|w| w.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let binary = env!("CARGO_BIN_EXE_ams-security-operator");
    let mut command = match wrap.split_first() {
        Some((program, args)) => {
            let mut c = tokio::process::Command::new(program);
            c.args(args).arg(binary);
            c
        }
        None => tokio::process::Command::new(binary),
    };
    let child = command
        .arg("run")
        .args(["--kubeconfig", &kubeconfig, "--namespace", namespace])
        .args(["--azure-credential", "workload-identity"])
        .arg("--azure-extra-ca")
        .arg(&ca)
        .args([
            "--azure-host-override",
            &format!("login.microsoftonline.com=127.0.0.1:{port}"),
            "--azure-host-override",
            &format!("management.azure.com=127.0.0.1:{port}"),
            "--azure-host-override",
            &format!("*.vault.azure.net=127.0.0.1:{port}"),
        ])
        .args(["--health-addr", "off", "--concurrency", "32"])
        .args(["--resync-seconds", "3600"])
        .env("AZURE_TENANT_ID", emu.tenant_id())
        .env(
            "AZURE_CLIENT_ID",
            emu.service_principal("operator")
                .expect("operator principal")
                .client_id,
        )
        .env("AZURE_FEDERATED_TOKEN_FILE", &token)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the operator");
    Operator {
        child,
        _dir: tempdir::Dir(dir),
    }
}

/// The naive poller: per account, every interval, GET the vault, the key, and the identity's
/// role assignments at the key, with no sharing, no adaptive rate limiting, no retries.
struct Naive {
    reads: AtomicU64,
    throttled: AtomicU64,
    stop: AtomicBool,
    /// The key being watched for detection: (key name, since, first seen disabled).
    watch: Mutex<Option<(String, Instant, Option<Instant>)>>,
}

async fn naive_account(
    naive: Arc<Naive>,
    http: reqwest::Client,
    port: u16,
    arm_token: Arc<String>,
    kv_token: Arc<String>,
    p: KeyPlace,
) {
    let arm = format!("https://management.azure.com:{port}");
    let kv = format!("https://{}.vault.azure.net:{port}", p.vault);
    tokio::time::sleep(INTERVAL.mul_f64(fraction())).await;
    let mut tick = tokio::time::interval(INTERVAL);
    let vault_path = format!(
        "/subscriptions/{}/resourceGroups/media/providers/Microsoft.KeyVault/vaults/{}",
        p.sub, p.vault
    );
    while !naive.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let calls = [
            (
                format!("{arm}{vault_path}?api-version=2025-05-01"),
                &arm_token,
            ),
            (
                format!(
                    "{arm}{vault_path}/keys/{}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01",
                    p.key
                ),
                &arm_token,
            ),
            (format!("{kv}/keys/{}?api-version=7.5", p.key), &kv_token),
        ];
        for (url, token) in calls {
            let Ok(resp) = http.get(&url).bearer_auth(token.as_str()).send().await else {
                continue;
            };
            naive.reads.fetch_add(1, Ordering::Relaxed);
            if resp.status().as_u16() == 429 {
                naive.throttled.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if url.starts_with(&kv) {
                let Ok(body) = resp.json::<serde_json::Value>().await else {
                    continue;
                };
                if body["attributes"]["enabled"] == json!(false) {
                    let mut w = naive.watch.lock().await;
                    if let Some((name, _, seen @ None)) = w.as_mut()
                        && *name == p.key
                    {
                        *seen = Some(Instant::now());
                    }
                }
            }
        }
    }
}

async fn wait_all(
    store: &reflector::Store<MediaServicesAccount>,
    n: usize,
    what: fn(&MediaServicesAccount) -> bool,
    timeout: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        let done = store.state().iter().filter(|o| what(o)).count();
        if done >= n {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

async fn wait_names(
    store: &reflector::Store<MediaServicesAccount>,
    names: &[String],
    what: fn(&MediaServicesAccount) -> bool,
    timeout: Duration,
) -> bool {
    let wanted: std::collections::BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let start = Instant::now();
    while start.elapsed() < timeout {
        let done = store
            .state()
            .iter()
            .filter(|o| wanted.contains(o.name_any().as_str()) && what(o))
            .count();
        if done >= wanted.len() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn wait_one(
    store: &reflector::Store<MediaServicesAccount>,
    name: &str,
    what: fn(&MediaServicesAccount) -> bool,
    timeout: Duration,
) -> Option<Instant> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if store
            .state()
            .iter()
            .any(|o| o.name_any() == name && what(o))
        {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn run_row(client: &Client, row: Row, window: Duration, samples: usize) -> Figures {
    let mut figures = Figures::default();
    let started = Instant::now();
    let seed = Seed::from_yaml(&seed(row)).expect("bench seed");
    let emu = Emulator::start(EmulatorConfig {
        key_check_interval: None,
        record_bodies: false,
        ..EmulatorConfig::with_seed(seed)
    })
    .await
    .expect("emulator");
    emu.recheck_key_access();
    emu.set_latency("*", LATENCY);
    emu.set_throttling(Some(ThrottleLimits::default()));

    let namespace = format!("bench-{}-{}", row.accounts, row.keys);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": namespace, "labels": { common::TEST_LABEL: "bench" } } }))
                .expect("namespace"),
        )
        .await;
    let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), &namespace);
    futures::stream::iter(0..row.accounts)
        .map(|i| {
            let api = api.clone();
            async move {
                let _ = api.create(&PostParams::default(), &manifest(row, i)).await;
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    eprintln!(
        "  [{}] world and {} resources ready in {:.0} s",
        row.label(),
        row.accounts,
        started.elapsed().as_secs_f64()
    );

    let (store, writer) = reflector::store();
    let watch = tokio::spawn(
        reflector(writer, watcher(api.clone(), watcher::Config::default()))
            .applied_objects()
            .try_for_each(|_| async { Ok(()) }),
    );
    let mut operator = start_operator(&emu, &namespace);
    let pid = operator.child.id().unwrap_or_default();
    figures.cold = wait_all(&store, row.accounts, ready, Duration::from_secs(900)).await;
    eprintln!(
        "  [{}] cold convergence {}",
        row.label(),
        secs(figures.cold)
    );

    // Steady state.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = emu.call_counts();
    tokio::time::sleep(window).await;
    let (azure_reads, azure_writes) = split_counts(&before, &emu.call_counts());
    let per_hour = 3600.0 / window.as_secs_f64();
    figures.reads_h = azure_reads as f64 * per_hour;
    figures.writes_h = azure_writes as f64 * per_hour;
    figures.rss_mib = rss_kib(pid, "VmRSS:").unwrap_or(0) as f64 / 1024.0;

    // Detection: disable a key at a random moment; watch a random account that uses it, and
    // all of them.
    let per_key = row.accounts / row.keys;
    for s in 0..samples {
        let k = (s * 7 + 3) % row.keys;
        let p = key_place(row, k);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let nth = ((fraction() * per_key as f64) as usize).min(per_key.saturating_sub(1));
        let target = account_name(k + nth * row.keys);
        let users: Vec<String> = (0..per_key)
            .map(|j| account_name(k + j * row.keys))
            .collect();
        tokio::time::sleep(INTERVAL.mul_f64(fraction())).await;
        let t0 = Instant::now();
        emu.disable_key(&p.vault, &p.key, None).expect("disable");
        if let Some(seen) = wait_one(&store, &target, key_lost, Duration::from_secs(120)).await {
            figures.detection.push(seen - t0);
        }
        if wait_names(&store, &users, key_lost, Duration::from_secs(300)).await {
            figures.detection_all.push(t0.elapsed());
        }
        emu.enable_key(&p.vault, &p.key, None).expect("enable");
        let _ = wait_names(&store, &users, |o| !key_lost(o), Duration::from_secs(300)).await;
    }
    figures.hwm_mib = rss_kib(pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0;
    if std::env::var_os("AMS_BENCH_WRAP").is_some() {
        // Let the operator under the wrapper stop by itself so the profiler writes its data.
        let _ = std::process::Command::new("pkill")
            .args(["-TERM", "-P", &pid.to_string()])
            .status();
        let _ = tokio::time::timeout(Duration::from_secs(60), operator.child.wait()).await;
    }
    let _ = operator.child.kill().await;
    eprintln!("  [{}] ours measured; naive poller next", row.label());

    // The naive poller, same world, own principal.
    let naive = Arc::new(Naive {
        reads: AtomicU64::new(0),
        throttled: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        watch: Mutex::new(None),
    });
    let arm_token = Arc::new(
        emu.token_for("naive", "https://management.azure.com/")
            .expect("token"),
    );
    let kv_token = Arc::new(
        emu.token_for("naive", "https://vault.azure.net")
            .expect("token"),
    );
    let mut http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).expect("CA"))
        .resolve("management.azure.com", emu.addr());
    let vault_hosts: std::collections::BTreeSet<String> =
        (0..row.keys).map(|k| key_place(row, k).vault).collect();
    for v in vault_hosts {
        http = http.resolve(&format!("{v}.vault.azure.net"), emu.addr());
    }
    let http = http.build().expect("http client");
    let port = emu.addr().port();
    let tasks: Vec<_> = (0..row.accounts)
        .map(|i| {
            tokio::spawn(naive_account(
                naive.clone(),
                http.clone(),
                port,
                arm_token.clone(),
                kv_token.clone(),
                key_place(row, i % row.keys),
            ))
        })
        .collect();
    tokio::time::sleep(INTERVAL).await;
    let (r0, t0) = (
        naive.reads.load(Ordering::Relaxed),
        naive.throttled.load(Ordering::Relaxed),
    );
    tokio::time::sleep(window).await;
    figures.naive_reads_h = (naive.reads.load(Ordering::Relaxed) - r0) as f64 * per_hour;
    figures.naive_429_h = (naive.throttled.load(Ordering::Relaxed) - t0) as f64 * per_hour;
    for s in 0..samples.min(4) {
        let k = (s * 7 + 3) % row.keys;
        let p = key_place(row, k);
        tokio::time::sleep(INTERVAL.mul_f64(fraction())).await;
        let t0 = Instant::now();
        *naive.watch.lock().await = Some((p.key.clone(), t0, None));
        emu.disable_key(&p.vault, &p.key, None).expect("disable");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some((_, since, Some(seen))) = naive.watch.lock().await.as_ref() {
                figures.naive_detection.push(*seen - *since);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        emu.enable_key(&p.vault, &p.key, None).expect("enable");
    }
    naive.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    watch.abort();

    // Leave the apiserver as found: drop the operator's finalizers, then the namespace.
    let names: Vec<String> = api
        .list_metadata(&ListParams::default())
        .await
        .map(|l| l.items.iter().map(ResourceExt::name_any).collect())
        .unwrap_or_default();
    futures::stream::iter(names)
        .map(|n| {
            let api = api.clone();
            async move {
                let _ = api
                    .patch(
                        &n,
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
                    )
                    .await;
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let _ = namespaces
        .delete(&namespace, &kube::api::DeleteParams::default())
        .await;
    emu.shutdown().await;
    figures
}

fn parse_rows(spec: &str) -> Vec<Row> {
    spec.split(',')
        .filter_map(|r| {
            let (a, k) = r.split_once('x').unwrap_or((r, ""));
            let accounts: usize = a.trim().parse().ok()?;
            let keys = k.trim().parse().unwrap_or(accounts.min(10));
            Some(Row { accounts, keys })
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let rows = parse_rows(&arg("--rows").unwrap_or_else(|| "1,100,1000,1000x1000,10000".into()));
    let window = Duration::from_secs(arg("--window").and_then(|w| w.parse().ok()).unwrap_or(30));
    let samples: usize = arg("--samples").and_then(|s| s.parse().ok()).unwrap_or(6);
    let client = common::client().await;
    common::install_crds(&client).await;
    let started = Instant::now();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| row | Azure reads/h (ours) | Azure reads/h (naive) | naive 429s/h | Azure writes/h, steady (ours) | detection p50 / p99, one account (ours) | p99, every account of the key (ours) | detection p50 / p99 (naive) | operator RSS / peak | cold convergence |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        eprintln!("row {}", row.label());
        let f = run_row(&client, row, window, samples).await;
        let _ = writeln!(
            table,
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {} / {} ({} samples) | {} | {} / {} ({} samples) | {:.1} / {:.1} MiB | {} |",
            row.label(),
            f.reads_h,
            f.naive_reads_h,
            f.naive_429_h,
            f.writes_h,
            secs(percentile(&f.detection, 50.0)),
            secs(percentile(&f.detection, 99.0)),
            f.detection.len(),
            secs(percentile(&f.detection_all, 99.0)),
            secs(percentile(&f.naive_detection, 50.0)),
            secs(percentile(&f.naive_detection, 99.0)),
            f.naive_detection.len(),
            f.rss_mib,
            f.hwm_mib,
            secs(f.cold),
        );
        println!("{}", table.lines().last().unwrap_or_default());
    }
    println!(
        "\nkey check interval {} s, {} ms latency per Azure call, ARM throttling on (emulator defaults), steady-state window {} s per side, whole run {:.0} s\n",
        INTERVAL.as_secs(),
        LATENCY.as_millis(),
        window.as_secs(),
        started.elapsed().as_secs_f64()
    );
    println!("{table}");
}
