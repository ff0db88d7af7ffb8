//! The ARM client: typed GET/PUT/PATCH/DELETE and `nextLink` pagination on `azure_core`'s
//! pipeline (bearer-token policy, bounded retries, per-subscription rate limit), and
//! non-blocking long-running operations ([`Started`], [`PendingOperation`]).
//!
//! It only ever sends tokens to the configured ARM endpoint: polling and `nextLink` URLs on
//! another host are refused. It knows no resource semantics; [`crate::azure::client`] does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use azure_core::http::policies::Policy;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::{ClientOptions, Context, Method, Pipeline, RawResponse, Request, RetryOptions, Transport, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::cloud::AzureCloud;
use super::error::{AzureError, ErrorClass, from_sdk};
use super::lro::{LroHeaders, PendingOperation, PollOutcome, PollStep, PollingMethod, Started};
use super::metrics::{AzureMetrics, OUTCOME_OK};
use super::models::ListResult;
use super::policy::{BudgetRetryPolicy, RateLimitPolicy, RetryBudget};
use super::ratelimit::RateLimiter;

/// Pages followed at most by one list call, so a runaway `nextLink` cannot stall a reconcile.
pub const MAX_PAGES: usize = 50;

/// Shared settings of the ARM and Key Vault clients.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Transport (`None`: `azure_core`'s default).
    pub transport: Option<Transport>,
    /// Retry and timeout budget of one call.
    pub budget: RetryBudget,
    /// Whole-call timeout, including retries.
    pub call_timeout: Duration,
    /// Longest wait for a rate-limit token before failing as throttled.
    pub rate_limit_max_wait: Duration,
    /// Per-subscription rate limit.
    pub limiter: Arc<RateLimiter>,
    /// Call counters.
    pub metrics: Arc<AzureMetrics>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            transport: None,
            budget: RetryBudget::default(),
            call_timeout: Duration::from_secs(15),
            rate_limit_max_wait: Duration::from_secs(1),
            limiter: Arc::default(),
            metrics: Arc::default(),
        }
    }
}

impl ClientSettings {
    /// `azure_core` client options carrying this transport and the bounded retry policy; the
    /// SDK's own retry (about a minute by default) is switched off.
    #[must_use]
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            transport: self.transport.clone(),
            retry: RetryOptions::none(),
            per_call_policies: vec![Arc::new(BudgetRetryPolicy::new(self.budget, self.metrics.clone()))],
            ..ClientOptions::default()
        }
    }
}

/// ARM client for one cloud and one credential.
#[derive(Clone, Debug)]
pub struct ArmClient {
    endpoint: Url,
    pipeline: Pipeline,
    call_timeout: Duration,
    metrics: Arc<AzureMetrics>,
}

/// A successful ARM answer: status, LRO headers and body.
#[derive(Debug)]
struct Answer {
    status: u16,
    lro: LroHeaders,
    body: Vec<u8>,
}

fn lro_headers(raw: &RawResponse) -> LroHeaders {
    use azure_core::http::headers::HeaderName;
    let h = raw.headers();
    LroHeaders {
        azure_async_operation: h.get_optional_str(&HeaderName::from_static("azure-asyncoperation")).map(str::to_owned),
        location: h.get_optional_str(&HeaderName::from_static("location")).map(str::to_owned),
        retry_after: super::policy::retry_after(h),
    }
}

impl ArmClient {
    /// A client for `cloud`'s ARM endpoint, authenticating with `credential`.
    #[must_use]
    pub fn new(cloud: &AzureCloud, credential: Arc<dyn TokenCredential>, settings: &ClientSettings) -> Self {
        let auth: Arc<dyn Policy> = Arc::new(BearerTokenAuthorizationPolicy::new(credential, [cloud.resource_manager_scope()]));
        let limit: Arc<dyn Policy> = Arc::new(RateLimitPolicy::new(settings.limiter.clone(), settings.rate_limit_max_wait));
        let pipeline = Pipeline::new(
            Some(env!("CARGO_PKG_NAME")),
            Some(env!("CARGO_PKG_VERSION")),
            settings.client_options(),
            Vec::new(),
            vec![limit, auth],
            None,
        );
        Self { endpoint: cloud.resource_manager(), pipeline, call_timeout: settings.call_timeout, metrics: settings.metrics.clone() }
    }

