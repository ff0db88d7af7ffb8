//! The operator's main job: a kube-runtime `Controller` over `MediaServicesAccount` (all
//! namespaces, or those given), the shared [`Context`], the requeue policy, graceful shutdown,
//! and the `/healthz` and `/readyz` endpoints.
//!
//! The reconcile function itself is in [`account`]; it strings the steps of
//! `crate::reconcile` together. This module decides nothing about Azure.

pub mod account;
pub mod events;
pub mod finalize;
pub mod leader;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use account::Watched;
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt, Shared};
use kube::Client;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::{Predicate, WatchStreamExt, predicates, utils::PredicateConfig, watcher};

use crate::azure::{AzureApi, AzureClients, AzureError, CredentialSource};

/// Builds the Azure client a resource's reconcile talks through, per identity.
pub trait AzureProvider: Send + Sync {
    /// The client acting as `source`.
    fn api(&self, source: &CredentialSource) -> Result<Arc<dyn AzureApi>, AzureError>;
    /// The Azure call metrics, for `/metrics`.
    fn metrics(&self) -> Option<Arc<crate::azure::metrics::AzureMetrics>> {
        None
    }
}

impl AzureProvider for AzureClients {
    fn api(&self, source: &CredentialSource) -> Result<Arc<dyn AzureApi>, AzureError> {
        AzureClients::api(self, source)
    }
    fn metrics(&self) -> Option<Arc<crate::azure::metrics::AzureMetrics>> {
        Some(AzureClients::metrics(self))
    }
}

/// How the main job runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespaces to watch; empty watches all.
    pub namespaces: Vec<String>,
    /// Reconciles running at once (at least 1).
    pub concurrency: u16,
    /// Leader election; `None`: this instance always reconciles (one replica).
    pub leader_election: Option<leader::LeaderElection>,
    /// Where to serve `/healthz` and `/readyz`; `None` serves nothing.
    pub health_addr: Option<SocketAddr>,
    /// How long in-flight reconciles may finish after a shutdown signal before they are
    /// abandoned.
    pub shutdown_grace: Duration,
    /// The operator's own identity, for resources without `credentialsSecretRef`.
    pub operator_credential: CredentialSource,
    /// Name reported on events (the controller's name).
    pub reporter: String,
    /// How long before a customer key's expiry `EncryptionReady` warns (`KeyExpiringSoon`).
    pub key_expiry_warning: Duration,
    /// How often a reconciled account is looked at again for drift (key access is watched
    /// separately, on each resource's `keyAccessCheckInterval`).
    pub resync_interval: Duration,
    /// Read budgets key probes stay within.
    pub probe_budget: crate::monitor::Budget,
    /// How long an account may lag behind its key's latest version before it warns.
    pub key_rotation_grace: Duration,
    /// Which namespaces may manage which subscriptions; `None`: every namespace, everything.
    pub tenancy: Option<crate::tenancy::Tenancy>,
    /// This cluster's identity in the names of the role assignments the operator makes
    /// (`--cluster-id`; may be empty).
    pub cluster_id: String,
}

/// What every reconcile shares.
pub struct Context {
    /// The Kubernetes client.
    pub kube: Client,
    /// Azure clients per identity.
    pub azure: Arc<dyn AzureProvider>,
    /// The operator's own identity.
    pub operator_credential: CredentialSource,
    /// The one event recorder.
    pub events: events::Events,
    /// How long before a customer key's expiry `EncryptionReady` warns.
    pub key_expiry_warning: Duration,
    /// How often a reconciled account is looked at again for drift.
    pub resync_interval: Duration,
    /// How long an account may lag behind its key's latest version before it warns.
    pub key_rotation_grace: Duration,
    /// Which namespaces may manage which subscriptions; `None`: no restriction.
    pub tenancy: Option<Arc<crate::tenancy::Tenancy>>,
    /// This cluster's identity in role-assignment names.
    pub cluster_id: String,
    /// The shared key-access monitor.
    pub keys: Arc<crate::monitor::KeyMonitor>,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Consecutive failures per object (`namespace/name`), for capped backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// Whether the tenancy map lets `namespace` manage what `desired` names (`Ok` without a
    /// map). Reads the namespace's labels only when a rule selects by them.
    ///
    /// # Errors
    /// Why not, for the `TenancyDenied` condition (or why the labels could not be read).
    pub async fn tenancy_allows(
        &self,
        namespace: &str,
        desired: &crate::reconcile::desired::Desired,
    ) -> Result<(), String> {
        let Some(t) = &self.tenancy else {
            return Ok(());
        };
        let labels = if t.uses_selectors() {
            let namespaces: Api<k8s_openapi::api::core::v1::Namespace> =
                Api::all(self.kube.clone());
            namespaces
                .get_metadata(namespace)
                .await
                .map_err(|e| format!("failed to read the labels of namespace {namespace} for the tenancy map: {e}"))?
                .metadata
                .labels
                .unwrap_or_default()
        } else {
            std::collections::BTreeMap::new()
        };
        t.check(namespace, &labels, desired)
    }
}

