//! The role definitions the emulator knows: Azure's built-in roles with their well-known GUIDs,
//! plus any custom roles a seed declares.
//!
//! Built-in permissions are those Azure publishes for each role, reduced to the providers the
//! emulator serves (actions of unrelated providers, such as Event Grid's in the Key Vault crypto
//! role, are kept where they are harmless). Role definitions cannot be created over ARM.

/// A role definition.
#[derive(Clone, Debug)]
pub struct RoleDefinition {
    /// The role definition GUID.
    pub id: String,
    /// The role name.
    pub name: String,
    /// Description.
    pub description: String,
    /// `BuiltInRole` or `CustomRole`.
    pub role_type: &'static str,
    /// Control-plane actions.
    pub actions: Vec<String>,
    /// Excluded control-plane actions.
    pub not_actions: Vec<String>,
    /// Data-plane actions.
    pub data_actions: Vec<String>,
    /// Excluded data-plane actions.
    pub not_data_actions: Vec<String>,
}

fn owned(v: Vec<&'static str>) -> Vec<String> {
    v.into_iter().map(str::to_owned).collect()
}

/// Owner.
pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
/// Contributor.
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
/// Reader.
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
/// User Access Administrator.
pub const USER_ACCESS_ADMINISTRATOR: &str = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";
/// Storage Blob Data Contributor.
pub const STORAGE_BLOB_DATA_CONTRIBUTOR: &str = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
/// Key Vault Crypto Service Encryption User.
pub const KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER: &str = "e147488a-f6f5-4113-8e2d-b22465e65bf6";
/// Key Vault Administrator.
pub const KEY_VAULT_ADMINISTRATOR: &str = "00482a5a-887f-4fb3-b363-3b7fe8e74483";
/// Key Vault Crypto Officer.
pub const KEY_VAULT_CRYPTO_OFFICER: &str = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603";
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

const KEY_VAULT_READ: [&str; 5] = [
    "Microsoft.Authorization/*/read",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Support/*",
];

fn role(
    id: &'static str,
    name: &'static str,
    description: &'static str,
    actions: Vec<&'static str>,
    not_actions: Vec<&'static str>,
    data_actions: Vec<&'static str>,
) -> RoleDefinition {
    RoleDefinition {
        id: id.to_owned(),
        name: name.to_owned(),
        description: description.to_owned(),
        role_type: "BuiltInRole",
        actions: owned(actions),
        not_actions: owned(not_actions),
        data_actions: owned(data_actions),
        not_data_actions: Vec::new(),
    }
}

fn media_role(
    id: &'static str,
    name: &'static str,
    description: &'static str,
    extra: &[&'static str],
    not_actions: &[&'static str],
) -> RoleDefinition {
    let mut actions: Vec<&'static str> = vec![
        "Microsoft.Authorization/*/read",
        "Microsoft.Insights/alertRules/*",
        "Microsoft.Insights/metrics/read",
        "Microsoft.Insights/metricDefinitions/read",
        "Microsoft.Resources/deployments/*",
        "Microsoft.Resources/subscriptions/resourceGroups/read",
        "Microsoft.ResourceHealth/availabilityStatuses/read",
        "Microsoft.Media/mediaservices/*/read",
    ];
    actions.extend_from_slice(extra);
    role(id, name, description, actions, not_actions.to_vec(), vec![])
}

const NO_KEYS: [&str; 2] = [
    "Microsoft.Media/mediaservices/assets/getEncryptionKey/action",
    "Microsoft.Media/mediaservices/streamingLocators/listContentKeys/action",
];

