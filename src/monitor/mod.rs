//! The key-access monitor: one prober per distinct customer key and principal, shared by every
//! account that uses it.
//!
//! A prober is keyed by the credential source that reads (the operator's own identity, or one
//! namespace's Secret with its content: never a client id alone, so a namespace's probes use
//! only its own credential), the vault, the key name, the pinned version (or "latest") and the
//! account identity's principal. Reconciles register their
//! account with the prober of its key ([`KeyMonitor::read`]) and get its latest facts; the
//! background task ([`KeyMonitor::run`]) probes each key on the shortest interval its accounts
//! ask for, reads each subscription's vault list once per round for all keys due in it, never
//! probes one key twice at once, and when a verdict changes re-triggers every account using
//! the key at once. A failed probe keeps the last facts and marks them as failing; it never
//! turns into a verdict.
//!
//! Scheduling and budgets are pure ([`budget`]); this module holds the state and does the I/O.

pub mod budget;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use futures::future::{BoxFuture, FutureExt};
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

use crate::azure::models::authorization::RoleDefinition;
use crate::azure::models::keyvault::Vault;
use crate::azure::{AzureApi, AzureError, CredentialSourceKey};
use crate::reconcile::key_access::{KeyVerdict, diagnose};
use crate::reconcile::observe::{KeyReader, KeyRequest, ObservedKey, probe_key};

pub use budget::Budget;

/// How long a role definition read by a probe is reused (built-in roles never change; custom
/// ones rarely, and a change shows within this bound).
const ROLE_DEFINITION_TTL: Duration = Duration::from_secs(600);
/// Probes due within this window of each other run in the same round (and share vault reads).
const ROUND_WINDOW: Duration = Duration::from_millis(500);
/// After a failed probe, the next one waits at least this long (and at most the interval).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// What the monitor is tuned by.
#[derive(Clone, Debug)]
pub struct MonitorSettings {
    /// How long before a key's expiry its verdict warns (part of the verdict, so crossing into
    /// the horizon re-triggers the accounts).
    pub expiry_horizon: Duration,
    /// Read budgets probes stay within.
    pub budget: Budget,
    /// Probes in flight at once in a round.
    pub concurrency: usize,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        Self {
            expiry_horizon: crate::reconcile::key_access::DEFAULT_EXPIRY_WARNING,
            budget: Budget::default(),
            concurrency: 16,
        }
    }
}

/// Identifies one prober.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeKey {
    /// The credential source that reads; the prober's client always belongs to it.
    pub credential: CredentialSourceKey,
    /// Subscription (lower case).
    pub subscription: String,
    /// Vault name (lower case).
    pub vault: String,
    /// Key name (lower case).
    pub key: String,
    /// Pinned version (lower case), or `None` for the latest.
    pub version: Option<String>,
    /// The account identity's principal (lower case).
    pub principal: String,
}

impl ProbeKey {
    fn new(credential: &CredentialSourceKey, request: &KeyRequest, principal: &str) -> Self {
        Self {
            credential: credential.clone(),
            subscription: request.subscription.to_ascii_lowercase(),
            vault: request.key_id.vault_name.to_ascii_lowercase(),
            key: request.key_id.name.to_ascii_lowercase(),
            version: request
                .key_id
                .version
                .as_ref()
                .map(|v| v.to_ascii_lowercase()),
            principal: principal.to_ascii_lowercase(),
        }
    }

    fn arm_scope(&self) -> String {
        format!("{}|{}", self.credential, self.subscription)
    }
}

/// The last facts a prober found.
#[derive(Clone, Debug)]
struct Probed {
    observed: ObservedKey,
    verdict: KeyVerdict,
    checked_at: Timestamp,
}

