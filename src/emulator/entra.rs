//! Entra ID token endpoint and the managed-identity endpoint.
//!
//! `POST /{tenant}/oauth2/v2.0/token` (and the v1 `/oauth2/token`) with the client-credentials
//! grant, authenticated by a client secret or a federated client assertion (a JWT signed by the
//! emulator's OIDC key, matched against the application's federated credentials); errors carry
//! the AADSTS shape (`error`, `error_description`, `error_codes`, ...). The managed-identity
//! endpoint (`GET /msi/token`, App Service protocol) is served on `localhost` by `admin` but
//! issues tokens here. It does not do interactive flows, refresh tokens or certificates.

use axum::body::Body;
use axum::http::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::state::{PrincipalKind, Shared, key_of};
use super::wire::{AccessClaims, AuthFailure, Caller, Req, json_response};

/// Access-token lifetime in seconds.
pub const TOKEN_LIFETIME_SECS: i64 = 3599;

/// Audiences accepted by ARM.
pub const ARM_AUDIENCES: &[&str] = &[
    "https://management.azure.com",
    "https://management.core.windows.net",
    "https://management.usgovcloudapi.net",
    "https://management.core.usgovcloudapi.net",
    "https://management.chinacloudapi.cn",
    "https://management.core.chinacloudapi.cn",
];

/// Audiences accepted by the Key Vault data plane.
pub const VAULT_AUDIENCES: &[&str] = &[
    "https://vault.azure.net",
    "https://vault.usgovcloudapi.net",
    "https://vault.azure.cn",
];

/// Validates the bearer token of `req` for one of `audiences`.
pub fn authenticate(
    shared: &Shared,
    req: &Req,
    audiences: &[&str],
    tenant: &str,
) -> Result<Caller, AuthFailure> {
    let header = req.header("authorization").ok_or(AuthFailure::Missing)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or(AuthFailure::Missing)?;
    let claims: AccessClaims = shared
        .token_key
        .verify(token.trim())
        .map_err(|_| AuthFailure::Invalid)?;
    let now = shared.world().now_unix();
    if claims.exp <= now {
        return Err(AuthFailure::Expired);
    }
    let aud = claims.aud.trim_end_matches('/');
    if !audiences
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(aud))
    {
        return Err(AuthFailure::WrongAudience);
    }
    if !claims.tid.eq_ignore_ascii_case(tenant) {
        return Err(AuthFailure::WrongTenant);
    }
    Ok(Caller {
        oid: claims.oid,
        appid: claims.appid,
        tid: claims.tid,
    })
}

/// The operation name of a login request.
#[must_use]
pub fn operation(req: &Req) -> String {
    if req.path.ends_with("/token") {
        "Token".into()
    } else {
        "Login_Unknown".into()
    }
}

/// An AADSTS error.
struct AadError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

impl AadError {
    fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        description: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            code,
            description: description.into(),
        }
    }

    fn into_response(self, now: chrono::DateTime<chrono::Utc>) -> Response<Body> {
        let trace = super::crypto::guid();
        let correlation = super::crypto::guid();
        let ts = now.format("%Y-%m-%d %H:%M:%SZ").to_string();
        json_response(
            self.status,
            &json!({
                "error": self.error,
                "error_description": format!("AADSTS{}: {} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {ts}", self.code, self.description),
                "error_codes": [self.code],
                "timestamp": ts,
                "trace_id": trace,
                "correlation_id": correlation,
                "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
            }),
        )
    }
}

/// Claims of a federated client assertion (a service account token).
#[derive(Debug, Serialize, Deserialize)]
pub struct AssertionClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Audience(s).
    pub aud: Value,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    #[serde(default)]
    pub iat: Option<i64>,
    /// Not before.
    #[serde(default)]
    pub nbf: Option<i64>,
}

/// Maps a requested resource/scope to the audience the token will carry.
fn audience_for(resource: &str) -> Option<String> {
    let r = resource
        .trim_end_matches("/.default")
        .trim_end_matches(".default")
        .trim_end_matches('/');
    ARM_AUDIENCES
        .iter()
        .chain(VAULT_AUDIENCES)
        .find(|a| a.eq_ignore_ascii_case(r))
        .map(|a| (*a).to_owned())
}

