//! Test and benchmark knobs: latency, injected faults, ARM throttling, propagation delay.
//!
//! The knobs are data held in the world; `server` applies them to each request before it is
//! handled. Operation names are the swagger operationIds the request log uses (for example
//! `Mediaservices_Get`, `RoleAssignments_Create`, `GetKey`, `wrapKey`, `Token`), and a rule's
//! `operation` may end in `*` to match a prefix.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One injected fault.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// Operation name (or `prefix*`, or `*`) it applies to.
    pub operation: String,
    /// What happens.
    pub fault: Fault,
    /// How many requests it hits before it disarms (`None`: until cleared).
    #[serde(default)]
    pub times: Option<u32>,
}

/// The kinds of fault.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Fault {
    /// 429 with `Retry-After` (seconds).
    Throttle {
        /// Seconds in `Retry-After`.
        retry_after_secs: u64,
    },
    /// A server error with the given status (500, 502, 503, 504).
    ServerError {
        /// HTTP status.
        status: u16,
    },
    /// An error answer with this status and Azure error code, as the service would send it
    /// (for failures the world cannot produce on its own, such as `PrincipalNotFound` while a
    /// directory replicates).
    Error {
        /// HTTP status.
        status: u16,
        /// `error.code`.
        code: String,
        /// `error.message`.
        message: String,
    },
    /// The connection is dropped without a response.
    ConnectionReset,
    /// The response is delayed by this many milliseconds (then served normally).
    Slow {
        /// Delay in milliseconds.
        millis: u64,
    },
    /// The request takes effect at once (it is handled, the world changes and the request is
    /// logged), then its answer is held this many milliseconds before it is sent: the window
    /// in which a client can die after Azure committed its write, never learning that it did.
    SlowAfterCommit {
        /// How long the answer is held, in milliseconds.
        millis: u64,
    },
}

/// ARM token-bucket sizes (per subscription, principal and operation kind).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleLimits {
    /// Read bucket size.
    pub read_bucket: u32,
    /// Read refill per second.
    pub read_refill_per_sec: u32,
    /// Write bucket size.
    pub write_bucket: u32,
    /// Write refill per second.
    pub write_refill_per_sec: u32,
    /// Delete bucket size.
    pub delete_bucket: u32,
    /// Delete refill per second.
    pub delete_refill_per_sec: u32,
}

impl Default for ThrottleLimits {
    /// ARM's documented per-principal subscription limits (2024 regional token bucket).
    fn default() -> Self {
        Self {
            read_bucket: 250,
            read_refill_per_sec: 25,
            write_bucket: 200,
            write_refill_per_sec: 10,
            delete_bucket: 200,
            delete_refill_per_sec: 10,
        }
    }
}

/// The ARM request classes that have separate buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ArmKind {
    /// GET/HEAD.
    Read,
    /// PUT/PATCH/POST.
    Write,
    /// DELETE.
    Delete,
}

impl ArmKind {
    /// The header suffix (`reads`, `writes`, `deletes`).
    #[must_use]
    pub fn header(self) -> &'static str {
        match self {
            Self::Read => "x-ms-ratelimit-remaining-subscription-reads",
            Self::Write => "x-ms-ratelimit-remaining-subscription-writes",
            Self::Delete => "x-ms-ratelimit-remaining-subscription-deletes",
        }
    }
    /// The word ARM uses in its throttling message.
    #[must_use]
    pub fn word(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Delete => "delete",
        }
    }
}

/// A token bucket.
#[derive(Clone, Debug)]
pub struct Bucket {
    tokens: f64,
    size: f64,
    refill: f64,
    at: Instant,
}

impl Bucket {
    fn new(size: u32, refill: u32) -> Self {
        Self {
            tokens: f64::from(size),
            size: f64::from(size),
            refill: f64::from(refill),
            at: Instant::now(),
        }
    }

