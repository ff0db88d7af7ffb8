//! Validate step (pure): checks a `MediaServicesAccount` spec against every rule of its CRD
//! schema — patterns, lengths, and the CEL rules (`x-kubernetes-validations`) — and reports each
//! violation with the field path a user sees in `kubectl explain`.
//!
//! Why in Rust as well as in the schema: apiservers before 1.25 do not enforce CEL (1.20 drops the
//! rules silently), and an object admitted before a rule existed is never re-checked. The
//! reconciler runs this before any Azure call; a violation becomes `Ready=False`, reason
//! `InvalidSpec`, and nothing is written to Azure.
//!
//! This step sees only the spec. Rules that need Azure's answer (RSA size, the vault's region,
//! the storage account's subscription as Azure resolves it) belong to the later validation of
//! observed state. No I/O, no clock.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use crate::crd::account::{
    AccessGrant, EncryptionSpec, EncryptionType, IdentitySpec, MediaServicesAccountSpec,
    ResourceIdentity, StorageAccountType, StorageAuthentication, StorageSpec,
};
use crate::crd::patterns;

/// One rule violation: the offending field's path and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path from the object's root, e.g. `spec.storage.accounts[1].identity`.
    pub field: String,
    /// What is wrong, phrased for the person who wrote the manifest.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every violation found in one spec (never empty).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid spec: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct SpecErrors(pub Vec<FieldError>);

/// Validates a spec. Returns every violation, not only the first, so one `kubectl apply`
/// round trip shows the user all there is to fix.
///
/// # Errors
/// [`SpecErrors`] listing each violated rule with its field path.
pub fn validate_spec(spec: &MediaServicesAccountSpec) -> Result<(), SpecErrors> {
    let mut v = Violations::default();
    check_account(spec, &mut v);
    if let Some(identity) = &spec.identity {
        check_identity(identity, &mut v);
    }
    if let Some(storage) = &spec.storage {
        check_storage(storage, spec.identity.as_ref(), &mut v);
    }
    if let Some(encryption) = &spec.encryption {
        check_encryption(encryption, spec.identity.as_ref(), &mut v);
    }
    check_access_grants(&spec.access_grants, &mut v);
    check_interval(spec, &mut v);
    if let Some(secret) = &spec.credentials_secret_ref {
        v.pattern(
            "spec.credentialsSecretRef.name",
            &secret.name,
            &OBJECT_NAME,
            "a Kubernetes object name",
        );
    }
    v.into_result()
}

/// Validates an object as `kubectl` would send it: deserializes it (reporting the path of a
/// wrongly-typed or unknown enum value) and then runs [`validate_spec`].
///
/// # Errors
/// [`SpecErrors`] for a value that does not deserialize or breaks a rule.
pub fn validate_object(object: &serde_json::Value) -> Result<MediaServicesAccountSpec, SpecErrors> {
    let spec_value = object
        .get("spec")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let spec: MediaServicesAccountSpec =
        serde_path_to_error::deserialize(spec_value).map_err(|err| {
            let path = err.path().to_string();
            let mut field = if path == "." {
                "spec".to_owned()
            } else {
                format!("spec.{path}")
            };
            let message = err.into_inner().to_string();
            // serde reports a missing field at its parent; name the field itself.
            if let Some(missing) = message
                .strip_prefix("missing field `")
                .and_then(|m| m.split('`').next())
            {
                field = format!("{field}.{missing}");
            }
            SpecErrors(vec![FieldError { field, message }])
        })?;
    validate_spec(&spec)?;
    Ok(spec)
}

macro_rules! regex {
    ($name:ident, $pattern:expr) => {
        static $name: LazyLock<Regex> =
            LazyLock::new(|| Regex::new($pattern).expect("pattern compiles"));
    };
}
regex!(SUBSCRIPTION_ID, patterns::SUBSCRIPTION_ID);
regex!(PRINCIPAL_ID, patterns::PRINCIPAL_ID);
regex!(RESOURCE_GROUP, patterns::RESOURCE_GROUP);
regex!(ACCOUNT_NAME, patterns::ACCOUNT_NAME);
regex!(LOCATION, patterns::LOCATION);
regex!(
    USER_ASSIGNED_IDENTITY_ID,
    patterns::USER_ASSIGNED_IDENTITY_ID
);
regex!(STORAGE_ACCOUNT_ID, patterns::STORAGE_ACCOUNT_ID);
regex!(KEY_IDENTIFIER, patterns::KEY_IDENTIFIER);
regex!(ROLE_DEFINITION_ID, patterns::ROLE_DEFINITION_ID);
regex!(OBJECT_NAME, patterns::OBJECT_NAME);
regex!(DURATION, patterns::DURATION);

