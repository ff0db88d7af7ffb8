//! Ownership (pure): one Azure account has one owner. In one cluster the oldest live resource
//! naming an account manages it ([`winner`]); across clusters the owner records its claim on
//! the account itself, in an Azure tag ([`CLAIM_TAG`]), written with the first write it makes
//! and never in steady state. A resource whose account carries another owner's claim makes no
//! write until that claim is handed over explicitly ([`HANDOVER_ANNOTATION`]).
//!
//! No I/O: the driver reads the tag with the account and the claimants from its index.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

/// The Azure tag that names the resource managing the account: `cluster/namespace/name/uid`.
/// Azure tag names may not hold `/`, so the name is plain; values may.
pub const CLAIM_TAG: &str = "ams-security-operator-owner";

/// The annotation that hands an account claimed by another owner over to this resource: its
/// value must be the other owner's claim exactly as the account's tag holds it (`kubectl
/// annotate msa NAME ams-security.io/take-over-from="$(az tag ...)"`), so a stale annotation
/// never takes over a later owner.
pub const HANDOVER_ANNOTATION: &str = "ams-security.io/take-over-from";

/// Azure's limit on a tag value.
const TAG_VALUE_MAX: usize = 256;

/// The claim of the resource `namespace/name` (uid `uid`) of cluster `cluster_id`, as the tag
/// holds it: within Azure's 256 characters (a very long name is shortened, keeping a hash of
/// it, so that the value stays unique).
#[must_use]
pub fn claim_value(cluster_id: &str, namespace: &str, name: &str, uid: &str) -> String {
    let full = format!("{cluster_id}/{namespace}/{name}/{uid}");
    if full.len() <= TAG_VALUE_MAX {
        return full;
    }
    let hash = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).simple();
    let fixed = cluster_id.len() + namespace.len() + uid.len() + 5 + 32;
    let keep = TAG_VALUE_MAX.saturating_sub(fixed);
    let short: String = name.chars().take(keep).collect();
    let value = format!("{cluster_id}/{namespace}/{short}~{hash}/{uid}");
    value.chars().take(TAG_VALUE_MAX).collect()
}

/// Who holds the account, as its tags say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This resource's claim is on the account.
    Ours,
    /// No claim: the first write records this resource's, with these tags.
    Unclaimed(BTreeMap<String, String>),
    /// Another owner's claim (`from`), handed over to this resource by the annotation: its
    /// claim is written at once, with these tags.
    HandedOver {
        /// The claim handed over.
        from: String,
        /// The tags that record this resource's claim instead.
        tags: BTreeMap<String, String>,
    },
    /// Another owner's claim: no write.
    Foreign(String),
}

impl Claim {
    /// Whether this resource may write to the account.
    #[must_use]
    pub fn may_write(&self) -> bool {
        !matches!(self, Claim::Foreign(_))
    }

    /// The tags to write before a plan that has writes (`has_writes`): the claim goes with the
    /// first write the operator makes, and a hand-over writes it even when nothing else is to
    /// be written; never in steady state.
    #[must_use]
    pub fn to_write(&self, has_writes: bool) -> Option<&BTreeMap<String, String>> {
        match self {
            Claim::Unclaimed(tags) if has_writes => Some(tags),
            Claim::HandedOver { tags, .. } => Some(tags),
            _ => None,
        }
    }
}

fn claim_tag(tags: &BTreeMap<String, String>) -> Option<(&String, &String)> {
    // NB: Azure tag names are case-insensitive.
    tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(CLAIM_TAG))
}

/// The account's claim judged for the resource whose claim is `mine`; `handover` is the value
/// of its [`HANDOVER_ANNOTATION`].
#[must_use]
pub fn claim(tags: Option<&BTreeMap<String, String>>, mine: &str, handover: Option<&str>) -> Claim {
    let claimed = || tags_claimed(tags, mine);
    match tags.and_then(claim_tag) {
        None => Claim::Unclaimed(claimed()),
        Some((_, v)) if v == mine => Claim::Ours,
        Some((_, v)) if v.trim().is_empty() => Claim::Unclaimed(claimed()),
        Some((_, v)) if handover == Some(v.as_str()) => Claim::HandedOver {
            from: v.clone(),
            tags: claimed(),
        },
        Some((_, v)) => Claim::Foreign(v.clone()),
    }
}

/// The account's tags with `mine` as the claim (any other claim replaced; other tags kept: an
/// ARM PATCH replaces the whole tag set).
#[must_use]
pub fn tags_claimed(
    tags: Option<&BTreeMap<String, String>>,
    mine: &str,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = tags
        .into_iter()
        .flatten()
        .filter(|(k, _)| !k.eq_ignore_ascii_case(CLAIM_TAG))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert(CLAIM_TAG.to_owned(), mine.to_owned());
    out
}

