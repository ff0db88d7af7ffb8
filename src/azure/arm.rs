//! The ARM client: typed GET/PUT/PATCH/DELETE and `nextLink` pagination on `azure_core`'s
//! pipeline (bearer-token policy, bounded retries, per-subscription rate limit), and
//! non-blocking long-running operations ([`Started`], [`PendingOperation`]).
//!
//! It only ever sends tokens to the configured ARM endpoint: polling and `nextLink` URLs on
//! another host are refused. It knows no resource semantics; [`crate::azure::client`] does.

use std::sync::Arc;
use std::time::Duration;

use super::call::Caller;
use super::cloud::AzureCloud;
use super::error::{AzureError, ErrorClass, from_sdk};
use super::lro::{LroHeaders, PendingOperation, PollOutcome, PollStep, PollingMethod, Started};
use super::metrics::AzureMetrics;
use super::models::ListResult;
use super::operation::Operation;
use super::policy::{BudgetRetryPolicy, RateLimitPolicy, RetryBudget};
use super::ratelimit::RateLimiter;
use azure_core::credentials::TokenCredential;
use azure_core::http::policies::Policy;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::{
    ClientOptions, Context, Method, Pipeline, RawResponse, Request, RetryOptions, Transport, Url,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

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
    /// Call metrics.
    pub metrics: Arc<AzureMetrics>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            transport: None,
            budget: RetryBudget::default(),
            call_timeout: Duration::from_secs(15),
            rate_limit_max_wait: Duration::from_secs(10),
            limiter: Arc::default(),
            metrics: Arc::default(),
        }
    }
}

impl ClientSettings {
    /// The wrapper that times, traces and counts each call with these settings.
    #[must_use]
    pub fn caller(&self) -> Caller {
        Caller::new(self.call_timeout, self.metrics.clone())
    }

    /// `azure_core` client options carrying this transport and the bounded retry policy; the
    /// SDK's own retry (about a minute by default) is switched off.
    #[must_use]
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            transport: self.transport.clone(),
            retry: RetryOptions::none(),
            per_call_policies: vec![Arc::new(BudgetRetryPolicy::new(
                self.budget,
                self.metrics.clone(),
            ))],
            ..ClientOptions::default()
        }
    }
}

/// ARM client for one cloud and one credential.
#[derive(Clone, Debug)]
pub struct ArmClient {
    endpoint: Url,
    pipeline: Pipeline,
    caller: Caller,
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
        azure_async_operation: h
            .get_optional_str(&HeaderName::from_static("azure-asyncoperation"))
            .map(str::to_owned),
        location: h
            .get_optional_str(&HeaderName::from_static("location"))
            .map(str::to_owned),
        retry_after: super::policy::retry_after(h),
    }
}

impl ArmClient {
    /// A client for `cloud`'s ARM endpoint, authenticating with `credential`.
    #[must_use]
    pub fn new(
        cloud: &AzureCloud,
        credential: Arc<dyn TokenCredential>,
        settings: &ClientSettings,
    ) -> Self {
        let auth: Arc<dyn Policy> = Arc::new(BearerTokenAuthorizationPolicy::new(
            credential,
            [cloud.resource_manager_scope()],
        ));
        let limit: Arc<dyn Policy> = Arc::new(RateLimitPolicy::new(
            settings.limiter.clone(),
            settings.rate_limit_max_wait,
        ));
        let pipeline = Pipeline::new(
            Some(env!("CARGO_PKG_NAME")),
            Some(env!("CARGO_PKG_VERSION")),
            settings.client_options(),
            Vec::new(),
            vec![limit, auth],
            None,
        );
        Self {
            endpoint: cloud.resource_manager(),
            pipeline,
            caller: settings.caller(),
        }
    }

