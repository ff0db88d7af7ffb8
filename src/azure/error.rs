//! One error type for every Azure call, and the classification that drives the reconciler.
//!
//! [`classify`] is a pure function of the ARM / Key Vault error code and the HTTP status: known
//! codes first, then the status, in the manner of Azure Service Operator's error classifier. The
//! reconciler acts on [`ErrorClass`]; it never parses messages. This module does not retry,
//! log or build Kubernetes conditions.

use std::time::Duration;

use super::operation::Operation;

/// What the reconciler should do about a failed Azure call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The spec or the Azure side needs a human (bad spec, EC key, wrong region, storage in
    /// another subscription, missing permission). Set a condition and wait for a spec change or
    /// the slow interval.
    UserActionRequired,
    /// Azure (or our own client-side budget) asked us to slow down. Requeue after
    /// [`AzureError::retry_after`]; never flips `Ready`.
    Throttled,
    /// Something we just changed has not reached every Azure replica yet (a new principal or
    /// grant). Requeue soon; not a failure of the resource.
    Propagating,
    /// A server fault, a reset connection or a timeout. Requeue with backoff.
    Transient,
    /// The addressed resource does not exist.
    NotFound,
}

impl ErrorClass {
    /// Stable `PascalCase` name, usable as a metric label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::UserActionRequired => "UserActionRequired",
            ErrorClass::Throttled => "Throttled",
            ErrorClass::Propagating => "Propagating",
            ErrorClass::Transient => "Transient",
            ErrorClass::NotFound => "NotFound",
        }
    }
}