/// The lifetime of tokens issued now, in seconds.
fn token_lifetime(w: &super::state::World) -> i64 {
    w.knobs
        .token_lifetime
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(TOKEN_LIFETIME_SECS)
}

/// Issues an access token for `oid` (must be a known principal) and `audience`.
pub fn issue_token(shared: &Shared, oid: &str, audience: &str) -> Result<(String, i64), String> {
    let (claims, exp) = {
        let w = shared.world();
        let p = w
            .principals
            .get(&key_of(oid))
            .ok_or_else(|| format!("unknown principal {oid}"))?;
        let now = w.now_unix();
        let exp = now + token_lifetime(&w);
        (
            AccessClaims {
                aud: audience.to_owned(),
                iss: format!("https://sts.windows.net/{}/", w.tenant_id),
                iat: now,
                nbf: now,
                exp,
                oid: p.object_id.clone(),
                tid: w.tenant_id.clone(),
                appid: p.client_id.clone(),
                sub: p.object_id.clone(),
                ver: "1.0".into(),
                idtyp: Some("app".into()),
            },
            exp,
        )
    };
    let token = shared.token_key.sign(&claims).map_err(|e| e.to_string())?;
    Ok((token, exp))
}

/// Handles a login-host request.
pub fn handle(shared: &Shared, req: &Req) -> Response<Body> {
    let now = shared.world().now();
    match token(shared, req) {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => e.into_response(now),
    }
}

// NB: one function keeps the order of Entra's checks readable top to bottom.
#[allow(clippy::too_many_lines)]
fn token(shared: &Shared, req: &Req) -> Result<Value, AadError> {
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let v2 = segments.len() == 4
        && segments[1] == "oauth2"
        && segments[2] == "v2.0"
        && segments[3] == "token";
    let v1 = segments.len() == 3 && segments[1] == "oauth2" && segments[2] == "token";
    if req.method != Method::POST || !(v1 || v2) {
        return Err(AadError::new(
            StatusCode::NOT_FOUND,
            "invalid_request",
            900_561,
            "The endpoint only accepts POST requests to /{tenant}/oauth2/v2.0/token.",
        ));
    }
    let tenant = segments[0];
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&req.body).unwrap_or_default();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (tenant_id, issuer) = {
        let w = shared.world();
        (w.tenant_id.clone(), w.oidc_issuer.clone())
    };
    if !tenant.eq_ignore_ascii_case(&tenant_id) {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90_002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        ));
    }
    if field("grant_type") != Some("client_credentials") {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70_003,
            "The app requested an unsupported grant type. Only 'client_credentials' is supported by the emulator.",
        ));
    }
    let resource = if v2 {
        let scope = field("scope").unwrap_or_default();
        if !scope.ends_with("/.default") {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1_002_012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ));
        }
        scope.to_owned()
    } else {
        field("resource").unwrap_or_default().to_owned()
    };
    let client_id = field("client_id").unwrap_or_default().to_owned();
    let principal = {
        let w = shared.world();
        w.principals
            .values()
            .find(|p| {
                p.kind == PrincipalKind::ServicePrincipal
                    && p.client_id.eq_ignore_ascii_case(&client_id)
            })
            .cloned()
    };
    let Some(principal) = principal else {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700_016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant_id}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        ));
    };
    if let Some(secret) = field("client_secret") {
        if !principal.secrets.iter().any(|s| s == secret) {
            return Err(AadError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7_000_215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            ));
        }
    } else if let Some(assertion) = field("client_assertion") {
        if field("client_assertion_type")
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900_144,
                "The request body must contain the following parameter: 'client_assertion_type'.",
            ));
        }
        let claims: AssertionClaims = shared.oidc_key.verify(assertion).map_err(|_| {
            AadError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                50_013,
                "Assertion failed signature validation. [Reason - The key was not found.]",
            )
        })?;
        let now = shared.world().now_unix();
        if claims.exp <= now || claims.nbf.is_some_and(|nbf| nbf > now + 300) {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                700_024,
                format!(
                    "Client assertion is not within its valid time range. Current time: {now}, assertion valid until {}.",
                    claims.exp
                ),
            ));
        }
        let auds: Vec<String> = match &claims.aud {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let matched = principal.federated.iter().any(|f| {
            f.issuer == claims.iss
                && f.subject == claims.sub
                && auds.iter().any(|a| f.audiences.contains(a))
        });
        if !matched {
            let code = if principal.federated.iter().any(|f| f.issuer == claims.iss) {
                70_021
            } else {
                700_211
            };
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                code,
                format!(
                    "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: '{}'. (emulator issuer: '{issuer}')",
                    claims.iss,
                    claims.sub,
                    auds.join(",")
                ),
            ));
        }
    } else {
        return Err(AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    }
    let Some(audience) = audience_for(&resource) else {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500_011,
            format!(
                "The resource principal named {resource} was not found in the tenant named {tenant_id}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        ));
    };
    let (token, exp) = issue_token(shared, &principal.object_id, &audience).map_err(|e| {
        AadError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "temporarily_unavailable",
            50_000,
            e,
        )
    })?;
    let lifetime = exp - shared.world().now_unix();
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    }))
}

