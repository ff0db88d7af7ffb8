//! Validate step (pure): checks a `MediaServicesAccount` spec against every rule of its CRD
//! schema — patterns, lengths, and the CEL rules (`x-kubernetes-validations`) — and reports each
//! violation with the field path a user sees in `kubectl explain`.
//!
//! Why in Rust as well as in the schema: apiservers before 1.25 do not enforce CEL (1.20 drops the
//! rules silently), and an object admitted before a rule existed is never re-checked. The
//! reconciler runs this before any Azure call; a violation becomes `Ready=False`, reason
//! `InvalidSpec`, and nothing is written to Azure.
//!
//! [`validate_object`], the entry point for manifests (the `validate` subcommand), also refuses
//! fields the CRD does not declare, which the apiserver would otherwise prune without a word.
//!
//! This step sees only the spec. Rules that need Azure's answer (RSA size, the vault's region,
//! the storage account's subscription as Azure resolves it) belong to the later validation of
//! observed state. No I/O, no clock.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;
use regex::Regex;

use crate::crd::account::{
    AccessGrant, EncryptionSpec, EncryptionType, IdentitySpec, MediaServicesAccount,
    MediaServicesAccountSpec, ResourceIdentity, StorageAccountType, StorageAuthentication,
    StorageSpec,
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

/// Validates an object as `kubectl` would send it: reports every field of `spec` the CRD does
/// not declare, deserializes it (reporting the path of a wrongly-typed or unknown enum value) and
/// then runs [`validate_spec`].
///
/// Unknown fields are errors here although the apiserver accepts them: it prunes them silently
/// (before 1.25 always, later unless the client asks for strict field validation), so a misspelt
/// `suspend` would simply not suspend. Stored objects are already pruned, which is why only this
/// entry point, and not [`validate_spec`], looks for them.
///
/// # Errors
/// [`SpecErrors`] for an unknown field, a value that does not deserialize, or a broken rule.
pub fn validate_object(object: &serde_json::Value) -> Result<MediaServicesAccountSpec, SpecErrors> {
    let spec_value = object
        .get("spec")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let mut errors = Vec::new();
    DECLARED_SPEC.unknown_fields("spec", &spec_value, &mut errors);
    let spec: MediaServicesAccountSpec = match serde_path_to_error::deserialize(spec_value) {
        Ok(spec) => spec,
        Err(err) => {
            errors.push(deserialize_error(err));
            return Err(SpecErrors(errors));
        }
    };
    if let Err(SpecErrors(rule_errors)) = validate_spec(&spec) {
        errors.extend(rule_errors);
    }
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(SpecErrors(errors))
    }
}

/// Names the field a deserialization error is about.
fn deserialize_error(err: serde_path_to_error::Error<serde_json::Error>) -> FieldError {
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
    FieldError { field, message }
}

/// The fields the CRD declares below `spec`, read once from the generated schema so that the
/// check can never disagree with what the apiserver keeps.
static DECLARED_SPEC: LazyLock<Declared> = LazyLock::new(|| {
    let crd = MediaServicesAccount::crd();
    let spec = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| s.properties.as_ref())
        .and_then(|p| p.get("spec"))
        .expect("the generated CRD has a spec schema");
    Declared::from_schema(spec)
});

/// One node of a structural schema, reduced to what decides which fields the apiserver keeps.
#[derive(Debug)]
enum Declared {
    /// An object with exactly these fields; any other is pruned.
    Object(BTreeMap<String, Declared>),
    /// An object with free keys (`additionalProperties`), each value of this shape.
    Map(Box<Declared>),
    /// A list whose items have this shape.
    List(Box<Declared>),
    /// A scalar, or a node that keeps unknown fields: nothing below it is pruned.
    Open,
}

impl Declared {
    fn from_schema(schema: &JSONSchemaProps) -> Self {
        if schema.x_kubernetes_preserve_unknown_fields == Some(true) {
            return Self::Open;
        }
        if let Some(properties) = &schema.properties {
            return Self::Object(
                properties
                    .iter()
                    .map(|(name, child)| (name.clone(), Self::from_schema(child)))
                    .collect(),
            );
        }
        match (&schema.additional_properties, &schema.items) {
            (Some(JSONSchemaPropsOrBool::Schema(values)), _) => {
                Self::Map(Box::new(Self::from_schema(values)))
            }
            (Some(JSONSchemaPropsOrBool::Bool(true)), _) => Self::Open,
            (_, Some(JSONSchemaPropsOrArray::Schema(item))) => {
                Self::List(Box::new(Self::from_schema(item)))
            }
            _ if schema.type_.as_deref() == Some("object") => Self::Object(BTreeMap::new()),
            _ => Self::Open,
        }
    }

