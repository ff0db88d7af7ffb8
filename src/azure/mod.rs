//! Azure clients: credentials, ARM and Key Vault on the Azure SDK for Rust.
//!
//! The reconciler depends on the [`AzureApi`] trait and builds real clients with
//! [`AzureClients::new`] and [`AzureClients::api`]. Underneath: [`credentials`] (explicitly
//! chosen `azure_identity` credentials, cached per identity), [`cloud`] (endpoints of each
//! cloud), [`transport`] (reqwest; the emulator is reached only through explicit extra-CA and
//! host-resolution settings), [`arm`] (`azure_core` pipeline with bounded retries and a
//! per-subscription rate limit), [`lro`] (long-running operations as parkable values),
//! [`keys`] (`azure_security_keyvault_keys`), [`error`] (one error type and its classification),
//! [`operation`] (the closed set of operations: metric labels, span fields, error verbs),
//! [`call`] (the one span + timeout + metrics wrapper of every call), [`metrics`].
//!
//! This module does not decide what to change in Azure and never reads Kubernetes objects.

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

pub use client::{AzureApi, AzureClient, AzureClients, AzureConfig, new_role_assignment_name};
pub use cloud::AzureCloud;
pub use credentials::CredentialSource;
pub use error::{AzureError, ErrorClass};
pub use lro::{PendingOperation, PollOutcome, Started};
pub use operation::Operation;
pub use resource_id::ResourceId;

/// Microsoft.Media api-version.
pub const API_VERSION_MEDIA: &str = "2023-01-01";
/// Microsoft.Authorization api-version (role assignments and definitions).
pub const API_VERSION_AUTHORIZATION: &str = "2022-04-01";
/// Microsoft.KeyVault management-plane api-version.
pub const API_VERSION_KEY_VAULT_MGMT: &str = "2025-05-01";
/// Microsoft.Storage api-version.
pub const API_VERSION_STORAGE: &str = "2025-08-01";
/// Microsoft.ManagedIdentity api-version.
pub const API_VERSION_MANAGED_IDENTITY: &str = "2026-05-31";
/// Key Vault data-plane (keys) api-version; the SDK's default is newer, so it is set explicitly.
pub const API_VERSION_KEY_VAULT_KEYS: &str = "7.5";