/// `GET /msi/token` (App Service managed-identity protocol).
pub fn msi_token(shared: &Shared, req: &Req) -> Response<Body> {
    let fail = |status: StatusCode, message: &str| {
        json_response(
            status,
            &json!({"statusCode": status.as_u16(), "message": message, "correlationId": super::crypto::guid()}),
        )
    };
    let Some((expected_header, default_oid)) = shared.world().msi.clone() else {
        return fail(
            StatusCode::NOT_FOUND,
            "No managed identity endpoint is configured in the emulator seed.",
        );
    };
    if req.header("x-identity-header") != Some(expected_header.as_str()) {
        return fail(
            StatusCode::UNAUTHORIZED,
            "The X-IDENTITY-HEADER header is missing or wrong.",
        );
    }
    let Some(resource) = req.query("resource") else {
        return fail(
            StatusCode::BAD_REQUEST,
            "Required query parameter 'resource' is missing.",
        );
    };
    let Some(audience) = audience_for(resource) else {
        return fail(
            StatusCode::BAD_REQUEST,
            &format!("The resource '{resource}' is not known to the emulator."),
        );
    };
    let selected = {
        let w = shared.world();
        let by = |f: &dyn Fn(&super::state::Principal) -> bool| {
            w.principals
                .values()
                .find(|p| p.kind == PrincipalKind::ManagedIdentity && f(p))
                .map(|p| p.object_id.clone())
        };
        if let Some(cid) = req.query("client_id") {
            by(&|p| p.client_id.eq_ignore_ascii_case(cid))
        } else if let Some(oid) = req.query("principal_id").or_else(|| req.query("object_id")) {
            by(&|p| p.object_id.eq_ignore_ascii_case(oid))
        } else if let Some(rid) = req.query("mi_res_id").or_else(|| req.query("msi_res_id")) {
            by(&|p| {
                p.resource_id
                    .as_deref()
                    .is_some_and(|r| r.eq_ignore_ascii_case(rid))
            })
        } else {
            Some(default_oid)
        }
    };
    let Some(oid) = selected else {
        return fail(
            StatusCode::BAD_REQUEST,
            "No managed identity matches the requested identity.",
        );
    };
    match issue_token(shared, &oid, &audience) {
        Ok((token, exp)) => {
            let client_id = shared
                .world()
                .principals
                .get(&key_of(&oid))
                .map(|p| p.client_id.clone())
                .unwrap_or_default();
            json_response(
                StatusCode::OK,
                &json!({
                    "access_token": token,
                    // NB: a string, as App Service sends it (azure_identity requires that).
                    "expires_on": exp.to_string(),
                    "resource": resource,
                    "token_type": "Bearer",
                    "client_id": client_id,
                }),
            )
        }
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

/// Mints a "projected service account token" signed by the emulator's OIDC key.
pub fn mint_assertion(
    shared: &Shared,
    issuer: Option<&str>,
    subject: &str,
    audience: &str,
    lifetime_secs: i64,
) -> Result<String, String> {
    let (iss, now) = {
        let w = shared.world();
        (
            issuer.map_or_else(|| w.oidc_issuer.clone(), str::to_owned),
            w.now_unix(),
        )
    };
    let claims = AssertionClaims {
        iss,
        sub: subject.to_owned(),
        aud: json!([audience]),
        exp: now + lifetime_secs,
        iat: Some(now),
        nbf: Some(now),
    };
    shared.oidc_key.sign(&claims).map_err(|e| e.to_string())
}