struct Prober {
    request: KeyRequest,
    api: Arc<dyn AzureApi>,
    /// Accounts (`namespace/name`) using it, with the interval each asks for.
    users: BTreeMap<String, Duration>,
    last: Option<Probed>,
    /// Why the probes since `last` failed, and since when.
    failing: Option<(Timestamp, String)>,
    /// The interval after budgets.
    effective: Duration,
    next_due: Instant,
    /// Fraction (0 to 0.1) of the first interval skipped, so probers born together spread out.
    phase: f64,
    /// Held while a probe of this key runs: never two at once.
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl Prober {
    fn asked(&self) -> Duration {
        self.users
            .values()
            .copied()
            .min()
            .unwrap_or(Duration::from_secs(30))
    }

    fn fresh(&self, now: Instant, probed_at: Option<Instant>) -> bool {
        probed_at.is_some_and(|at| now.saturating_duration_since(at) < self.effective)
    }
}

#[derive(Default)]
struct State {
    probers: HashMap<ProbeKey, (Prober, Option<Instant>)>,
    /// Which prober each account uses.
    users: HashMap<String, ProbeKey>,
    /// Role definitions read by probes: (credential source, GUID) → definition and when read.
    /// Kept only for sources some prober still reads with.
    roles: HashMap<(CredentialSourceKey, String), (RoleDefinition, Instant)>,
}

/// Counters of the monitor's work.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MonitorStats {
    /// Probers (distinct keys and principals) alive.
    pub probers: usize,
    /// Accounts registered.
    pub users: usize,
    /// Probes run (on demand and scheduled).
    pub probes: u64,
    /// Probes that failed.
    pub failed_probes: u64,
    /// Scheduled rounds run.
    pub rounds: u64,
    /// Accounts re-triggered because their key's verdict changed.
    pub triggers: u64,
    /// The largest factor by which budgets stretched a prober's interval (1: none).
    pub max_stretch: f64,
}

/// A request to reconcile `namespace/name` now.
pub use crate::triggers::Trigger;

/// A prober due in a round: its key, what to read, the client, and its gate.
type Due = (
    ProbeKey,
    KeyRequest,
    Arc<dyn AzureApi>,
    Arc<tokio::sync::Mutex<()>>,
);

/// A subscription's vault list in a round, by ARM scope.
type Listed = (String, Result<Vec<Vault>, String>);

/// The shared key-access monitor.
pub struct KeyMonitor {
    settings: MonitorSettings,
    state: Mutex<State>,
    wake: tokio::sync::Notify,
    sinks: crate::triggers::Sinks,
    probes: AtomicU64,
    failed_probes: AtomicU64,
    rounds: AtomicU64,
    triggers: AtomicU64,
    seed: std::collections::hash_map::RandomState,
    /// Accounts re-triggered because their key's verdict changed, not yet reconciled.
    pending: Mutex<std::collections::HashSet<String>>,
}

