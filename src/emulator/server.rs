//! The HTTPS listener, host-based routing and the per-request pipeline.
//!
//! One TLS listener (certificate signed by a CA generated at start) serves every host of the
//! contract; each request gets an `x-ms-request-id`, passes the knobs (injected faults,
//! latency), is dispatched by `Host` to Entra, ARM, the Key Vault data plane or the local
//! endpoints (managed identity, admin API), and is logged and counted. The services' own rules
//! live in their modules.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderName, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use super::knobs::{self, Fault};
use super::state::{LoggedRequest, Shared};
use super::wire::{
    ApiError, Caller, HostKind, Req, ResetConnection, empty_response, host_kind, set_header,
};
use super::{admin, arm, entra, keyvault};

/// Host names in the server certificate (the contract's list).
pub const SERVER_NAMES: &[&str] = &[
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "management.azure.com",
    "management.usgovcloudapi.net",
    "management.chinacloudapi.cn",
    "*.vault.azure.net",
    "*.vault.usgovcloudapi.net",
    "*.vault.azure.cn",
    "localhost",
    "127.0.0.1",
];

/// How many requests the log keeps (the oldest tenth is dropped when full).
pub const REQUEST_LOG_CAPACITY: usize = 100_000;

/// The CA and server certificate generated at start.
pub struct Certs {
    /// CA certificate PEM (what clients trust).
    pub ca_pem: String,
    /// The rustls server configuration.
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Generates the CA and the server certificate for [`SERVER_NAMES`].
pub fn generate_certs() -> Result<Certs, String> {
    let ca_key = KeyPair::generate().map_err(|e| e.to_string())?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ams-azure-emulator CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| e.to_string())?;
    let issuer = Issuer::new(ca_params, &ca_key);
    let leaf_key = KeyPair::generate().map_err(|e| e.to_string())?;
    let names: Vec<String> = SERVER_NAMES.iter().map(|s| (*s).to_owned()).collect();
    let mut leaf = CertificateParams::new(names).map_err(|e| e.to_string())?;
    leaf.distinguished_name
        .push(DnType::CommonName, "ams-azure-emulator");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let leaf_cert = leaf
        .signed_by(&leaf_key, &issuer)
        .map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
        .map_err(ToString::to_string)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone(), ca_cert.der().clone()],
            key_der,
        )
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Certs {
        ca_pem: ca_cert.pem(),
        server_config: Arc::new(config),
    })
}

