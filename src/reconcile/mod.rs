//! The reconcile pipeline's steps, one module each, in the order the driver runs them:
//!
//! 1. [`validate`] and [`desired`] (pure): the spec's rules, then the typed [`desired::Desired`];
//! 2. [`observe`] (I/O): what Azure holds now, read once per pass;
//! 3. [`prereqs`] (pure): what must hold before anything is written; [`key_access`] (pure):
//!    whether the account's identity can still use its customer key, and the first broken link;
//! 4. [`plan`] (pure): the ordered writes that make Azure match;
//! 5. [`apply`] (I/O): the writes, never waiting on Azure;
//! 6. [`status`] (pure): the resource's status from all of the above; [`drift`] (pure): which
//!    writes corrected a change made outside the operator.
//!
//! When the resource is deleted, [`cleanup`] carries out its `deletionPolicy` instead.
//!
//! The driver that strings them together, and writes status and events, is
//! `crate::controller`.

pub mod apply;
pub mod assess;
pub mod cleanup;
pub mod desired;
pub mod drift;
#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod key_access;
pub mod observe;
pub mod ownership;
pub mod parked;
pub mod plan;
pub mod prereqs;
pub mod rules;
pub mod status;
pub mod validate;
