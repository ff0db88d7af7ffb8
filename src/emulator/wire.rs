//! The emulator's wire plumbing: the buffered request, the ARM/Key Vault error shape, response
//! helpers, host classification and the authenticated caller.
//!
//! A leaf: it imports no other emulator module, so every service module (and the listener that
//! dispatches to them) can build on it without importing each other. It holds no state and
//! makes no authorization decision; tokens are validated by `entra`, the world lives in `state`.

use std::net::IpAddr;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use serde_json::{Value, json};

/// A buffered request.
#[derive(Debug)]
pub struct Req {
    /// Method.
    pub method: Method,
    /// Lower-case host without port.
    pub host: String,
    /// Lower-case host as the client addressed it, with its port if it named one (`Host`):
    /// links the emulator hands out (operation URLs, `nextLink`) use it, so a client that
    /// reached the emulator on a non-default port can follow them unchanged.
    pub authority: String,
    /// Percent-decoded path.
    pub path: String,
    /// Path and query as received.
    pub uri: String,
    /// Query parameters (decoded, in order).
    pub query: Vec<(String, String)>,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: axum::body::Bytes,
    /// The TCP peer address.
    pub peer: IpAddr,
}

impl Req {
    /// The first query parameter named `name` (case-insensitive name).
    #[must_use]
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A header value as text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON (`{}` when empty).
    pub fn json(&self) -> Result<Value, ApiError> {
        if self.body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                format!("The request content was invalid and could not be deserialized: '{e}'."),
            )
        })
    }
}

/// An error answered as `{"error":{"code","message"}}` (ARM and Key Vault share the shape).
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Status.
    pub status: StatusCode,
    /// `error.code`.
    pub code: String,
    /// `error.message`.
    pub message: String,
    /// Key Vault's `error.innererror.code`.
    pub inner: Option<String>,
    /// Extra headers.
    pub headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            inner: None,
            headers: Vec::new(),
        }
    }

    /// Adds a Key Vault inner error code.
    #[must_use]
    pub fn inner(mut self, code: &str) -> Self {
        self.inner = Some(code.to_owned());
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// 404 `ResourceNotFound` for an ARM resource.
    pub fn arm_not_found(kind: &str, name: &str, rg: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!(
                "The Resource '{kind}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            ),
        )
    }

    /// 400 with a code and message.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Renders the response.
    #[must_use]
    pub fn into_response(self) -> Response<Body> {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(inner) = &self.inner {
            error["innererror"] = json!({"code": inner});
        }
        let mut resp = json_response(self.status, &json!({ "error": error }));
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().append(name, v);
            }
        }
        resp
    }
}

/// A JSON response.
#[must_use]
pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// An empty response.
#[must_use]
pub fn empty_response(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

/// Sets a header on a response (ignoring values that are not valid header text).
pub fn set_header(resp: &mut Response<Body>, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

/// Which service a host name belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKind {
    /// `login.*`
    Login,
    /// `management.*`
    Arm,
    /// `<vault>.vault.*`
    Vault(String),
    /// `localhost` / `127.0.0.1`
    Local,
    /// Anything else.
    Unknown,
}

/// Classifies a host name.
#[must_use]
pub fn host_kind(host: &str) -> HostKind {
    if host.starts_with("login.") {
        HostKind::Login
    } else if host.starts_with("management.") {
        HostKind::Arm
    } else if let Some((vault, rest)) = host.split_once('.')
        && rest.starts_with("vault.")
    {
        HostKind::Vault(vault.to_owned())
    } else if host == "localhost" || host == "127.0.0.1" || host == "[::1]" {
        HostKind::Local
    } else {
        HostKind::Unknown
    }
}

/// Marks a response whose connection must be dropped instead (fault injection).
#[derive(Clone, Copy, Debug)]
pub struct ResetConnection;

/// The authenticated caller, attached to responses for the request log.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Object id.
    pub oid: String,
    /// Application id.
    pub appid: String,
    /// Tenant id.
    pub tid: String,
}

/// Claims of the access tokens the emulator issues.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AccessClaims {
    /// Audience (resource).
    pub aud: String,
    /// Issuer.
    pub iss: String,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expiry.
    pub exp: i64,
    /// Object id.
    pub oid: String,
    /// Tenant id.
    pub tid: String,
    /// Application id.
    pub appid: String,
    /// Subject.
    pub sub: String,
    /// Token version.
    pub ver: String,
    /// Identity type.
    #[serde(default)]
    pub idtyp: Option<String>,
}

/// Why a bearer token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Not a token the emulator signed.
    Invalid,
    /// Expired (emulator clock).
    Expired,
    /// Wrong audience.
    WrongAudience,
    /// Issued for another tenant.
    WrongTenant,
}