impl KeyMonitor {
    /// A monitor with no probers yet.
    #[must_use]
    pub fn new(settings: MonitorSettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            state: Mutex::new(State::default()),
            wake: tokio::sync::Notify::new(),
            sinks: crate::triggers::Sinks::default(),
            probes: AtomicU64::new(0),
            failed_probes: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
            triggers: AtomicU64::new(0),
            seed: std::collections::hash_map::RandomState::new(),
            pending: Mutex::new(std::collections::HashSet::new()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Accounts to reconcile because their key's verdict changed, for accounts in `namespace`
    /// (`None`: all).
    pub fn triggers(&self, namespace: Option<String>) -> UnboundedReceiver<Trigger> {
        self.sinks.subscribe(namespace)
    }

    /// What the monitor has done so far.
    #[must_use]
    pub fn stats(&self) -> MonitorStats {
        let s = self.state();
        let max_stretch = s
            .probers
            .values()
            .map(|(p, _)| p.effective.as_secs_f64() / p.asked().as_secs_f64().max(1.0))
            .fold(1.0, f64::max);
        MonitorStats {
            max_stretch,
            probers: s.probers.len(),
            users: s.users.len(),
            probes: self.probes.load(Ordering::Relaxed),
            failed_probes: self.failed_probes.load(Ordering::Relaxed),
            rounds: self.rounds.load(Ordering::Relaxed),
            triggers: self.triggers.load(Ordering::Relaxed),
        }
    }

    /// When `user` is being reconciled because its key's verdict changed, the facts behind the
    /// new verdict (and the trigger is forgotten): then only the key's part of its status needs
    /// updating.
    pub fn take_update(&self, user: &str) -> Option<ObservedKey> {
        let triggered = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(user);
        if triggered { self.latest(user) } else { None }
    }

    /// What a pass leaves the monitor to do for `user`; the driver says it once per pass, the
    /// deletion and a vanished object included (registration happens as the pass reads its key
    /// through [`MonitoredKeys`]).
    pub fn follow(&self, user: &str, follow: Follow) {
        match follow {
            Follow::Untrack => {
                self.pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(user);
                self.unregister(user);
            }
            Follow::Refresh => self.invalidate(user),
            Follow::Keep => {}
        }
    }

    /// The latest facts of `user`'s key, however old (with their freshness).
    #[must_use]
    fn latest(&self, user: &str) -> Option<ObservedKey> {
        let s = self.state();
        let key = s.users.get(user)?;
        let (p, _) = s.probers.get(key)?;
        let last = p.last.as_ref()?;
        let mut observed = last.observed.clone();
        observed.probe.checked_at = Some(last.checked_at);
        observed.probe.failing = p
            .failing
            .as_ref()
            .map(|(since, why)| format!("{why} (failing since {since})"));
        observed.probe.stretched_to = (p.effective > p.asked()).then_some(p.effective);
        Some(observed)
    }

    /// The account no longer uses a customer key (or is gone): it leaves its prober, and a
    /// prober left without accounts is dropped.
    fn unregister(&self, user: &str) {
        let mut s = self.state();
        if let Some(key) = s.users.remove(user) {
            Self::leave(&mut s, user, &key);
        }
        drop(s);
        self.rebudget();
    }

    /// The account just changed something its key's facts depend on (a grant, its identity):
    /// its prober's facts are stale, so the next read probes.
    fn invalidate(&self, user: &str) {
        let mut s = self.state();
        if let Some(key) = s.users.get(user).cloned()
            && let Some((_, probed_at)) = s.probers.get_mut(&key)
        {
            *probed_at = None;
        }
    }

    fn leave(s: &mut State, user: &str, key: &ProbeKey) {
        let empty = s.probers.get_mut(key).is_some_and(|(p, _)| {
            p.users.remove(user);
            p.users.is_empty()
        });
        if empty {
            s.probers.remove(key);
            // The source's role definitions go with its last prober.
            if !s.probers.keys().any(|k| k.credential == key.credential) {
                s.roles.retain(|(c, _), _| *c != key.credential);
            }
        }
    }

    /// Registers `user` with the prober of `request` (reading as source `credential`, asking for
    /// `interval`) and returns the prober's facts: the latest ones when they are fresh, else
    /// from a probe now. `force` always probes (a reconcile someone asked for).
    ///
    /// # Errors
    /// The probe's error when it failed and no earlier facts exist; with earlier facts, a
    /// failure returns those, marked as failing.
    pub async fn read(
        &self,
        user: &str,
        credential: &CredentialSourceKey,
        api: Arc<dyn AzureApi>,
        request: &KeyRequest,
        interval: Duration,
        force: bool,
    ) -> Result<ObservedKey, AzureError> {
        let Some(principal) = request.principal.clone() else {
            // No principal yet: nothing to share; read directly.
            self.unregister(user);
            return crate::reconcile::observe::DirectKeys(api.as_ref())
                .read_key(request)
                .await;
        };
        let key = ProbeKey::new(credential, request, &principal);
        let gate = self.register(user, &key, api.clone(), request, interval);
        let now = Instant::now();
        if !force && let Some(found) = self.cached(&key, now) {
            return found;
        }
        let _held = gate.lock().await;
        // Another probe may have finished while this one waited for the gate.
        if !force && let Some(found) = self.cached(&key, now) {
            return found;
        }
        let (changed, outcome) = self.probe_one(&key, api.as_ref(), request, None).await;
        if let Some(users) = changed {
            self.trigger(users.into_iter().filter(|u| u != user));
        }
        match (self.cached(&key, Instant::now()), outcome) {
            (Some(found), _) => found,
            // No earlier facts to fall back on (or the prober was dropped meanwhile).
            (None, Err(e)) => Err(e),
            (None, Ok(observed)) => Ok(observed),
        }
    }

    fn register(
        &self,
        user: &str,
        key: &ProbeKey,
        api: Arc<dyn AzureApi>,
        request: &KeyRequest,
        interval: Duration,
    ) -> Arc<tokio::sync::Mutex<()>> {
        let mut s = self.state();
        let moved = s.users.get(user).filter(|k| *k != key).cloned();
        if let Some(old) = moved {
            Self::leave(&mut s, user, &old);
        }
        s.users.insert(user.to_owned(), key.clone());
        let (prober, _) = s.probers.entry(key.clone()).or_insert_with(|| {
            (
                Prober {
                    request: request.clone(),
                    api: api.clone(),
                    users: BTreeMap::new(),
                    last: None,
                    failing: None,
                    effective: interval,
                    next_due: Instant::now() + interval,
                    phase: spread(&self.seed, key),
                    gate: Arc::new(tokio::sync::Mutex::new(())),
                },
                None,
            )
        });
        // The newest client of the prober's source (the source's cache entry may have been
        // rebuilt); never another source's, which is another prober.
        prober.api = api;
        let before = prober.users.insert(user.to_owned(), interval);
        let gate = prober.gate.clone();
        drop(s);
        if before != Some(interval) {
            self.rebudget();
            self.wake.notify_one();
        }
        gate
    }

    /// The prober's facts if fresh (or failing recently, with earlier facts).
    fn cached(&self, key: &ProbeKey, now: Instant) -> Option<Result<ObservedKey, AzureError>> {
        let s = self.state();
        let (p, probed_at) = s.probers.get(key)?;
        if !p.fresh(now, *probed_at) {
            return None;
        }
        let last = p.last.as_ref()?;
        let mut observed = last.observed.clone();
        observed.probe.checked_at = Some(last.checked_at);
        observed.probe.failing = p
            .failing
            .as_ref()
            .map(|(since, why)| format!("{why} (failing since {since})"));
        observed.probe.stretched_to = (p.effective > p.asked()).then_some(p.effective);
        Some(Ok(observed))
    }

    /// Probes one key and records the outcome. Returns the users to re-trigger (the verdict
    /// changed, or probes started or stopped failing) and the probe's own result.
    async fn probe_one(
        &self,
        key: &ProbeKey,
        api: &dyn AzureApi,
        request: &KeyRequest,
        vaults: Option<&[Vault]>,
    ) -> (Option<Vec<String>>, Result<ObservedKey, AzureError>) {
        self.probes.fetch_add(1, Ordering::Relaxed);
        let known_role = |guid: &str| {
            let s = self.state();
            s.roles
                .get(&(key.credential.clone(), guid.to_ascii_lowercase()))
                .filter(|(_, at)| at.elapsed() < ROLE_DEFINITION_TTL)
                .map(|(d, _)| d.clone())
        };
        let started = Instant::now();
        let span =
            tracing::debug_span!("probe", key = %request.key_id.raw, principal = %key.principal);
        let result =
            tracing::Instrument::instrument(probe_key(api, request, vaults, &known_role), span)
                .await;
        let now = Timestamp::now();
        let mut s = self.state();
        if let Ok(observed) = &result {
            for d in &observed.role_definitions {
                if let Some(name) = &d.name {
                    s.roles.insert(
                        (key.credential.clone(), name.to_ascii_lowercase()),
                        (d.clone(), started),
                    );
                }
            }
        }
        let Some((p, probed_at)) = s.probers.get_mut(key) else {
            return (None, result);
        };
        match result {
            Ok(observed) => {
                let verdict = diagnose(&observed, now, self.settings.expiry_horizon);
                let changed = p.last.as_ref().is_some_and(|l| {
                    l.verdict != verdict
                        || l.observed.key.as_ref().map(|k| &k.version)
                            != observed.key.as_ref().map(|k| &k.version)
                });
                let recovered = p.failing.take().is_some();
                p.last = Some(Probed {
                    observed: observed.clone(),
                    verdict,
                    checked_at: now,
                });
                *probed_at = Some(started);
                p.next_due = started + p.effective.mul_f64(1.0 - p.phase);
                // The phase offset spreads probers created together; it applies once, so the
                // interval between probes never exceeds the asked one.
                p.phase = 0.0;
                let users = (changed || recovered).then(|| p.users.keys().cloned().collect());
                (users, Ok(observed))
            }
            Err(e) => {
                self.failed_probes.fetch_add(1, Ordering::Relaxed);
                let why = format!("{}: {e}", e.reason());
                tracing::warn!(key = %request.key_id.raw, principal = %key.principal, error = %why, "key probe failed; keeping the last verdict");
                let first = p.failing.is_none();
                if first {
                    p.failing = Some((now, why));
                }
                let wait = e
                    .retry_after()
                    .unwrap_or(RETRY_AFTER_FAILURE)
                    .clamp(RETRY_AFTER_FAILURE, p.effective.max(RETRY_AFTER_FAILURE));
                p.next_due = started + wait;
                // Earlier facts stay; they are reported as failing from now on. Without
                // earlier facts there is nothing to serve.
                if p.last.is_some() {
                    *probed_at = Some(started);
                } else {
                    *probed_at = None;
                }
                let users: Option<Vec<String>> =
                    (first && p.last.is_some()).then(|| p.users.keys().cloned().collect());
                if matches!(e, AzureError::CredentialsRejected { .. })
                    && let Some(users) = users
                {
                    drop(s);
                    // A refused credential is no fact about the key: its accounts get a full
                    // pass, whose own Azure calls put the refusal on `Ready`.
                    self.send(users, false);
                    return (None, Err(e));
                }
                (users, Err(e))
            }
        }
    }

    /// Recomputes every prober's effective interval from the budgets; logs changes.
    fn rebudget(&self) {
        let mut s = self.state();
        let keys: Vec<ProbeKey> = s.probers.keys().cloned().collect();
        let loads: Vec<budget::Load> = keys
            .iter()
            .map(|k| {
                let (p, _) = &s.probers[k];
                let rbac = p.last.as_ref().is_some_and(|l| {
                    matches!(&l.observed.vault, crate::reconcile::observe::VaultLookup::Found(v)
                        if v.properties.enable_rbac_authorization == Some(true))
                });
                budget::Load {
                    arm_scope: k.arm_scope(),
                    vault_scope: format!("{}|{}", k.credential, k.vault),
                    interval: p.asked(),
                    arm_reads: u32::from(rbac),
                    vault_reads: 1,
                }
            })
            .collect();
        let effective = budget::effective_intervals(&loads, &self.settings.budget);
        for (k, e) in keys.iter().zip(effective) {
            if let Some((p, _)) = s.probers.get_mut(k)
                && p.effective != e
            {
                if e > p.asked() {
                    tracing::info!(key = %p.request.key_id.raw, asked = ?p.asked(), effective = ?e, "key probes stretched to stay within the read budget");
                } else if p.effective > p.asked() {
                    tracing::info!(key = %p.request.key_id.raw, interval = ?e, "key probes back to the asked interval");
                }
                let was = p.effective;
                p.effective = e;
                if e < was {
                    p.next_due = p.next_due.min(Instant::now() + e);
                }
            }
        }
    }

    fn trigger(&self, users: impl IntoIterator<Item = String>) {
        self.send(users, true);
    }

    /// Re-triggers `users`; `key_only`: their passes may update only the key's part of status
    /// ([`Self::take_update`]).
    fn send(&self, users: impl IntoIterator<Item = String>, key_only: bool) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for user in users {
            if key_only {
                pending.insert(user.clone());
            }
            if self.sinks.send(&user) {
                self.triggers.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Runs scheduled probe rounds until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let next = {
                let s = self.state();
                s.probers.values().map(|(p, _)| p.next_due).min()
            };
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = self.wake.notified() => continue,
                () = sleep => {}
            }
            self.round().await;
        }
    }

    /// One round: every prober due (within [`ROUND_WINDOW`]), one vault list per credential and
    /// subscription, probes with bounded concurrency; then the triggers.
    async fn round(&self) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        let horizon = Instant::now() + ROUND_WINDOW;
        let due: Vec<Due> = {
            let mut s = self.state();
            // Probers of a subscription with one due come along when they are nearly due (a
            // tenth of their interval early): they share its vault list, and probing a little
            // early never delays detection.
            let now = Instant::now();
            let scopes_due: BTreeSet<String> = s
                .probers
                .iter()
                .filter(|(_, (p, _))| p.next_due <= horizon)
                .map(|(k, _)| k.arm_scope())
                .collect();
            s.probers
                .iter_mut()
                .filter(|(k, (p, _))| {
                    p.next_due <= horizon
                        || (scopes_due.contains(&k.arm_scope())
                            && p.next_due <= now + p.effective / 10)
                })
                .map(|(k, (p, _))| {
                    // Not due again until this round has probed it (or given up on it).
                    p.next_due = Instant::now() + p.effective;
                    (k.clone(), p.request.clone(), p.api.clone(), p.gate.clone())
                })
                .collect()
        };
        if due.is_empty() {
            return;
        }
        // One vault list per (credential, subscription) in the round.
        let mut scopes: BTreeMap<String, (String, Arc<dyn AzureApi>)> = BTreeMap::new();
        for (k, r, api, _) in &due {
            scopes
                .entry(k.arm_scope())
                .or_insert_with(|| (r.subscription.clone(), api.clone()));
        }
        let n = self.settings.concurrency.max(1);
        let lists: Vec<BoxFuture<'_, Listed>> = scopes
            .into_iter()
            .map(|(scope, (sub, api))| {
                async move {
                    let vaults = api.list_vaults(&sub).await.map_err(|e| e.to_string());
                    (scope, vaults)
                }
                .boxed()
            })
            .collect();
        let listed: BTreeMap<String, Result<Vec<Vault>, String>> = futures::stream::iter(lists)
            .buffer_unordered(n)
            .collect()
            .await;
        let listed = &listed;
        let probes: Vec<BoxFuture<'_, Option<Vec<String>>>> = due
            .into_iter()
            .map(|(k, r, api, gate)| {
                async move {
                    // A reconcile probing this key right now makes this round's probe redundant.
                    let Ok(_held) = gate.try_lock() else {
                        return None;
                    };
                    // When the shared list failed, the probe lists on its own (and records
                    // the failure).
                    let vaults = match listed.get(&k.arm_scope()) {
                        Some(Ok(v)) => Some(v.as_slice()),
                        _ => None,
                    };
                    self.probe_one(&k, api.as_ref(), &r, vaults).await.0
                }
                .boxed()
            })
            .collect();
        let changed: Vec<Vec<String>> = futures::stream::iter(probes)
            .buffer_unordered(n)
            .filter_map(|c| async move { c })
            .collect()
            .await;
        let users: BTreeSet<String> = changed.into_iter().flatten().collect();
        if !users.is_empty() {
            tracing::info!(
                accounts = users.len(),
                "key verdicts changed; reconciling their accounts"
            );
            self.trigger(users);
        }
    }
}