/// ARM and Key Vault error codes whose meaning is known, with their class.
///
/// Codes are compared case-insensitively, as ARM does not promise a casing.
const KNOWN_CODES: &[(&str, ErrorClass)] = &[
    // Throttling: ARM subscription/tenant buckets, resource providers, Key Vault.
    ("TooManyRequests", ErrorClass::Throttled),
    ("SubscriptionRequestsThrottled", ErrorClass::Throttled),
    ("TenantRequestsThrottled", ErrorClass::Throttled),
    ("ResourceRequestsThrottled", ErrorClass::Throttled),
    ("ResourceCollectionRequestsThrottled", ErrorClass::Throttled),
    ("Throttled", ErrorClass::Throttled),
    // Replication lag in Entra ID / ARM right after an identity or grant was created.
    ("PrincipalNotFound", ErrorClass::Propagating),
    ("UserAssignedIdentityNotFound", ErrorClass::Propagating),
    ("FailedIdentityOperation", ErrorClass::Propagating),
    // Someone else is changing the resource right now.
    ("AnotherOperationInProgress", ErrorClass::Transient),
    ("OperationPreempted", ErrorClass::Transient),
    ("Conflict", ErrorClass::Transient),
    ("RetryableError", ErrorClass::Transient),
    ("InternalServerError", ErrorClass::Transient),
    ("InternalError", ErrorClass::Transient),
    ("ServiceUnavailable", ErrorClass::Transient),
    ("GatewayTimeout", ErrorClass::Transient),
    ("ServerTimeout", ErrorClass::Transient),
    ("ExpiredAuthenticationToken", ErrorClass::Transient),
    // Missing things.
    ("ResourceNotFound", ErrorClass::NotFound),
    ("NotFound", ErrorClass::NotFound),
    ("ParentResourceNotFound", ErrorClass::NotFound),
    ("ResourceGroupNotFound", ErrorClass::NotFound),
    ("KeyNotFound", ErrorClass::NotFound),
    ("VaultNotFound", ErrorClass::NotFound),
    ("RoleAssignmentNotFound", ErrorClass::NotFound),
    // Permissions: the operator's identity or the account's identity lacks a grant.
    ("AuthorizationFailed", ErrorClass::UserActionRequired),
    ("LinkedAuthorizationFailed", ErrorClass::UserActionRequired),
    ("Forbidden", ErrorClass::UserActionRequired),
    ("ForbiddenByPolicy", ErrorClass::UserActionRequired),
    ("ForbiddenByRbac", ErrorClass::UserActionRequired),
    ("ForbiddenByFirewall", ErrorClass::UserActionRequired),
    ("Unauthorized", ErrorClass::UserActionRequired),
    ("InvalidAuthenticationToken", ErrorClass::UserActionRequired),
    (
        "InvalidAuthenticationTokenTenant",
        ErrorClass::UserActionRequired,
    ),
    ("RequestDisallowedByPolicy", ErrorClass::UserActionRequired),
    ("ScopeLocked", ErrorClass::UserActionRequired),
    // Bad spec: wrong region, wrong subscription, unknown role, bad key, bad input.
    ("SubscriptionNotFound", ErrorClass::UserActionRequired),
    ("InvalidSubscriptionId", ErrorClass::UserActionRequired),
    ("SubscriptionNotRegistered", ErrorClass::UserActionRequired),
    (
        "MissingSubscriptionRegistration",
        ErrorClass::UserActionRequired,
    ),
    ("NoRegisteredProviderFound", ErrorClass::UserActionRequired),
    (
        "LocationNotAvailableForResourceType",
        ErrorClass::UserActionRequired,
    ),
    ("InvalidResourceLocation", ErrorClass::UserActionRequired),
    ("LocationRequired", ErrorClass::UserActionRequired),
    ("InvalidResourceReference", ErrorClass::UserActionRequired),
    ("LinkedInvalidPropertyId", ErrorClass::UserActionRequired),
    ("InvalidResourceId", ErrorClass::UserActionRequired),
    ("RoleDefinitionDoesNotExist", ErrorClass::UserActionRequired),
    ("InvalidRoleDefinitionId", ErrorClass::UserActionRequired),
    ("InvalidPrincipalId", ErrorClass::UserActionRequired),
    ("PrincipalTypeNotSupported", ErrorClass::UserActionRequired),
    ("RoleAssignmentExists", ErrorClass::UserActionRequired),
    (
        "RoleAssignmentLimitExceeded",
        ErrorClass::UserActionRequired,
    ),
    ("InvalidRequestContent", ErrorClass::UserActionRequired),
    ("InvalidParameter", ErrorClass::UserActionRequired),
    ("InvalidTemplate", ErrorClass::UserActionRequired),
    ("BadRequest", ErrorClass::UserActionRequired),
    ("BadParameter", ErrorClass::UserActionRequired),
    ("KeyDisabled", ErrorClass::UserActionRequired),
    ("KeyExpired", ErrorClass::UserActionRequired),
    ("UnsupportedKeyType", ErrorClass::UserActionRequired),
    ("InvalidKeyType", ErrorClass::UserActionRequired),
    (
        "StorageAccountInDifferentSubscription",
        ErrorClass::UserActionRequired,
    ),
    (
        "ReadOnlyDisabledSubscription",
        ErrorClass::UserActionRequired,
    ),
    ("SubscriptionDisabled", ErrorClass::UserActionRequired),
    ("ResourceQuotaExceeded", ErrorClass::UserActionRequired),
];

/// Classify an Azure failure: a known ARM / Key Vault error code wins, then the HTTP status.
///
/// `status` is `None` when no HTTP answer arrived (connection reset, timeout): transient.
#[must_use]
pub fn classify(status: Option<u16>, code: Option<&str>) -> ErrorClass {
    if let Some(code) = code
        && let Some((_, class)) = KNOWN_CODES
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(code))
    {
        return *class;
    }
    match status {
        None | Some(408 | 409 | 423 | 500..=599) => ErrorClass::Transient,
        Some(404 | 410) => ErrorClass::NotFound,
        Some(429) => ErrorClass::Throttled,
        // 400, 401, 403, 405, 412, 422 and any other client error: a person must act.
        Some(_) => ErrorClass::UserActionRequired,
    }
}