/// Runs the accept loop until `shutdown` flips to `true`.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let shared = shared.clone();
                connections.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let shared = shared.clone();
                        async move {
                            let resp = handle(shared, peer, req.map(Body::new)).await;
                            if resp.extensions().get::<ResetConnection>().is_some() {
                                return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected connection reset"));
                            }
                            Ok::<_, std::io::Error>(resp)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The host the client addressed: without the port (lower case, for routing) and as written
/// (with the port, for links).
fn host_and_authority(parts: &axum::http::request::Parts) -> (String, String) {
    let host = parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        // HTTP/2 carries the host (and port) in the `:authority` pseudo-header instead.
        .or_else(|| parts.uri.authority().map(ToString::to_string))
        .unwrap_or_default();
    let authority = host.to_ascii_lowercase();
    let host = host
        .rsplit_once(':')
        .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
        .map_or(host.as_str(), |(h, _)| h)
        .to_ascii_lowercase();
    (host, authority)
}

/// The request pipeline: buffer, classify, apply knobs, dispatch, stamp, log.
pub async fn handle(shared: Arc<Shared>, peer: SocketAddr, req: Request<Body>) -> Response<Body> {
    let request_id = super::crypto::guid();
    let (parts, body) = req.into_parts();
    let (host, authority) = host_and_authority(&parts);
    let body = match axum::body::to_bytes(body, 16 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => axum::body::Bytes::new(),
    };
    let uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string);
    let query = parts
        .uri
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default();
    let req = Req {
        method: parts.method,
        path: percent_decode(parts.uri.path()),
        uri,
        query,
        headers: parts.headers,
        body,
        host: host.clone(),
        authority,
        peer: peer.ip(),
    };
    let kind = host_kind(&host);
    let op = match &kind {
        HostKind::Login => entra::operation(&req),
        HostKind::Arm => arm::operation(&req),
        HostKind::Vault(_) => keyvault::operation(&req),
        HostKind::Local => admin::operation(&req),
        HostKind::Unknown => "Unknown".to_owned(),
    };
    // Knobs: admin calls are never faulted or slowed, so tests can always repair the world.
    let (fault, latency) = if op.starts_with("Admin_") {
        (None, None)
    } else {
        let mut w = shared.world();
        (w.knobs.take_fault(&op), w.knobs.latency_for(&op))
    };
    if let Some(delay) = latency {
        tokio::time::sleep(delay).await;
    }
    let mut hold = None;
    let mut resp = match fault {
        Some(Fault::Slow { millis }) => {
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
            dispatch(&shared, &kind, &op, &req)
        }
        Some(Fault::SlowAfterCommit { millis }) => {
            hold = Some(std::time::Duration::from_millis(millis));
            dispatch(&shared, &kind, &op, &req)
        }
        Some(fault) => fault_response(&fault, &kind, &req),
        None => dispatch(&shared, &kind, &op, &req),
    };
    set_header(&mut resp, "x-ms-request-id", &request_id);
    if matches!(kind, HostKind::Arm) {
        set_header(&mut resp, "x-ms-correlation-request-id", &request_id);
    }
    let resp = log_request(&shared, &kind, op, &req, request_id, resp).await;
    // Held after the log entry is written: a client that dies in the window leaves the
    // request in the log (once), as the service would have recorded it.
    if let Some(hold) = hold {
        tokio::time::sleep(hold).await;
    }
    resp
}

/// Records a handled request in the log and the counters; returns the response (rebuilt when
/// its body is kept).
async fn log_request(
    shared: &Shared,
    kind: &HostKind,
    op: String,
    req: &Req,
    request_id: String,
    mut resp: Response<Body>,
) -> Response<Body> {
    let caller = resp.extensions().get::<Caller>().map(|c| c.oid.clone());
    let record = !op.starts_with("Admin_") && shared.world().knobs.record_bodies;
    let mut response_body = None;
    if record {
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
            .await
            .unwrap_or_default();
        response_body = serde_json::from_slice::<Value>(&bytes).ok();
        resp = Response::from_parts(parts, Body::from(bytes));
    }
    let request_body = if record {
        recorded_request_body(kind, &req.body)
    } else {
        None
    };
    let mut w = shared.world();
    let seq = w.log.last().map_or(1, |l| l.seq + 1);
    // A long benchmark must not grow the log without bound: keep the most recent entries.
    if w.log.len() >= REQUEST_LOG_CAPACITY {
        w.log.drain(..REQUEST_LOG_CAPACITY / 10);
    }
    w.log.push(LoggedRequest {
        seq,
        operation: op.clone(),
        method: req.method.to_string(),
        host: req.host.clone(),
        uri: req.uri.clone(),
        status: resp.status().as_u16(),
        caller,
        request_id,
        response_body,
        request_body,
    });
    *w.counters.entry(op).or_insert(0) += 1;
    resp
}

/// Largest request body the log keeps.
const MAX_LOGGED_BODY: usize = 64 * 1024;

/// A request body as the log keeps it: JSON only, bounded, secrets redacted.
fn recorded_request_body(kind: &HostKind, body: &[u8]) -> Option<Value> {
    if body.is_empty() || matches!(kind, HostKind::Login | HostKind::Local) {
        return None;
    }
    if body.len() > MAX_LOGGED_BODY {
        return Some(Value::String(format!("<{} bytes, not kept>", body.len())));
    }
    let mut value: Value = serde_json::from_slice(body).ok()?;
    redact(&mut value, matches!(kind, HostKind::Vault(_)));
    Some(value)
}