#[derive(Default)]
struct Violations(Vec<FieldError>);

impl Violations {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn pattern(&mut self, field: &str, value: &str, re: &Regex, what: &str) {
        if !re.is_match(value) {
            self.push(field, format!("{value:?} is not {what}"));
        }
    }

    fn arm_id(&mut self, field: &str, value: &str, re: &Regex, what: &str) {
        if value.len() > patterns::MAX_ARM_ID_LENGTH as usize {
            self.push(
                field,
                format!("must be at most {} characters", patterns::MAX_ARM_ID_LENGTH),
            );
        } else {
            self.pattern(field, value, re, what);
        }
    }

    fn into_result(self) -> Result<(), SpecErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(SpecErrors(self.0))
        }
    }
}

fn check_account(spec: &MediaServicesAccountSpec, v: &mut Violations) {
    let a = &spec.account;
    v.pattern(
        "spec.account.subscriptionId",
        &a.subscription_id,
        &SUBSCRIPTION_ID,
        "a subscription id (UUID)",
    );
    v.pattern(
        "spec.account.resourceGroup",
        &a.resource_group,
        &RESOURCE_GROUP,
        "a resource group name (1-90 letters, digits, _-.() not ending in .)",
    );
    v.pattern(
        "spec.account.name",
        &a.name,
        &ACCOUNT_NAME,
        "an account name (3-24 lowercase letters and digits)",
    );
    v.pattern(
        "spec.account.location",
        &a.location,
        &LOCATION,
        "a canonical Azure region such as westeurope",
    );
}

fn check_identity(identity: &IdentitySpec, v: &mut Violations) {
    let listed = &identity.user_assigned_identities;
    if identity.type_.has_user_assigned() == listed.is_empty() {
        v.push(
            "spec.identity.userAssignedIdentities",
            "must list at least one identity when type includes UserAssigned, and must be empty otherwise",
        );
    }
    if listed.len() > 32 {
        v.push(
            "spec.identity.userAssignedIdentities",
            "must have at most 32 items",
        );
    }
    for (i, id) in listed.iter().enumerate() {
        let field = format!("spec.identity.userAssignedIdentities[{i}]");
        v.arm_id(
            &field,
            id,
            &USER_ASSIGNED_IDENTITY_ID,
            "the ARM id of a user-assigned identity",
        );
        if listed[..i]
            .iter()
            .any(|earlier| earlier.eq_ignore_ascii_case(id))
        {
            v.push(field, "repeats an identity listed earlier");
        }
    }
}

fn check_storage(storage: &StorageSpec, identity: Option<&IdentitySpec>, v: &mut Violations) {
    let managed = storage.authentication == StorageAuthentication::ManagedIdentity;
    if storage.accounts.is_empty() || storage.accounts.len() > 16 {
        v.push(
            "spec.storage.accounts",
            "must have between 1 and 16 storage accounts",
        );
    }
    let primaries = storage
        .accounts
        .iter()
        .filter(|a| a.type_ == StorageAccountType::Primary)
        .count();
    if primaries != 1 && !storage.accounts.is_empty() {
        v.push(
            "spec.storage.accounts",
            format!("exactly one storage account must have type Primary, found {primaries}"),
        );
    }
    if managed && identity.is_none() {
        v.push(
            "spec.identity",
            "is required when storage.authentication is ManagedIdentity",
        );
    }
    for (i, account) in storage.accounts.iter().enumerate() {
        let field = format!("spec.storage.accounts[{i}]");
        v.arm_id(
            &format!("{field}.id"),
            &account.id,
            &STORAGE_ACCOUNT_ID,
            "the ARM id of a storage account",
        );
        if storage.accounts[..i]
            .iter()
            .any(|earlier| earlier.id.eq_ignore_ascii_case(&account.id))
        {
            v.push(
                format!("{field}.id"),
                "repeats a storage account listed earlier",
            );
        }
        match (&account.identity, managed) {
            (None, true) => v.push(
                format!("{field}.identity"),
                "is required when storage.authentication is ManagedIdentity",
            ),
            (Some(_), false) => v.push(
                format!("{field}.identity"),
                "applies only when storage.authentication is ManagedIdentity",
            ),
            (Some(resource_identity), true) => {
                check_resource_identity(
                    &format!("{field}.identity"),
                    resource_identity,
                    identity,
                    v,
                );
            }
            (None, false) => {}
        }
    }
}