/// A failed Azure call. Every variant names the operation and the Azure resource it addressed.
#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    /// Azure answered with an error status.
    #[error("failed to {operation} {resource}: HTTP {status} {code}: {message}")]
    Service {
        /// What we tried (its name reads "get media services account").
        operation: Operation,
        /// Resource id or URL addressed.
        resource: String,
        /// HTTP status.
        status: u16,
        /// ARM / Key Vault error code (the status' reason when the body had none).
        code: String,
        /// The service's message (never carries tokens).
        message: String,
        /// Delay the service asked for (`Retry-After`, `x-ms-retry-after-ms`).
        retry_after: Option<Duration>,
        /// The SDK error, holding the raw response.
        #[source]
        source: Box<azure_core::Error>,
    },
    /// A long-running operation finished unsuccessfully.
    #[error(
        "failed to {operation} {resource}: the operation ended {status} with {code}: {message}"
    )]
    OperationFailed {
        /// What we tried.
        operation: Operation,
        /// Resource id addressed.
        resource: String,
        /// Terminal status (`Failed`, `Canceled`).
        status: String,
        /// Error code in the operation status.
        code: String,
        /// Error message in the operation status.
        message: String,
    },
    /// No HTTP answer: connection refused or reset, TLS failure, DNS.
    #[error("failed to {operation} {resource}: no answer from Azure")]
    Connection {
        /// What we tried.
        operation: Operation,
        /// Resource id or URL addressed.
        resource: String,
        /// The SDK error.
        #[source]
        source: Box<azure_core::Error>,
    },
    /// The call did not finish within its budget.
    #[error("failed to {operation} {resource}: no answer within {timeout:?}")]
    Timeout {
        /// What we tried.
        operation: Operation,
        /// Resource id or URL addressed.
        resource: String,
        /// The budget that ran out.
        timeout: Duration,
    },
    /// No access token could be obtained for the call.
    #[error("failed to {operation} {resource}: no access token could be obtained")]
    Credential {
        /// What we tried.
        operation: Operation,
        /// Resource id or URL addressed.
        resource: String,
        /// The SDK error (tokens are never part of it).
        #[source]
        source: Box<azure_core::Error>,
    },
    /// Entra ID refused the credential's token request: a wrong, expired or revoked client
    /// secret, an unknown application, a federated credential that does not match. Only a
    /// person can fix it, by changing what `credential` holds.
    #[error(
        "failed to {operation} {resource}: Entra ID rejected the credentials of {credential}: {code}"
    )]
    CredentialsRejected {
        /// What we tried.
        operation: Operation,
        /// Resource id or URL addressed.
        resource: String,
        /// Whose credential: `Secret namespace/name`, or the operator's own identity.
        credential: String,
        /// Entra's error code and OAuth error, e.g. `AADSTS7000215 (invalid_client)`.
        code: String,
        /// The SDK error, with Entra's description (tokens are never part of it).
        #[source]
        source: Box<azure_core::Error>,
    },
    /// Our own per-subscription rate limit has no budget left for this call.
    #[error(
        "failed to {operation} {resource}: the client-side request budget of subscription {subscription} is spent"
    )]
    RateLimited {
        /// What we tried.
        operation: Operation,
        /// Resource id addressed.
        resource: String,
        /// Subscription whose bucket is empty.
        subscription: String,
        /// When a token will be available.
        retry_after: Duration,
    },
    /// Azure answered, but not with what the API specifies.
    #[error("failed to {operation} {resource}: unexpected response")]
    Decode {
        /// What we tried.
        operation: Operation,
        /// Resource id or URL addressed.
        resource: String,
        /// Parse error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The request could not be formed from the input (bad id, missing credential field).
    #[error("failed to {operation} {resource}: {reason}")]
    InvalidInput {
        /// What we tried.
        operation: Operation,
        /// The input's name or resource id.
        resource: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl AzureError {
    /// What the reconciler should do about this error.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            AzureError::Service { status, code, .. } => classify(Some(*status), Some(code)),
            AzureError::OperationFailed { code, .. } => match classify(None, Some(code)) {
                // An operation that failed without a known code is the request's fault more
                // often than the server's; ARM reports server faults with codes we know.
                ErrorClass::Transient if !is_known_code(code) => ErrorClass::UserActionRequired,
                class => class,
            },
            AzureError::Connection { .. }
            | AzureError::Timeout { .. }
            | AzureError::Decode { .. } => ErrorClass::Transient,
            AzureError::Credential { source, .. } => credential_failure_class(source),
            AzureError::RateLimited { .. } => ErrorClass::Throttled,
            AzureError::CredentialsRejected { .. } | AzureError::InvalidInput { .. } => {
                ErrorClass::UserActionRequired
            }
        }
    }

    /// How long to wait before trying again, when Azure (or the rate limiter) said so.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AzureError::Service { retry_after, .. } => *retry_after,
            AzureError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The ARM / Key Vault error code, when Azure gave one.
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        match self {
            AzureError::Service { code, .. } | AzureError::OperationFailed { code, .. } => {
                Some(code)
            }
            _ => None,
        }
    }

    /// HTTP status of the failed answer, if there was one.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            AzureError::Service { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Stable `PascalCase` reason for events and metric labels.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            AzureError::Service { .. } => match self.class() {
                ErrorClass::UserActionRequired => "AzureRequestRejected",
                ErrorClass::Throttled => "AzureThrottled",
                ErrorClass::Propagating => "AzurePropagating",
                ErrorClass::Transient => "AzureServerError",
                ErrorClass::NotFound => "AzureResourceNotFound",
            },
            AzureError::OperationFailed { .. } => "AzureOperationFailed",
            AzureError::Connection { .. } => "AzureUnreachable",
            AzureError::Timeout { .. } => "AzureTimeout",
            AzureError::Credential { .. } => "AzureCredentialFailed",
            AzureError::CredentialsRejected { .. } => "CredentialsRejected",
            AzureError::RateLimited { .. } => "AzureClientRateLimited",
            AzureError::Decode { .. } => "AzureUnexpectedResponse",
            AzureError::InvalidInput { .. } => "AzureInvalidInput",
        }
    }
}