/// A number in `[0, 0.1)` per (credential, subscription): probers that share a vault list keep
/// one phase, so they stay in one round; other subscriptions spread out. `seed` differs between
/// processes.
fn spread(seed: &std::collections::hash_map::RandomState, key: &ProbeKey) -> f64 {
    use std::hash::BuildHasher;
    // NB: RandomState is seeded randomly: enough for jitter without another crate.
    let h = seed.hash_one(key.arm_scope());
    #[allow(clippy::cast_precision_loss)]
    let unit = (h % 1_000_000) as f64 / 1_000_000.0;
    unit * 0.1
}

/// What a pass leaves the key monitor to do for its account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    /// The account uses no customer key the operator checks (any more), or is gone: it leaves
    /// its prober, which goes when no account is left.
    Untrack,
    /// Something is still moving (a write just made, a grant propagating, a retry): the next
    /// pass reads the key's facts afresh.
    Refresh,
    /// Settled: the prober's facts serve the next pass.
    Keep,
}

/// The monitor as the observe step's [`KeyReader`], for one account's reconcile.
pub struct MonitoredKeys<'a> {
    /// The monitor.
    pub monitor: &'a KeyMonitor,
    /// The account (`namespace/name`).
    pub user: String,
    /// The credential's source.
    pub credential: CredentialSourceKey,
    /// The client acting as it.
    pub api: Arc<dyn AzureApi>,
    /// The interval the account asks for.
    pub interval: Duration,
    /// Probe now, whatever the cache holds.
    pub force: bool,
}