    /// The ARM endpoint.
    #[must_use]
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// URL of `path` (an id or scope path) with `api-version`.
    fn url(&self, operation: Operation, path: &str, api_version: &str) -> Result<Url, AzureError> {
        let mut url = self
            .endpoint
            .join(path.trim_start_matches('/'))
            .map_err(|e| AzureError::InvalidInput {
                operation,
                resource: path.to_owned(),
                reason: format!("not a valid ARM path ({e})"),
            })?;
        url.query_pairs_mut()
            .append_pair("api-version", api_version);
        Ok(url)
    }

    /// Accept a URL Azure handed us (polling, `nextLink`) only if it is on our ARM endpoint.
    fn trusted_url(
        &self,
        operation: Operation,
        resource: &str,
        candidate: &str,
    ) -> Result<Url, AzureError> {
        let url = Url::parse(candidate).map_err(|e| AzureError::InvalidInput {
            operation,
            resource: resource.to_owned(),
            reason: format!("azure returned an invalid URL ({e})"),
        })?;
        let same_host = url.scheme() == "https"
            && url
                .host_str()
                .zip(self.endpoint.host_str())
                .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
            && url.port_or_known_default() == self.endpoint.port_or_known_default();
        if same_host {
            Ok(url)
        } else {
            Err(AzureError::InvalidInput {
                operation,
                resource: resource.to_owned(),
                reason: format!(
                    "azure returned a URL outside {} ({})",
                    self.endpoint,
                    url.host_str().unwrap_or("no host")
                ),
            })
        }
    }

