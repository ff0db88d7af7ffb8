//! When a resource is looked at again: one pure function from how a pass ended to the requeue
//! ([`requeue`]), and the delays it picks from. The driver tallies consecutive failures and
//! applies the jitter; everything else is decided here, table-tested.

use std::time::Duration;

use kube::runtime::controller::Action;

use crate::azure::{AzureError, ErrorClass};
use crate::reconcile::apply::Outcome;
use crate::reconcile::prereqs::Problem;

/// After writes, to observe their effect.
pub const AFTER_WRITE: Duration = Duration::from_secs(2);
/// While Azure propagates a new principal or grant.
pub const PROPAGATING: Duration = Duration::from_secs(10);
/// A parked operation, when Azure gave no Retry-After.
pub const OPERATION_DEFAULT: Duration = Duration::from_secs(5);
/// Shortest wait between polls of a parked operation.
pub const OPERATION_MIN: Duration = Duration::from_secs(1);
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

/// How a pass ended, as far as when to look again is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Nothing to do until the object changes (suspended, invalid spec, released).
    Idle,
    /// Only a person can fix what held the pass (tenancy, credentials, a missing account, a
    /// failed prerequisite or operation); Azure-side fixes raise no watch event.
    NeedsPerson,
    /// A long-running operation is parked, with Azure's `Retry-After` if it gave one.
    Parked(Option<Duration>),
    /// Writes were made; their effect is looked at soon.
    Wrote,
    /// Azure is propagating a new principal or grant.
    Propagating,
    /// An Azure call failed.
    Failed {
        /// How the error is classified.
        class: ErrorClass,
        /// Azure's `Retry-After`, if it gave one.
        retry_after: Option<Duration>,
    },
    /// In sync: the resync looks for drift (key access is watched by the key monitor).
    Settled,
}

impl Ending {
    /// The ending of a pass that `error` stopped.
    #[must_use]
    pub fn failed(error: &AzureError) -> Self {
        Ending::Failed {
            class: error.class(),
            retry_after: error.retry_after(),
        }
    }

    /// Whether the pass failed (counted in `ams_reconcile_failures_total`).
    #[must_use]
    pub fn is_failure(self) -> bool {
        matches!(self, Ending::Failed { .. })
    }

    /// Whether it is one more failure in a row that backs off: a transient one. A throttled
    /// pass waits as Azure asks, and one a person must fix waits for them.
    #[must_use]
    pub fn backs_off(self) -> bool {
        matches!(
            self,
            Ending::Failed {
                class: ErrorClass::Transient | ErrorClass::Propagating,
                ..
            }
        )
    }
}

/// How a full pass (observed, assessed, perhaps applied) ended: from the applied plan's
/// outcome, else from what held it back.
#[must_use]
pub fn ending(problems: &[Problem], applied: Option<&Outcome>, failed_operation: bool) -> Ending {
    match applied {
        Some(Outcome::Pending { operation, .. }) => Ending::Parked(operation.retry_after()),
        Some(Outcome::Done) => Ending::Wrote,
        Some(Outcome::Propagating { .. }) => Ending::Propagating,
        Some(Outcome::Failed { error, .. }) => Ending::failed(error),
        None if failed_operation || problems.iter().any(|p| !p.propagating) => Ending::NeedsPerson,
        None if !problems.is_empty() => Ending::Propagating,
        None => Ending::Settled,
    }
}

/// When to look again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// Only when the object changes.
    AwaitChange,
    /// After this long.
    After(Duration),
    /// After the resync period, jittered so that many objects spread out.
    Resync(Duration),
}

impl Requeue {
    /// The controller's action; `seed` (the object) spreads the jitter.
    #[must_use]
    pub fn action(self, seed: &str) -> Action {
        match self {
            Requeue::AwaitChange => Action::await_change(),
            Requeue::After(d) => Action::requeue(d),
            Requeue::Resync(d) => Action::requeue(jittered(d, seed)),
        }
    }
}