/// Replaces secret-bearing members: anything named like a secret or password anywhere, and on
/// the Key Vault data plane the payload (`value`) and imported key material (`key`).
fn redact(value: &mut Value, vault: bool) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let lower = k.to_ascii_lowercase();
                if lower.contains("secret")
                    || lower.contains("password")
                    || (vault && (lower == "value" || lower == "key"))
                {
                    *v = Value::String("<redacted>".to_owned());
                } else {
                    redact(v, vault);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, vault)),
        _ => {}
    }
}

/// The answer of an injected fault (other than a slow response).
fn fault_response(fault: &Fault, kind: &HostKind, req: &Req) -> Response<Body> {
    match fault {
        Fault::Throttle { retry_after_secs } => {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "The request is being throttled (injected fault).",
            )
            .header(
                axum::http::header::RETRY_AFTER,
                retry_after_secs.to_string(),
            );
            if *kind == HostKind::Arm {
                let bucket = match req.method {
                    Method::GET | Method::HEAD => knobs::ArmKind::Read,
                    Method::DELETE => knobs::ArmKind::Delete,
                    _ => knobs::ArmKind::Write,
                };
                e = e.header(HeaderName::from_static(bucket.header()), "0");
            }
            e.into_response()
        }
        Fault::ServerError { status } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            ApiError::new(
                status,
                "InternalServerError",
                "An injected server error occurred.",
            )
            .into_response()
        }
        Fault::Error {
            status,
            code,
            message,
        } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST);
            ApiError::new(status, code.as_str(), message.as_str()).into_response()
        }
        // A slow response is served by the caller; a reset drops the connection.
        Fault::ConnectionReset | Fault::Slow { .. } | Fault::SlowAfterCommit { .. } => {
            let mut r = empty_response(StatusCode::INTERNAL_SERVER_ERROR);
            r.extensions_mut().insert(ResetConnection);
            r
        }
    }
}