    /// The ARM endpoint.
    #[must_use]
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// URL of `path` (an id or scope path) with `api-version`.
    fn url(&self, operation: &'static str, path: &str, api_version: &str) -> Result<Url, AzureError> {
        let mut url = self.endpoint.join(path.trim_start_matches('/')).map_err(|e| AzureError::InvalidInput {
            operation,
            resource: path.to_owned(),
            reason: format!("not a valid ARM path ({e})"),
        })?;
        url.query_pairs_mut().append_pair("api-version", api_version);
        Ok(url)
    }

    /// Accept a URL Azure handed us (polling, `nextLink`) only if it is on our ARM endpoint.
    fn trusted_url(&self, operation: &'static str, resource: &str, candidate: &str) -> Result<Url, AzureError> {
        let url = Url::parse(candidate).map_err(|e| AzureError::InvalidInput {
            operation,
            resource: resource.to_owned(),
            reason: format!("azure returned an invalid URL ({e})"),
        })?;
        let same_host = url.scheme() == "https"
            && url.host_str().zip(self.endpoint.host_str()).is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
            && url.port_or_known_default() == self.endpoint.port_or_known_default();
        if same_host {
            Ok(url)
        } else {
            Err(AzureError::InvalidInput {
                operation,
                resource: resource.to_owned(),
                reason: format!("azure returned a URL outside {} ({})", self.endpoint, url.host_str().unwrap_or("no host")),
            })
        }
    }

