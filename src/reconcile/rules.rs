//! Facts the pipeline's steps share, with no step of their own: the areas (conditions) a
//! problem or a write serves, the roles that count as a grant, the key sizes Media Services accepts, and how regions compare. A leaf: it imports no
//! other step, so every step can read it without a circle.

use crate::azure::models::authorization::RoleAssignment;

pub use crate::roles::{BLOB_DATA_ROLES, KEY_WRAP_ROLES};

/// Which condition a problem belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Area {
    /// `IdentityReady` (and the account itself).
    Identity,
    /// `StorageAccessReady`.
    Storage,
    /// `EncryptionReady`.
    Encryption,
    /// `AccessGrantsReady`.
    AccessGrants,
}

impl Area {
    /// The condition type of this area.
    #[must_use]
    pub fn condition_type(self) -> &'static str {
        use crate::crd::conditions::types;
        match self {
            Area::Identity => types::IDENTITY_READY,
            Area::Storage => types::STORAGE_ACCESS_READY,
            Area::Encryption => types::ENCRYPTION_READY,
            Area::AccessGrants => types::ACCESS_GRANTS_READY,
        }
    }

    /// The area of a condition type, if it is one.
    #[must_use]
    pub fn from_condition_type(type_: &str) -> Option<Self> {
        [
            Area::Identity,
            Area::Storage,
            Area::Encryption,
            Area::AccessGrants,
        ]
        .into_iter()
        .find(|a| a.condition_type() == type_)
    }
}

/// RSA sizes Media Services accepts for an account key.
pub const RSA_SIZES: [u32; 3] = [2048, 3072, 4096];

/// Key operations Media Services performs with the account key.
pub const KEY_OPERATIONS: [&str; 2] = ["wrapKey", "unwrapKey"];

/// The id of the first assignment in `assignments` that holds one of `roles` (GUIDs; an
/// assignment without an id gives an empty string).
#[must_use]
pub fn holds_any(assignments: &[RoleAssignment], roles: &[&str]) -> Option<String> {
    assignments
        .iter()
        .find(|a| {
            roles
                .iter()
                .any(|r| a.role_definition_guid().eq_ignore_ascii_case(r))
        })
        .and_then(|a| a.id.clone().or_else(|| Some(String::new())))
}

/// Lower-case, no spaces: `West Europe` and `westeurope` are the same region.
#[must_use]
pub fn normalise_location(location: &str) -> String {
    location
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Azure writes regions both ways; they must compare equal.
    #[test]
    fn display_and_programmatic_region_names_compare_equal() {
        assert_eq!(
            normalise_location("West Europe"),
            normalise_location("westeurope")
        );
        assert_ne!(
            normalise_location("North Europe"),
            normalise_location("westeurope")
        );
    }
}
