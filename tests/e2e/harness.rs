//! What every end-to-end test needs: the emulator seeded with `world.yaml`, the operator's main
//! job running in-process through `controller::run` (the same code path as
//! `ams-security-operator run`) and authenticating with workload identity, and helpers to
//! create resources, wait for conditions and read the emulator's request log.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ams_security_operator::azure::transport::TransportConfig;
use ams_security_operator::azure::{AzureClients, AzureCloud, AzureConfig, CredentialSource};
use ams_security_operator::controller::{self, Context, Settings};
use ams_security_operator::crd::MediaServicesAccount;
use ams_security_operator::emulator::{Emulator, EmulatorConfig, LoggedRequest, Seed};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};

/// The media subscription.
pub const SUB: &str = "1a2b3c4d-0000-4000-8000-000000000001";
/// The other subscription.
pub const OTHER_SUB: &str = "1a2b3c4d-0000-4000-8000-000000000002";
/// The account's name.
pub const ACCOUNT: &str = "mediaacct";
/// The cluster id the in-process operator names its role assignments with.
const CLUSTER_ID: &str = "e2e";
/// The service account subject the operator's federated credential names.
const OPERATOR_SUBJECT: &str = "system:serviceaccount:ams-system:ams-security-operator";

/// ARM id of a resource in the media resource group.
pub fn media_id(provider_type: &str, name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/media/providers/{provider_type}/{name}")
}

/// The Media Services account's ARM id.
pub fn account_id() -> String {
    media_id("Microsoft.Media/mediaservices", ACCOUNT)
}

/// A storage account's ARM id in the media resource group.
pub fn storage_id(name: &str) -> String {
    media_id("Microsoft.Storage/storageAccounts", name)
}

/// The user-assigned identity's ARM id.
pub fn identity_id() -> String {
    media_id(
        "Microsoft.ManagedIdentity/userAssignedIdentities",
        "media-id",
    )
}

/// The seed, as committed.
pub fn seed() -> Seed {
    Seed::from_yaml(include_str!("world.yaml")).expect("tests/e2e/world.yaml is a valid seed")
}

/// An emulator over the e2e world that keeps response bodies in its log.
pub async fn emulator() -> Emulator {
    emulator_with(|_| {}).await
}

/// [`emulator`] with changed settings.
pub async fn emulator_with(change: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    let mut config = EmulatorConfig {
        key_check_interval: None,
        record_bodies: true,
        ..EmulatorConfig::with_seed(seed())
    };
    change(&mut config);
    Emulator::start(config).await.expect("emulator starts")
}

/// The operator's main job, running in this process against one namespace.
pub struct Operator {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), controller::RunError>>,
    clients: Arc<AzureClients>,
    credential: CredentialSource,
    token_file: PathBuf,
}

impl Operator {
    /// Starts `controller::run` for `namespace`, with workload identity whose projected token
    /// the emulator minted for the operator's federated credential.
    pub fn start(client: &Client, emu: &Emulator, namespace: &str) -> Self {
        Self::start_with_health(client, emu, namespace, None)
    }

    /// [`Self::start`], serving `/healthz` and `/readyz` on `health`.
    pub fn start_with_health(
        client: &Client,
        emu: &Emulator,
        namespace: &str,
        health: Option<std::net::SocketAddr>,
    ) -> Self {
        Self::start_watching(client, emu, &[namespace], health)
    }

