//! The one event recorder: a Normal event for every Azure write and every condition that moves
//! to its good state, a Warning for every condition that moves to its bad state and for failed
//! Azure calls. Notes are bounded and never carry tokens (Azure error messages do not).

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::crd::conditions::{reasons, types};

/// Longest event note (the API allows 1 kB).
const MAX_NOTE: usize = 1000;

/// Publishes events for `MediaServicesAccount` objects.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

impl Events {
    /// A recorder reporting as `controller`.
    #[must_use]
    pub fn new(client: kube::Client, controller: &str) -> Self {
        let instance = std::env::var("POD_NAME")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok());
        Self {
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: controller.to_owned(),
                    instance,
                },
            ),
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
        let mut note = note.to_owned();
        if note.len() > MAX_NOTE {
            let mut cut = MAX_NOTE;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, reference).await {
            tracing::warn!(error = %e, reason, "failed to publish event");
        }
    }

    /// Events for the conditions whose status changed between `before` and `after`.
    pub async fn transitions(
        &self,
        reference: &ObjectReference,
        before: &[Condition],
        after: &[Condition],
    ) {
        for c in after
            .iter()
            .filter(|c| types::ALL.contains(&c.type_.as_str()))
        {
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
            let type_ = if bad {
                EventType::Warning
            } else {
                EventType::Normal
            };
            // Recovery of key access gets a name of its own, so alerts can match on it.
            let reason = if c.type_ == types::CUSTOMER_KEY_INACCESSIBLE
                && !bad
                && old.is_some_and(|o| o.status == "True")
            {
                "CustomerKeyAccessRestored"
            } else {
                c.reason.as_str()
            };
            let note = format!("{} is {}: {}", c.type_, c.status, c.message);
            self.publish(reference, type_, reason, "Reconcile", &note)
                .await;
        }
    }
}
