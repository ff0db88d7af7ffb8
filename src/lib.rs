//! ams-security-operator: reconciles the security state of Azure Media Services accounts
//! (managed identity, trusted storage, customer-managed key, access grants) from Kubernetes
//! custom resources.
//!
//! Module map:
//! - [`crd`]: the `MediaServicesAccount` API (spec, status, conditions) and CRD generation.
//! - [`reconcile`]: the reconcile pipeline's steps (validate, observe, prerequisites, plan,
//!   apply, status).
//! - [`controller`]: the main job (`ams-security-operator run`): the controller, its context,
//!   requeue policy, events and graceful shutdown; [`http`] serves `/healthz` and `/readyz`.
//! - [`monitor`]: the shared key-access monitor: one prober per distinct key and principal.
//! - [`metrics`]: Prometheus metrics, served at `/metrics`.
//! - [`roles`]: the built-in Azure role GUIDs the operator names (one registry).
//! - [`triggers`]: reconciles asked for from inside the operator.
//! - [`tenancy`]: which namespaces may manage which subscriptions.
//! - [`azure`]: Azure clients (credentials, ARM, Key Vault) the reconciler talks through.
//! - `emulator` (feature `emulator`): a stateful Azure stand-in held to the official REST
//!   specifications, for tests, benchmarks and the "try it without Azure" mode. It imports
//!   nothing from [`azure`]: the specs referee both sides. It brings `test-endpoints`.
//!
//! Feature `test-endpoints`: the transport settings that point Azure host names at another
//! address and trust another CA (`azure::transport`), and the `run` flags that set them; off in
//! the image, so the shipped binary cannot send Azure traffic anywhere but Azure.

pub mod azure;
pub mod controller;
pub mod crd;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod http;
pub mod metrics;
pub mod monitor;
pub mod reconcile;
pub mod roles;
pub mod tenancy;
pub mod triggers;
