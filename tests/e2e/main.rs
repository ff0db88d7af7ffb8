#![cfg(feature = "emulator")]
//! End-to-end tests of the operator: the real kube-apiserver (`AMS_TEST_KUBECONFIG`, see
//! `tests/common`), the Azure emulator, and the operator's main job running in-process. One
//! test binary, so the crate is linked once for all of them.

mod chart_rbac;
#[path = "../common/mod.rs"]
mod common;
mod crash;
mod credentials;
mod deletion;
mod examples;
mod grants;
mod harness;
mod key_access;
mod leader;
mod monitor;
mod ownership;
mod prerequisites;
mod reconcile;
#[path = "../emulator/spec.rs"]
mod spec;