    /// [`Self::start_with_health`] for several namespaces at once.
    pub fn start_watching(
        client: &Client,
        emu: &Emulator,
        namespaces: &[&str],
        health: Option<std::net::SocketAddr>,
    ) -> Self {
        // Logs go to the test's captured output; RUST_LOG picks the level (default: warnings).
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .try_init();
        let (clients, credential, token_file) = operator_clients(emu);
        let settings = Settings {
            namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
            concurrency: 4,
            health_addr: health,
            shutdown_grace: Duration::from_secs(5),
            operator_credential: credential.clone(),
            reporter: "ams-security-operator".to_owned(),
            key_expiry_warning:
                ams_security_operator::reconcile::key_access::DEFAULT_EXPIRY_WARNING,
            resync_interval: Duration::from_secs(600),
            probe_budget: ams_security_operator::monitor::Budget::default(),
            key_rotation_grace: ams_security_operator::reconcile::status::DEFAULT_ROTATION_GRACE,
            tenancy: None,
            leader_election: None,
            cluster_id: CLUSTER_ID.to_owned(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(controller::run(
            client.clone(),
            clients.clone(),
            settings,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            stop: Some(stop),
            task,
            clients,
            credential,
            token_file,
        }
    }

    /// A context over the same Azure clients and cluster id, for calling the reconcile
    /// function directly.
    pub fn context(&self, client: &Client) -> Arc<Context> {
        let mut ctx = Context::new(
            client.clone(),
            self.clients.clone(),
            self.credential.clone(),
            "ams-security-operator",
        );
        CLUSTER_ID.clone_into(&mut ctx.cluster_id);
        Arc::new(ctx)
    }

    /// Signals shutdown and waits for the main job to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("the operator stops within 20s of the shutdown signal")
            .expect("the operator task does not panic");
        result.expect("the operator's main job ends without error");
        let _ = std::fs::remove_file(&self.token_file);
    }
}

/// The Azure clients and credential the operator uses against `emu`: workload identity with a
/// projected token the emulator minted for the operator's federated credential (written to a
/// file of its own), over the emulator's transport.
fn operator_clients(emu: &Emulator) -> (Arc<AzureClients>, CredentialSource, PathBuf) {
    static FILES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let token = emu
        .mint_service_account_token(OPERATOR_SUBJECT)
        .expect("mint a service account token");
    let token_file = std::env::temp_dir().join(format!(
        "ams-e2e-token-{}-{}",
        std::process::id(),
        FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::write(&token_file, token).expect("write the token file");
    let credential = CredentialSource::WorkloadIdentity {
        tenant_id: emu.tenant_id(),
        client_id: emu
            .service_principal("operator")
            .expect("seeded operator")
            .client_id,
        token_file: token_file.clone(),
    };
    let clients = Arc::new(
        AzureClients::new(AzureConfig {
            cloud: AzureCloud::AzurePublic,
            transport: TransportConfig::emulator(emu.addr(), emu.ca_pem()),
            ..AzureConfig::default()
        })
        .expect("transport builds"),
    );
    (clients, credential, token_file)
}

/// A `MediaServicesAccount` named `name` with this spec (`account` is filled in).
pub fn manifest(name: &str, mut spec: Value) -> MediaServicesAccount {
    spec["account"] = json!({
        "subscriptionId": SUB,
        "resourceGroup": "media",
        "name": ACCOUNT,
        "location": "westeurope",
    });
    serde_json::from_value(json!({
        "apiVersion": "ams-security.io/v1alpha1",
        "kind": "MediaServicesAccount",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .expect("test manifest deserializes")
}

/// Creates the resource.
pub async fn create(client: &Client, namespace: &str, object: &MediaServicesAccount) {
    let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), object)
        .await
        .expect("create MediaServicesAccount");
}

/// A condition of the object.
pub fn condition<'a>(object: &'a MediaServicesAccount, type_: &str) -> Option<&'a Condition> {
    object.status.as_ref()?.condition(type_)
}

/// `(status, reason)` of a condition, for assertions.
pub fn state(object: &MediaServicesAccount, type_: &str) -> (String, String) {
    condition(object, type_).map_or_else(
        || ("<absent>".to_owned(), String::new()),
        |c| (c.status.clone(), c.reason.clone()),
    )
}

/// Waits (watching, not sleeping) until `ready` holds for the object; panics after `timeout`
/// with the object's last status.
pub async fn wait_until(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    timeout: Duration,
    ready: impl Fn(&MediaServicesAccount) -> bool,
) -> MediaServicesAccount {
    let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    // A watch can end early (the apiserver closes it, or the object's watch event is missed
    // between list and watch); watch again until the deadline.
    while let Some(remaining) = deadline.checked_duration_since(tokio::time::Instant::now()) {
        let waited = tokio::time::timeout(
            remaining,
            await_condition(api.clone(), name, |o: Option<&MediaServicesAccount>| {
                o.is_some_and(&ready)
            }),
        )
        .await;
        match waited {
            Ok(Ok(Some(object))) => return object,
            Ok(Ok(None)) => last_error = Some("the object is gone".to_owned()),
            Ok(Err(e)) => last_error = Some(e.to_string()),
            Err(_) => break,
        }
    }
    let last = api.get(name).await.ok();
    panic!(
        "{name} did not become {what} within {timeout:?} (last watch error: {last_error:?}); last status:\n{}",
        serde_json::to_string_pretty(&last.and_then(|o| o.status)).unwrap_or_default()
    );
}

/// Waits until `type_` has `status` and `reason`.
pub async fn wait_for_condition(
    client: &Client,
    namespace: &str,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> MediaServicesAccount {
    wait_until(
        client,
        namespace,
        name,
        &format!("{type_}={status} ({reason})"),
        Duration::from_secs(60),
        |o| {
            condition(o, type_).is_some_and(|c| c.status == status && c.reason == reason)
                && o.status.as_ref().and_then(|s| s.observed_generation) == o.metadata.generation
        },
    )
    .await
}

/// Waits until `Ready=True` for the current generation.
pub async fn wait_ready(client: &Client, namespace: &str, name: &str) -> MediaServicesAccount {
    wait_for_condition(client, namespace, name, "Ready", "True", "Succeeded").await
}

/// The requests that changed Azure (ARM and Key Vault writes; not token requests, not
/// reads, not the admin API).
pub fn azure_writes(emu: &Emulator) -> Vec<LoggedRequest> {
    emu.request_log()
        .into_iter()
        .filter(|r| {
            (r.host.starts_with("management.") || r.host.contains(".vault."))
                && r.method != "GET"
                && r.method != "HEAD"
        })
        .collect()
}

/// `METHOD operation status` lines, for assertion messages.
pub fn describe(requests: &[LoggedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| format!("{} {} {} -> {}", r.method, r.operation, r.uri, r.status))
        .collect()
}

/// A free loopback address (bound, then released).
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Polls `url` until it answers `status`, for at most 20 s; returns the body.
pub async fn wait_for_http(url: &str, status: u16) -> String {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let last = match client.get(url).send().await {
            Ok(r) if r.status().as_u16() == status => return r.text().await.unwrap_or_default(),
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => e.to_string(),
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} did not answer {status} within 20s; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to 20 s) until the object has an event with `reason`: events are sent after the
/// status write a watcher sees first. Returns every reason seen; panics without it.
pub async fn wait_for_event(
    client: &Client,
    namespace: &str,
    name: &str,
    reason: &str,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reasons = event_reasons(client, namespace, name).await;
        if reasons.iter().any(|r| r == reason) {
            return reasons;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: no {reason} event in {reasons:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The events recorded for `name` in `namespace`.
async fn events_of(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Vec<k8s_openapi::api::core::v1::Event> {
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), namespace);
    events
        .list(&kube::api::ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .collect()
}

/// The reasons of the events recorded for `name` in `namespace`.
pub async fn event_reasons(client: &Client, namespace: &str, name: &str) -> Vec<String> {
    events_of(client, namespace, name)
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

/// The notes of the events recorded for `name` with `reason`.
pub async fn event_notes(
    client: &Client,
    namespace: &str,
    name: &str,
    reason: &str,
) -> Vec<String> {
    events_of(client, namespace, name)
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.message)
        .collect()
}

/// The role assignments of `principal`, as the emulator holds them.
pub fn role_assignments_of(emu: &Emulator, principal: &str) -> Vec<Value> {
    emu.snapshot()["roleAssignments"]
        .as_array()
        .expect("assignments")
        .iter()
        .filter(|a| {
            a["principal_id"]
                .as_str()
                .is_some_and(|p| p.eq_ignore_ascii_case(principal))
        })
        .cloned()
        .collect()
}

/// [`role_assignments_of`] at exactly `scope`.
pub fn role_assignments_at(emu: &Emulator, scope: &str, principal: &str) -> Vec<Value> {
    role_assignments_of(emu, principal)
        .into_iter()
        .filter(|a| {
            a["scope"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(scope))
        })
        .collect()
}

/// Sends one ARM request to the emulator as `principal` would (a change made outside the
/// operator); returns the status and the body.
pub async fn arm_as(
    emu: &Emulator,
    principal: &str,
    method: reqwest::Method,
    path_and_query: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let token = emu
        .token_for(principal, "https://management.azure.com")
        .expect("token");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).expect("CA"))
        .resolve("management.azure.com", emu.addr())
        .build()
        .expect("client");
    let mut request = http
        .request(
            method,
            format!(
                "https://management.azure.com:{}{path_and_query}",
                emu.addr().port()
            ),
        )
        .bearer_auth(token);
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.expect("ARM request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Ends a scenario: stops the operator, then holds every request it sent to the REST specs'
/// request schemas (read from the spec files, independently of the emulator's own check),
/// then stops the emulator.
pub async fn finish(operator: Operator, emu: Emulator) {
    operator.stop().await;
    let log = emu.request_log();
    match super::spec::check_requests(&log) {
        Ok(checked) => assert!(
            checked > 0 || log.iter().all(|r| r.request_body.is_none()),
            "no request body was checked"
        ),
        Err(problems) => panic!(
            "the operator sent requests the specs refuse:\n{}",
            problems.join("\n")
        ),
    }
    emu.shutdown().await;
}

/// The operator's reconcile function without its controller: the same context `run` builds
/// (workload identity, the emulator's transport), for tests that decide when a pass happens.
pub fn offline_context(client: &Client, emu: &Emulator) -> Arc<Context> {
    offline_context_with(client, emu, |_| {})
}

/// [`offline_context`] with changed settings.
pub fn offline_context_with(
    client: &Client,
    emu: &Emulator,
    change: impl FnOnce(&mut Context),
) -> Arc<Context> {
    let (clients, credential, _) = operator_clients(emu);
    let mut ctx = Context::new(client.clone(), clients, credential, "ams-security-operator");
    change(&mut ctx);
    Arc::new(ctx)
}

/// Runs one reconcile of the object as it is stored now; returns the object afterwards.
pub async fn reconcile_now(
    client: &Client,
    namespace: &str,
    name: &str,
    ctx: &Arc<Context>,
) -> MediaServicesAccount {
    // As `kubectl annotate ... ams-security.io/reconcile-at=...` does: a pass that probes the
    // key afresh instead of serving the shared monitor's latest facts.
    static ASKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), namespace);
    let asked = ASKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let patch = serde_json::json!({ "metadata": { "annotations": {
        ams_security_operator::controller::account::RECONCILE_AT: format!("pass-{asked}") } } });
    let object = match api
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
    {
        Ok(o) => o,
        // The patch can fail only for an object already gone; reconcile what is stored.
        Err(_) => api.get(name).await.expect("get"),
    };
    ams_security_operator::controller::account::reconcile(Arc::new(watched(&object)), ctx.clone())
        .await
        .expect("reconcile");
    api.get(name).await.expect("get")
}

/// What the controller's cache holds of `object`: its metadata.
pub fn watched(
    object: &MediaServicesAccount,
) -> ams_security_operator::controller::account::Watched {
    use kube::core::PartialObjectMetaExt as _;
    object.metadata.clone().into_response_partial()
}

/// Reconciles until `Ready=True` (at most 10 passes, as each pass stops after its writes).
pub async fn reconcile_until_ready(
    client: &Client,
    namespace: &str,
    name: &str,
    ctx: &Arc<Context>,
) -> MediaServicesAccount {
    let mut last = None;
    for _ in 0..10 {
        let object = reconcile_now(client, namespace, name, ctx).await;
        if state(&object, "Ready") == ("True".to_owned(), "Succeeded".to_owned()) {
            return object;
        }
        // A parked operation needs Azure's clock to move on: poll again.
        last = Some(object);
    }
    panic!(
        "{name} not Ready after 10 passes: {}",
        serde_json::to_string_pretty(&last.and_then(|o| o.status)).unwrap_or_default()
    );
}

/// Runs reconciles of a deleted object until it is gone (at most 5 passes); panics with its
/// status if it stays.
pub async fn finalize_now(client: &Client, namespace: &str, name: &str, ctx: &Arc<Context>) {
    let api: Api<MediaServicesAccount> = Api::namespaced(client.clone(), namespace);
    for _ in 0..5 {
        let Some(object) = api.get_opt(name).await.expect("get") else {
            return;
        };
        ams_security_operator::controller::account::reconcile(
            Arc::new(watched(&object)),
            ctx.clone(),
        )
        .await
        .expect("reconcile");
    }
    let left = api.get_opt(name).await.expect("get");
    assert!(
        left.is_none(),
        "{name} is still there after 5 passes: {}",
        serde_json::to_string_pretty(&left.and_then(|o| o.status)).unwrap_or_default()
    );
}

/// The operator's real binary (`ams-security-operator run`) as a child process against this
/// namespace and the emulator, with workload identity, `/metrics` on `health`, and `extra`
/// arguments; killed when dropped.
pub struct OperatorProcess {
    /// The child.
    pub child: tokio::process::Child,
    /// Its health and metrics address.
    pub health: std::net::SocketAddr,
    dir: PathBuf,
}

impl OperatorProcess {
    /// Starts the binary.
    pub fn spawn(emu: &Emulator, namespace: &str, extra: &[&str]) -> Self {
        let kubeconfig = std::env::var("AMS_TEST_KUBECONFIG").expect("AMS_TEST_KUBECONFIG");
        Self::spawn_with_kubeconfig(emu, namespace, std::path::Path::new(&kubeconfig), extra)
    }

    /// [`Self::spawn`], talking to the apiserver with `kubeconfig` instead of
    /// `AMS_TEST_KUBECONFIG` (e.g. as a `ServiceAccount` with only the chart's permissions).
    pub fn spawn_with_kubeconfig(
        emu: &Emulator,
        namespace: &str,
        kubeconfig: &std::path::Path,
        extra: &[&str],
    ) -> Self {
        Self::start(emu, namespace, kubeconfig, extra, false)
    }

    /// [`Self::spawn`] logging everything (`RUST_LOG=debug`, JSON) to a file [`Self::log`]
    /// reads.
    pub fn spawn_logged(emu: &Emulator, namespace: &str, extra: &[&str]) -> Self {
        let kubeconfig = std::env::var("AMS_TEST_KUBECONFIG").expect("AMS_TEST_KUBECONFIG");
        Self::start(
            emu,
            namespace,
            std::path::Path::new(&kubeconfig),
            extra,
            true,
        )
    }

    /// The complete lines a [`Self::spawn_logged`] process logged so far (the process is still
    /// writing, so a last line without its newline is left out).
    pub fn log(&self) -> String {
        let mut log = std::fs::read_to_string(self.dir.join("operator.log")).unwrap_or_default();
        log.truncate(log.rfind('\n').map_or(0, |end| end + 1));
        log
    }

    fn start(
        emu: &Emulator,
        namespace: &str,
        kubeconfig: &std::path::Path,
        extra: &[&str],
        logged: bool,
    ) -> Self {
        static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ams-e2e-proc-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
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
        let health = free_addr();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ams-security-operator"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--namespace", namespace])
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
            .args(["--health-addr", &health.to_string()])
            .args(extra)
            .env("AZURE_TENANT_ID", emu.tenant_id())
            .env(
                "AZURE_CLIENT_ID",
                emu.service_principal("operator")
                    .expect("operator principal")
                    .client_id,
            )
            .env("AZURE_FEDERATED_TOKEN_FILE", &token)
            .env(
                "RUST_LOG",
                if logged {
                    "debug"
                } else {
                    "warn,ams_security_operator::controller=info"
                },
            )
            .args(if logged {
                &["--log-format", "json"][..]
            } else {
                &[][..]
            })
            .stdout(if logged {
                std::process::Stdio::from(
                    std::fs::File::create(dir.join("operator.log")).expect("log file"),
                )
            } else {
                std::process::Stdio::null()
            })
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the operator binary");
        Self { child, health, dir }
    }

    /// Passes counted in its `ams_reconciles_total`.
    pub async fn reconciles(&self) -> f64 {
        let metrics = wait_for_http(&format!("http://{}/metrics", self.health), 200).await;
        metrics
            .lines()
            .filter(|l| l.starts_with("ams_reconciles_total{"))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum()
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A resource for the e2e world's Azure account `azure_name`, encrypted with `key` through the
/// world's user-assigned identity (its access granted by the operator), checked every
/// `interval`: the shape the key-monitor and credentials scenarios share.
pub fn shared_key_account(
    name: &str,
    azure_name: &str,
    key: &str,
    interval: std::time::Duration,
) -> MediaServicesAccount {
    let uai = identity_id();
    let mut m = manifest(
        name,
        serde_json::json!({
            "identity": { "type": "UserAssigned", "userAssignedIdentities": [uai] },
            "encryption": {
                "type": "CustomerKey",
                "keyIdentifier": key,
                "identity": { "userAssignedIdentity": uai },
                "grantAccess": true,
            },
            "keyAccessCheckInterval": format!("{}s", interval.as_secs()),
        }),
    );
    azure_name.clone_into(&mut m.spec.account.name);
    m
}
