//! Reconciles asked for from inside the operator (the key monitor's verdict changed, an
//! account's owner let go of it): each controller subscribes for its watch scope and gets the
//! `(namespace, name)` of every object to reconcile now.

use std::sync::{Mutex, PoisonError};

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};

/// An object to reconcile: `(namespace, name)`.
pub type Trigger = (String, String);

/// The subscribers, each with the namespace it watches (`None`: all).
#[derive(Default)]
pub struct Sinks(Mutex<Vec<(Option<String>, UnboundedSender<Trigger>)>>);

impl Sinks {
    /// Triggers for objects in `namespace` (`None`: all).
    pub fn subscribe(&self, namespace: Option<String>) -> UnboundedReceiver<Trigger> {
        let (tx, rx) = unbounded();
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((namespace, tx));
        rx
    }

    /// Asks the subscribers watching `object` (`namespace/name`) to reconcile it; a subscriber
    /// that went away is dropped. Returns whether `object` was a `namespace/name`.
    pub fn send(&self, object: &str) -> bool {
        let Some((ns, name)) = object.split_once('/') else {
            return false;
        };
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(scope, tx)| {
                if scope.as_deref().is_some_and(|s| s != ns) {
                    return true;
                }
                tx.unbounded_send((ns.to_owned(), name.to_owned())).is_ok()
            });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    /// A subscriber hears of the objects of its namespace only; one for all hears of all.
    #[tokio::test]
    async fn each_subscriber_hears_of_its_namespace() {
        let sinks = Sinks::default();
        let mut media = sinks.subscribe(Some("media".into()));
        let mut all = sinks.subscribe(None);
        assert!(sinks.send("other/a"));
        assert!(sinks.send("media/b"));
        assert!(!sinks.send("no-namespace"));
        assert_eq!(media.next().await, Some(("media".into(), "b".into())));
        assert_eq!(all.next().await, Some(("other".into(), "a".into())));
        assert_eq!(all.next().await, Some(("media".into(), "b".into())));
    }
}