fn is_known_code(code: &str) -> bool {
    KNOWN_CODES
        .iter()
        .any(|(known, _)| known.eq_ignore_ascii_case(code))
}

/// Classify a token failure by the innermost cause `azure_identity` wrapped: the token
/// endpoint's answer, or a transport failure; anything else (bad configuration, unreadable
/// token file) needs a person.
fn credential_failure_class(err: &azure_core::Error) -> ErrorClass {
    use azure_core::error::ErrorKind;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(core) = e.downcast_ref::<azure_core::Error>() {
            match core.kind() {
                ErrorKind::HttpResponse {
                    status, error_code, ..
                } => {
                    return credential_class(u16::from(*status), error_code.as_deref());
                }
                ErrorKind::Io | ErrorKind::Connection => return ErrorClass::Transient,
                _ => {}
            }
        }
        current = e.source();
    }
    ErrorClass::UserActionRequired
}

/// Entra ID token endpoint failures: a bad client secret or an unknown application is the
/// user's to fix (AADSTS7000215, AADSTS700016 come as 400/401); the endpoint's own faults
/// and throttling are not.
fn credential_class(status: u16, code: Option<&str>) -> ErrorClass {
    match status {
        429 => ErrorClass::Throttled,
        408 | 500..=599 => ErrorClass::Transient,
        _ => match code {
            Some(c) if c.eq_ignore_ascii_case("temporarily_unavailable") => ErrorClass::Transient,
            _ => ErrorClass::UserActionRequired,
        },
    }
}

/// A token request Entra ID refused, tagged with whose credential it was (see
/// [`name_rejection`]).
#[derive(Debug, thiserror::Error)]
#[error("Entra ID rejected the credentials of {credential}: {code}")]
pub(crate) struct RejectedCredential {
    credential: String,
    code: String,
    #[source]
    source: azure_core::Error,
}

/// Tags a token failure with `credential` (whose it is) when Entra ID answered with a refusal
/// a person must fix; any other failure (no answer, throttling, Entra's own faults) is
/// returned as it was.
pub(crate) fn name_rejection(credential: &str, err: azure_core::Error) -> azure_core::Error {
    match entra_rejection(&err) {
        Some(code) => azure_core::Error::with_error(
            azure_core::error::ErrorKind::Credential,
            RejectedCredential {
                credential: credential.to_owned(),
                code,
                source: err,
            },
            format!("Entra ID rejected the credentials of {credential}"),
        ),
        None => err,
    }
}

