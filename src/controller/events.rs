//! The one event recorder: a Normal event for every Azure write and every condition that moves
//! to its good state, a Warning for every condition that moves to its bad state and for failed
//! Azure calls. Notes are bounded and never carry tokens (Azure error messages do not).
//!
//! Events go to `events.k8s.io/v1` directly rather than through kube's `Recorder`, for two
//! reasons measured on this operator: that recorder keeps a full copy of every event it sent in
//! the last six minutes (at 10,000 accounts a cold start sends tens of thousands, which was most
//! of the operator's memory), and it folds events of one reason and action into a series that
//! keeps the first event's note, so a later, different note was never shown. Here a series is
//! only an exact repeat (same object, type, reason, action and note), and what is remembered of
//! each is its name, count and time, in a bounded table.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
pub use kube::runtime::events::EventType;

use crate::crd::conditions::{reasons, types};

/// Longest event note (the API allows 1 kB).
const MAX_NOTE: usize = 1000;

/// How long a sent event may still be continued as a series (as kube and client-go do).
const SERIES_TTL: Duration = Duration::from_secs(6 * 60);

/// Most events remembered for series at once; the oldest go first beyond it. An event that is
/// forgotten early is sent again as a new event instead of continuing its series.
const MAX_REMEMBERED: usize = 4096;

/// Publishes events for `MediaServicesAccount` objects.
#[derive(Clone)]
pub struct Events {
    client: kube::Client,
    controller: String,
    instance: String,
    sent: Arc<Mutex<Sent>>,
}

impl Events {
    /// A recorder reporting as `controller`.
    #[must_use]
    pub fn new(client: kube::Client, controller: &str) -> Self {
        let instance = std::env::var("POD_NAME")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| controller.to_owned());
        Self {
            client,
            controller: controller.to_owned(),
            instance,
            sent: Arc::new(Mutex::new(Sent::new(MAX_REMEMBERED, SERIES_TTL))),
        }
    }

    /// Publishes one event; a failure is logged, never fatal.
    pub async fn publish(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let note = bounded(note);
        let key = self.sent_key(reference, type_, reason, action, note);
        let namespace = reference.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let now = Timestamp::now();
        let repeat = self.remember(|sent| sent.repeat(key, Instant::now()));
        if let Some((name, count)) = repeat {
            let patch = serde_json::json!({
                "series": { "count": count, "lastObservedTime": MicroTime(now) }
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return,
                // The apiserver let the event expire: send it anew.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    tracing::warn!(error = %e, reason, "failed to publish event");
                    return;
                }
            }
        }
        let event = self.event(reference, type_, reason, action, note, now);
        let name = event.metadata.name.clone().unwrap_or_default();
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => self.remember(|sent| sent.insert(key, name, Instant::now())),
            Err(e) => tracing::warn!(error = %e, reason, "failed to publish event"),
        }
    }

    /// Events for the conditions whose status changed between `before` and `after`.
    pub async fn transitions(
        &self,
        reference: &ObjectReference,
        before: &[Condition],
        after: &[Condition],
    ) {
        for t in transition_events(before, after) {
            self.publish(reference, t.type_, &t.reason, "Reconcile", &t.note)
                .await;
        }
    }

    fn remember<T>(&self, f: impl FnOnce(&mut Sent) -> T) -> T {
        // The table is never left half-changed, so a panic elsewhere cannot poison its meaning.
        let mut sent = self
            .sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut sent)
    }

    fn sent_key(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) -> u64 {
        let mut h = self.remember(|sent| sent.hasher.build_hasher());
        (
            &reference.api_version,
            &reference.kind,
            &reference.namespace,
            &reference.name,
            &reference.uid,
        )
            .hash(&mut h);
        matches!(type_, EventType::Warning).hash(&mut h);
        (reason, action, note).hash(&mut h);
        h.finish()
    }

    fn event(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
        now: Timestamp,
    ) -> K8sEvent {
        let object = reference.name.as_deref().unwrap_or(&self.controller);
        K8sEvent {
            action: Some(action.to_owned()),
            reason: Some(reason.to_owned()),
            event_time: Some(MicroTime(now)),
            regarding: Some(reference.clone()),
            note: Some(note.to_owned()),
            metadata: ObjectMeta {
                namespace: reference.namespace.clone(),
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(
                match type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            ..K8sEvent::default()
        }
    }
}

/// `note` cut to the API's limit, on a character boundary.
fn bounded(note: &str) -> &str {
    if note.len() <= MAX_NOTE {
        return note;
    }
    let mut cut = MAX_NOTE;
    while !note.is_char_boundary(cut) {
        cut -= 1;
    }
    &note[..cut]
}

/// The events sent recently enough to be continued as a series: name, count, last time.
struct Sent {
    hasher: std::collections::hash_map::RandomState,
    entries: HashMap<u64, SentEvent>,
    max: usize,
    ttl: Duration,
    last_sweep: Option<Instant>,
}

struct SentEvent {
    name: String,
    count: i32,
    last: Instant,
}

impl Sent {
    fn new(max: usize, ttl: Duration) -> Self {
        Self {
            hasher: std::collections::hash_map::RandomState::new(),
            entries: HashMap::new(),
            max,
            ttl,
            last_sweep: None,
        }
    }

    /// For an event sent before and still within the TTL: its name and the series count this
    /// repeat makes it.
    fn repeat(&mut self, key: u64, now: Instant) -> Option<(String, i32)> {
        self.sweep(now);
        let ttl = self.ttl;
        let e = self
            .entries
            .get_mut(&key)
            .filter(|e| now.duration_since(e.last) < ttl)?;
        e.count = e.count.saturating_add(1);
        e.last = now;
        Some((e.name.clone(), e.count))
    }

    fn insert(&mut self, key: u64, name: String, now: Instant) {
        self.sweep(now);
        if self.entries.len() >= self.max {
            // Forget the oldest quarter at once, so this costs O(1) per insert on average.
            let mut ages: Vec<Instant> = self.entries.values().map(|e| e.last).collect();
            let nth = ages.len() / 4;
            let (_, cutoff, _) = ages.select_nth_unstable(nth);
            let cutoff = *cutoff;
            self.entries.retain(|_, e| e.last > cutoff);
        }
        self.entries.insert(
            key,
            SentEvent {
                name,
                count: 1,
                last: now,
            },
        );
    }

    /// Drops what is past the TTL, at most once a tenth of the TTL, and gives the memory back
    /// when the table has shrunk well below what it holds.
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|at| now.duration_since(at) < self.ttl / 10)
        {
            return;
        }
        self.last_sweep = Some(now);
        let ttl = self.ttl;
        self.entries.retain(|_, e| now.duration_since(e.last) < ttl);
        if self.entries.capacity() > 64 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to_fit();
        }
    }
}