#[async_trait]
impl KeyReader for MonitoredKeys<'_> {
    async fn read_key(&self, request: &KeyRequest) -> Result<ObservedKey, AzureError> {
        self.monitor
            .read(
                &self.user,
                &self.credential,
                self.api.clone(),
                request,
                self.interval,
                self.force,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::desired::KeyId;
    use crate::reconcile::fake::FakeAzure;
    use crate::reconcile::fixtures::*;

    const KEY: &str = "https://media-kv.vault.azure.net/keys/account-key";
    const OTHER_KEY: &str = "https://media-kv.vault.azure.net/keys/other-key";
    const INTERVAL: Duration = Duration::from_secs(30);

    fn fake() -> Arc<FakeAzure> {
        let fake = FakeAzure::default();
        let mut v = vault("media-kv", false);
        v.properties.access_policies = vec![
            policy(PRINCIPAL, &["get", "wrapKey", "unwrapKey"]),
            policy(UAI_PRINCIPAL, &["get", "wrapKey", "unwrapKey"]),
        ];
        *fake.vaults.lock().expect("lock") = vec![v];
        for name in ["account-key", "other-key"] {
            fake.keys
                .lock()
                .expect("lock")
                .insert(name.into(), rsa_key(name, "v1", 2048));
        }
        Arc::new(fake)
    }

    fn request(key: &str, principal: &str) -> KeyRequest {
        KeyRequest {
            subscription: SUB.into(),
            location: "westeurope".into(),
            key_id: KeyId::parse(key).expect("key id"),
            principal: Some(principal.into()),
        }
    }

    async fn read(
        m: &KeyMonitor,
        api: &Arc<FakeAzure>,
        user: &str,
        r: &KeyRequest,
        force: bool,
    ) -> ObservedKey {
        m.read(
            user,
            &CredentialSourceKey::Operator,
            api.clone(),
            r,
            INTERVAL,
            force,
        )
        .await
        .expect("read")
    }

    /// Accounts that use the same key and principal share one prober: one read of the vault
    /// and the key for both; another principal or key is another prober.
    #[tokio::test]
    async fn accounts_sharing_a_key_and_principal_share_one_probe() {
        let m = KeyMonitor::new(MonitorSettings::default());
        let api = fake();
        let r = request(KEY, PRINCIPAL);
        let a = read(&m, &api, "ns/a", &r, false).await;
        let b = read(&m, &api, "ns/b", &r, false).await;
        assert_eq!(a.key, b.key);
        assert_eq!(api.reads_of("GET key"), 1);
        assert_eq!(api.reads_of("LIST vaults"), 1);
        assert_eq!((m.stats().probers, m.stats().users), (1, 2));

        read(&m, &api, "ns/c", &request(KEY, UAI_PRINCIPAL), false).await;
        read(&m, &api, "ns/d", &request(OTHER_KEY, PRINCIPAL), false).await;
        assert_eq!(m.stats().probers, 3);
        assert_eq!(api.reads_of("GET key"), 3);

        // A forced read (a reconcile someone asked for) probes whatever the cache holds.
        read(&m, &api, "ns/a", &r, true).await;
        assert_eq!(api.reads_of("GET key"), 4);

        // Accounts leave; the prober goes with its last account.
        m.unregister("ns/a");
        assert_eq!(m.stats().probers, 3);
        m.unregister("ns/b");
        assert_eq!(m.stats().probers, 2);
        // Moving to another key leaves the old prober.
        read(&m, &api, "ns/c", &request(OTHER_KEY, UAI_PRINCIPAL), false).await;
        assert_eq!((m.stats().probers, m.stats().users), (2, 2));
    }

    /// Two namespaces whose Secrets hold the same application's secrets are two sources: each
    /// key probe goes through its own namespace's client, whoever registered last; accounts of
    /// one source and key still share a probe; a Secret's new content is a new source, and the
    /// old one's prober goes with its last account.
    #[tokio::test]
    async fn probes_use_only_their_own_sources_client_and_share_within_a_source() {
        let m = KeyMonitor::new(MonitorSettings::default());
        let (team_a, team_b) = (fake(), fake());
        let source = |ns: &str, fingerprint| CredentialSourceKey::Secret {
            namespace: ns.into(),
            name: "azure-creds".into(),
            fingerprint,
        };
        let r = request(KEY, PRINCIPAL);
        let read_as =
            |user: &'static str, key: CredentialSourceKey, api: &Arc<FakeAzure>, force| {
                let (m, api, r) = (m.clone(), api.clone(), r.clone());
                async move {
                    m.read(user, &key, api, &r, INTERVAL, force)
                        .await
                        .expect("read")
                }
            };
        read_as("team-a/x", source("team-a", 1), &team_a, false).await;
        read_as("team-b/y", source("team-b", 1), &team_b, false).await;
        assert_eq!(m.stats().probers, 2, "one prober per source");
        read_as("team-a/x", source("team-a", 1), &team_a, true).await;
        assert_eq!(
            (team_a.reads_of("GET key"), team_b.reads_of("GET key")),
            (2, 1),
            "team-a's probe went through team-b's client"
        );
        read_as("team-a/z", source("team-a", 1), &team_a, false).await;
        assert_eq!((m.stats().probers, team_a.reads_of("GET key")), (2, 2));
        read_as("team-a/x", source("team-a", 2), &team_a, false).await;
        read_as("team-a/z", source("team-a", 2), &team_a, false).await;
        assert_eq!(
            (m.stats().probers, m.stats().users),
            (2, 3),
            "the old content's prober went with its last account"
        );
    }

    /// Scheduled rounds probe each key once per interval, list the vaults once for all keys of
    /// the subscription, and re-trigger every account of a key whose verdict changed.
    #[tokio::test(start_paused = true)]
    async fn a_round_shares_the_vault_list_and_retriggers_the_accounts_of_a_changed_key() {
        let m = KeyMonitor::new(MonitorSettings::default());
        let mut triggers = m.triggers(Some("ns".into()));
        let mut elsewhere = m.triggers(Some("other".into()));
        let api = fake();
        let r = request(KEY, PRINCIPAL);
        read(&m, &api, "ns/a", &r, false).await;
        read(&m, &api, "ns/b", &r, false).await;
        read(&m, &api, "ns/c", &request(OTHER_KEY, PRINCIPAL), false).await;
        assert_eq!(api.reads_of("LIST vaults"), 2);
        let runner = tokio::spawn(m.clone().run(std::future::pending()));

        // One interval later: one round, one vault list, one probe per key, no triggers.
        tokio::time::sleep(INTERVAL + Duration::from_secs(1)).await;
        assert_eq!(api.reads_of("GET key"), 4);
        assert_eq!(api.reads_of("LIST vaults"), 3);
        assert!(
            triggers.try_recv().is_err(),
            "nothing changed, nothing triggered"
        );

        // The shared key is disabled out of band: the next round triggers both its accounts.
        api.keys
            .lock()
            .expect("lock")
            .get_mut("account-key")
            .expect("key")
            .enabled = false;
        tokio::time::sleep(INTERVAL).await;
        let mut got = vec![
            triggers.next().await.expect("trigger"),
            triggers.next().await.expect("trigger"),
        ];
        got.sort();
        assert_eq!(
            got,
            vec![("ns".into(), "a".into()), ("ns".into(), "b".into())]
        );
        assert!(triggers.try_recv().is_err(), "the other key did not change");
        assert!(elsewhere.try_recv().is_err(), "another namespace's sink");
        // Its facts are what the accounts' reconciles now read, from the cache.
        let before = api.reads_of("GET key");
        let seen = read(&m, &api, "ns/a", &r, false).await;
        assert!(!seen.key.expect("key").enabled);
        assert_eq!(api.reads_of("GET key"), before);
        runner.abort();
    }

    /// A failed probe keeps the last facts, marks them failing (once, with a trigger so the
    /// accounts can say so), and never becomes a verdict; the next success clears it.
    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_keeps_the_last_facts_and_reports_staleness() {
        let m = KeyMonitor::new(MonitorSettings::default());
        let mut triggers = m.triggers(None);
        let api = fake();
        let r = request(KEY, PRINCIPAL);
        let good = read(&m, &api, "ns/a", &r, false).await;
        assert_eq!(good.probe.failing, None);
        *api.fail_reads.lock().expect("lock") = Some((429, "TooManyRequests"));
        let stale = read(&m, &api, "ns/b", &r, true).await;
        assert_eq!(stale.key, good.key, "the last facts are kept");
        let failing = stale.probe.failing.expect("marked failing");
        assert!(failing.contains("TooManyRequests"), "{failing}");
        // The other account hears of it.
        assert_eq!(
            triggers.next().await.expect("trigger"),
            ("ns".into(), "a".into())
        );
        // No earlier facts at all: the error itself.
        let other = m
            .read(
                "ns/c",
                &CredentialSourceKey::Operator,
                api.clone(),
                &request(OTHER_KEY, PRINCIPAL),
                INTERVAL,
                false,
            )
            .await;
        assert!(other.is_err());
        // Recovery: the next probe clears the mark.
        *api.fail_reads.lock().expect("lock") = None;
        let fresh = read(&m, &api, "ns/a", &r, true).await;
        assert_eq!(fresh.probe.failing, None);
        assert_eq!(m.stats().failed_probes, 2);
    }

    /// Probes of one key never overlap: concurrent reads of a stale key wait for one probe.
    #[tokio::test]
    async fn concurrent_reads_of_one_key_run_one_probe() {
        let m = KeyMonitor::new(MonitorSettings::default());
        let api = fake();
        let r = request(KEY, PRINCIPAL);
        let reads = (0..8).map(|i| {
            let m = m.clone();
            let api = api.clone();
            let r = r.clone();
            async move { read(&m, &api, &format!("ns/a{i}"), &r, false).await }
        });
        futures::future::join_all(reads).await;
        assert_eq!(api.reads_of("GET key"), 1);
        assert_eq!(m.stats().users, 8);
    }

    /// Many keys in one subscription past the ARM read share stretch their interval; it shows
    /// in the facts handed to the accounts.
    #[tokio::test]
    async fn probes_past_the_read_budget_stretch_and_say_so() {
        let m = KeyMonitor::new(MonitorSettings {
            budget: Budget {
                arm_reads_per_hour: 100.0,
                vault_reads_per_hour: 1e9,
                share: 1.0,
            },
            ..MonitorSettings::default()
        });
        let api = fake();
        // One vault list per 30 s round is 120 reads an hour against 100 allowed.
        let seen = read(&m, &api, "ns/a", &request(KEY, PRINCIPAL), false).await;
        let stretched = seen.probe.stretched_to.expect("stretched");
        assert_eq!(stretched, Duration::from_secs(36));
    }
}