    async fn send(
        &self,
        operation: Operation,
        resource: &str,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, AzureError> {
        let api_version = url
            .query_pairs()
            .find(|(k, _)| k == "api-version")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        self.caller
            .call(operation, resource, &api_version, async {
                let mut request = Request::new(url, method);
                request.insert_header("accept", "application/json");
                if let Some(body) = body {
                    request.insert_header("content-type", "application/json");
                    request.set_body(body);
                }
                let raw = self
                    .pipeline
                    .send(&Context::new(), &mut request, None)
                    .await
                    .map_err(|e| from_sdk(operation, resource, e))?;
                Ok(Answer {
                    status: u16::from(raw.status()),
                    lro: lro_headers(&raw),
                    body: raw.body().as_ref().to_vec(),
                })
            })
            .await
    }

    fn decode<T: DeserializeOwned>(
        operation: Operation,
        resource: &str,
        body: &[u8],
    ) -> Result<T, AzureError> {
        // The error names the JSON path of the offending field, so a contract break is findable.
        let de = &mut serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(de).map_err(|e| AzureError::Decode {
            operation,
            resource: resource.to_owned(),
            source: Box::new(e),
        })
    }

    /// GET a resource; `None` when it does not exist.
    pub async fn get<T: DeserializeOwned>(
        &self,
        operation: Operation,
        id: &str,
        api_version: &str,
    ) -> Result<Option<T>, AzureError> {
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
        operation: Operation,
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
    pub async fn delete(
        &self,
        operation: Operation,
        id: &str,
        api_version: &str,
    ) -> Result<Started<bool>, AzureError> {
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
                    operation,
                    resource_id: id.to_owned(),
                    api_version: api_version.to_owned(),
                    polling,
                    retry_after_seconds: answer.lro.retry_after.map(|d| d.as_secs()),
                }))
            }
            None => Ok(Started::Done(true)),
        }
    }

    fn checked_polling(
        &self,
        operation: Operation,
        id: &str,
        polling: PollingMethod,
    ) -> Result<PollingMethod, AzureError> {
        self.trusted_url(operation, id, polling.url())?;
        Ok(polling)
    }

    fn started<T: DeserializeOwned>(
        &self,
        operation: Operation,
        id: &str,
        api_version: &str,
        resource_url: &str,
        answer: &Answer,
    ) -> Result<Started<T>, AzureError> {
        match super::lro::start(answer.status, &answer.lro, &answer.body, resource_url) {
            None => Self::decode(operation, id, &answer.body).map(Started::Done),
            Some(polling) => Ok(Started::Pending(PendingOperation {
                operation,
                resource_id: id.to_owned(),
                api_version: api_version.to_owned(),
                polling: self.checked_polling(operation, id, polling)?,
                retry_after_seconds: answer.lro.retry_after.map(|d| d.as_secs()),
            })),
        }
    }

    /// Poll a parked operation once. Never waits for it to finish.
    pub async fn poll<T: DeserializeOwned>(
        &self,
        pending: &PendingOperation,
    ) -> Result<PollOutcome<T>, AzureError> {
        const OP: Operation = Operation::PollLongRunningOperation;
        let id = pending.resource_id.as_str();
        let url = self.trusted_url(OP, id, pending.polling.url())?;
        let answer = self.send(OP, id, Method::Get, url, None).await?;
        match super::lro::step(&pending.polling, answer.status, &answer.lro, &answer.body) {
            PollStep::InProgress { retry_after } => Ok(PollOutcome::InProgress { retry_after }),
            PollStep::Failed {
                status,
                code,
                message,
            } => Err(AzureError::OperationFailed {
                operation: pending.operation,
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
                let final_state = self
                    .get::<T>(
                        Operation::GetResourceAfterLongRunningOperation,
                        id,
                        &pending.api_version,
                    )
                    .await?;
                Ok(PollOutcome::Succeeded(final_state))
            }
        }
    }

    /// GET every page of a list, following `nextLink` (at most [`MAX_PAGES`] pages).
    pub async fn list<T: DeserializeOwned>(
        &self,
        operation: Operation,
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

#[cfg(test)]
mod tests {
    //! The ARM client's budgets and LRO handling, end to end through the real pipeline with a
    //! scripted transport in place of the network.

    use std::collections::VecDeque;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use azure_core::credentials::{AccessToken, TokenRequestOptions};
    use azure_core::http::headers::Headers;
    use azure_core::http::policies::PolicyResult;
    use azure_core::http::{AsyncRawResponse, StatusCode};

    use super::*;
    use crate::azure::models::media::MediaAccount;

    #[derive(Debug)]
    struct FixedToken;

    #[async_trait]
    impl TokenCredential for FixedToken {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            Ok(AccessToken::new(
                "token",
                azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }

    /// One scripted answer: status, headers, body, and how long to take.
    struct Reply(u16, Vec<(&'static str, String)>, &'static str, Duration);

    type Scripted = (u16, Vec<(&'static str, String)>, &'static str, Duration);

    #[derive(Debug, Default)]
    struct Script {
        replies: Mutex<VecDeque<Scripted>>,
        seen: Mutex<Vec<(String, String, bool)>>,
    }

    #[async_trait]
    impl Policy for Script {
        async fn send(
            &self,
            _: &Context,
            request: &mut Request,
            _: &[Arc<dyn Policy>],
        ) -> PolicyResult {
            let auth = request
                .headers()
                .get_optional_str(&azure_core::http::headers::AUTHORIZATION)
                .is_some();
            self.seen.lock().expect("lock").push((
                request.method().to_string(),
                request.url().to_string(),
                auth,
            ));
            let next = self.replies.lock().expect("lock").pop_front();
            let (status, headers, body, delay) = next.expect("more requests than scripted");
            tokio::time::sleep(delay).await;
            let mut h = Headers::new();
            for (k, v) in headers {
                h.insert(k, v);
            }
            Ok(AsyncRawResponse::from_bytes(
                StatusCode::from(status),
                h,
                body.as_bytes().to_vec(),
            ))
        }
    }

    fn client(replies: Vec<Reply>) -> (ArmClient, Arc<Script>, Arc<AzureMetrics>) {
        let script = Arc::new(Script::default());
        *script.replies.lock().expect("lock") = replies
            .into_iter()
            .map(|Reply(s, h, b, d)| (s, h, b, d))
            .collect();
        let settings = ClientSettings {
            transport: Some(Transport::with_policy(script.clone())),
            ..ClientSettings::default()
        };
        let metrics = settings.metrics.clone();
        (
            ArmClient::new(&AzureCloud::AzurePublic, Arc::new(FixedToken), &settings),
            script,
            metrics,
        )
    }

    const ID: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Media/mediaservices/a";
    const ACCOUNT: &str = r#"{"id":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Media/mediaservices/a","location":"westus","properties":{"provisioningState":"Succeeded"}}"#;
    const FAST: Duration = Duration::ZERO;

    fn ok(body: &'static str) -> Reply {
        Reply(200, vec![], body, FAST)
    }

    /// 5xx answers are retried within the budget, with the token on every attempt.
    #[tokio::test(start_paused = true)]
    async fn server_errors_are_retried_within_the_budget() {
        let (c, script, metrics) = client(vec![
            Reply(500, vec![], "", FAST),
            Reply(503, vec![], "", FAST),
            ok(ACCOUNT),
        ]);
        let got: Option<MediaAccount> = c
            .get(Operation::MediaservicesGet, ID, "2023-01-01")
            .await
            .expect("third attempt succeeds");
        assert_eq!(got.and_then(|a| a.location).as_deref(), Some("westus"));
        let seen = script.seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 3);
        assert!(
            seen.iter().all(|(_, url, auth)| *auth
                && url.starts_with("https://management.azure.com/subscriptions/s/")
                && url.ends_with("api-version=2023-01-01")),
            "{seen:?}"
        );
        assert_eq!((metrics.http_attempts(), metrics.http_retries()), (3, 2));
        assert_eq!(
            metrics.requests(
                Operation::MediaservicesGet,
                crate::azure::metrics::OUTCOME_OK
            ),
            1
        );
    }

    /// Retries are bounded: a persistent 5xx ends as a transient error after `max_retries`.
    #[tokio::test(start_paused = true)]
    async fn persistent_server_errors_end_as_transient_after_bounded_retries() {
        let body = r#"{"error":{"code":"InternalServerError","message":"boom"}}"#;
        let (c, script, _) = client(vec![
            Reply(500, vec![], body, FAST),
            Reply(500, vec![], body, FAST),
            Reply(500, vec![], body, FAST),
        ]);
        let err = c
            .get::<MediaAccount>(Operation::MediaservicesGet, ID, "2023-01-01")
            .await
            .expect_err("fails");
        assert_eq!(err.class(), ErrorClass::Transient, "{err}");
        assert_eq!(err.code(), Some("InternalServerError"));
        assert_eq!(
            script.seen.lock().expect("lock").len(),
            3,
            "1 attempt + 2 retries"
        );
    }

    /// A 429 whose Retry-After exceeds the budget comes back at once as Throttled with the delay.
    #[tokio::test(start_paused = true)]
    async fn long_retry_after_is_handed_to_the_reconciler_not_slept() {
        let body = r#"{"error":{"code":"SubscriptionRequestsThrottled","message":"slow down"}}"#;
        let (c, script, _) = client(vec![Reply(
            429,
            vec![("retry-after", "30".into())],
            body,
            FAST,
        )]);
        let start = tokio::time::Instant::now();
        let err = c
            .get::<MediaAccount>(Operation::MediaservicesGet, ID, "2023-01-01")
            .await
            .expect_err("throttled");
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "must not sleep 30 s inside a reconcile"
        );
        assert_eq!(err.class(), ErrorClass::Throttled);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(err.reason(), "AzureThrottled");
        assert_eq!(script.seen.lock().expect("lock").len(), 1);
    }

    /// A short Retry-After is honoured in place.
    #[tokio::test(start_paused = true)]
    async fn short_retry_after_is_honoured_then_retried() {
        let (c, _, _) = client(vec![
            Reply(429, vec![("retry-after", "1".into())], "", FAST),
            ok(ACCOUNT),
        ]);
        let start = tokio::time::Instant::now();
        c.get::<MediaAccount>(Operation::MediaservicesGet, ID, "2023-01-01")
            .await
            .expect("retried");
        assert!(
            start.elapsed() >= Duration::from_secs(1),
            "waited {:?}",
            start.elapsed()
        );
    }

    /// An attempt that hangs is cut at the per-try timeout; all attempts hanging ends as Timeout.
    #[tokio::test(start_paused = true)]
    async fn hanging_answers_time_out_within_the_call_budget() {
        let slow = || Reply(200, vec![], ACCOUNT, Duration::from_secs(600));
        let (c, _, _) = client(vec![slow(), slow(), slow()]);
        let start = tokio::time::Instant::now();
        let err = c
            .get::<MediaAccount>(Operation::MediaservicesGet, ID, "2023-01-01")
            .await
            .expect_err("times out");
        assert_eq!(err.class(), ErrorClass::Transient);
        assert!(matches!(err, AzureError::Timeout { .. }), "{err:?}");
        assert!(
            start.elapsed() <= Duration::from_secs(16),
            "took {:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn not_found_reads_as_none() {
        let (c, _, _) = client(vec![Reply(
            404,
            vec![],
            r#"{"error":{"code":"ResourceNotFound","message":"gone"}}"#,
            FAST,
        )]);
        assert_eq!(
            c.get::<MediaAccount>(Operation::MediaservicesGet, ID, "2023-01-01")
                .await
                .expect("ok"),
            None
        );
    }

    /// PATCH → 202 parks the operation; polls report progress, then the final resource.
    #[tokio::test(start_paused = true)]
    async fn patch_returns_a_pending_operation_that_polls_to_completion() {
        let op = "https://management.azure.com/subscriptions/s/providers/Microsoft.Media/locations/westus/mediaServicesOperationStatuses/1?api-version=2023-01-01";
        let (c, script, _) = client(vec![
            Reply(
                202,
                vec![
                    ("azure-asyncoperation", op.into()),
                    ("retry-after", "10".into()),
                ],
                "",
                FAST,
            ),
            Reply(
                200,
                vec![("retry-after", "5".into())],
                r#"{"name":"1","status":"InProgress"}"#,
                FAST,
            ),
            ok(r#"{"name":"1","status":"Succeeded"}"#),
            ok(ACCOUNT),
        ]);
        let started: Started<MediaAccount> = c
            .write(
                Operation::MediaservicesUpdate,
                Method::Patch,
                ID,
                "2023-01-01",
                &serde_json::json!({"tags":{}}),
            )
            .await
            .expect("accepted");
        let Started::Pending(pending) = started else {
            panic!("expected pending, got {started:?}")
        };
        assert_eq!(pending.retry_after(), Some(Duration::from_secs(10)));
        let parked = serde_json::to_string(&pending).expect("parks");
        let pending: PendingOperation = serde_json::from_str(&parked).expect("unparks");
        assert_eq!(
            c.poll::<MediaAccount>(&pending).await.expect("polls"),
            PollOutcome::InProgress {
                retry_after: Some(Duration::from_secs(5))
            }
        );
        let PollOutcome::Succeeded(Some(account)) =
            c.poll::<MediaAccount>(&pending).await.expect("polls")
        else {
            panic!("expected success")
        };
        assert_eq!(account.id.as_deref(), Some(ID));
        let seen = script.seen.lock().expect("lock").clone();
        assert_eq!(seen[0].0, "PATCH");
        assert!(
            seen[3]
                .1
                .contains("/mediaservices/a?api-version=2023-01-01"),
            "final GET of the resource: {seen:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failed_operation_surfaces_its_code() {
        let op = "https://management.azure.com/subscriptions/s/providers/Microsoft.Media/locations/westus/mediaServicesOperationStatuses/2?api-version=2023-01-01";
        let (c, _, _) = client(vec![
            Reply(202, vec![("azure-asyncoperation", op.into())], "", FAST),
            ok(
                r#"{"name":"2","status":"Failed","error":{"code":"BadRequest","message":"Storage account cannot be accessed."}}"#,
            ),
        ]);
        let Started::Pending(p) = c
            .write::<_, MediaAccount>(
                Operation::MediaservicesUpdate,
                Method::Patch,
                ID,
                "2023-01-01",
                &serde_json::json!({}),
            )
            .await
            .expect("accepted")
        else {
            panic!("pending")
        };
        let err = c.poll::<MediaAccount>(&p).await.expect_err("failed");
        assert_eq!(err.code(), Some("BadRequest"));
        assert_eq!(err.class(), ErrorClass::UserActionRequired);
        assert!(
            err.to_string()
                .starts_with("failed to update media services account /subscriptions/s/"),
            "{err}"
        );
    }

    /// The token only goes to the ARM endpoint: a polling URL elsewhere is refused unsent.
    #[tokio::test(start_paused = true)]
    async fn polling_urls_on_other_hosts_are_refused() {
        let (c, script, _) = client(vec![Reply(
            202,
            vec![("azure-asyncoperation", "https://evil.example.com/op".into())],
            "",
            FAST,
        )]);
        let err = c
            .write::<_, MediaAccount>(
                Operation::MediaservicesUpdate,
                Method::Patch,
                ID,
                "2023-01-01",
                &serde_json::json!({}),
            )
            .await
            .expect_err("refused");
        assert!(matches!(err, AzureError::InvalidInput { .. }), "{err:?}");
        assert_eq!(script.seen.lock().expect("lock").len(), 1);
    }

    /// Lists follow `nextLink` across pages.
    #[tokio::test(start_paused = true)]
    async fn lists_follow_next_link() {
        let (c, script, _) = client(vec![
            ok(
                r#"{"value":[{"name":"a"}],"nextLink":"https://management.azure.com/subscriptions/s/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$skiptoken=x"}"#,
            ),
            ok(r#"{"value":[{"name":"b"},{"name":"c"}]}"#),
        ]);
        let items: Vec<serde_json::Value> = c
            .list(
                Operation::RoleAssignmentsListForScope,
                "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments",
                "2022-04-01",
                None,
            )
            .await
            .expect("lists");
        let names: Vec<_> = items.iter().filter_map(|v| v["name"].as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(
            script.seen.lock().expect("lock")[1]
                .1
                .contains("skiptoken=x")
        );
    }

    /// The client-side limiter refuses beyond its bucket without sending.
    #[tokio::test(start_paused = true)]
    async fn client_side_rate_limit_refuses_without_sending() {
        let script = Arc::new(Script::default());
        *script.replies.lock().expect("lock") =
            (0..2).map(|_| (200, vec![], ACCOUNT, FAST)).collect();
        let limiter = Arc::new(RateLimiter::new(crate::azure::ratelimit::RateLimitConfig {
            read: crate::azure::ratelimit::BucketConfig {
                capacity: 2.0,
                refill_per_second: 0.01,
            },
            ..Default::default()
        }));
        let settings = ClientSettings {
            transport: Some(Transport::with_policy(script.clone())),
            limiter,
            ..ClientSettings::default()
        };
        let c = ArmClient::new(&AzureCloud::AzurePublic, Arc::new(FixedToken), &settings);
        for _ in 0..2 {
            c.get::<MediaAccount>(Operation::MediaservicesGet, ID, "2023-01-01")
                .await
                .expect("within bucket");
        }
        let err = c
            .get::<MediaAccount>(Operation::MediaservicesGet, ID, "2023-01-01")
            .await
            .expect_err("bucket empty");
        assert!(
            matches!(&err, AzureError::RateLimited { subscription, .. } if subscription == "s"),
            "{err:?}"
        );
        assert_eq!(err.class(), ErrorClass::Throttled);
        assert_eq!(script.seen.lock().expect("lock").len(), 2);
    }
}
