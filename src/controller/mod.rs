//! The operator's main job: a kube-runtime `Controller` over `MediaServicesAccount` (all
//! namespaces, or those given), leader election, graceful shutdown, and the `/healthz` and
//! `/readyz` endpoints.
//!
//! The reconcile function itself is in [`account`]; it strings the steps of
//! `crate::reconcile` together, and [`finalize`] carries out a deletion. Both read the shared
//! [`Context`], decide requeues through [`requeue`], write status through [`write`] and fail
//! with [`Error`]. This module decides nothing about Azure.

pub mod account;
pub mod claims;
pub mod context;
pub mod error;
pub mod events;
pub mod finalize;
pub mod leader;
pub mod namespaces;
pub mod requeue;
pub mod write;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

pub use context::{AzureProvider, Context};
pub use error::Error;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use account::Watched;
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt, Shared};
use kube::Client;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::{Predicate, WatchStreamExt, predicates, utils::PredicateConfig, watcher};

use crate::azure::CredentialSource;

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

// NB: kube-runtime hands the object and context over by value.
#[allow(clippy::needless_pass_by_value)]
fn error_policy(guard: Arc<Watched>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = account::object_key(&guard);
    let n = ctx.record_failure(&key);
    ctx.metrics.failed(error.reason());
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
    ctx.namespace_labels =
        namespaces::NamespaceLabels::for_tenancy(&ctx.kube, settings.tenancy.as_ref());
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
    let namespace_labels = ctx
        .namespace_labels
        .clone()
        .map(|labels| tokio::spawn(labels.run(stop.clone())));
    let controllers = futures::future::join_all(runs);
    let grace = settings.shutdown_grace;
    let deadline = stop.clone().then(move |()| tokio::time::sleep(grace));
    tokio::select! {
        _ = controllers => tracing::info!("controllers stopped"),
        () = deadline => tracing::warn!(?grace, "in-flight reconciles did not finish within the shutdown grace period; abandoning them"),
    }
    monitor.abort();
    if let Some(labels) = namespace_labels {
        labels.abort();
    }
}

/// The controller over one watch scope: a slimmed cache, the key monitor's triggers, and the
/// credentials Secrets' changes.
fn controller_for(
    api: Api<Watched>,
    ctx: &Arc<Context>,
    namespace: Option<String>,
    config: ControllerConfig,
    shutdown: Shared<BoxFuture<'static, ()>>,
) -> Controller<Watched> {
    // The cache keeps every object's metadata only (a pass reads the whole object), less what
    // no filter reads: managed fields and kubectl's last-applied copy of the spec.
    let (reader, writer) = kube::runtime::reflector::store();
    let secrets = secret_triggers(ctx, namespace.as_deref(), reader.clone());
    // Accounts whose key verdict changed, or whose account another resource let go of, are
    // reconciled at once, not at their next resync.
    let triggers = futures::stream::select(
        ctx.keys.triggers(namespace.clone()),
        ctx.claims.triggers(namespace.clone()),
    )
    .map(|(ns, name)| kube::runtime::reflector::ObjectRef::<Watched>::new(&name).within(&ns));
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
    // So are the accounts of a namespace whose labels changed (tenancy map selectors).
    let relabelled =
        namespaces::relabelled_objects(ctx.namespace_labels.as_deref(), namespace, reader.clone());
    Controller::for_stream(objects, reader)
        .with_config(config)
        .reconcile_on(triggers)
        .reconcile_on(relabelled)
        .reconcile_on(secrets)
        .graceful_shutdown_on(shutdown)
}

/// Objects to reconcile at once because the credentials Secret they name changed (a fixed or
/// rotated secret is used without waiting for the resync). A metadata-only watch of the
/// Secrets in the scope: no Secret data is ever cached here (a pass reads the one Secret it
/// names). Each changed Secret maps to the objects whose last pass named it; objects gone
/// from `store` are forgotten on the way.
fn secret_triggers(
    ctx: &Arc<Context>,
    namespace: Option<&str>,
    store: kube::runtime::reflector::Store<Watched>,
) -> impl futures::Stream<Item = kube::runtime::reflector::ObjectRef<Watched>> + Send + 'static {
    use kube::runtime::reflector::ObjectRef;
    // NB: an `Api` of `PartialObjectMeta` lists and watches metadata only.
    let secrets: Api<kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Secret>> =
        match namespace {
            Some(ns) => Api::namespaced(ctx.kube.clone(), ns),
            None => Api::all(ctx.kube.clone()),
        };
    let ctx = ctx.clone();
    watcher(secrets, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        // Only a new version of a Secret is a change (a re-list repeats the ones seen).
        .predicate_filter(predicates::resource_version, PredicateConfig::default())
        .filter_map(|seen| async move {
            seen.map_err(|e| {
                tracing::warn!(error = %e, "failed to watch credentials Secrets; a changed Secret is used at the object's next pass");
            })
            .ok()
        })
        .flat_map(move |secret| {
            let ns = secret.metadata.namespace.clone().unwrap_or_default();
            let name = secret.metadata.name.clone().unwrap_or_default();
            let users = ctx.secret_users(&ns, &name, |object| {
                store.get(&ObjectRef::new(object).within(&ns)).is_some()
            });
            if !users.is_empty() {
                tracing::info!(secret = %format!("{ns}/{name}"), objects = users.len(), "credentials Secret changed; reconciling the objects that name it");
            }
            futures::stream::iter(
                users
                    .into_iter()
                    .map(move |object| ObjectRef::new(&object).within(&ns)),
            )
        })
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

/// One `Api` per watch scope, with its name for messages: all namespaces, or each one given.
fn scoped<K>(kube: &Client, namespaces: &[String]) -> Vec<(String, Api<K>)>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    if namespaces.is_empty() {
        vec![("all namespaces".to_owned(), Api::all(kube.clone()))]
    } else {
        namespaces
            .iter()
            .map(|ns| (format!("namespace {ns}"), Api::namespaced(kube.clone(), ns)))
            .collect()
    }
}

/// Records which resource claims which Azure account before any pass runs, so that the oldest
/// claim wins whichever resource the controller happens to reconcile first. Pages of 500 keep
/// the read's memory small at any size.
async fn seed_claims(kube: &Client, namespaces: &[String], ctx: &Context) -> Result<(), RunError> {
    use kube::core::DeserializeGuard;
    let scopes = scoped::<DeserializeGuard<crate::crd::MediaServicesAccount>>(kube, namespaces);
    for (scope, api) in scopes {
        let mut params = ListParams::default().limit(500);
        loop {
            let page = api.list(&params).await.map_err(|source| RunError::List {
                scope: scope.clone(),
                source,
            })?;
            ctx.claims.seed(page.items.iter().filter_map(|guard| {
                let account = guard.0.as_ref().ok()?;
                let desired = crate::reconcile::desired::Desired::from_spec(&account.spec).ok()?;
                Some((desired.account.to_string(), Context::claimant(account)))
            }));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
    }
    tracing::info!(
        claims = ctx.claims.len(),
        "recorded which resource manages each Azure account"
    );
    Ok(())
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
    let apis = scoped::<Watched>(&kube, &settings.namespaces);
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
    // Seeded by the instance that reconciles, when it starts to: a standby's view would be stale.
    seed_claims(&kube, &settings.namespaces, &ctx).await?;
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