    /// Reports each field of `value` (at `path`) that this schema does not declare, with a
    /// suggestion when a declared field is one or two letters away.
    fn unknown_fields(&self, path: &str, value: &serde_json::Value, out: &mut Vec<FieldError>) {
        use serde_json::Value;
        match (self, value) {
            (Self::Object(fields), Value::Object(map)) => {
                for (name, child) in map {
                    let field = format!("{path}.{name}");
                    if let Some(declared) = fields.get(name) {
                        declared.unknown_fields(&field, child, out);
                    } else {
                        let message = match closest(name, fields.keys()) {
                            Some(known) => format!("unknown field (did you mean {known}?)"),
                            None => "unknown field".to_owned(),
                        };
                        out.push(FieldError { field, message });
                    }
                }
            }
            (Self::Map(values), Value::Object(map)) => {
                for (key, child) in map {
                    values.unknown_fields(&format!("{path}.{key}"), child, out);
                }
            }
            (Self::List(item), Value::Array(items)) => {
                for (i, child) in items.iter().enumerate() {
                    item.unknown_fields(&format!("{path}[{i}]"), child, out);
                }
            }
            // A wrong type is reported by deserialization, with its path.
            _ => {}
        }
    }
}

/// The declared name nearest to a misspelt one, if it is at most two edits away (ignoring case).
fn closest<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> Option<&'a str> {
    known
        .map(|k| (edit_distance(&name.to_lowercase(), &k.to_lowercase()), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

macro_rules! regex {
    ($name:ident, $pattern:expr) => {
        static $name: LazyLock<Shape> = LazyLock::new(|| Shape::new($pattern, GroupBound::None));
    };
    ($name:ident, $pattern:expr, $bound:expr) => {
        static $name: LazyLock<Shape> = LazyLock::new(|| Shape::new($pattern, $bound));
    };
}
regex!(SUBSCRIPTION_ID, patterns::SUBSCRIPTION_ID);
regex!(PRINCIPAL_ID, patterns::PRINCIPAL_ID);
regex!(
    RESOURCE_GROUP,
    patterns::RESOURCE_GROUP,
    GroupBound::WholeValue
);
regex!(ACCOUNT_NAME, patterns::ACCOUNT_NAME);
regex!(LOCATION, patterns::LOCATION);
regex!(
    USER_ASSIGNED_IDENTITY_ID,
    patterns::USER_ASSIGNED_IDENTITY_ID,
    GroupBound::IdSegment
);
regex!(
    STORAGE_ACCOUNT_ID,
    patterns::STORAGE_ACCOUNT_ID,
    GroupBound::IdSegment
);
regex!(KEY_IDENTIFIER, patterns::KEY_IDENTIFIER);
regex!(ROLE_DEFINITION_ID, patterns::ROLE_DEFINITION_ID);
regex!(OBJECT_NAME, patterns::OBJECT_NAME);
regex!(DURATION, patterns::DURATION);

/// Where a pattern bounds a resource group name to 90 characters.
#[derive(Clone, Copy)]
enum GroupBound {
    None,
    /// The value is the resource group name.
    WholeValue,
    /// The value is an ARM id; the name is the segment after `resourceGroups`.
    IdSegment,
}

/// A schema pattern as the validator runs it. The resource group's class is Unicode (letters of
/// any script), and the regex crate compiles a counted repetition of it (`{0,89}`) into that many
/// copies: about 10 MB resident for the three patterns that have one, for the life of the
/// process. So those repetitions are compiled unbounded and the 90-character bound is counted
/// apart; a test checks that this accepts exactly what the schema's pattern does.
struct Shape {
    re: Regex,
    bound: GroupBound,
}

/// Longest resource group name, in characters (the schema patterns' bound).
const MAX_RESOURCE_GROUP_CHARS: usize = 90;

impl Shape {
    fn new(pattern: &str, bound: GroupBound) -> Self {
        let compiled = match bound {
            GroupBound::None => pattern.to_owned(),
            GroupBound::WholeValue => pattern.replacen(".]{0,89}[", ".]*[", 1),
            GroupBound::IdSegment => pattern.replacen(".]{1,90}/", ".]+/", 1),
        };
        debug_assert!(
            matches!(bound, GroupBound::None) || compiled != pattern,
            "the resource group bound of {pattern} was not found"
        );
        Self {
            re: Regex::new(&compiled).expect("pattern compiles"),
            bound,
        }
    }

    fn is_match(&self, value: &str) -> bool {
        if !self.re.is_match(value) {
            return false;
        }
        let group = match self.bound {
            GroupBound::None => return true,
            GroupBound::WholeValue => value,
            // A match starts `/subscriptions/<id>/resourceGroups/<name>/`.
            GroupBound::IdSegment => value.split('/').nth(4).unwrap_or_default(),
        };
        group.chars().count() <= MAX_RESOURCE_GROUP_CHARS
    }
}

#[derive(Default)]
struct Violations(Vec<FieldError>);

impl Violations {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn pattern(&mut self, field: &str, value: &str, re: &Shape, what: &str) {
        if !re.is_match(value) {
            self.push(field, format!("{value:?} is not {what}"));
        }
    }

    fn arm_id(&mut self, field: &str, value: &str, re: &Shape, what: &str) {
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

    /// The validator's compiled form of the resource-group patterns accepts exactly what the
    /// schema's own patterns accept, around the 90-character bound and its edge cases.
    #[test]
    fn lifted_resource_group_bounds_accept_exactly_what_the_schema_patterns_do() {
        let names: Vec<String> = [
            "media",
            "m",
            "médias-prod",
            "me\u{301}dias",
            "メディア_本番",
            "ends.",
            ".",
            "a.b",
            "two words",
            "",
            "(rg)",
            "rg/x",
        ]
        .iter()
        .map(|n| (*n).to_owned())
        .chain([88, 89, 90, 91, 92].into_iter().flat_map(|n| {
            [
                "é".repeat(n),
                "a".repeat(n),
                format!("{}.", "b".repeat(n - 1)),
            ]
        }))
        .collect();
        let sub = "00000000-1111-2222-3333-444444444444";
        let full: BTreeMap<&str, Regex> = [
            patterns::RESOURCE_GROUP,
            patterns::STORAGE_ACCOUNT_ID,
            patterns::USER_ASSIGNED_IDENTITY_ID,
        ]
        .into_iter()
        .map(|p| (p, Regex::new(p).expect("compiles")))
        .collect();
        let mut checked = 0;
        for name in &names {
            let cases = [
                (patterns::RESOURCE_GROUP, &*RESOURCE_GROUP, name.clone()),
                (
                    patterns::STORAGE_ACCOUNT_ID,
                    &*STORAGE_ACCOUNT_ID,
                    format!(
                        "/subscriptions/{sub}/resourceGroups/{name}/providers/Microsoft.Storage/storageAccounts/mediaprimary"
                    ),
                ),
                (
                    patterns::STORAGE_ACCOUNT_ID,
                    &*STORAGE_ACCOUNT_ID,
                    format!(
                        "/SUBSCRIPTIONS/{sub}/resourcegroups/{name}/providers/microsoft.storage/storageaccounts/mediaprimary"
                    ),
                ),
                (
                    patterns::USER_ASSIGNED_IDENTITY_ID,
                    &*USER_ASSIGNED_IDENTITY_ID,
                    format!(
                        "/subscriptions/{sub}/resourceGroups/{name}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/media-id"
                    ),
                ),
            ];
            for (pattern, shape, value) in cases {
                let expected = full[pattern].is_match(&value);
                assert_eq!(
                    shape.is_match(&value),
                    expected,
                    "{value:?} against {pattern}"
                );
                checked += usize::from(expected);
            }
        }
        assert!(
            checked > 20,
            "the corpus holds accepted values too ({checked})"
        );
    }

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

    /// A spec that breaks one rule, named, and the fields it must be reported on.
    type FieldCase = (&'static str, serde_json::Value, Vec<&'static str>);

    /// The account's coordinates.
    fn account_violations() -> Vec<FieldCase> {
        vec![
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
        ]
    }

    /// The identity type and the identities it lists.
    fn identity_violations() -> Vec<FieldCase> {
        vec![
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
        ]
    }

    /// Storage accounts, and the identity each reaches storage with.
    fn storage_violations() -> Vec<FieldCase> {
        let sys = json!({"type": "SystemAssigned"});
        vec![
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
        ]
    }

    /// The encryption key and the identity that uses it.
    fn encryption_violations() -> Vec<FieldCase> {
        let sys = json!({"type": "SystemAssigned"});
        vec![
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
        ]
    }

    /// Access grants.
    fn grant_violations() -> Vec<FieldCase> {
        vec![
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
        ]
    }

    /// The key access check interval.
    fn interval_violations() -> Vec<FieldCase> {
        vec![
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
        ]
    }

    /// Each rule, violated alone, is reported on the field a user would edit.
    #[test]
    fn each_violation_names_its_field() {
        let cases = [
            account_violations(),
            identity_violations(),
            storage_violations(),
            encryption_violations(),
            grant_violations(),
            interval_violations(),
        ];
        let mut wrong = Vec::new();
        for (name, object, expected) in cases.into_iter().flatten() {
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

    /// The apiserver prunes fields the CRD does not declare, without a word, so a misspelt
    /// `suspend` would not suspend: each unknown field is reported with its full path, at every
    /// depth and inside lists, together with whatever else is wrong.
    #[test]
    fn unknown_fields_are_reported_with_their_paths() {
        let object = json!({
            "apiVersion": "ams-security.io/v1alpha1",
            "kind": "MediaServicesAccount",
            "metadata": {"name": "typos", "labels": {"any": "label"}},
            "spec": {
                "account": {
                    "subscriptionId": SUB, "resourceGroup": "media", "name": "contosomedia",
                    "location": "westeurope", "region": "westeurope"
                },
                "suspended": true,
                "identity": {"type": "SystemAssigned"},
                "storage": {"accounts": [
                    {"id": SA, "type": "Primary"},
                    {"idd": SA.replace("contosomedia", "second"), "type": "Secondary"}
                ]},
                "accessGrants": [{"principalId": PRINCIPAL, "role": "Reader", "scope": "/"}],
                "credentialsSecretRef": {"name": "azure-credentials", "namespace": "other"}
            }
        });
        let errors = validate_object(&object).expect_err("unknown fields").0;
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        // serde_json's map may keep document or sorted order; compare as sets.
        let mut got = shown.clone();
        got.sort();
        let mut expected = vec![
            "spec.accessGrants[0].scope: unknown field",
            "spec.account.region: unknown field",
            "spec.credentialsSecretRef.namespace: unknown field",
            "spec.storage.accounts[1].idd: unknown field (did you mean id?)",
            "spec.suspended: unknown field (did you mean suspend?)",
        ];
        expected.sort_unstable();
        // The misspelt `id` is also missing, which deserialization reports after the unknown fields.
        let missing = got
            .iter()
            .position(|e| e.starts_with("spec.storage.accounts[1].id: missing field"));
        assert!(missing.is_some(), "{shown:#?}");
        got.remove(missing.expect("checked"));
        assert_eq!(got, expected, "{shown:#?}");
    }

    /// Where a field is misspelt by more than a slip of the keyboard, no guess is offered.
    #[test]
    fn an_unknown_field_far_from_any_known_one_gets_no_suggestion() {
        let object = with(base(), "/spec/foo", json!("bar"));
        let errors = validate_object(&object).expect_err("unknown field").0;
        assert_eq!(
            errors,
            vec![FieldError {
                field: "spec.foo".to_owned(),
                message: "unknown field".to_owned()
            }]
        );
    }

    /// The declared shape comes from the CRD, so every field the Rust types write must be in
    /// it; otherwise the check would refuse a field the operator itself defines.
    #[test]
    fn every_field_of_a_full_spec_is_declared() {
        let full = json!({
            "account": {"subscriptionId": SUB, "resourceGroup": "media", "name": "contosomedia", "location": "westeurope"},
            "identity": {"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": [UA]},
            "storage": {"authentication": "ManagedIdentity", "grantAccess": false, "accounts": [
                {"id": SA, "type": "Primary", "identity": {"useSystemAssignedIdentity": true}},
                {"id": SA.replace("contosomedia", "second"), "type": "Secondary", "identity": {"userAssignedIdentity": UA}}
            ]},
            "encryption": {"type": "CustomerKey", "keyIdentifier": KEY, "identity": {"userAssignedIdentity": UA}, "grantAccess": false},
            "accessGrants": [
                {"principalId": PRINCIPAL, "role": "Reader"},
                {"identityResourceId": UA, "roleDefinitionId": "8d2f3c4b-5a6e-4f70-9b81-a2c3d4e5f607"}
            ],
            "keyAccessCheckInterval": "5m",
            "deletionPolicy": "RevokeGrants",
            "suspend": true,
            "credentialsSecretRef": {"name": "azure-credentials"}
        });
        let spec: MediaServicesAccountSpec =
            serde_json::from_value(full.clone()).expect("deserializes");
        let written = serde_json::to_value(&spec).expect("serializes");
        assert_eq!(written, full, "the full spec does not round-trip");
        let mut errors = Vec::new();
        DECLARED_SPEC.unknown_fields("spec", &written, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("suspended", "suspend"), 2);
        assert_eq!(edit_distance("idd", "id"), 1);
        assert_eq!(edit_distance("typ", "type"), 1);
        assert_eq!(edit_distance("role", "rule"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