/// Checks one `{useSystemAssignedIdentity | userAssignedIdentity}` choice against the account's
/// declared identity. `identity: None` means the account identity is not managed by this spec;
/// the rule that requires it is reported by the caller, so it is not repeated here.
fn check_resource_identity(
    field: &str,
    chosen: &ResourceIdentity,
    identity: Option<&IdentitySpec>,
    v: &mut Violations,
) {
    match (
        chosen.use_system_assigned_identity,
        &chosen.user_assigned_identity,
    ) {
        (true, Some(_)) | (false, None) => {
            v.push(
                field,
                "set exactly one of useSystemAssignedIdentity: true or userAssignedIdentity",
            );
        }
        (true, None) => {
            if let Some(identity) = identity
                && !identity.type_.has_system_assigned()
            {
                v.push(
                    format!("{field}.useSystemAssignedIdentity"),
                    "needs identity.type SystemAssigned or SystemAssigned,UserAssigned",
                );
            }
        }
        (false, Some(id)) => {
            let id_field = format!("{field}.userAssignedIdentity");
            v.arm_id(
                &id_field,
                id,
                &USER_ASSIGNED_IDENTITY_ID,
                "the ARM id of a user-assigned identity",
            );
            let listed = identity.is_some_and(|i| {
                i.user_assigned_identities
                    .iter()
                    .any(|u| u.eq_ignore_ascii_case(id))
            });
            if !listed {
                v.push(
                    id_field,
                    "must be listed in identity.userAssignedIdentities",
                );
            }
        }
    }
}

fn check_encryption(
    encryption: &EncryptionSpec,
    identity: Option<&IdentitySpec>,
    v: &mut Violations,
) {
    match encryption.type_ {
        EncryptionType::CustomerKey => {
            match &encryption.key_identifier {
                None => v.push("spec.encryption.keyIdentifier", "is required when type is CustomerKey"),
                Some(key) if key.len() > 1024 => {
                    v.push("spec.encryption.keyIdentifier", "must be at most 1024 characters");
                }
                Some(key) => v.pattern(
                    "spec.encryption.keyIdentifier",
                    key,
                    &KEY_IDENTIFIER,
                    "a Key Vault key identifier (https://<vault>.vault.azure.net/keys/<name>[/<32-hex version>])",
                ),
            }
            if identity.is_none() {
                v.push(
                    "spec.identity",
                    "is required when encryption.type is CustomerKey",
                );
            }
            match &encryption.identity {
                Some(chosen) => {
                    check_resource_identity("spec.encryption.identity", chosen, identity, v);
                }
                None => {
                    if let Some(identity) = identity
                        && !identity.type_.has_system_assigned()
                    {
                        v.push(
                            "spec.encryption.identity",
                            "encryption uses the system-assigned identity unless userAssignedIdentity is set, so identity.type must include SystemAssigned",
                        );
                    }
                }
            }
        }
        EncryptionType::SystemKey => {
            if encryption.key_identifier.is_some() {
                v.push(
                    "spec.encryption.keyIdentifier",
                    "applies only when type is CustomerKey",
                );
            }
            if encryption.identity.is_some() {
                v.push(
                    "spec.encryption.identity",
                    "applies only when type is CustomerKey",
                );
            }
        }
    }
}