/// The account's tags without `mine` as the claim, when it is there (`None`: nothing to
/// remove; another owner's claim is never removed).
#[must_use]
pub fn tags_released(
    tags: Option<&BTreeMap<String, String>>,
    mine: &str,
) -> Option<BTreeMap<String, String>> {
    let tags = tags?;
    let (_, v) = claim_tag(tags)?;
    (v == mine).then(|| {
        tags.iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case(CLAIM_TAG))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

/// A resource that names an Azure account in this cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Claimant {
    /// Its creation time (`None` sorts last: a claimant without one never wins over one with).
    pub created: Option<Timestamp>,
    /// Its uid, the tie-breaker.
    pub uid: String,
    /// `namespace/name`.
    pub object: String,
}

impl Claimant {
    fn order(&self) -> (bool, Option<Timestamp>, &str) {
        (self.created.is_none(), self.created, &self.uid)
    }
}

/// The claimant that manages the account: the oldest (creation time, then uid), the same
/// answer whatever order the claims were seen in.
#[must_use]
pub fn winner<'a>(claimants: impl IntoIterator<Item = &'a Claimant>) -> Option<&'a Claimant> {
    claimants
        .into_iter()
        .min_by(|a, b| a.order().cmp(&b.order()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Every state of the tag, judged for one resource: its own claim, none, another's, and
    /// another's handed over by an annotation that names exactly it.
    #[test]
    fn a_claim_is_ours_unclaimed_foreign_or_handed_over() {
        let mine = "c1/media/fabrikam/u1";
        let other = "c2/media/fabrikam/u9";
        let unclaimed = |t: &[(&str, &str)]| Claim::Unclaimed(tags(t));
        let rows = [
            (None, None, unclaimed(&[(CLAIM_TAG, mine)])),
            (
                Some(tags(&[("env", "prod")])),
                None,
                unclaimed(&[("env", "prod"), (CLAIM_TAG, mine)]),
            ),
            (Some(tags(&[(CLAIM_TAG, mine)])), None, Claim::Ours),
            (
                Some(tags(&[("AMS-Security-Operator-Owner", mine)])),
                None,
                Claim::Ours,
            ),
            (
                Some(tags(&[(CLAIM_TAG, other)])),
                None,
                Claim::Foreign(other.to_owned()),
            ),
            (
                Some(tags(&[(CLAIM_TAG, other)])),
                Some("c2/media/fabrikam/u0"),
                Claim::Foreign(other.to_owned()),
            ),
            (
                Some(tags(&[(CLAIM_TAG, other)])),
                Some(other),
                Claim::HandedOver {
                    from: other.to_owned(),
                    tags: tags(&[(CLAIM_TAG, mine)]),
                },
            ),
            (
                Some(tags(&[(CLAIM_TAG, " ")])),
                None,
                unclaimed(&[(CLAIM_TAG, mine)]),
            ),
        ];
        for (t, handover, want) in rows {
            assert_eq!(
                claim(t.as_ref(), mine, handover),
                want,
                "{t:?} {handover:?}"
            );
        }
        assert!(!Claim::Foreign(other.into()).may_write());
        // The claim goes with the first write, and a hand-over writes it alone; never in
        // steady state.
        let fresh = claim(None, mine, None);
        assert_eq!(fresh.to_write(false), None);
        assert_eq!(fresh.to_write(true), Some(&tags(&[(CLAIM_TAG, mine)])));
        let handed = claim(Some(&tags(&[(CLAIM_TAG, other)])), mine, Some(other));
        assert!(handed.may_write() && handed.to_write(false).is_some());
        assert_eq!(Claim::Ours.to_write(true), None);
    }

    /// Claiming keeps every other tag and replaces another claim; releasing removes only our
    /// own claim, never another owner's.
    #[test]
    fn claiming_and_releasing_touch_only_the_claim() {
        let mine = "c1/media/fabrikam/u1";
        let before = tags(&[("env", "prod"), (CLAIM_TAG, "c2/x/y/z")]);
        let claimed = tags_claimed(Some(&before), mine);
        assert_eq!(claimed, tags(&[("env", "prod"), (CLAIM_TAG, mine)]));
        assert_eq!(
            tags_released(Some(&claimed), mine),
            Some(tags(&[("env", "prod")]))
        );
        assert_eq!(tags_released(Some(&before), mine), None);
        assert_eq!(tags_released(None, mine), None);
    }

    /// A claim fits Azure's 256 characters whatever the names, and two long names that share
    /// their start still differ.
    #[test]
    fn a_claim_fits_a_tag_value_and_stays_unique() {
        let long_a = format!("{}a", "n".repeat(252));
        let long_b = format!("{}b", "n".repeat(252));
        let uid = "0b1d2c3e-4f50-6172-8394-a5b6c7d8e9f0";
        let a = claim_value("cluster-one", &"s".repeat(63), &long_a, uid);
        let b = claim_value("cluster-one", &"s".repeat(63), &long_b, uid);
        assert!(a.chars().count() <= 256 && b.chars().count() <= 256, "{a}");
        assert_ne!(a, b);
        assert_eq!(claim_value("c", "ns", "n", "u"), "c/ns/n/u");
    }

    /// The oldest claimant wins, by creation time then uid, whatever the order seen.
    #[test]
    fn the_oldest_claimant_wins_in_any_order() {
        let at = |s| Some(Timestamp::from_second(s).expect("valid"));
        let c = |created, uid: &str| Claimant {
            created,
            uid: uid.to_owned(),
            object: format!("ns/{uid}"),
        };
        let older = c(at(100), "b");
        let tie_first = c(at(200), "a");
        let tie_second = c(at(200), "z");
        let unknown = c(None, "0");
        let mut all = vec![
            tie_second.clone(),
            unknown.clone(),
            older.clone(),
            tie_first.clone(),
        ];
        assert_eq!(winner(&all), Some(&older));
        all.retain(|x| *x != older);
        assert_eq!(winner(&all), Some(&tie_first));
        all.reverse();
        assert_eq!(winner(&all), Some(&tie_first));
        assert_eq!(winner(std::slice::from_ref(&unknown)), Some(&unknown));
    }
}