fn dispatch(shared: &Arc<Shared>, kind: &HostKind, op: &str, req: &Req) -> Response<Body> {
    // A malformed request is refused before it reaches the world, as the service would.
    if let Err(e) = super::requests::check(kind, op, req) {
        return e.into_response();
    }
    match kind {
        HostKind::Login => entra::handle(shared, req),
        HostKind::Arm => arm::handle(shared, req),
        HostKind::Vault(vault) => keyvault::handle(shared, vault, req),
        HostKind::Local => admin::handle(shared, req),
        HostKind::Unknown => ApiError::new(
            StatusCode::NOT_FOUND,
            "UnknownHost",
            format!("The emulator serves no host named '{}'.", req.host),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
    use serde_json::json;

    use super::*;
    use crate::emulator::{Emulator, EmulatorConfig, FaultRule, Seed};

    const STORE: &str = "/subscriptions/0000a001-0000-0000-0000-000000000001/resourceGroups/media-rg/providers/Microsoft.Storage/storageAccounts/amsstore";
    const IDENTITY: &str = "/subscriptions/0000a001-0000-0000-0000-000000000001/resourceGroups/media-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ams-id";
    // Reader: the seed already gives the identity Storage Blob Data Contributor here.
    const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
    const NAME: &str = "5c3b2a10-0000-4000-8000-00000000c0de";

    async fn emulator() -> Emulator {
        let seed = Seed::from_yaml(include_str!("../../tests/emulator/world.yaml")).expect("seed");
        Emulator::start(EmulatorConfig {
            key_check_interval: None,
            ..EmulatorConfig::with_seed(seed)
        })
        .await
        .expect("emulator starts")
    }

    /// An ARM request as the operator's transport sends it, straight into the pipeline.
    fn arm_request(
        emu: &Emulator,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Request<Body> {
        let token = emu
            .token_for("operator", "https://management.azure.com")
            .expect("token");
        Request::builder()
            .method(method)
            .uri(format!("{path}?api-version=2022-04-01"))
            .header(HOST, "management.azure.com")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request")
    }

    fn create_assignment(emu: &Emulator) -> Request<Body> {
        let (principal, _) = emu.user_assigned_identity(IDENTITY).expect("identity");
        let body = json!({ "properties": {
            "roleDefinitionId": format!("/subscriptions/0000a001-0000-0000-0000-000000000001/providers/Microsoft.Authorization/roleDefinitions/{READER}"),
            "principalId": principal,
            "principalType": "ServicePrincipal",
        } });
        arm_request(
            emu,
            Method::PUT,
            &format!("{STORE}/providers/Microsoft.Authorization/roleAssignments/{NAME}"),
            Some(&body),
        )
    }

    fn held(emu: &Emulator) -> bool {
        emu.shared
            .world()
            .role_assignments
            .values()
            .any(|ra| ra.name == NAME)
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 40000))
    }

    /// The window a crash test needs: Azure has committed the write (and logged the request,
    /// once) while the client still waits for the answer, which then arrives unchanged.
    #[tokio::test]
    async fn slow_after_commit_changes_the_world_before_the_answer_is_sent() {
        let emu = emulator().await;
        let hold = Duration::from_millis(1500);
        emu.inject_fault(FaultRule {
            operation: "RoleAssignments_Create".into(),
            fault: Fault::SlowAfterCommit {
                millis: u64::try_from(hold.as_millis()).expect("fits"),
            },
            times: Some(1),
        });
        let started = Instant::now();
        let answer = tokio::spawn(handle(emu.shared.clone(), peer(), create_assignment(&emu)));
        while !held(&emu) {
            assert!(
                started.elapsed() < hold / 2,
                "the assignment was not made within {:?}",
                hold / 2
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            !answer.is_finished(),
            "the answer was sent after {:?}, before the hold ended",
            started.elapsed()
        );
        let creates = |emu: &Emulator| {
            emu.request_log()
                .into_iter()
                .filter(|r| r.operation == "RoleAssignments_Create")
                .map(|r| r.status)
                .collect::<Vec<_>>()
        };
        assert_eq!(creates(&emu), [201], "logged once, as made, while held");

        let resp = answer.await.expect("the handler does not panic");
        assert!(
            started.elapsed() >= hold,
            "answered after {:?}, before the {hold:?} hold",
            started.elapsed()
        );
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(creates(&emu), [201], "still logged once");
        // The rule was for one request: the identical re-PUT is answered at once, with 200.
        let again = handle(emu.shared.clone(), peer(), create_assignment(&emu)).await;
        assert_eq!(again.status(), StatusCode::OK);
        emu.shutdown().await;
    }

    /// With a list lag, a new assignment is left out of lists until it is old enough, while a
    /// GET by name finds it at once.
    #[tokio::test]
    async fn a_list_lag_hides_new_assignments_from_lists_only() {
        let emu = emulator().await;
        emu.set_role_assignment_list_lag(Duration::from_secs(60));
        let made = handle(emu.shared.clone(), peer(), create_assignment(&emu)).await;
        assert_eq!(made.status(), StatusCode::CREATED);
        let listed = |emu: &Emulator| {
            let emu_shared = emu.shared.clone();
            let req = arm_request(
                emu,
                Method::GET,
                &format!("{STORE}/providers/Microsoft.Authorization/roleAssignments"),
                None,
            );
            async move {
                let resp = handle(emu_shared, peer(), req).await;
                assert_eq!(resp.status(), StatusCode::OK);
                let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                    .await
                    .expect("body");
                let list: Value = serde_json::from_slice(&bytes).expect("json");
                list["value"]
                    .as_array()
                    .expect("value")
                    .iter()
                    .any(|a| a["name"] == NAME)
            }
        };
        assert!(!listed(&emu).await, "listed within the lag");
        let get = handle(
            emu.shared.clone(),
            peer(),
            arm_request(
                &emu,
                Method::GET,
                &format!("{STORE}/providers/Microsoft.Authorization/roleAssignments/{NAME}"),
                None,
            ),
        )
        .await;
        assert_eq!(
            get.status(),
            StatusCode::OK,
            "a GET by name sees it at once"
        );
        emu.advance_clock(Duration::from_secs(61));
        assert!(listed(&emu).await, "not listed once older than the lag");
        emu.shutdown().await;
    }
}