/// All built-in roles the emulator serves.
#[must_use]
pub fn builtin_roles() -> Vec<RoleDefinition> {
    vec![
        role(
            OWNER,
            "Owner",
            "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
            vec!["*"],
            vec![],
            vec![],
        ),
        role(
            CONTRIBUTOR,
            "Contributor",
            "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
            vec!["*"],
            vec![
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
                "Microsoft.Blueprint/blueprintAssignments/write",
                "Microsoft.Blueprint/blueprintAssignments/delete",
                "Microsoft.Compute/galleries/share/action",
                "Microsoft.Purview/consents/write",
                "Microsoft.Purview/consents/delete",
            ],
            vec![],
        ),
        role(
            READER,
            "Reader",
            "View all resources, but does not allow you to make any changes.",
            vec!["*/read"],
            vec![],
            vec![],
        ),
        role(
            USER_ACCESS_ADMINISTRATOR,
            "User Access Administrator",
            "Lets you manage user access to Azure resources.",
            vec!["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
            vec![],
            vec![],
        ),
        role(
            STORAGE_BLOB_DATA_CONTRIBUTOR,
            "Storage Blob Data Contributor",
            "Allows for read, write and delete access to Azure Storage blob containers and data",
            vec![
                "Microsoft.Storage/storageAccounts/blobServices/containers/delete",
                "Microsoft.Storage/storageAccounts/blobServices/containers/read",
                "Microsoft.Storage/storageAccounts/blobServices/containers/write",
                "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
            ],
            vec![],
            vec![
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action",
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action",
            ],
        ),
        role(
            KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
            "Key Vault Crypto Service Encryption User",
            "Read metadata of keys and perform wrap/unwrap operations. Only works for key vaults that use the 'Azure role-based access control' permission model.",
            vec![
                "Microsoft.EventGrid/eventSubscriptions/write",
                "Microsoft.EventGrid/eventSubscriptions/read",
                "Microsoft.EventGrid/eventSubscriptions/delete",
            ],
            vec![],
            vec![
                "Microsoft.KeyVault/vaults/keys/read",
                "Microsoft.KeyVault/vaults/keys/wrap/action",
                "Microsoft.KeyVault/vaults/keys/unwrap/action",
            ],
        ),
        role(
            KEY_VAULT_ADMINISTRATOR,
            "Key Vault Administrator",
            "Perform all data plane operations on a key vault and all objects in it, including certificates, keys, and secrets. Cannot manage key vault resources or manage role assignments. Only works for key vaults that use the 'Azure role-based access control' permission model.",
            {
                let mut a = KEY_VAULT_READ.to_vec();
                a.extend([
                    "Microsoft.KeyVault/checkNameAvailability/read",
                    "Microsoft.KeyVault/deletedVaults/read",
                    "Microsoft.KeyVault/locations/*/read",
                    "Microsoft.KeyVault/vaults/*/read",
                    "Microsoft.KeyVault/operations/read",
                ]);
                a
            },
            vec![],
            vec!["Microsoft.KeyVault/vaults/*"],
        ),
        role(
            KEY_VAULT_CRYPTO_OFFICER,
            "Key Vault Crypto Officer",
            "Perform any action on the keys of a key vault, except manage permissions. Only works for key vaults that use the 'Azure role-based access control' permission model.",
            {
                let mut a = KEY_VAULT_READ.to_vec();
                a.extend([
                    "Microsoft.KeyVault/checkNameAvailability/read",
                    "Microsoft.KeyVault/deletedVaults/read",
                    "Microsoft.KeyVault/locations/*/read",
                    "Microsoft.KeyVault/vaults/*/read",
                    "Microsoft.KeyVault/operations/read",
                ]);
                a
            },
            vec![],
            vec![
                "Microsoft.KeyVault/vaults/keys/*",
                "Microsoft.KeyVault/vaults/keyrotationpolicies/*",
            ],
        ),
        media_role(
            MEDIA_SERVICES_ACCOUNT_ADMINISTRATOR,
            "Media Services Account Administrator",
            "Create, read, modify, and delete Media Services accounts; read-only access to other Media Services resources.",
            &[
                "Microsoft.Media/mediaservices/assets/listStreamingLocators/action",
                "Microsoft.Media/mediaservices/streamingLocators/listPaths/action",
                "Microsoft.Media/mediaservices/write",
                "Microsoft.Media/mediaservices/delete",
                "Microsoft.Media/mediaservices/privateEndpointConnectionsApproval/action",
                "Microsoft.Media/mediaservices/privateEndpointConnections/*",
            ],
            &[],
        ),
        media_role(
            MEDIA_SERVICES_LIVE_EVENTS_ADMINISTRATOR,
            "Media Services Live Events Administrator",
            "Create, read, modify, and delete Live Events, Assets, Asset Filters, and Streaming Locators; read-only access to other Media Services resources.",
            &[
                "Microsoft.Media/mediaservices/assets/*",
                "Microsoft.Media/mediaservices/assets/assetfilters/*",
                "Microsoft.Media/mediaservices/streamingLocators/*",
                "Microsoft.Media/mediaservices/liveEvents/*",
            ],
            &NO_KEYS,
        ),
        media_role(
            MEDIA_SERVICES_MEDIA_OPERATOR,
            "Media Services Media Operator",
            "Create, read, modify, and delete Assets, Asset Filters, Streaming Locators, and Jobs; read-only access to other Media Services resources.",
            &[
                "Microsoft.Media/mediaservices/assets/*",
                "Microsoft.Media/mediaservices/assets/assetfilters/*",
                "Microsoft.Media/mediaservices/streamingLocators/*",
                "Microsoft.Media/mediaservices/transforms/jobs/*",
            ],
            &NO_KEYS,
        ),
        media_role(
            MEDIA_SERVICES_POLICY_ADMINISTRATOR,
            "Media Services Policy Administrator",
            "Create, read, modify, and delete Account Filters, Streaming Policies, Content Key Policies, and Transforms; read-only access to other Media Services resources. Cannot create Jobs, Assets or Streaming resources.",
            &[
                "Microsoft.Media/mediaservices/assets/listStreamingLocators/action",
                "Microsoft.Media/mediaservices/streamingLocators/listPaths/action",
                "Microsoft.Media/mediaservices/accountFilters/*",
                "Microsoft.Media/mediaservices/streamingPolicies/*",
                "Microsoft.Media/mediaservices/contentKeyPolicies/*",
                "Microsoft.Media/mediaservices/transforms/*",
            ],
            &[
                "Microsoft.Media/mediaservices/contentKeyPolicies/getPolicyPropertiesWithSecrets/action",
            ],
        ),
        media_role(
            MEDIA_SERVICES_STREAMING_ENDPOINTS_ADMINISTRATOR,
            "Media Services Streaming Endpoints Administrator",
            "Create, read, modify, and delete Streaming Endpoints; read-only access to other Media Services resources.",
            &[
                "Microsoft.Media/mediaservices/assets/listStreamingLocators/action",
                "Microsoft.Media/mediaservices/streamingLocators/listPaths/action",
                "Microsoft.Media/mediaservices/streamingEndpoints/*",
            ],
            &[],
        ),
    ]
}
