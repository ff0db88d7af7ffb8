//! The reconcile pipeline's steps. Today: the pure spec validation that mirrors the CRD's
//! schema and CEL rules, for apiservers that do not enforce CEL.

pub mod validate;
