//! Which resource in this cluster manages each Azure account: an index of every live resource's
//! account, so that a second resource naming an account another already manages is held back
//! (`AccountClaimed`) before any Azure call, and takes over at once when the first one goes.
//!
//! The index is seeded from one paged list of the resources before the controller starts (so
//! the oldest claim wins even when a younger resource happens to be reconciled first), then kept
//! by each pass. The decision itself is [`ownership::winner`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use futures::channel::mpsc::UnboundedReceiver;

use crate::reconcile::ownership::{self, Claimant};
use crate::triggers::{Sinks, Trigger};

#[derive(Default)]
struct Index {
    /// Account id (lower case) → its claimants.
    by_account: HashMap<String, Vec<Claimant>>,
    /// `namespace/name` → the account it names.
    by_object: HashMap<String, String>,
}

/// The claims of this cluster's resources.
#[derive(Default)]
pub struct Claims {
    index: Mutex<Index>,
    sinks: Sinks,
}

impl Claims {
    /// Records that `claimant` names `account` (and no other any more); returns the claimant that
    /// manages it, when that is another resource. A resource that moved off an account lets its
    /// next claimant take over.
    pub fn claim(&self, account: &str, claimant: &Claimant) -> Result<(), Claimant> {
        let account = account.to_ascii_lowercase();
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        let moved_from = index
            .by_object
            .insert(claimant.object.clone(), account.clone())
            .filter(|previous| *previous != account);
        if let Some(previous) = &moved_from {
            self.leave(&mut index, previous, &claimant.object);
        }
        let claimants = index.by_account.entry(account).or_default();
        claimants.retain(|c| c.object != claimant.object);
        claimants.push(claimant.clone());
        match ownership::winner(claimants.iter()) {
            Some(w) if w.object != claimant.object => Err(w.clone()),
            _ => Ok(()),
        }
    }

    /// `object` is gone (or going): it no longer claims anything, and the next claimant of its
    /// account, if any, is reconciled at once.
    pub fn release(&self, object: &str) {
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(account) = index.by_object.remove(object) {
            self.leave(&mut index, &account, object);
        }
    }

    /// Seeds the index with the resources that exist before the controller starts.
    pub fn seed(&self, claims: impl IntoIterator<Item = (String, Claimant)>) {
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        for (account, claimant) in claims {
            let account = account.to_ascii_lowercase();
            index
                .by_object
                .insert(claimant.object.clone(), account.clone());
            let claimants = index.by_account.entry(account).or_default();
            claimants.retain(|c| c.object != claimant.object);
            claimants.push(claimant);
        }
    }

    /// Resources in `namespace` (`None`: all) to reconcile because they now manage their account.
    pub fn triggers(&self, namespace: Option<String>) -> UnboundedReceiver<Trigger> {
        self.sinks.subscribe(namespace)
    }

    /// Claims held, for tests and metrics.
    #[must_use]
    pub fn len(&self) -> usize {
        self.index
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_object
            .len()
    }

    /// Whether no claim is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn leave(&self, index: &mut Index, account: &str, object: &str) {
        let Some(claimants) = index.by_account.get_mut(account) else {
            return;
        };
        let was = ownership::winner(claimants.iter()).map(|w| w.object.clone());
        claimants.retain(|c| c.object != object);
        let now = ownership::winner(claimants.iter()).map(|w| w.object.clone());
        if claimants.is_empty() {
            index.by_account.remove(account);
        }
        if let Some(next) = now.filter(|n| Some(n) != was.as_ref()) {
            self.sinks.send(&next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use k8s_openapi::jiff::Timestamp;

    fn claimant(second: i64, name: &str) -> Claimant {
        Claimant {
            created: Some(Timestamp::from_second(second).expect("valid")),
            uid: format!("uid-{name}"),
            object: format!("media/{name}"),
        }
    }

    const ACCOUNT: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Media/mediaservices/fabrikam";

    /// The older resource keeps the account whatever order the passes run in; the younger is
    /// told who holds it; ids compare case-insensitively.
    #[tokio::test]
    async fn the_older_claim_wins_and_the_younger_takes_over_when_it_goes() {
        let claims = Claims::default();
        let mut triggers = claims.triggers(Some("media".into()));
        let (older, younger) = (claimant(100, "first"), claimant(200, "second"));
        assert_eq!(claims.claim(ACCOUNT, &younger), Ok(()));
        assert_eq!(
            claims.claim(&ACCOUNT.to_uppercase(), &older),
            Ok(()),
            "the older wins even when seen second"
        );
        assert_eq!(claims.claim(ACCOUNT, &younger), Err(older.clone()));
        claims.release(&older.object);
        assert_eq!(
            triggers.next().await,
            Some(("media".into(), "second".into())),
            "the next claimant is reconciled at once"
        );
        assert_eq!(claims.claim(ACCOUNT, &younger), Ok(()));
        assert_eq!(claims.len(), 1);
    }

    /// A resource that moves to another account frees the first for its next claimant.
    #[tokio::test]
    async fn moving_to_another_account_frees_the_first() {
        let claims = Claims::default();
        let mut triggers = claims.triggers(None);
        let (older, younger) = (claimant(100, "first"), claimant(200, "second"));
        claims.seed([
            (ACCOUNT.to_owned(), older.clone()),
            (ACCOUNT.to_owned(), younger.clone()),
        ]);
        assert_eq!(claims.claim(ACCOUNT, &younger), Err(older.clone()));
        assert_eq!(claims.claim(&format!("{ACCOUNT}-two"), &older), Ok(()));
        assert_eq!(
            triggers.next().await,
            Some(("media".into(), "second".into()))
        );
        assert_eq!(claims.claim(ACCOUNT, &younger), Ok(()));
        claims.release("media/first");
        claims.release("media/second");
        assert!(claims.is_empty());
    }
}