    async fn send(
        &self,
        operation: &'static str,
        resource: &str,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, AzureError> {
        let span = tracing::debug_span!("azure_call", operation, resource, api_version = url.query_pairs().find(|(k, _)| k == "api-version").map(|(_, v)| v.into_owned()).unwrap_or_default());
        let started = Instant::now();
        let result = async {
            let mut request = Request::new(url, method);
            request.insert_header("accept", "application/json");
            if let Some(body) = body {
                request.insert_header("content-type", "application/json");
                request.set_body(body);
            }
            let ctx = Context::new();
            match tokio::time::timeout(self.call_timeout, self.pipeline.send(&ctx, &mut request, None)).await {
                Err(_) => Err(AzureError::Timeout { operation, resource: resource.to_owned(), timeout: self.call_timeout }),
                Ok(Err(e)) => Err(from_sdk(operation, resource, e)),
                Ok(Ok(raw)) => Ok(Answer { status: u16::from(raw.status()), lro: lro_headers(&raw), body: raw.body().as_ref().to_vec() }),
            }
        }
        .instrument(span)
        .await;
        let outcome = match &result {
            Ok(_) => OUTCOME_OK,
            Err(e) => e.reason(),
        };
        self.metrics.record(operation, outcome, started.elapsed());
        if let Err(e) = &result {
            tracing::debug!(operation, resource, reason = e.reason(), class = e.class().as_str(), "azure call failed");
        }
        result
    }

    fn decode<T: DeserializeOwned>(operation: &'static str, resource: &str, body: &[u8]) -> Result<T, AzureError> {
        serde_json::from_slice(body).map_err(|e| AzureError::Decode { operation, resource: resource.to_owned(), source: Box::new(e) })
    }

    /// GET a resource; `None` when it does not exist.
    pub async fn get<T: DeserializeOwned>(&self, operation: &'static str, id: &str, api_version: &str) -> Result<Option<T>, AzureError> {
        let url = self.url(operation, id, api_version)?;
        match self.send(operation, id, Method::Get, url, None).await {
            Ok(answer) => Self::decode(operation, id, &answer.body).map(Some),
            Err(e) if e.class() == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// PUT or PATCH a body; a finished answer is decoded, an accepted one becomes a
    /// [`PendingOperation`] to poll later.
    pub async fn write<B: Serialize + Sync, T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        id: &str,
        api_version: &str,
        body: &B,
    ) -> Result<Started<T>, AzureError> {
        let url = self.url(operation, id, api_version)?;
        let resource_url = url.to_string();
        let bytes = serde_json::to_vec(body).map_err(|e| AzureError::InvalidInput {
            operation,
            resource: id.to_owned(),
            reason: format!("request body does not serialize ({e})"),
        })?;
        let answer = self.send(operation, id, method, url, Some(bytes)).await?;
        self.started(operation, id, api_version, &resource_url, &answer)
    }

    /// DELETE a resource. `Done(false)` when it did not exist.
    pub async fn delete(&self, operation: &'static str, id: &str, api_version: &str) -> Result<Started<bool>, AzureError> {
        let url = self.url(operation, id, api_version)?;
        let resource_url = url.to_string();
        let answer = match self.send(operation, id, Method::Delete, url, None).await {
            Ok(a) => a,
            Err(e) if e.class() == ErrorClass::NotFound => return Ok(Started::Done(false)),
            Err(e) => return Err(e),
        };
        if answer.status == 204 {
            return Ok(Started::Done(false));
        }
        match super::lro::start(answer.status, &answer.lro, b"", &resource_url) {
            Some(polling) => {
                let polling = self.checked_polling(operation, id, polling)?;
                Ok(Started::Pending(PendingOperation {
                    operation: operation.to_owned(),
                    resource_id: id.to_owned(),
                    api_version: api_version.to_owned(),
                    polling,
                    retry_after_seconds: answer.lro.retry_after.map(|d| d.as_secs()),
                }))
            }
            None => Ok(Started::Done(true)),
        }
    }

    fn checked_polling(&self, operation: &'static str, id: &str, polling: PollingMethod) -> Result<PollingMethod, AzureError> {
        self.trusted_url(operation, id, polling.url())?;
        Ok(polling)
    }

    fn started<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        id: &str,
        api_version: &str,
        resource_url: &str,
        answer: &Answer,
    ) -> Result<Started<T>, AzureError> {
        match super::lro::start(answer.status, &answer.lro, &answer.body, resource_url) {
            None => Self::decode(operation, id, &answer.body).map(Started::Done),
            Some(polling) => Ok(Started::Pending(PendingOperation {
                operation: operation.to_owned(),
                resource_id: id.to_owned(),
                api_version: api_version.to_owned(),
                polling: self.checked_polling(operation, id, polling)?,
                retry_after_seconds: answer.lro.retry_after.map(|d| d.as_secs()),
            })),
        }
    }

    /// Poll a parked operation once. Never waits for it to finish.
    pub async fn poll<T: DeserializeOwned>(&self, pending: &PendingOperation) -> Result<PollOutcome<T>, AzureError> {
        const OP: &str = "poll long-running operation";
        let id = pending.resource_id.as_str();
        let url = self.trusted_url(OP, id, pending.polling.url())?;
        let answer = self.send(OP, id, Method::Get, url, None).await?;
        match super::lro::step(&pending.polling, answer.status, &answer.lro, &answer.body) {
            PollStep::InProgress { retry_after } => Ok(PollOutcome::InProgress { retry_after }),
            PollStep::Failed { status, code, message } => Err(AzureError::OperationFailed {
                operation: static_operation(&pending.operation),
                resource: id.to_owned(),
                status,
                code,
                message,
            }),
            PollStep::SucceededWithBody => {
                if answer.body.is_empty() {
                    Ok(PollOutcome::Succeeded(None))
                } else {
                    Self::decode(OP, id, &answer.body).map(|v| PollOutcome::Succeeded(Some(v)))
                }
            }
            PollStep::SucceededFetchResource => {
                // Async-operation polling ends with a GET of the resource (ARM's final-state rule).
                let final_state = self.get::<T>("get resource after long-running operation", id, &pending.api_version).await?;
                Ok(PollOutcome::Succeeded(final_state))
            }
        }
    }

    /// GET every page of a list, following `nextLink` (at most [`MAX_PAGES`] pages).
    pub async fn list<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
        api_version: &str,
        filter: Option<&str>,
    ) -> Result<Vec<T>, AzureError> {
        let mut url = self.url(operation, path, api_version)?;
        if let Some(f) = filter {
            url.query_pairs_mut().append_pair("$filter", f);
        }
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self.send(operation, path, Method::Get, url, None).await?;
            let page: ListResult<T> = Self::decode(operation, path, &answer.body)?;
            items.extend(page.value);
            match page.next_link.filter(|l| !l.is_empty()) {
                Some(next) => url = self.trusted_url(operation, path, &next)?,
                None => return Ok(items),
            }
        }
        Err(AzureError::InvalidInput {
            operation,
            resource: path.to_owned(),
            reason: format!("more than {MAX_PAGES} pages"),
        })
    }
}

/// Operation names of parked operations come back as owned strings; map the ones this crate
/// creates to their static names so errors and metrics keep bounded labels.
fn static_operation(name: &str) -> &'static str {
    super::client::OPERATIONS.iter().find(|op| **op == name).copied().unwrap_or("complete long-running operation")
}
