//! Drift (pure): which of a pass's writes corrected a change made outside the operator.
//!
//! A write is a correction when the area it serves had converged for the object's current
//! generation: its condition was `True` with that `observedGeneration` before the pass, so
//! the spec did not ask for anything new and Azure changed underneath. A key grant the operator
//! restores while the key was inaccessible because that grant was removed counts too. Writes
//! that follow a spec change (a new generation) or finish a first convergence are not drift.

use crate::crd::account::MediaServicesAccountStatus;
use crate::crd::conditions::{key_access, types};

use super::apply::Write;
use super::prereqs::Area;

/// One area's drift, corrected in this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Correction {
    /// The area (its condition type names it).
    pub area: Area,
    /// What drifted and what the operator wrote, for the event.
    pub message: String,
}

/// The corrections among `writes`, one per area, in area order.
#[must_use]
pub fn corrections(
    previous: &MediaServicesAccountStatus,
    generation: Option<i64>,
    writes: &[Write],
) -> Vec<Correction> {
    let converged = |type_: &str| {
        previous.condition(type_).is_some_and(|c| {
            c.status == "True" && generation.is_some() && c.observed_generation == generation
        })
    };
    let key_grant_lost = previous
        .condition(types::CUSTOMER_KEY_INACCESSIBLE)
        .is_some_and(|c| {
            c.status == "True"
                && c.reason == key_access::ACCESS_REVOKED
                && generation.is_some()
                && c.observed_generation == generation
        });
    [
        Area::Identity,
        Area::Storage,
        Area::Encryption,
        Area::AccessGrants,
    ]
    .into_iter()
    .filter_map(|area| {
        let made: Vec<&str> = writes
            .iter()
            // Recording the ownership claim corrects nothing.
            .filter(|w| w.reason != super::apply::CLAIM_REASON)
            .filter(|w| w.area == area || w.areas.contains(&area))
            .map(|w| w.message.as_str())
            .collect();
        let drifted = converged(area.condition_type())
            || (area == Area::Encryption
                && key_grant_lost
                && writes.iter().any(|w| w.reason == "KeyAccessGranted"));
        (!made.is_empty() && drifted).then(|| Correction {
            area,
            message: format!(
                "{} had converged for generation {}, but Azure changed outside the operator; corrected: {}",
                area.condition_type(),
                generation.unwrap_or_default(),
                made.join("; ")
            ),
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;

    fn condition(type_: &str, status: &str, reason: &str, generation: i64) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: String::new(),
            observed_generation: Some(generation),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        }
    }

    fn write(area: Area, reason: &'static str, message: &str) -> Write {
        Write {
            area,
            reason,
            message: message.to_owned(),
            access_policy: None,
            revoked: None,
            areas: vec![area],
        }
    }

    /// A write into an area that had converged for this generation is drift; one after a spec
    /// change, or into an area that had not converged, is not; the inaccessible key's restored
    /// grant is; one correction per area, naming every write it made.
    #[test]
    fn only_writes_into_converged_areas_of_the_same_generation_are_drift() {
        let status = MediaServicesAccountStatus {
            conditions: vec![
                condition(types::IDENTITY_READY, "True", "Succeeded", 3),
                condition(types::STORAGE_ACCESS_READY, "True", "Succeeded", 3),
                condition(types::ACCESS_GRANTS_READY, "False", "Propagating", 3),
                condition(types::ENCRYPTION_READY, "False", "KeyAccessMissing", 3),
                condition(
                    types::CUSTOMER_KEY_INACCESSIBLE,
                    "True",
                    key_access::ACCESS_REVOKED,
                    3,
                ),
            ],
            ..MediaServicesAccountStatus::default()
        };
        let writes = [
            write(Area::Storage, "StorageAccessGranted", "granted A"),
            write(Area::Storage, "StorageAccessGranted", "granted B"),
            write(Area::AccessGrants, "AccessGranted", "granted C"),
            write(Area::Encryption, "KeyAccessGranted", "added a policy"),
        ];

        let got = corrections(&status, Some(3), &writes);
        let areas: Vec<Area> = got.iter().map(|c| c.area).collect();
        assert_eq!(areas, [Area::Storage, Area::Encryption]);
        assert!(
            got[0].message.contains("granted A; granted B"),
            "{}",
            got[0].message
        );
        assert!(
            got[0]
                .message
                .starts_with("StorageAccessReady had converged for generation 3")
        );

        // The spec moved on: nothing is drift.
        assert!(corrections(&status, Some(4), &writes[..3]).is_empty());
        // Converged, but nothing written: no drift.
        assert!(corrections(&status, Some(3), &[]).is_empty());
        // No generation known: never drift.
        assert!(corrections(&status, None, &writes).is_empty());
        // One account update that served storage and encryption counts for both.
        let mut both = write(
            Area::Storage,
            "AccountUpdated",
            "set storage and encryption",
        );
        both.areas = vec![Area::Storage, Area::Encryption];
        let status_both = MediaServicesAccountStatus {
            conditions: vec![
                condition(types::STORAGE_ACCESS_READY, "True", "Succeeded", 3),
                condition(types::ENCRYPTION_READY, "True", "KeyAccessible", 3),
            ],
            ..MediaServicesAccountStatus::default()
        };
        let areas: Vec<Area> = corrections(&status_both, Some(3), &[both])
            .iter()
            .map(|c| c.area)
            .collect();
        assert_eq!(areas, [Area::Storage, Area::Encryption]);
        // An identity corrected out of band.
        let identity = [write(Area::Identity, "IdentityUpdated", "set the identity")];
        assert_eq!(
            corrections(&status, Some(3), &identity)[0].area,
            Area::Identity
        );
    }
}