/// Entra's code of a refused token request, `AADSTS<n> (<error>)`, from the token endpoint's
/// answer (`error_codes`, `error`; per Entra's documented error format), when the answer is one
/// a person must fix ([`credential_class`]).
fn entra_rejection(err: &azure_core::Error) -> Option<String> {
    use azure_core::error::ErrorKind;
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        error_codes: Vec<u64>,
    }
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(core) = e.downcast_ref::<azure_core::Error>()
            && let ErrorKind::HttpResponse {
                status,
                error_code,
                raw_response,
            } = core.kind()
        {
            if credential_class(u16::from(*status), error_code.as_deref())
                != ErrorClass::UserActionRequired
            {
                return None;
            }
            let body: Option<Body> = raw_response
                .as_deref()
                .and_then(|raw| serde_json::from_slice(raw.body().as_ref()).ok());
            let aadsts = body
                .as_ref()
                .and_then(|b| b.error_codes.first())
                .map(|c| format!("AADSTS{c}"))
                .or_else(|| {
                    error_code
                        .as_deref()
                        .and_then(|c| c.split(',').next())
                        .map(|c| format!("AADSTS{c}"))
                });
            let error = body.and_then(|b| b.error);
            return Some(match (aadsts, error) {
                (Some(code), Some(error)) => format!("{code} ({error})"),
                (Some(code), None) => code,
                (None, Some(error)) => error,
                (None, None) => format!("HTTP {}", u16::from(*status)),
            });
        }
        current = e.source();
    }
    None
}

fn rejected_in(err: &azure_core::Error) -> Option<&RejectedCredential> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(r) = e.downcast_ref::<RejectedCredential>() {
            return Some(r);
        }
        current = e.source();
    }
    None
}

/// A token failure as an [`AzureError`]: [`AzureError::CredentialsRejected`] when Entra ID
/// refused a named credential, else [`AzureError::Credential`].
pub(crate) fn from_token_failure(
    operation: Operation,
    resource: &str,
    err: azure_core::Error,
) -> AzureError {
    match rejected_in(&err) {
        Some(r) => AzureError::CredentialsRejected {
            operation,
            resource: resource.to_owned(),
            credential: r.credential.clone(),
            code: r.code.clone(),
            source: Box::new(err),
        },
        None => AzureError::Credential {
            operation,
            resource: resource.to_owned(),
            source: Box::new(err),
        },
    }
}

/// Build an [`AzureError`] from what the SDK pipeline returned.
///
/// `retry_after` is read by the caller from the response headers (the SDK error keeps the raw
/// response, from which [`retry_after_from_error`] reads it).
pub(crate) fn from_sdk(operation: Operation, resource: &str, err: azure_core::Error) -> AzureError {
    use azure_core::error::ErrorKind;
    let resource = resource.to_owned();
    if let Some(limited) = crate::azure::policy::rate_limited(&err) {
        return AzureError::RateLimited {
            operation,
            subscription: limited.subscription.clone(),
            retry_after: limited.retry_after,
            resource,
        };
    }
    if rejected_in(&err).is_some() {
        return from_token_failure(operation, &resource, err);
    }
    match err.kind() {
        ErrorKind::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let status_u16 = u16::from(*status);
            let (code, message) = raw_response
                .as_deref()
                .and_then(|raw| parse_error_body(raw.body().as_ref()))
                .unwrap_or((None, None));
            let code = code
                .or_else(|| error_code.clone())
                .unwrap_or_else(|| status.canonical_reason().replace(' ', ""));
            let message = message.unwrap_or_else(|| status.canonical_reason().into_owned());
            let retry_after = raw_response
                .as_deref()
                .and_then(|raw| crate::azure::policy::retry_after(raw.headers()));
            AzureError::Service {
                operation,
                resource,
                status: status_u16,
                code,
                message,
                retry_after,
                source: Box::new(err),
            }
        }
        ErrorKind::Credential => AzureError::Credential {
            operation,
            resource,
            source: Box::new(err),
        },
        ErrorKind::Io | ErrorKind::Connection => {
            if crate::azure::policy::is_timeout(&err) {
                AzureError::Timeout {
                    operation,
                    resource,
                    timeout: crate::azure::policy::timeout_of(&err),
                }
            } else {
                AzureError::Connection {
                    operation,
                    resource,
                    source: Box::new(err),
                }
            }
        }
        ErrorKind::DataConversion => AzureError::Decode {
            operation,
            resource,
            source: Box::new(err),
        },
        ErrorKind::Other => {
            // The bearer-token policy reports token failures as `Other` wrapping the
            // credential's error; anything else unrecognised is not the user's to fix.
            if is_credential_failure(&err) {
                AzureError::Credential {
                    operation,
                    resource,
                    source: Box::new(err),
                }
            } else {
                AzureError::Connection {
                    operation,
                    resource,
                    source: Box::new(err),
                }
            }
        }
    }
}

