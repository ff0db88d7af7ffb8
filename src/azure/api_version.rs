//! The api-version of each Azure API the clients call: the versions whose specifications the
//! emulator is held to. A leaf: every client module reads it, and it reads none.

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
