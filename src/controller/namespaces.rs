//! The namespace labels the tenancy map's `namespaceSelector` rules match: a metadata-only cache
//! of the cluster's Namespaces (a metadata-only watcher feeding a reflector store), and the triggers
//! that re-reconcile a namespace's accounts as soon as its labels change.
//!
//! Kept only when a tenancy rule selects namespaces by label: without one nobody reads labels and
//! the operator needs no access to namespaces at all. With one it needs get, list and watch on
//! namespaces cluster-wide (the chart grants them only then). A pass reads the cache, never the
//! apiserver; until the first list has arrived it waits a little, then fails closed, saying why.
//!
//! A leaf of the controller: it knows neither the driver nor the context, which hold it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::stream::{BoxStream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::watch;

use crate::tenancy::Tenancy;

/// What the cache holds of a Namespace: its metadata, less managed fields and annotations.
type Meta = PartialObjectMeta<Namespace>;

/// How long a pass waits for the first list of namespaces before it fails closed. Covers a
/// start-up, where the first passes run while the list is still on its way.
pub const SYNC_WAIT: Duration = Duration::from_secs(10);

/// The cache of namespace labels, shared by every pass, and who to tell when labels change.
pub struct NamespaceLabels {
    store: Store<Meta>,
    synced: watch::Receiver<bool>,
    /// Why the watch last failed (e.g. RBAC refused the list), for the fail-closed message.
    last_error: Mutex<Option<String>>,
    /// Where relabelled namespace names go, each with the one namespace it watches, if any.
    sinks: Mutex<Vec<(Option<String>, UnboundedSender<String>)>>,
    /// The writing side, taken by the one [`NamespaceLabels::run`].
    feed: Mutex<Option<Feed>>,
}

struct Feed {
    client: Client,
    writer: Writer<Meta>,
    synced: watch::Sender<bool>,
}

impl NamespaceLabels {
    /// A cache for `tenancy`, if a rule of it selects namespaces by label; `None` otherwise.
    /// Nothing is read until [`Self::run`].
    #[must_use]
    pub fn for_tenancy(kube: &Client, tenancy: Option<&Tenancy>) -> Option<Arc<Self>> {
        if !tenancy.is_some_and(Tenancy::uses_selectors) {
            return None;
        }
        let (store, writer) = kube::runtime::reflector::store();
        let (synced_tx, synced) = watch::channel(false);
        Some(Arc::new(Self {
            store,
            synced,
            last_error: Mutex::new(None),
            sinks: Mutex::new(Vec::new()),
            feed: Mutex::new(Some(Feed {
                client: kube.clone(),
                writer,
                synced: synced_tx,
            })),
        }))
    }

    /// The labels of `namespace`, waiting up to [`SYNC_WAIT`] for the first list.
    ///
    /// # Errors
    /// Why they are unknown (the cache has not synced, or the namespace is not in it), for the
    /// `TenancyDenied` condition: the caller fails closed.
    pub async fn labels(&self, namespace: &str) -> Result<BTreeMap<String, String>, String> {
        let mut synced = self.synced.clone();
        let waited = tokio::time::timeout(SYNC_WAIT, synced.wait_for(|s| *s)).await;
        if !matches!(waited, Ok(Ok(_))) {
            let cause = self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .map_or_else(String::new, |e| format!(" (last error: {e})"));
            return Err(format!(
                "failed to read the labels of namespace {namespace} for the tenancy map: the operator has not listed namespaces yet{cause}; it needs get, list and watch on namespaces, which the chart grants when a tenancy rule uses namespaceSelector"
            ));
        }
        self.store
            .get(&ObjectRef::new(namespace))
            .map(|ns| ns.labels().clone())
            .ok_or_else(|| {
                format!(
                    "failed to read the labels of namespace {namespace} for the tenancy map: the operator has not seen the namespace yet; it is checked again when it does"
                )
            })
    }

    /// Names of namespaces whose labels changed (or that appeared) after the first list; only
    /// `namespace`'s when given.
    pub fn changes(&self, namespace: Option<String>) -> UnboundedReceiver<String> {
        let (tx, rx) = unbounded();
        self.sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((namespace, tx));
        rx
    }

    /// Watches namespaces (metadata only) until `stop`, keeping the cache and telling
    /// [`Self::changes`] of relabelled ones. Watch failures are retried with backoff; a second
    /// call returns at once.
    pub async fn run(self: Arc<Self>, stop: impl Future<Output = ()> + Send) {
        let taken = self
            .feed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(Feed {
            client,
            mut writer,
            synced,
        }) = taken
        else {
            return;
        };
        let events = watcher(Api::<Meta>::all(client), watcher::Config::default())
            .default_backoff()
            .modify(|ns| {
                ns.metadata.managed_fields = None;
                ns.metadata.annotations = None;
            })
            .take_until(stop);
        let mut events = std::pin::pin!(events);
        let mut listed = false;
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(error = %e, "failed to watch namespaces for the tenancy map's namespaceSelector rules; passes that need their labels fail closed (TenancyDenied)");
                    *self
                        .last_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
                    continue;
                }
            };
            // NB: compared before the store takes the event. The first list only fills the
            // cache (every account gets its first pass anyway); after it a relist compares
            // with what the store still serves, so a change made while the watch was down is
            // caught too.
            let relabelled = if listed {
                self.relabelled(&event)
            } else {
                None
            };
            writer.apply_watcher_event(&event);
            if matches!(event, watcher::Event::InitDone) && !listed {
                listed = true;
                *self
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                synced.send_replace(true);
                tracing::info!(
                    namespaces = self.store.len(),
                    "namespace labels cached for the tenancy map"
                );
            }
            if let Some(name) = relabelled {
                self.notify(&name);
            }
        }
    }

    /// The namespace an event brings with labels other than the cache's, if any.
    fn relabelled(&self, event: &watcher::Event<Meta>) -> Option<String> {
        let (watcher::Event::Apply(ns) | watcher::Event::InitApply(ns)) = event else {
            return None;
        };
        let name = ns.name_any();
        let before = self.store.get(&ObjectRef::new(&name));
        (before.map(|b| b.labels().clone()).as_ref() != Some(ns.labels())).then_some(name)
    }

    fn notify(&self, name: &str) {
        let mut sinks = self.sinks.lock().unwrap_or_else(PoisonError::into_inner);
        sinks.retain(|(scope, tx)| {
            scope.as_deref().is_some_and(|s| s != name)
                || tx.unbounded_send(name.to_owned()).is_ok()
        });
    }
}

/// The objects of `objects` in each namespace whose labels change, so that the tenancy map is
/// applied to them at once rather than at their next resync; nothing without a cache.
#[must_use]
pub fn relabelled_objects<K>(
    labels: Option<&NamespaceLabels>,
    namespace: Option<String>,
    objects: Store<K>,
) -> BoxStream<'static, ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let Some(labels) = labels else {
        return futures::stream::empty().boxed();
    };
    labels
        .changes(namespace)
        .flat_map(move |ns| {
            let refs: Vec<ObjectRef<K>> = objects
                .state()
                .iter()
                .filter(|o| o.meta().namespace.as_deref() == Some(ns.as_str()))
                .map(|o| ObjectRef::from_obj(o.as_ref()))
                .collect();
            tracing::info!(namespace = %ns, objects = refs.len(), "namespace labels changed: applying the tenancy map to its resources again");
            futures::stream::iter(refs)
        })
        .boxed()
}