fn check_access_grants(grants: &[AccessGrant], v: &mut Violations) {
    if grants.len() > 64 {
        v.push("spec.accessGrants", "must have at most 64 items");
    }
    // What Azure sees. A grant without a principal or a role has no key; its own error says so.
    let keys: Vec<Option<(String, String)>> = grants
        .iter()
        .map(|g| g.principal_key().zip(g.role_definition_guid()))
        .collect();
    for (i, grant) in grants.iter().enumerate() {
        let field = format!("spec.accessGrants[{i}]");
        match (&grant.principal_id, &grant.identity_resource_id) {
            (Some(principal), None) => v.pattern(
                &format!("{field}.principalId"),
                principal,
                &PRINCIPAL_ID,
                "an object (principal) id (UUID)",
            ),
            (None, Some(id)) => v.arm_id(
                &format!("{field}.identityResourceId"),
                id,
                &USER_ASSIGNED_IDENTITY_ID,
                "the ARM id of a user-assigned identity",
            ),
            _ => v.push(
                field.clone(),
                "set exactly one of principalId or identityResourceId",
            ),
        }
        match (&grant.role, &grant.role_definition_id) {
            (Some(_), None) => {}
            (None, Some(id)) => v.arm_id(
                &format!("{field}.roleDefinitionId"),
                id,
                &ROLE_DEFINITION_ID,
                "a role definition GUID or ARM id",
            ),
            _ => v.push(field.clone(), "set exactly one of role or roleDefinitionId"),
        }
        if let Some(earlier) = keys[i]
            .as_ref()
            .and_then(|key| keys[..i].iter().position(|k| k.as_ref() == Some(key)))
        {
            v.push(
                field,
                format!(
                    "grants the same role to the same principal as spec.accessGrants[{earlier}] (ids compare in any case, a role by its definition GUID)"
                ),
            );
        }
    }
}