/// One event a condition change calls for.
#[derive(Debug, PartialEq, Eq)]
pub struct Transition {
    /// Normal or Warning.
    pub type_: EventType,
    /// The event's reason.
    pub reason: String,
    /// The event's note.
    pub note: String,
}

/// The events for the conditions that changed between `before` and `after`.
///
/// - `Reconciling` and `Stalled` only restate `Ready` (for tools that read kstatus), so they
///   send none of their own.
/// - A condition seen for the first time sends an event only in its bad state; an account that
///   comes up healthy sends one event, for `Ready`, not one per condition.
/// - A change of status sends one, and so does a key's new expiry warning.
#[must_use]
pub fn transition_events(before: &[Condition], after: &[Condition]) -> Vec<Transition> {
    let mut out = Vec::new();
    for c in after.iter().filter(|c| {
        types::ALL.contains(&c.type_.as_str())
            && c.type_ != types::RECONCILING
            && c.type_ != types::STALLED
    }) {
        let old = before.iter().find(|b| b.type_ == c.type_);
        // A warning reason on a good condition (a key about to expire) is news too.
        let warning = c.reason == reasons::KEY_EXPIRING_SOON;
        if old.is_some_and(|o| o.status == c.status && !(warning && o.reason != c.reason)) {
            continue;
        }
        let bad = warning
            || if c.type_ == types::CUSTOMER_KEY_INACCESSIBLE {
                c.status == "True"
            } else {
                c.status == "False"
            };
        if old.is_none() && !bad && c.type_ != types::READY {
            continue;
        }
        // Recovery of key access gets a name of its own, so alerts can match on it.
        let reason = if c.type_ == types::CUSTOMER_KEY_INACCESSIBLE
            && !bad
            && old.is_some_and(|o| o.status == "True")
        {
            "CustomerKeyAccessRestored".to_owned()
        } else {
            c.reason.clone()
        };
        out.push(Transition {
            type_: if bad {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason,
            note: format!("{} is {}: {}", c.type_, c.status, c.message),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::conditions::key_access;

    fn cond(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: format!("{type_} message"),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::UNIX_EPOCH,
            ),
            observed_generation: Some(1),
        }
    }

    fn healthy() -> Vec<Condition> {
        vec![
            cond(types::READY, "True", reasons::SUCCEEDED),
            cond(types::IDENTITY_READY, "True", reasons::SUCCEEDED),
            cond(types::ENCRYPTION_READY, "True", reasons::KEY_ACCESSIBLE),
            cond(
                types::CUSTOMER_KEY_INACCESSIBLE,
                "False",
                reasons::KEY_ACCESSIBLE,
            ),
            cond(types::RECONCILING, "False", reasons::SUCCEEDED),
            cond(types::STALLED, "False", reasons::SUCCEEDED),
        ]
    }

    fn summary(t: &[Transition]) -> Vec<(bool, &str)> {
        t.iter()
            .map(|t| (matches!(t.type_, EventType::Warning), t.reason.as_str()))
            .collect()
    }

    #[test]
    fn a_healthy_first_pass_sends_one_event_for_ready() {
        let t = transition_events(&[], &healthy());
        assert_eq!(summary(&t), [(false, reasons::SUCCEEDED)]);
        assert!(t[0].note.starts_with("Ready is True"), "{}", t[0].note);
    }

    #[test]
    fn a_bad_first_state_is_a_warning_per_condition() {
        let mut after = healthy();
        after[0] = cond(types::READY, "False", key_access::ACCESS_REVOKED);
        after[2] = cond(types::ENCRYPTION_READY, "False", key_access::ACCESS_REVOKED);
        after[3] = cond(
            types::CUSTOMER_KEY_INACCESSIBLE,
            "True",
            key_access::ACCESS_REVOKED,
        );
        let t = transition_events(&[], &after);
        assert_eq!(
            summary(&t),
            [
                (true, key_access::ACCESS_REVOKED),
                (true, key_access::ACCESS_REVOKED),
                (true, key_access::ACCESS_REVOKED)
            ]
        );
    }

    #[test]
    fn loss_and_recovery_of_the_key_and_nothing_for_summaries() {
        let before = healthy();
        let mut lost = healthy();
        lost[0] = cond(types::READY, "False", key_access::KEY_DISABLED);
        lost[3] = cond(
            types::CUSTOMER_KEY_INACCESSIBLE,
            "True",
            key_access::KEY_DISABLED,
        );
        lost[4] = cond(types::RECONCILING, "True", key_access::KEY_DISABLED);
        lost[5] = cond(types::STALLED, "True", key_access::KEY_DISABLED);
        assert_eq!(
            summary(&transition_events(&before, &lost)),
            [
                (true, key_access::KEY_DISABLED),
                (true, key_access::KEY_DISABLED)
            ]
        );
        assert_eq!(
            summary(&transition_events(&lost, &before)),
            [
                (false, reasons::SUCCEEDED),
                (false, "CustomerKeyAccessRestored")
            ]
        );
        assert!(transition_events(&before, &before).is_empty());
    }

    #[test]
    fn a_new_expiry_warning_is_news_while_the_status_stays() {
        let before = healthy();
        let mut soon = healthy();
        soon[2] = cond(types::ENCRYPTION_READY, "True", reasons::KEY_EXPIRING_SOON);
        assert_eq!(
            summary(&transition_events(&before, &soon)),
            [(true, reasons::KEY_EXPIRING_SOON)]
        );
        assert!(transition_events(&soon, &soon).is_empty());
    }

    #[test]
    fn a_repeat_within_the_ttl_continues_its_series_and_a_late_one_starts_anew() {
        let t0 = Instant::now();
        let mut sent = Sent::new(100, Duration::from_secs(60));
        assert_eq!(sent.repeat(1, t0), None);
        sent.insert(1, "a.1".into(), t0);
        assert_eq!(
            sent.repeat(1, t0 + Duration::from_secs(10)),
            Some(("a.1".into(), 2))
        );
        assert_eq!(
            sent.repeat(1, t0 + Duration::from_secs(20)),
            Some(("a.1".into(), 3))
        );
        // 60 s after the last repeat it is a new event.
        assert_eq!(sent.repeat(1, t0 + Duration::from_secs(81)), None);
        assert!(sent.entries.is_empty(), "swept");
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_the_oldest_first() {
        let t0 = Instant::now();
        let mut sent = Sent::new(8, Duration::from_secs(3600));
        for k in 0..100u64 {
            sent.insert(k, format!("e.{k}"), t0 + Duration::from_millis(k));
            assert!(sent.entries.len() <= 8, "{} entries", sent.entries.len());
        }
        let now = t0 + Duration::from_millis(100);
        assert!(sent.repeat(99, now).is_some(), "the newest is kept");
        assert!(sent.repeat(0, now).is_none(), "the oldest is gone");
    }

    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        let long = "é".repeat(800);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_NOTE && cut.len() >= MAX_NOTE - 1);
        assert!(long.starts_with(cut));
        assert_eq!(bounded("short"), "short");
    }
}