    /// Takes a token; `Ok(remaining)` or `Err(seconds until one is available)`.
    fn take(&mut self) -> Result<u32, u64> {
        let now = Instant::now();
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.refill).min(self.size);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            // NB: bucket sizes are u32, so the floor fits.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(self.tokens.floor() as u32)
        } else {
            let wait = if self.refill > 0.0 {
                (1.0 - self.tokens) / self.refill
            } else {
                3600.0
            };
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

/// All knobs.
#[derive(Clone, Debug, Default)]
pub struct Knobs {
    /// Extra latency per operation name (or `prefix*` / `*`).
    pub latency: BTreeMap<String, Duration>,
    /// Armed faults, first match wins.
    pub faults: Vec<FaultRule>,
    /// Throttle limits; `None` disables throttling (headers still report full buckets).
    pub throttle: Option<ThrottleLimits>,
    /// Buckets by (subscription, principal, kind).
    pub buckets: BTreeMap<(String, String, ArmKind), Bucket>,
    /// Role-assignment propagation delay for new principals (when `principalType` is absent).
    pub propagation_delay: Duration,
    /// Role assignments younger than this (emulator clock) are left out of list answers, as
    /// ARM's cached reads can trail a write; a GET by name and a PUT see them at once.
    pub role_assignment_list_lag: Duration,
    /// How many polls of a Media Services operation report `InProgress` before `Succeeded`.
    pub lro_polls: u32,
    /// Whether the request log keeps JSON response bodies (for conformance checks of traffic).
    pub record_bodies: bool,
    /// When set, the next Media Services operation ends `Failed` with this (code, message).
    pub fail_next_operation: Option<(String, String)>,
    /// While set, accounts on a versionless key stay on the version they use when a newer one
    /// appears (Media Services picks new versions up in the background, not at once).
    pub hold_key_rotation: bool,
    /// Lifetime of the access tokens the token endpoint issues from now on; `None`: an hour,
    /// as Entra's default. A lifetime under five minutes makes the Azure SDKs ask for a new
    /// token on every call (they refresh that long before expiry); as they keep using a
    /// still-valid token when a refresh is refused, a revoked secret shows once the last token
    /// expires, that is within the lifetime.
    pub token_lifetime: Option<Duration>,
}

/// Whether an operation name matches a rule pattern.
#[must_use]
pub fn op_matches(pattern: &str, op: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => op.starts_with(prefix),
        None => pattern == op,
    }
}

impl Knobs {
    /// Latency configured for `op` (the most specific pattern wins: exact, then longest prefix).
    #[must_use]
    pub fn latency_for(&self, op: &str) -> Option<Duration> {
        if let Some(d) = self.latency.get(op) {
            return Some(*d);
        }
        self.latency
            .iter()
            .filter(|(p, _)| op_matches(p, op))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, d)| *d)
    }

    /// The fault to apply to `op`, consuming one use of its rule.
    pub fn take_fault(&mut self, op: &str) -> Option<Fault> {
        let idx = self
            .faults
            .iter()
            .position(|r| op_matches(&r.operation, op))?;
        let fault = self.faults[idx].fault.clone();
        if let Some(times) = &mut self.faults[idx].times {
            *times = times.saturating_sub(1);
            if *times == 0 {
                self.faults.remove(idx);
            }
        }
        Some(fault)
    }

    /// Charges an ARM request to its bucket: `Ok(remaining)` or `Err(retry-after seconds)`.
    pub fn charge(
        &mut self,
        subscription: &str,
        principal: &str,
        kind: ArmKind,
    ) -> Result<u32, u64> {
        let limits = self.throttle.unwrap_or_default();
        let (size, refill) = match kind {
            ArmKind::Read => (limits.read_bucket, limits.read_refill_per_sec),
            ArmKind::Write => (limits.write_bucket, limits.write_refill_per_sec),
            ArmKind::Delete => (limits.delete_bucket, limits.delete_refill_per_sec),
        };
        let bucket = self
            .buckets
            .entry((
                subscription.to_ascii_lowercase(),
                principal.to_ascii_lowercase(),
                kind,
            ))
            .or_insert_with(|| Bucket::new(size, refill));
        match bucket.take() {
            Ok(left) => Ok(left),
            Err(wait) if self.throttle.is_some() => Err(wait),
            // Throttling off: never refuse, keep reporting what is left.
            Err(_) => {
                *bucket = Bucket::new(size, refill);
                Ok(size.saturating_sub(1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_empties_then_asks_to_wait() {
        let mut knobs = Knobs {
            throttle: Some(ThrottleLimits {
                read_bucket: 2,
                read_refill_per_sec: 1,
                ..ThrottleLimits::default()
            }),
            ..Knobs::default()
        };
        assert_eq!(knobs.charge("s", "p", ArmKind::Read), Ok(1));
        assert_eq!(knobs.charge("s", "p", ArmKind::Read), Ok(0));
        assert_eq!(knobs.charge("s", "p", ArmKind::Read), Err(1));
        // Another principal has its own bucket.
        assert_eq!(knobs.charge("s", "q", ArmKind::Read), Ok(1));
    }

    #[test]
    fn faults_disarm_after_their_count() {
        let mut knobs = Knobs::default();
        knobs.faults.push(FaultRule {
            operation: "Mediaservices_*".into(),
            fault: Fault::ServerError { status: 503 },
            times: Some(1),
        });
        assert_eq!(knobs.take_fault("GetKey"), None);
        assert_eq!(
            knobs.take_fault("Mediaservices_Get"),
            Some(Fault::ServerError { status: 503 })
        );
        assert_eq!(knobs.take_fault("Mediaservices_Get"), None);
    }
}
