//! Azure clients: credentials, ARM and Key Vault on the Azure SDK for Rust.
//!
//! The reconciler depends on the [`AzureApi`] trait and builds real clients with
//! [`AzureClients::new`] and [`AzureClients::api`]. Underneath: [`credentials`] (explicitly
//! chosen `azure_identity` credentials, cached per identity), [`cloud`] (endpoints of each
//! cloud), [`transport`] (reqwest; the emulator is reached only through explicit extra-CA and
//! host-resolution settings, compiled only with the `test-endpoints` feature), [`arm`] (`azure_core` pipeline with bounded retries and a
//! per-subscription rate limit), [`lro`] (long-running operations as parkable values),
//! [`keys`] (`azure_security_keyvault_keys`), [`error`] (one error type and its classification),
//! [`operation`] (the closed set of operations: metric labels, span fields, error verbs),
//! [`call`] (the one span + timeout + metrics wrapper of every call), [`metrics`].
//!
//! This module does not decide what to change in Azure and never reads Kubernetes objects.

pub mod api_version;
pub mod arm;
pub mod call;
pub mod client;
pub mod cloud;
pub mod credentials;
pub mod error;
pub mod keys;
pub mod lro;
pub mod metrics;
pub mod models;
pub mod operation;
pub mod policy;
pub mod ratelimit;
pub mod resource_id;
pub mod transport;

pub use api_version::{
    API_VERSION_AUTHORIZATION, API_VERSION_KEY_VAULT_KEYS, API_VERSION_KEY_VAULT_MGMT,
    API_VERSION_MANAGED_IDENTITY, API_VERSION_MEDIA, API_VERSION_STORAGE,
};
pub use client::{AzureApi, AzureClient, AzureClients, AzureConfig, new_role_assignment_name};
pub use cloud::AzureCloud;
pub use credentials::{CredentialSource, CredentialSourceKey};
pub use error::{AzureError, ErrorClass};
pub use lro::{PendingOperation, PollOutcome, Started};
pub use operation::Operation;
pub use resource_id::ResourceId;
