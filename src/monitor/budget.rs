//! Read budgets for key probes (pure): when the probes due would spend more than their share of
//! Azure's read limits, every probe that shares the limit is spaced out by the same factor
//! instead of running into throttling.
//!
//! ARM limits reads per subscription and principal; Key Vault per vault. A probe costs ARM
//! reads (its share of the round's vault list, plus the grant and role reads of RBAC vaults)
//! and Key Vault reads (the key itself).

use std::collections::BTreeMap;
use std::time::Duration;

/// How much reading probes may do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// ARM reads per hour one principal may make in one subscription.
    pub arm_reads_per_hour: f64,
    /// Key Vault reads per hour per vault.
    pub vault_reads_per_hour: f64,
    /// The share of those that probes may use (the rest is for reconciles and other tools).
    pub share: f64,
}

impl Default for Budget {
    /// The client's own ARM read bucket refills 10 reads a second per subscription (40 % of
    /// ARM's 25); Key Vault allows 4,000 key reads per 10 seconds per vault. Probes take half.
    fn default() -> Self {
        Self {
            arm_reads_per_hour: 10.0 * 3600.0,
            vault_reads_per_hour: 400.0 * 3600.0,
            share: 0.5,
        }
    }
}

/// One prober's load, as the budget sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    /// The ARM limit it draws on: credential and subscription.
    pub arm_scope: String,
    /// The Key Vault limit it draws on: credential and vault.
    pub vault_scope: String,
    /// The interval its users ask for.
    pub interval: Duration,
    /// ARM reads per probe, excluding the shared vault list.
    pub arm_reads: u32,
    /// Key Vault reads per probe.
    pub vault_reads: u32,
}

/// The interval each load runs at (same order as `loads`): the asked interval, stretched by
/// its scopes' overrun factor when the scope's reads per hour exceed the budget's share.
///
/// Each ARM scope also pays one vault list per round; rounds run at the scope's shortest
/// interval.
#[must_use]
pub fn effective_intervals(loads: &[Load], budget: &Budget) -> Vec<Duration> {
    let per_hour = |interval: Duration, reads: u32| {
        let secs = interval.as_secs_f64().max(1.0);
        f64::from(reads) * 3600.0 / secs
    };
    let mut arm: BTreeMap<&str, (f64, Duration)> = BTreeMap::new();
    let mut vault: BTreeMap<&str, f64> = BTreeMap::new();
    for l in loads {
        let e = arm
            .entry(l.arm_scope.as_str())
            .or_insert((0.0, Duration::MAX));
        e.0 += per_hour(l.interval, l.arm_reads);
        e.1 = e.1.min(l.interval);
        *vault.entry(l.vault_scope.as_str()).or_insert(0.0) += per_hour(l.interval, l.vault_reads);
    }
    let factor = |need: f64, limit: f64| {
        let allowed = (limit * budget.share).max(1.0);
        (need / allowed).max(1.0)
    };
    loads
        .iter()
        .map(|l| {
            let (arm_need, shortest) = arm[l.arm_scope.as_str()];
            let arm_need = arm_need + per_hour(shortest, 1);
            let f = factor(arm_need, budget.arm_reads_per_hour).max(factor(
                vault[l.vault_scope.as_str()],
                budget.vault_reads_per_hour,
            ));
            if f <= 1.0 {
                l.interval
            } else {
                Duration::from_secs_f64((l.interval.as_secs_f64() * f).min(86_400.0))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(arm: &str, vault: &str, secs: u64, arm_reads: u32) -> Load {
        Load {
            arm_scope: arm.into(),
            vault_scope: vault.into(),
            interval: Duration::from_secs(secs),
            arm_reads,
            vault_reads: 1,
        }
    }

    #[test]
    fn within_budget_intervals_are_as_asked() {
        let loads = vec![load("s1", "v1", 30, 0), load("s1", "v2", 60, 2)];
        assert_eq!(
            effective_intervals(&loads, &Budget::default()),
            vec![Duration::from_secs(30), Duration::from_secs(60)]
        );
    }

    #[test]
    fn an_overrun_stretches_every_load_of_the_scope_by_the_same_factor() {
        // 100 reads an hour allowed (200 × 0.5); two loads of 1 read per 36 s (100/h each) plus
        // the vault list every 36 s (100/h): 300/h needed, so 3× longer.
        let budget = Budget {
            arm_reads_per_hour: 200.0,
            vault_reads_per_hour: 1e9,
            share: 0.5,
        };
        let loads = vec![
            load("s1", "v1", 36, 1),
            load("s1", "v2", 72, 2),
            load("s2", "v3", 36, 0),
        ];
        let got = effective_intervals(&loads, &budget);
        assert_eq!(got[0], Duration::from_secs(36 * 3));
        assert_eq!(got[1], Duration::from_secs(72 * 3));
        // s2 pays only its vault list: 100/h, within the 100/h allowed.
        assert_eq!(got[2], Duration::from_secs(36));
    }

    #[test]
    fn a_busy_vault_stretches_only_its_own_keys() {
        let budget = Budget {
            arm_reads_per_hour: 1e9,
            vault_reads_per_hour: 100.0,
            share: 1.0,
        };
        // v1: four keys probed every 36 s = 400 reads/h against 100 allowed.
        let mut loads: Vec<Load> = (0..4).map(|_| load("s1", "v1", 36, 0)).collect();
        loads.push(load("s1", "v2", 36, 0));
        let got = effective_intervals(&loads, &budget);
        assert_eq!(got[0], Duration::from_secs(144));
        assert_eq!(got[4], Duration::from_secs(36));
    }

    #[test]
    fn a_zero_budget_never_divides_by_zero() {
        let budget = Budget {
            arm_reads_per_hour: 0.0,
            vault_reads_per_hour: 0.0,
            share: 0.0,
        };
        let got = effective_intervals(&[load("s", "v", 0, 5)], &budget);
        assert!(got[0] <= Duration::from_secs(86_400));
    }
}