/// When to look again after a pass that ended so, with `failures` transient failures in a row
/// (this one included) and the drift resync period `resync`.
#[must_use]
pub fn requeue(ending: Ending, failures: u32, resync: Duration) -> Requeue {
    match ending {
        Ending::Idle => Requeue::AwaitChange,
        Ending::NeedsPerson => Requeue::After(USER_ACTION),
        Ending::Parked(retry_after) => Requeue::After(
            retry_after
                .unwrap_or(OPERATION_DEFAULT)
                .clamp(OPERATION_MIN, OPERATION_MAX),
        ),
        Ending::Wrote => Requeue::After(AFTER_WRITE),
        Ending::Propagating => Requeue::After(PROPAGATING),
        Ending::Failed { class, retry_after } => match class {
            ErrorClass::Throttled => Requeue::After(retry_after.unwrap_or(THROTTLED_DEFAULT)),
            ErrorClass::Transient | ErrorClass::Propagating => {
                Requeue::After(transient(failures.max(1)))
            }
            ErrorClass::UserActionRequired | ErrorClass::NotFound => Requeue::After(USER_ACTION),
        },
        Ending::Settled => Requeue::Resync(resync),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const RESYNC: Duration = Duration::from_secs(600);

    fn failed(class: ErrorClass, retry_after: Option<u64>) -> Ending {
        Ending::Failed {
            class,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    /// Every ending, and the requeue it gets: the one table behind every pass's requeue.
    #[test]
    fn every_ending_has_one_requeue() {
        let s = Duration::from_secs;
        let rows = [
            (Ending::Idle, 1, Requeue::AwaitChange),
            (Ending::NeedsPerson, 1, Requeue::After(USER_ACTION)),
            (Ending::Parked(None), 1, Requeue::After(OPERATION_DEFAULT)),
            (Ending::Parked(Some(s(12))), 1, Requeue::After(s(12))),
            (Ending::Parked(Some(s(0))), 1, Requeue::After(OPERATION_MIN)),
            (
                Ending::Parked(Some(s(3600))),
                1,
                Requeue::After(OPERATION_MAX),
            ),
            (Ending::Wrote, 1, Requeue::After(AFTER_WRITE)),
            (Ending::Propagating, 1, Requeue::After(PROPAGATING)),
            (
                failed(ErrorClass::Throttled, Some(7)),
                1,
                Requeue::After(s(7)),
            ),
            (
                failed(ErrorClass::Throttled, None),
                1,
                Requeue::After(THROTTLED_DEFAULT),
            ),
            (failed(ErrorClass::Transient, None), 1, Requeue::After(s(2))),
            (
                failed(ErrorClass::Transient, Some(1)),
                3,
                Requeue::After(s(8)),
            ),
            (
                failed(ErrorClass::Propagating, None),
                2,
                Requeue::After(s(4)),
            ),
            (
                failed(ErrorClass::Transient, None),
                40,
                Requeue::After(TRANSIENT_MAX),
            ),
            (
                failed(ErrorClass::UserActionRequired, None),
                1,
                Requeue::After(USER_ACTION),
            ),
            (
                failed(ErrorClass::NotFound, None),
                1,
                Requeue::After(USER_ACTION),
            ),
            (Ending::Settled, 0, Requeue::Resync(RESYNC)),
        ];
        let wrong: Vec<String> = rows
            .iter()
            .filter(|(ending, failures, want)| requeue(*ending, *failures, RESYNC) != *want)
            .map(|(ending, failures, want)| {
                format!(
                    "{ending:?} after {failures} failures: expected {want:?}, got {:?}",
                    requeue(*ending, *failures, RESYNC)
                )
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// Only transient failures back off; a throttled pass waits as Azure asks and does not
    /// grow the backoff.
    #[test]
    fn only_transient_failures_back_off() {
        assert!(failed(ErrorClass::Transient, None).backs_off());
        assert!(failed(ErrorClass::Propagating, None).backs_off());
        assert!(!failed(ErrorClass::Throttled, None).backs_off());
        assert!(!failed(ErrorClass::UserActionRequired, None).backs_off());
        assert!(failed(ErrorClass::Throttled, None).is_failure());
        assert!(!Ending::Settled.is_failure() && !Ending::NeedsPerson.backs_off());
    }

    /// A full pass ends by its writes' outcome, else by what held it back: a problem a person
    /// must fix, one Azure is still propagating, a failed operation, or nothing (settled).
    #[test]
    fn a_full_pass_ends_by_its_outcome_or_what_held_it_back() {
        use crate::reconcile::prereqs::Area;
        let problem = |propagating| Problem {
            area: Area::Storage,
            reason: "R",
            message: String::new(),
            propagating,
        };
        let waiting = [problem(true)];
        let blocked = [problem(true), problem(false)];
        assert_eq!(ending(&[], Some(&Outcome::Done), false), Ending::Wrote);
        assert_eq!(ending(&[], None, false), Ending::Settled);
        assert_eq!(ending(&[], None, true), Ending::NeedsPerson);
        assert_eq!(ending(&waiting, None, false), Ending::Propagating);
        assert_eq!(ending(&blocked, None, false), Ending::NeedsPerson);
    }

    /// Backoff doubles from 2 s and stops at five minutes.
    #[test]
    fn transient_backoff_doubles_and_is_capped() {
        let got: Vec<u64> = (1..=10).map(|n| transient(n).as_secs()).collect();
        assert_eq!(got, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }

    /// The resync spreads objects over a tenth of the period, never earlier.
    #[test]
    fn the_resync_is_jittered_within_a_tenth() {
        for i in 0..50 {
            let d = jittered(RESYNC, &format!("ns/{i}"));
            assert!(d >= RESYNC && d < RESYNC + RESYNC / 10, "{d:?}");
        }
    }
}