fn is_credential_failure(err: &azure_core::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(core) = e.downcast_ref::<azure_core::Error>()
            && matches!(core.kind(), azure_core::error::ErrorKind::Credential)
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// Read `{"error": {"code", "message"}}` (ARM and Key Vault), preferring an inner error code
/// when Key Vault refines `Forbidden` into `ForbiddenByPolicy` / `ForbiddenByRbac`.
pub(crate) fn parse_error_body(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Option<Detail>,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        code: Option<String>,
        message: Option<String>,
        #[serde(default, rename = "innererror")]
        inner: Option<Inner>,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        code: Option<String>,
    }
    let body: Body = serde_json::from_slice(body).ok()?;
    let detail = body.error?;
    let inner = detail
        .inner
        .and_then(|i| i.code)
        .filter(|c| is_known_code(c));
    Some((inner.or(detail.code), detail.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reconciler's behaviour hangs on this table: every row is a code or status that
    /// the specs, ARM's troubleshooting docs or Key Vault's docs name.
    #[test]
    fn classifier_table_maps_codes_first_then_status() {
        use ErrorClass::*;
        let table: &[(Option<u16>, Option<&str>, ErrorClass)] = &[
            // ARM common errors (common-types ErrorResponse codes seen in the specs).
            (Some(403), Some("AuthorizationFailed"), UserActionRequired),
            (
                Some(403),
                Some("LinkedAuthorizationFailed"),
                UserActionRequired,
            ),
            (Some(400), Some("PrincipalNotFound"), Propagating),
            (Some(404), Some("ResourceNotFound"), NotFound),
            (Some(404), Some("ResourceGroupNotFound"), NotFound),
            (Some(404), Some("SubscriptionNotFound"), UserActionRequired),
            (Some(409), Some("RoleAssignmentExists"), UserActionRequired),
            (
                Some(400),
                Some("RoleDefinitionDoesNotExist"),
                UserActionRequired,
            ),
            (Some(400), Some("InvalidPrincipalId"), UserActionRequired),
            (
                Some(400),
                Some("LocationNotAvailableForResourceType"),
                UserActionRequired,
            ),
            (
                Some(400),
                Some("InvalidResourceLocation"),
                UserActionRequired,
            ),
            (
                Some(400),
                Some("StorageAccountInDifferentSubscription"),
                UserActionRequired,
            ),
            (Some(400), Some("BadRequest"), UserActionRequired),
            (Some(409), Some("AnotherOperationInProgress"), Transient),
            (Some(409), Some("Conflict"), Transient),
            (Some(429), Some("SubscriptionRequestsThrottled"), Throttled),
            (Some(429), Some("TenantRequestsThrottled"), Throttled),
            (Some(500), Some("InternalServerError"), Transient),
            (Some(503), Some("ServiceUnavailable"), Transient),
            (Some(504), Some("GatewayTimeout"), Transient),
            (Some(401), Some("ExpiredAuthenticationToken"), Transient),
            (
                Some(401),
                Some("InvalidAuthenticationTokenTenant"),
                UserActionRequired,
            ),
            (Some(409), Some("ScopeLocked"), UserActionRequired),
            (
                Some(403),
                Some("RequestDisallowedByPolicy"),
                UserActionRequired,
            ),
            // Key Vault data plane (KeyVaultError codes).
            (Some(404), Some("KeyNotFound"), NotFound),
            (Some(403), Some("Forbidden"), UserActionRequired),
            (Some(403), Some("ForbiddenByPolicy"), UserActionRequired),
            (Some(403), Some("ForbiddenByRbac"), UserActionRequired),
            (Some(401), Some("Unauthorized"), UserActionRequired),
            (Some(400), Some("BadParameter"), UserActionRequired),
            (Some(429), Some("Throttled"), Throttled),
            // Codes are matched without regard to case.
            (Some(403), Some("authorizationfailed"), UserActionRequired),
            (Some(400), Some("principalNotFound"), Propagating),
            // Unknown code: the status decides.
            (Some(400), Some("SomethingNew"), UserActionRequired),
            (Some(404), Some("SomethingNew"), NotFound),
            (Some(429), Some("SomethingNew"), Throttled),
            (Some(502), Some("SomethingNew"), Transient),
            (Some(409), None, Transient),
            (Some(408), None, Transient),
            (Some(403), None, UserActionRequired),
            (Some(401), None, UserActionRequired),
            (Some(410), None, NotFound),
            (Some(500), None, Transient),
            (Some(503), None, Transient),
            (None, None, Transient),
        ];
        for (status, code, expected) in table {
            assert_eq!(
                classify(*status, *code),
                *expected,
                "classify({status:?}, {code:?})"
            );
        }
    }

    #[test]
    fn key_vault_inner_error_code_refines_forbidden() {
        let body = br#"{"error":{"code":"Forbidden","message":"Caller is not authorized","innererror":{"code":"ForbiddenByRbac"}}}"#;
        let (code, message) = parse_error_body(body).expect("parses");
        assert_eq!(code.as_deref(), Some("ForbiddenByRbac"));
        assert_eq!(message.as_deref(), Some("Caller is not authorized"));
    }

    #[test]
    fn arm_error_body_yields_code_and_message() {
        let body = br#"{"error":{"code":"AuthorizationFailed","message":"The client 'x' does not have authorization","details":[]}}"#;
        let (code, _) = parse_error_body(body).expect("parses");
        assert_eq!(code.as_deref(), Some("AuthorizationFailed"));
        assert!(parse_error_body(b"not json").is_none());
    }

    #[test]
    fn messages_are_lowercase_failed_to_and_carry_the_resource() {
        let err = AzureError::Timeout {
            operation: Operation::MediaservicesGet,
            resource:
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Media/mediaservices/a"
                    .into(),
            timeout: Duration::from_secs(10),
        };
        let text = err.to_string();
        assert!(
            text.starts_with("failed to get media services account /subscriptions/s/"),
            "{text}"
        );
        assert_eq!(err.reason(), "AzureTimeout");
        assert_eq!(err.class(), ErrorClass::Transient);
    }

    #[test]
    fn failed_operation_with_unknown_code_needs_a_person() {
        let err = AzureError::OperationFailed {
            operation: Operation::MediaservicesUpdate,
            resource: "id".into(),
            status: "Failed".into(),
            code: "StorageAccountCannotBeAccessed".into(),
            message: "Storage account cannot be accessed.".into(),
        };
        assert_eq!(err.class(), ErrorClass::UserActionRequired);
        let err = AzureError::OperationFailed {
            operation: Operation::MediaservicesUpdate,
            resource: "id".into(),
            status: "Failed".into(),
            code: "InternalServerError".into(),
            message: "oops".into(),
        };
        assert_eq!(err.class(), ErrorClass::Transient);
    }

    /// A token endpoint's own failure is transient; a rejected secret needs a person.
    #[test]
    fn credential_failures_are_classified_by_their_innermost_cause() {
        use azure_core::error::ErrorKind;
        use azure_core::http::StatusCode;
        let http = |status: StatusCode| {
            let inner = azure_core::Error::with_message(
                ErrorKind::HttpResponse {
                    status,
                    error_code: Some("invalid_client".into()),
                    raw_response: None,
                },
                "AADSTS7000215",
            );
            AzureError::Credential {
                operation: Operation::MediaservicesGet,
                resource: "id".into(),
                source: Box::new(azure_core::Error::with_error(
                    ErrorKind::Credential,
                    inner,
                    "ClientSecretCredential authentication failed.",
                )),
            }
        };
        assert_eq!(
            http(StatusCode::Unauthorized).class(),
            ErrorClass::UserActionRequired
        );
        assert_eq!(
            http(StatusCode::ServiceUnavailable).class(),
            ErrorClass::Transient
        );
        assert_eq!(
            http(StatusCode::TooManyRequests).class(),
            ErrorClass::Throttled
        );
        let io = AzureError::Credential {
            operation: Operation::TokenRequest,
            resource: "id".into(),
            source: Box::new(azure_core::Error::with_error(
                ErrorKind::Credential,
                azure_core::Error::with_message(ErrorKind::Io, "reset"),
                "failed",
            )),
        };
        assert_eq!(io.class(), ErrorClass::Transient);
        assert_eq!(io.reason(), "AzureCredentialFailed");
    }

    /// The token endpoint's refusal of a wrong secret, as Entra documents it (and the SDK hands
    /// it on): a 401 with `invalid_client` and `error_codes: [7000215]`.
    fn refused_token(status: azure_core::http::StatusCode) -> azure_core::Error {
        use azure_core::error::ErrorKind;
        use azure_core::http::{RawResponse, headers::Headers};
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215],"error_uri":"https://login.microsoftonline.com/error?code=7000215"}"#;
        let inner = azure_core::Error::with_message(
            ErrorKind::HttpResponse {
                status,
                error_code: Some("7000215".into()),
                raw_response: Some(Box::new(RawResponse::from_bytes(
                    status,
                    Headers::default(),
                    body.to_vec(),
                ))),
            },
            "AADSTS7000215: Invalid client secret provided.",
        );
        azure_core::Error::with_error(
            ErrorKind::Credential,
            inner,
            "ClientSecretCredential authentication failed.",
        )
    }

    /// A credential Entra ID refuses is its own error, naming whose credential it is and
    /// Entra's code, from any call that needed the token; a refusal only in name (Entra's
    /// own fault, throttling) is not tagged and stays transient or throttled.
    #[test]
    fn a_refused_credential_names_its_source_and_entras_code() {
        use azure_core::http::StatusCode;
        let tagged = name_rejection(
            "Secret team-a/azure-creds",
            refused_token(StatusCode::Unauthorized),
        );
        let err = from_sdk(Operation::MediaservicesGet, "/subscriptions/s/x", tagged);
        assert!(
            matches!(&err, AzureError::CredentialsRejected { credential, code, .. }
                if credential == "Secret team-a/azure-creds" && code == "AADSTS7000215 (invalid_client)"),
            "{err:?}"
        );
        assert_eq!(err.class(), ErrorClass::UserActionRequired);
        assert_eq!(err.reason(), "CredentialsRejected");
        assert_eq!(
            err.to_string(),
            "failed to get media services account /subscriptions/s/x: Entra ID rejected the credentials of Secret team-a/azure-creds: AADSTS7000215 (invalid_client)"
        );
        let checked = from_token_failure(
            Operation::TokenRequest,
            "ClientSecret",
            name_rejection(
                "the operator's own identity",
                refused_token(StatusCode::BadRequest),
            ),
        );
        assert_eq!(checked.reason(), "CredentialsRejected");
        for (status, class) in [
            (StatusCode::ServiceUnavailable, ErrorClass::Transient),
            (StatusCode::TooManyRequests, ErrorClass::Throttled),
        ] {
            let untagged = name_rejection("Secret team-a/azure-creds", refused_token(status));
            let err = from_sdk(Operation::MediaservicesGet, "id", untagged);
            assert!(matches!(err, AzureError::Credential { .. }), "{err:?}");
            assert_eq!(err.class(), class);
        }
    }

    #[test]
    fn rate_limited_is_throttled_with_its_delay() {
        let err = AzureError::RateLimited {
            operation: Operation::VaultsGet,
            resource: "id".into(),
            subscription: "s".into(),
            retry_after: Duration::from_secs(3),
        };
        assert_eq!(err.class(), ErrorClass::Throttled);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    }
}