impl Context {
    /// A context over these clients.
    #[must_use]
    pub fn new(
        kube: Client,
        azure: Arc<dyn AzureProvider>,
        operator_credential: CredentialSource,
        reporter: &str,
    ) -> Self {
        let keys = crate::monitor::KeyMonitor::new(crate::monitor::MonitorSettings::default());
        let metrics = Arc::new(crate::metrics::Metrics::new(
            keys.clone(),
            metrics_source(&azure).as_deref(),
        ));
        Self {
            events: events::Events::new(kube.clone(), reporter),
            kube,
            azure,
            operator_credential,
            key_expiry_warning: crate::reconcile::key_access::DEFAULT_EXPIRY_WARNING,
            resync_interval: requeue::RESYNC_DEFAULT,
            key_rotation_grace: crate::reconcile::status::DEFAULT_ROTATION_GRACE,
            tenancy: None,
            cluster_id: String::new(),
            keys,
            metrics,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// A context whose key monitor uses these settings (the expiry horizon is the context's).
    #[must_use]
    pub fn with_monitor(mut self, settings: crate::monitor::MonitorSettings) -> Self {
        self.key_expiry_warning = settings.expiry_horizon;
        self.keys = crate::monitor::KeyMonitor::new(settings);
        self.metrics = Arc::new(crate::metrics::Metrics::new(
            self.keys.clone(),
            metrics_source(&self.azure).as_deref(),
        ));
        self
    }

    /// Who owns the role assignments made for `account`, as it goes into their names.
    #[must_use]
    pub fn owner(&self, account: &crate::crd::MediaServicesAccount) -> String {
        use kube::ResourceExt;
        crate::reconcile::plan::owner_identity(
            &self.cluster_id,
            &account.namespace().unwrap_or_default(),
            &account.name_any(),
            &account.uid().unwrap_or_default(),
        )
    }

    /// Records a failure of `key`; returns how many in a row.
    pub fn record_failure(&self, key: &str) -> u32 {
        let mut f = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = f.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets the failures of `key`.
    pub fn record_success(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// The Azure call metrics `/metrics` serves.
fn metrics_source(
    azure: &Arc<dyn AzureProvider>,
) -> Option<Arc<crate::azure::metrics::AzureMetrics>> {
    azure.metrics()
}

/// Why the main job could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The CRD is not installed (or not served yet).
    #[error(
        "failed to list MediaServicesAccounts: the CRD is not installed; install it with `kubectl apply -f crds/` (add --validate=false on kubectl before 1.25) or the Helm chart"
    )]
    CrdMissing(#[source] kube::Error),
    /// The apiserver refused or could not be reached.
    #[error("failed to list MediaServicesAccounts in {scope}")]
    List {
        /// Namespace or "all namespaces".
        scope: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// Leader election could not start (the Lease was refused).
    #[error("failed to contend for the leader lease: {0}")]
    Lease(String),
    /// This instance held the lease and lost it; it stopped reconciling.
    #[error(
        "lost the leader lease; stopped reconciling so that two instances never reconcile at once"
    )]
    LeadershipLost,
    /// The health endpoint could not bind.
    #[error("failed to serve health endpoints on {addr}")]
    Health {
        /// Address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Requeue delays by situation.
pub mod requeue {
    use std::time::Duration;

    /// After writes, to observe their effect.
    pub const AFTER_WRITE: Duration = Duration::from_secs(2);
    /// While Azure propagates a new principal or grant.
    pub const PROPAGATING: Duration = Duration::from_secs(10);
    /// A parked operation, when Azure gave no Retry-After.
    pub const OPERATION_DEFAULT: Duration = Duration::from_secs(5);
    /// Longest wait between polls of a parked operation.
    pub const OPERATION_MAX: Duration = Duration::from_secs(30);
    /// Throttled without a Retry-After.
    pub const THROTTLED_DEFAULT: Duration = Duration::from_secs(30);
    /// First transient retry; doubles per failure up to [`TRANSIENT_MAX`].
    pub const TRANSIENT_BASE: Duration = Duration::from_secs(2);
    /// Longest transient backoff.
    pub const TRANSIENT_MAX: Duration = Duration::from_secs(300);
    /// Default drift resync of a reconciled account.
    pub const RESYNC_DEFAULT: Duration = Duration::from_secs(600);
    /// Something only a person can fix (a bad prerequisite, a missing account); Azure-side
    /// fixes raise no watch event, so it is still looked at, slowly.
    pub const USER_ACTION: Duration = Duration::from_secs(120);

    /// Capped exponential backoff for the `n`th consecutive failure (from 1).
    #[must_use]
    pub fn transient(n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
        TRANSIENT_BASE.saturating_mul(factor).min(TRANSIENT_MAX)
    }

    /// `base` plus up to a tenth of it, so resyncs of many objects spread out.
    #[must_use]
    pub fn jittered(base: Duration, seed: &str) -> Duration {
        use std::hash::BuildHasher;
        // NB: RandomState is seeded randomly per process; hashing the object's key with the
        // current time gives a spread that is good enough for jitter without another crate.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let h = std::collections::hash_map::RandomState::new().hash_one((seed, nanos));
        let tenth = base / 10;
        let millis = u64::try_from(tenth.as_millis()).unwrap_or(u64::MAX).max(1);
        base + Duration::from_millis(h % millis)
    }
}

// NB: kube-runtime hands the object and context over by value.
#[allow(clippy::needless_pass_by_value)]
fn error_policy(guard: Arc<Watched>, error: &account::Error, ctx: Arc<Context>) -> Action {
    let key = account::object_key(&guard);
    let n = ctx.record_failure(&key);
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    tracing::warn!(object = %key, error = %chain, failures = n, "reconcile failed");
    Action::requeue(requeue::transient(n))
}

/// Serves `/healthz` and `/readyz` on `addr`, if given.
async fn serve_health(
    addr: Option<SocketAddr>,
    ready: &Arc<AtomicBool>,
    metrics: &Arc<crate::metrics::Metrics>,
    shutdown: &Shared<BoxFuture<'static, ()>>,
) -> Result<Option<tokio::task::JoinHandle<()>>, RunError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Health { addr, source })?;
    tracing::info!(address = %listener.local_addr().unwrap_or(addr), "serving /healthz, /readyz and /metrics");
    Ok(Some(tokio::spawn(crate::http::serve(
        listener,
        ready.clone(),
        metrics.clone(),
        shutdown.clone(),
    ))))
}

/// The context of the main job, from its settings.
fn context_for(kube: Client, azure: Arc<dyn AzureProvider>, settings: &Settings) -> Arc<Context> {
    let mut ctx = Context::new(
        kube,
        azure,
        settings.operator_credential.clone(),
        &settings.reporter,
    )
    .with_monitor(crate::monitor::MonitorSettings {
        expiry_horizon: settings.key_expiry_warning,
        budget: settings.probe_budget,
        concurrency: usize::from(settings.concurrency.max(1)),
    });
    ctx.resync_interval = settings.resync_interval;
    ctx.key_rotation_grace = settings.key_rotation_grace;
    if let Some(t) = &settings.tenancy {
        tracing::info!(
            rules = t.rules.len(),
            "tenancy map loaded: namespaces manage only the subscriptions it gives them"
        );
    } else {
        tracing::warn!(
            "no tenancy map (--tenancy-file): every watched namespace may manage every subscription the operator's Azure identity can reach"
        );
    }
    ctx.tenancy = settings.tenancy.clone().map(Arc::new);
    ctx.cluster_id.clone_from(&settings.cluster_id);
    Arc::new(ctx)
}

/// Runs the controllers and the key monitor until `stop`, then lets in-flight reconciles finish
/// for at most the shutdown grace.
async fn lead(
    ctx: &Arc<Context>,
    apis: Vec<(String, Api<Watched>)>,
    settings: &Settings,
    ready: &Arc<AtomicBool>,
    stop: Shared<BoxFuture<'static, ()>>,
) {
    let monitor = tokio::spawn(ctx.keys.clone().run(stop.clone()));
    let config = ControllerConfig::default().concurrency(settings.concurrency.max(1));
    let mut stores = Vec::new();
    let mut runs = Vec::new();
    for ((scope, api), namespace) in apis.into_iter().zip(
        settings
            .namespaces
            .iter()
            .map(|n| Some(n.clone()))
            .chain(std::iter::repeat(None)),
    ) {
        let controller = controller_for(api, ctx, namespace, config.clone(), stop.clone());
        stores.push(controller.store());
        tracing::info!(%scope, "watching MediaServicesAccounts");
        runs.push(
            controller
                .run(account::reconcile, error_policy, ctx.clone())
                .for_each(|result| async move {
                    match result {
                        Ok((object, _)) => tracing::debug!(%object, "reconciled"),
                        Err(e) => tracing::warn!(error = %e, "controller event"),
                    }
                })
                .boxed(),
        );
    }
    spawn_readiness(stores, ready.clone());
    let controllers = futures::future::join_all(runs);
    let grace = settings.shutdown_grace;
    let deadline = stop.clone().then(move |()| tokio::time::sleep(grace));
    tokio::select! {
        _ = controllers => tracing::info!("controllers stopped"),
        () = deadline => tracing::warn!(?grace, "in-flight reconciles did not finish within the shutdown grace period; abandoning them"),
    }
    monitor.abort();
}

/// The controller over one watch scope: a slimmed cache, and the key monitor's triggers.
fn controller_for(
    api: Api<Watched>,
    ctx: &Context,
    namespace: Option<String>,
    config: ControllerConfig,
    shutdown: Shared<BoxFuture<'static, ()>>,
) -> Controller<Watched> {
    // Accounts whose key verdict changed are reconciled at once, not at their next resync.
    let triggers = ctx
        .keys
        .triggers(namespace)
        .map(|(ns, name)| kube::runtime::reflector::ObjectRef::<Watched>::new(&name).within(&ns));
    // The cache keeps every object's metadata only (a pass reads the whole object), less what
    // no filter reads: managed fields and kubectl's last-applied copy of the spec.
    let (reader, writer) = kube::runtime::reflector::store();
    let objects = kube::runtime::reflector(
        writer,
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(slim),
    )
    .applied_objects()
    // A status write comes back through the watch; reconciling it again would be a full pass
    // (Azure reads) that found nothing new. Only what a person or tool changes starts a pass:
    // the spec (generation; deletion bumps it too), annotations (reconcile-at, release),
    // finalizers, labels. Requeues and the key monitor's triggers come in separately.
    .predicate_filter(
        predicates::generation
            .combine(predicates::annotations)
            .combine(predicates::finalizers)
            .combine(predicates::labels),
        PredicateConfig::default(),
    );
    Controller::for_stream(objects, reader)
        .with_config(config)
        .reconcile_on(triggers)
        .graceful_shutdown_on(shutdown)
}

/// Drops from a cached object what no filter reads.
fn slim(object: &mut Watched) {
    let meta = &mut object.metadata;
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Sets `ready` once every store has synced.
fn spawn_readiness(stores: Vec<kube::runtime::reflector::Store<Watched>>, ready: Arc<AtomicBool>) {
    tokio::spawn(async move {
        for store in stores {
            // NB: the store's readiness is a one-shot channel whose waker is the last poller's;
            // the controller's own runner polls it too and takes the wake-up, so a lone wait
            // here can sleep forever. Re-polling finds the memoized value once it is set.
            loop {
                match tokio::time::timeout(Duration::from_millis(250), store.wait_until_ready())
                    .await
                {
                    Ok(Ok(())) => break,
                    Ok(Err(_)) => return,
                    Err(_) => {}
                }
            }
        }
        ready.store(true, Ordering::SeqCst);
        tracing::info!("caches synced; ready");
    });
}

/// Runs the main job until `shutdown` resolves, then lets in-flight reconciles finish for at
/// most `settings.shutdown_grace`.
///
/// # Errors
/// [`RunError`] when the CRD is missing, the apiserver refuses the first list, or the health
/// address cannot be bound.
pub async fn run(
    kube: Client,
    azure: Arc<dyn AzureProvider>,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let shutdown: Shared<BoxFuture<'static, ()>> = shutdown.boxed().shared();
    let apis: Vec<(String, Api<Watched>)> = if settings.namespaces.is_empty() {
        vec![("all namespaces".to_owned(), Api::all(kube.clone()))]
    } else {
        settings
            .namespaces
            .iter()
            .map(|ns| (format!("namespace {ns}"), Api::namespaced(kube.clone(), ns)))
            .collect()
    };
    // Fail fast, with a hint, when the CRD is not there; otherwise the watcher would retry
    // forever in silence.
    for (scope, api) in &apis {
        if let Err(e) = api.list(&ListParams::default().limit(1)).await {
            return Err(match &e {
                kube::Error::Api(s) if s.code == 404 => RunError::CrdMissing(e),
                _ => RunError::List {
                    scope: scope.clone(),
                    source: e,
                },
            });
        }
    }

    let ready = Arc::new(AtomicBool::new(false));

    let ctx = context_for(kube.clone(), azure, &settings);
    let health = serve_health(settings.health_addr, &ready, &ctx.metrics, &shutdown).await?;

    // With leader election, stand by (ready, serving metrics) until this instance holds the
    // lease; the controllers then stop on shutdown or when the lease is lost.
    let mut lease = None;
    let stop = match &settings.leader_election {
        None => shutdown.clone(),
        Some(election) => {
            let mut held = leader::Lease::contend(kube.clone(), election)
                .await
                .map_err(|e| RunError::Lease(e.to_string()))?;
            ready.store(true, Ordering::SeqCst);
            tracing::info!(identity = %election.identity, lease = %election.lease_name, namespace = %election.namespace, "standing by for the lease");
            let waited = Instant::now();
            tokio::select! {
                () = held.acquired() => {}
                () = shutdown.clone() => {
                    held.release(settings.shutdown_grace).await;
                    ready.store(false, Ordering::SeqCst);
                    if let Some(h) = health {
                        let _ = h.await;
                    }
                    return Ok(());
                }
            }
            tracing::info!(identity = %election.identity, waited = ?waited.elapsed(), "holding the lease: reconciling");
            let lost = leader::Lease::lost(held.is_leader.clone());
            lease = Some(held);
            let shutdown = shutdown.clone();
            async move {
                futures::future::select(shutdown, lost.boxed()).await;
            }
            .boxed()
            .shared()
        }
    };
    lead(&ctx, apis, &settings, &ready, stop).await;
    ready.store(false, Ordering::SeqCst);
    let lost = lease
        .as_ref()
        .is_some_and(|l| !*l.is_leader.borrow() && shutdown.peek().is_none());
    if let Some(l) = lease {
        l.release(settings.shutdown_grace).await;
    }
    if lost {
        tracing::error!(
            "lost the lease: stopped reconciling; exiting so that this instance stands by again"
        );
        return Err(RunError::LeadershipLost);
    }
    if let Some(h) = health {
        let _ = h.await;
    }
    Ok(())
}