fn check_interval(spec: &MediaServicesAccountSpec, v: &mut Violations) {
    let text = spec.key_access_check_interval.as_str();
    if !DURATION.is_match(text) {
        v.push(
            "spec.keyAccessCheckInterval",
            format!("{text:?} is not a duration such as 30s or 5m"),
        );
    } else if spec.key_access_check_interval.duration().is_err() {
        v.push("spec.keyAccessCheckInterval", "must be between 10s and 24h");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({
            "spec": {
                "account": {
                    "subscriptionId": "00000000-1111-2222-3333-444444444444",
                    "resourceGroup": "media-rg",
                    "name": "contosomedia",
                    "location": "westeurope"
                }
            }
        })
    }

    fn with(
        mut object: serde_json::Value,
        pointer: &str,
        value: serde_json::Value,
    ) -> serde_json::Value {
        let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
        let target = object.pointer_mut(parent).expect("parent exists");
        target[key] = value;
        object
    }

    fn fields(object: &serde_json::Value) -> Vec<String> {
        match validate_object(object) {
            Ok(_) => vec![],
            Err(SpecErrors(errors)) => errors.into_iter().map(|e| e.field).collect(),
        }
    }

    const UA: &str = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/media-id";
    const SA: &str = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/contosomedia";
    const KEY: &str = "https://contoso-kv.vault.azure.net/keys/media-key";

    /// A minimal spec (only the account) is valid: every section is optional and means
    /// "leave that part of the account as it is".
    #[test]
    fn minimal_spec_is_valid_and_gets_defaults() {
        let spec = validate_object(&base()).expect("valid");
        assert_eq!(spec.key_access_check_interval.to_string(), "30s");
        assert_eq!(
            spec.deletion_policy,
            crate::crd::account::DeletionPolicy::Retain
        );
        assert!(!spec.suspend);
    }

    /// Each rule, violated alone, is reported on the field a user would edit.
    #[test]
    #[expect(
        clippy::too_many_lines,
        reason = "one table of cases reads best in one place"
    )]
    fn each_violation_names_its_field() {
        let sys = json!({"type": "SystemAssigned"});
        let cases: Vec<(&str, serde_json::Value, Vec<&str>)> = vec![
            (
                "bad subscription",
                with(base(), "/spec/account/subscriptionId", json!("nope")),
                vec!["spec.account.subscriptionId"],
            ),
            (
                "upper-case name",
                with(base(), "/spec/account/name", json!("Contoso")),
                vec!["spec.account.name"],
            ),
            (
                "spaced region",
                with(base(), "/spec/account/location", json!("West Europe")),
                vec!["spec.account.location"],
            ),
            (
                "unknown identity type",
                with(
                    base(),
                    "/spec/identity",
                    json!({"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": [UA]}),
                ),
                vec!["spec.identity.type"],
            ),
            (
                "user-assigned without identities",
                with(base(), "/spec/identity", json!({"type": "UserAssigned"})),
                vec!["spec.identity.userAssignedIdentities"],
            ),
            (
                "identities without user-assigned type",
                with(
                    base(),
                    "/spec/identity",
                    json!({"type": "SystemAssigned", "userAssignedIdentities": [UA]}),
                ),
                vec!["spec.identity.userAssignedIdentities"],
            ),
            (
                "two primaries",
                with(
                    with(base(), "/spec/identity", sys.clone()),
                    "/spec/storage",
                    json!({"accounts": [
                    {"id": SA, "type": "Primary"},
                    {"id": SA.replace("contosomedia", "second"), "type": "Primary"}]}),
                ),
                vec!["spec.storage.accounts"],
            ),
            (
                "managed identity storage without identity",
                with(
                    with(base(), "/spec/identity", sys.clone()),
                    "/spec/storage",
                    json!({"authentication": "ManagedIdentity", "accounts": [
                    {"id": SA, "type": "Primary"}]}),
                ),
                vec!["spec.storage.accounts[0].identity"],
            ),
            (
                "storage uses unlisted user-assigned identity",
                with(
                    with(base(), "/spec/identity", sys.clone()),
                    "/spec/storage",
                    json!({"authentication": "ManagedIdentity", "accounts": [
                    {"id": SA, "type": "Primary", "identity": {"userAssignedIdentity": UA}}]}),
                ),
                vec!["spec.storage.accounts[0].identity.userAssignedIdentity"],
            ),
            (
                "storage uses absent system identity",
                with(
                    with(
                        base(),
                        "/spec/identity",
                        json!({"type": "UserAssigned", "userAssignedIdentities": [UA]}),
                    ),
                    "/spec/storage",
                    json!({"authentication": "ManagedIdentity", "accounts": [{"id": SA, "type": "Primary", "identity": {"useSystemAssignedIdentity": true}}]}),
                ),
                vec!["spec.storage.accounts[0].identity.useSystemAssignedIdentity"],
            ),
            (
                "customer key without identifier",
                with(
                    with(base(), "/spec/identity", sys.clone()),
                    "/spec/encryption",
                    json!({"type": "CustomerKey"}),
                ),
                vec!["spec.encryption.keyIdentifier"],
            ),
            (
                "customer key without identity",
                with(
                    base(),
                    "/spec/encryption",
                    json!({"type": "CustomerKey", "keyIdentifier": KEY}),
                ),
                vec!["spec.identity"],
            ),
            (
                "system key with identifier",
                with(
                    base(),
                    "/spec/encryption",
                    json!({"type": "SystemKey", "keyIdentifier": KEY}),
                ),
                vec!["spec.encryption.keyIdentifier"],
            ),
            (
                "secret key URL",
                with(
                    with(base(), "/spec/identity", sys.clone()),
                    "/spec/encryption",
                    json!({"type": "CustomerKey", "keyIdentifier": "https://contoso-kv.vault.azure.net/secrets/media-key"}),
                ),
                vec!["spec.encryption.keyIdentifier"],
            ),
            (
                "grant with both principal forms",
                with(
                    base(),
                    "/spec/accessGrants",
                    json!([{"principalId": "00000000-1111-2222-3333-444444444444", "identityResourceId": UA, "role": "Reader"}]),
                ),
                vec!["spec.accessGrants[0]"],
            ),
            (
                "grant without role",
                with(
                    base(),
                    "/spec/accessGrants",
                    json!([{"principalId": "00000000-1111-2222-3333-444444444444"}]),
                ),
                vec!["spec.accessGrants[0]"],
            ),
            (
                "duplicate grant",
                with(
                    base(),
                    "/spec/accessGrants",
                    json!([
                    {"principalId": "00000000-1111-2222-3333-444444444444", "role": "Reader"},
                    {"principalId": "00000000-1111-2222-3333-444444444444", "role": "Reader"}]),
                ),
                vec!["spec.accessGrants[1]"],
            ),
            (
                "interval too short",
                with(base(), "/spec/keyAccessCheckInterval", json!("5s")),
                vec!["spec.keyAccessCheckInterval"],
            ),
            (
                "interval not a duration",
                with(base(), "/spec/keyAccessCheckInterval", json!("often")),
                vec!["spec.keyAccessCheckInterval"],
            ),
        ];
        let mut wrong = Vec::new();
        for (name, object, expected) in cases {
            let got = fields(&object);
            if got != expected {
                wrong.push(format!("{name}: expected {expected:?}, got {got:?}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "field paths differ:\n{}",
            wrong.join("\n")
        );
    }

    /// All violations come back together, so one round trip shows everything to fix.
    #[test]
    fn reports_every_violation_at_once() {
        let object = with(
            with(base(), "/spec/account/name", json!("X")),
            "/spec/account/location",
            json!("West Europe"),
        );
        assert_eq!(
            fields(&object),
            vec!["spec.account.name", "spec.account.location"]
        );
    }

    const PRINCIPAL: &str = "3c5e7a9b-1d2f-4a6c-8e0b-2d4f6a8c0e1f";
    const SUB: &str = "6f1c3b2a-94d1-4c1e-9a55-0d1b2c3d4e5f";

    fn grants(list: serde_json::Value) -> Vec<String> {
        fields(&with(base(), "/spec/accessGrants", list))
    }

    /// Azure compares object ids and ARM ids in any case, and knows a role only by its
    /// definition GUID: two grants that differ only in spelling are one role assignment, so the
    /// second is reported, whichever spelling it uses.
    #[test]
    fn grants_that_spell_one_assignment_differently_are_duplicates() {
        let upper = PRINCIPAL.to_ascii_uppercase();
        let cases: Vec<(&str, serde_json::Value)> = vec![
            (
                "principal id in upper case",
                json!([{"principalId": PRINCIPAL, "role": "Reader"}, {"principalId": upper, "role": "Reader"}]),
            ),
            (
                "identity ARM id in another case",
                json!([{"identityResourceId": UA, "role": "Reader"}, {"identityResourceId": UA.to_ascii_lowercase(), "role": "Reader"}]),
            ),
            (
                "role and its GUID",
                json!([{"principalId": PRINCIPAL, "role": "Contributor"}, {"principalId": PRINCIPAL, "roleDefinitionId": "b24988ac-6180-42a0-ab88-20f7382dd24c"}]),
            ),
            (
                "GUID in upper case and the role",
                json!([{"principalId": PRINCIPAL, "roleDefinitionId": "B24988AC-6180-42A0-AB88-20F7382DD24C"}, {"principalId": upper, "role": "Contributor"}]),
            ),
            (
                "role and its subscription-level ARM id",
                json!([{"principalId": PRINCIPAL, "role": "Reader"}, {"principalId": PRINCIPAL, "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7")}]),
            ),
            (
                "GUID and its tenant-level ARM id in lower case",
                json!([{"principalId": PRINCIPAL, "roleDefinitionId": "8d2f3c4b-5a6e-4f70-9b81-a2c3d4e5f607"}, {"principalId": PRINCIPAL, "roleDefinitionId": "/providers/microsoft.authorization/roledefinitions/8D2F3C4B-5A6E-4F70-9B81-A2C3D4E5F607"}]),
            ),
        ];
        let wrong: Vec<_> = cases
            .into_iter()
            .filter_map(|(name, list)| {
                let got = grants(list);
                (got != ["spec.accessGrants[1]"]).then(|| format!("{name}: got {got:?}"))
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "duplicates not reported:\n{}",
            wrong.join("\n")
        );
    }

    /// The duplicate check must not refuse what Azure holds as separate assignments: one
    /// principal with several roles, and one role for several principals. An identity named by
    /// ARM id is a different principal from any object id here: only Azure knows whether the
    /// object id is that identity's, and the operator resolves it there.
    #[test]
    fn grants_of_different_roles_or_principals_are_not_duplicates() {
        let got = grants(json!([
            {"principalId": PRINCIPAL, "role": "Reader"},
            {"principalId": PRINCIPAL, "role": "Contributor"},
            {"principalId": PRINCIPAL, "roleDefinitionId": "8d2f3c4b-5a6e-4f70-9b81-a2c3d4e5f607"},
            {"principalId": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "role": "Reader"},
            {"identityResourceId": UA, "role": "Reader"},
        ]));
        assert!(got.is_empty(), "{got:?}");
    }

    /// The duplicate message points at the first spelling, so the user knows which two to merge.
    #[test]
    fn a_duplicate_grant_names_the_grant_it_repeats() {
        let object = with(
            base(),
            "/spec/accessGrants",
            json!([
                {"principalId": PRINCIPAL, "role": "Contributor"},
                {"principalId": PRINCIPAL, "role": "Reader"},
                {"principalId": PRINCIPAL.to_ascii_uppercase(), "roleDefinitionId": "ACDD72A7-3385-48EF-BD42-F606FBA81AE7"},
            ]),
        );
        let errors = validate_object(&object).expect_err("duplicate").0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "spec.accessGrants[2]");
        assert!(
            errors[0].message.contains("spec.accessGrants[1]"),
            "{}",
            errors[0].message
        );
    }
}
