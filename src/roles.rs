//! Azure's built-in role definitions the operator names, by their well-known GUIDs (the same in
//! every tenant): the one registry. The CRD's role names, the plan's grants and the checks of
//! grants someone else made all read from here.
//!
//! NB: the emulator keeps its own copy (`emulator::roles`) on purpose: it is written against the
//! specifications, not against the operator, so a wrong GUID here cannot pass by agreement.

/// Storage Blob Data Contributor: what trusted storage needs.
pub const STORAGE_BLOB_DATA_CONTRIBUTOR: &str = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
/// Storage Blob Data Owner (also grants blob data access).
pub const STORAGE_BLOB_DATA_OWNER: &str = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b";
/// Contributor (control plane only: no blob data).
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
/// Owner (control plane only: no blob data).
pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
/// Reader.
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
/// Key Vault Crypto Service Encryption User: get, wrap and unwrap in RBAC vaults.
pub const KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER: &str = "e147488a-f6f5-4113-8e2d-b22465e65bf6";
/// Key Vault Crypto Officer (includes wrap and unwrap).
pub const KEY_VAULT_CRYPTO_OFFICER: &str = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603";
/// Key Vault Administrator (includes wrap and unwrap).
pub const KEY_VAULT_ADMINISTRATOR: &str = "00482a5a-887f-4fb3-b363-3b7fe8e74483";
/// Media Services Account Administrator.
pub const MEDIA_SERVICES_ACCOUNT_ADMINISTRATOR: &str = "054126f8-9a2b-4f1c-a9ad-eca461f08466";
/// Media Services Live Events Administrator.
pub const MEDIA_SERVICES_LIVE_EVENTS_ADMINISTRATOR: &str = "532bc159-b25e-42c0-969e-a1d439f60d77";
/// Media Services Media Operator.
pub const MEDIA_SERVICES_MEDIA_OPERATOR: &str = "e4395492-1534-4db2-bedf-88c14621589c";
/// Media Services Policy Administrator.
pub const MEDIA_SERVICES_POLICY_ADMINISTRATOR: &str = "c4bba371-dacd-4a26-b320-7250bca963ae";
/// Media Services Streaming Endpoints Administrator.
pub const MEDIA_SERVICES_STREAMING_ENDPOINTS_ADMINISTRATOR: &str =
    "99dba123-b5fe-44d5-874c-ced7199a5804";

/// Roles that give blob data access (what trusted storage needs).
pub const BLOB_DATA_ROLES: [&str; 2] = [STORAGE_BLOB_DATA_CONTRIBUTOR, STORAGE_BLOB_DATA_OWNER];

/// Roles that permit get, wrapKey and unwrapKey on a key in an RBAC vault.
pub const KEY_WRAP_ROLES: [&str; 3] = [
    KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
    KEY_VAULT_CRYPTO_OFFICER,
    KEY_VAULT_ADMINISTRATOR,
];

/// Control-plane roles that look like enough for storage but grant no blob data access.
pub const CONTROL_PLANE_ONLY: [(&str, &str); 2] = [(OWNER, "Owner"), (CONTRIBUTOR, "Contributor")];
