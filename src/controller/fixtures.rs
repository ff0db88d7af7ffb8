//! Test fixtures for the driver and the finalizer (kube-rs controller-rs style): a mocked
//! apiserver that expects an exact sequence of calls ([`ApiServerVerifier`], [`Expect`]), an
//! in-memory Azure that serves a fixture [`World`] and records every call ([`Cloud`]), and
//! builders for the objects. Test-only.
//!
//! NB: the expectations are one enum value per apiserver call rather than one per scenario:
//! the driver's scenarios share most of their calls (the read, the status write, events), and
//! composing them keeps each test's sequence where it is read, in the test.

use std::cell::Cell;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use http::{Request, Response, StatusCode};
use kube::Client;
use kube::api::{ObjectMeta, PartialObjectMetaExt};
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

use crate::azure::keys::{KeyInfo, KeyVersionInfo};
use crate::azure::models::authorization::{
    RoleAssignment, RoleAssignmentProperties, RoleDefinition,
};
use crate::azure::models::keyvault::{
    AccessPolicyEntry, AccessPolicyUpdateKind, DeletedVault, Vault,
};
use crate::azure::models::media::{MediaAccount, MediaAccountUpdate};
use crate::azure::models::msi::UserAssignedIdentity;
use crate::azure::models::storage::{NetworkRuleSet, StorageAccount};
use crate::azure::{
    AzureApi, AzureError, CredentialSource, PendingOperation, PollOutcome, ResourceId, Started,
};
use crate::crd::{FINALIZER, MediaServicesAccount};
use crate::reconcile::fake::FakeAzure;
use crate::reconcile::fixtures::World;
use crate::reconcile::observe::VaultLookup;

use super::account::Watched;
use super::context::{AzureProvider, Context};

/// Namespace of every fixture object.
pub const NS: &str = "media";
/// Name of every fixture object.
pub const NAME: &str = "contoso";
/// The object's path on the apiserver.
pub const PATH: &str =
    "/apis/ams-security.io/v1alpha1/namespaces/media/mediaservicesaccounts/contoso";
/// Where events are created.
pub const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/media/events";
/// How long a scenario may take before its missing calls fail the test.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A `MediaServicesAccount` as the apiserver stores it: generation 1, resourceVersion 100, the
/// spec's account from `crate::reconcile::fixtures::spec`, no finalizer, no status.
pub fn account(rest: Value) -> MediaServicesAccount {
    let mut a = MediaServicesAccount::new(NAME, crate::reconcile::fixtures::spec(rest));
    a.metadata.namespace = Some(NS.to_owned());
    a.metadata.uid = Some("6f1c1a2e-0000-4000-8000-000000000001".to_owned());
    a.metadata.generation = Some(1);
    a.metadata.resource_version = Some("100".to_owned());
    a
}

/// Builders on the fixture object.
pub trait AccountExt: Sized {
    /// With the operator's finalizer.
    #[must_use]
    fn finalized(self) -> Self;
    /// Deleted (`deletionTimestamp` set), with these finalizers.
    #[must_use]
    fn deleted_with(self, finalizers: &[&str]) -> Self;
    /// What the controller's cache hands the reconcile: the object's metadata.
    fn watched(&self) -> Arc<Watched>;
}

impl AccountExt for MediaServicesAccount {
    fn finalized(mut self) -> Self {
        self.metadata
            .finalizers
            .get_or_insert_default()
            .push(FINALIZER.to_owned());
        self
    }

    fn deleted_with(mut self, finalizers: &[&str]) -> Self {
        self.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).expect("valid"),
            ));
        self.metadata.finalizers = Some(finalizers.iter().map(|f| (*f).to_owned()).collect());
        self
    }

    fn watched(&self) -> Arc<Watched> {
        let meta: ObjectMeta = self.metadata.clone();
        Arc::new(meta.into_request_partial::<MediaServicesAccount>())
    }
}

/// One apiserver call the pass is expected to make next, and how the mock answers it.
pub enum Expect {
    /// `GET` of the object at the watched resourceVersion; answered with `account`.
    Get(MediaServicesAccount),
    /// `GET` of the object at `resource_version`; answered 404.
    GetGone {
        /// The watched resourceVersion the GET carries.
        resource_version: String,
    },
    /// `GET` of the Secret `name` in the namespace; answered 404.
    SecretGone(String),
    /// Merge patch of the finalizer list of `account` to exactly `finalizers`, with its
    /// resourceVersion as precondition; answered with the patched object.
    Finalizers {
        /// The object as read (path and precondition).
        account: MediaServicesAccount,
        /// The whole list the patch must set.
        finalizers: Vec<String>,
    },
    /// Merge patch of `/status` with the object's resourceVersion as precondition; answered
    /// with the patched object. The body is kept for the test ([`Seen::status_patches`]).
    Status(MediaServicesAccount),
    /// `POST` of a new events.k8s.io/v1 event of this type and reason about the object.
    Event(&'static str, &'static str),
    /// Merge patch continuing the series of an earlier event of this reason.
    EventRepeat(&'static str),
}

/// What the mock saw: the bodies the tests inspect further.
#[derive(Debug, Default)]
pub struct Seen {
    /// Bodies of the status merge patches, in order.
    pub status_patches: Vec<Value>,
    /// `(type, reason, note)` of the events created, in order.
    pub events: Vec<(String, String, String)>,
}

/// The mocked apiserver's side: answers and checks each call, in order.
pub struct ApiServerVerifier {
    handle: Handle<Request<Body>, Response<Body>>,
    /// Names of the events created so far, with their reasons (for series patches).
    event_names: Vec<(String, String)>,
}

fn answer(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(body).expect("json")))
        .expect("response")
}

fn not_found(what: &str) -> Response<Body> {
    answer(
        StatusCode::NOT_FOUND,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{what} not found"), "reason": "NotFound", "code": 404
        }),
    )
}

async fn body_json(request: Request<Body>) -> Value {
    let bytes = request
        .into_body()
        .collect_bytes()
        .await
        .expect("request body");
    serde_json::from_slice(&bytes).expect("request body is JSON")
}

/// Applies a JSON merge patch (RFC 7386) to `target`, as the apiserver does.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// `account` as the apiserver answers after `patch`: merged, at the next resourceVersion.
fn patched(account: &MediaServicesAccount, patch: &Value) -> MediaServicesAccount {
    let mut object = serde_json::to_value(account).expect("json");
    let mut patch = patch.clone();
    patch["metadata"]
        .as_object_mut()
        .map(|m| m.remove("resourceVersion"));
    merge(&mut object, &patch);
    let next = account
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    object["metadata"]["resourceVersion"] = json!(next.to_string());
    serde_json::from_value(object).expect("the patched object deserializes")
}

impl ApiServerVerifier {
    /// Answers the next call, which must be `expected`.
    async fn handle(&mut self, expected: Expect, seen: &mut Seen) {
        let (request, send) = self
            .handle
            .next_request()
            .await
            .expect("the client is gone");
        let method = request.method().clone();
        let uri = request.uri().to_string();
        let call = format!("{method} {uri}");
        match expected {
            Expect::Get(account) => {
                let rv = account
                    .metadata
                    .resource_version
                    .clone()
                    .unwrap_or_default();
                assert_eq!(call, format!("GET {PATH}?&resourceVersion={rv}"));
                send.send_response(answer(
                    StatusCode::OK,
                    &serde_json::to_value(&account).expect("json"),
                ));
            }
            Expect::GetGone { resource_version } => {
                assert_eq!(
                    call,
                    format!("GET {PATH}?&resourceVersion={resource_version}")
                );
                send.send_response(not_found(
                    "mediaservicesaccounts.ams-security.io \"contoso\"",
                ));
            }
            Expect::SecretGone(name) => {
                assert_eq!(call, format!("GET /api/v1/namespaces/{NS}/secrets/{name}"));
                send.send_response(not_found(&format!("secrets \"{name}\"")));
            }
            Expect::Finalizers {
                account,
                finalizers,
            } => {
                assert_eq!(call, format!("PATCH {PATH}?"));
                let body = body_json(request).await;
                assert_eq!(
                    body,
                    json!({ "metadata": {
                        "resourceVersion": account.metadata.resource_version,
                        "finalizers": finalizers,
                    }}),
                    "the finalizer patch sets the whole list, with the read's resourceVersion as precondition"
                );
                send.send_response(answer(
                    StatusCode::OK,
                    &serde_json::to_value(patched(&account, &body)).expect("json"),
                ));
            }
            Expect::Status(account) => {
                assert_eq!(call, format!("PATCH {PATH}/status?"));
                let body = body_json(request).await;
                assert_eq!(
                    body["metadata"],
                    json!({ "resourceVersion": account.metadata.resource_version }),
                    "the status patch carries the read's resourceVersion as precondition, and no other metadata: {body:#}"
                );
                send.send_response(answer(
                    StatusCode::OK,
                    &serde_json::to_value(patched(&account, &body)).expect("json"),
                ));
                seen.status_patches.push(body);
            }
            Expect::Event(type_, reason) => {
                assert_eq!(call, format!("POST {EVENTS}?"));
                let body = body_json(request).await;
                seen.events.push(self.created_event(&body, type_, reason));
                send.send_response(answer(StatusCode::CREATED, &body));
            }
            Expect::EventRepeat(reason) => {
                let name = self
                    .event_names
                    .iter()
                    .rev()
                    .find(|(_, r)| r == reason)
                    .map_or_else(
                        || panic!("no earlier {reason} event to continue"),
                        |(n, _)| n.clone(),
                    );
                assert_eq!(call, format!("PATCH {EVENTS}/{name}?"));
                let body = body_json(request).await;
                assert!(
                    body["series"]["count"].as_i64().is_some_and(|c| c >= 2),
                    "a repeat continues the series: {body:#}"
                );
                send.send_response(answer(
                    StatusCode::OK,
                    &json!({ "metadata": { "name": name } }),
                ));
            }
        }
    }

    /// Checks a created event against the expected type and reason; remembers its name for
    /// series patches; returns `(type, reason, note)`.
    fn created_event(
        &mut self,
        body: &Value,
        type_: &str,
        reason: &str,
    ) -> (String, String, String) {
        let field = |f: &str| body[f].as_str().unwrap_or_default().to_owned();
        let got = (field("type"), field("reason"), field("note"));
        assert_eq!(
            (got.0.as_str(), got.1.as_str()),
            (type_, reason),
            "event: {body:#}"
        );
        assert_eq!(
            (&body["regarding"]["kind"], &body["regarding"]["name"]),
            (&json!("MediaServicesAccount"), &json!(NAME)),
            "the event is about the object: {body:#}"
        );
        let name = body["metadata"]["name"].as_str().unwrap_or_default();
        self.event_names.push((name.to_owned(), reason.to_owned()));
        got
    }

    /// Runs `pass` while answering exactly `expected`, in order; fails on a missing call (the
    /// pass ended first, or hung past the timeout), an unexpected one, or a mismatch.
    /// One reconcile of `object` with `ctx`, expecting exactly these apiserver calls.
    pub async fn reconcile(
        &mut self,
        ctx: &Arc<super::Context>,
        object: &MediaServicesAccount,
        expected: Vec<Expect>,
    ) -> (Action, Seen) {
        let pass = super::account::reconcile(object.watched(), ctx.clone());
        self.run(expected, pass).await
    }

    /// Runs `pass`, answering and checking its apiserver calls against `expected`.
    pub async fn run(
        &mut self,
        expected: Vec<Expect>,
        pass: impl Future<Output = Result<Action, super::Error>>,
    ) -> (Action, Seen) {
        let total = expected.len();
        let answered = Cell::new(0usize);
        let mut seen = Seen::default();
        let outcome = {
            let seen = &mut seen;
            let answered = &answered;
            let verifier = async move {
                for e in expected {
                    self.handle(e, seen).await;
                    answered.set(answered.get() + 1);
                }
                // Nothing more is expected: any further call fails the test.
                let (request, _) = self
                    .handle
                    .next_request()
                    .await
                    .expect("the client is gone");
                let call = format!("{} {}", request.method(), request.uri());
                let body = request
                    .into_body()
                    .collect_bytes()
                    .await
                    .unwrap_or_default();
                panic!(
                    "unexpected apiserver call after the expected {total}: {call}\n{}",
                    String::from_utf8_lossy(&body)
                );
            };
            let mut verifier = pin!(verifier);
            let mut pass = pin!(pass);
            tokio::time::timeout(TIMEOUT, async {
                tokio::select! {
                    biased;
                    () = &mut verifier => unreachable!("the verifier only ends by panicking"),
                    out = &mut pass => out,
                }
            })
            .await
        };
        let n = answered.get();
        let result = outcome.unwrap_or_else(|_| {
            panic!("the pass did not finish in {TIMEOUT:?}; the mock answered {n} of {total} expected calls")
        });
        assert_eq!(
            n, total,
            "the pass ended after {n} of the {total} expected apiserver calls"
        );
        let action = result.unwrap_or_else(|e| panic!("the pass failed: {e}"));
        (action, seen)
    }
}

impl ApiServerVerifier {
    /// Runs `pass` as a setup step, not the property under test: answers the GET with
    /// `account`, applies status patches, accepts events; returns the object as the apiserver
    /// then holds it, and the pass's action.
    pub async fn settle(
        &mut self,
        account: &MediaServicesAccount,
        pass: impl Future<Output = Result<Action, super::Error>>,
    ) -> (MediaServicesAccount, Action) {
        let mut current = account.clone();
        let server = async {
            loop {
                let (request, send) = self
                    .handle
                    .next_request()
                    .await
                    .expect("the client is gone");
                let (method, path) = (request.method().clone(), request.uri().path().to_owned());
                if path == PATH && method == http::Method::GET {
                    send.send_response(answer(
                        StatusCode::OK,
                        &serde_json::to_value(&current).expect("json"),
                    ));
                } else if path == format!("{PATH}/status") {
                    let body = body_json(request).await;
                    current = patched(&current, &body);
                    send.send_response(answer(
                        StatusCode::OK,
                        &serde_json::to_value(&current).expect("json"),
                    ));
                } else if path.starts_with(EVENTS) {
                    let body = body_json(request).await;
                    if let Some(name) = body["metadata"]["name"].as_str() {
                        let reason = body["reason"].as_str().unwrap_or_default();
                        self.event_names.push((name.to_owned(), reason.to_owned()));
                    }
                    send.send_response(answer(StatusCode::OK, &body));
                } else {
                    panic!("a setup pass made an unexpected call: {method} {path}");
                }
            }
        };
        let action = {
            let mut server = pin!(server);
            let mut pass = pin!(pass);
            tokio::time::timeout(TIMEOUT, async {
                tokio::select! {
                    biased;
                    () = &mut server => unreachable!("the mock serves until the pass ends"),
                    out = &mut pass => out,
                }
            })
            .await
            .expect("the setup pass finished")
            .unwrap_or_else(|e| panic!("the setup pass failed: {e}"))
        };
        (current, action)
    }
}

/// What the fake Azure holds besides what [`FakeAzure`] itself answers (vaults and keys).
struct CloudState {
    account: Option<MediaAccount>,
    identities: Vec<UserAssignedIdentity>,
    storage: Vec<StorageAccount>,
    assignments: Vec<RoleAssignment>,
}

/// An in-memory Azure serving a fixture [`World`]: reads answer from it, writes change it
/// (a role assignment created is then listed, one deleted is gone), and every call goes to
/// the wrapped [`FakeAzure`]: writes in `calls` (with its scripted answers), reads in `reads`.
/// The fake's `fail_reads` fails every read, not only those of vaults and keys.
pub struct Cloud {
    /// The recording fake.
    pub fake: Arc<FakeAzure>,
    state: Mutex<CloudState>,
}

impl Cloud {
    /// The Azure that `world` observed: its account, identities, storage accounts and role
    /// assignments, and its vault and key.
    #[must_use]
    pub fn from_world(world: &World) -> Arc<Self> {
        let o = &world.0;
        let mut assignments: Vec<RoleAssignment> = o
            .storage
            .iter()
            .flat_map(|s| s.assignments.iter().cloned())
            .chain(o.grants.iter().flat_map(|g| g.assignments.iter().cloned()))
            .chain(o.account_assignments.iter().cloned())
            .collect();
        let fake = FakeAzure::default();
        if let Some(k) = &o.key {
            assignments.extend(k.assignments.iter().cloned());
            if let VaultLookup::Found(v) = &k.vault {
                fake.vaults.lock().expect("lock").push(v.clone());
            }
            if let Some(info) = &k.key {
                fake.keys
                    .lock()
                    .expect("lock")
                    .insert(info.name.to_ascii_lowercase(), info.clone());
            }
        }
        Arc::new(Self {
            fake: Arc::new(fake),
            state: Mutex::new(CloudState {
                account: Some(o.account.clone()),
                identities: o.identities.values().flatten().cloned().collect(),
                storage: o
                    .storage
                    .iter()
                    .filter_map(|s| s.resource.clone())
                    .collect(),
                assignments,
            }),
        })
    }

    /// Removes the role assignments on `scope`, as someone outside the operator would.
    pub fn revoke_outside(&self, scope: &str) {
        self.state
            .lock()
            .expect("lock")
            .assignments
            .retain(|a| !same(a.properties.scope.as_deref().unwrap_or_default(), scope));
    }

    /// Ids of the role assignments Azure holds now.
    #[must_use]
    pub fn assignment_ids(&self) -> Vec<String> {
        self.state
            .lock()
            .expect("lock")
            .assignments
            .iter()
            .filter_map(|a| a.id.clone())
            .collect()
    }

    /// The writes so far (`operation target`).
    #[must_use]
    pub fn writes(&self) -> Vec<String> {
        self.fake.calls()
    }

    /// The reads so far (`operation target`).
    #[must_use]
    pub fn reads(&self) -> Vec<String> {
        self.fake.reads.lock().expect("lock").clone()
    }

    fn read(&self, call: String) -> Result<(), AzureError> {
        self.fake.reads.lock().expect("lock").push(call);
        match *self.fake.fail_reads.lock().expect("lock") {
            Some((status, code)) => Err(crate::reconcile::fake::service_error(status, code)),
            None => Ok(()),
        }
    }
}

fn same(a: &str, b: &str) -> bool {
    crate::azure::resource_id::ids_equal(a, b)
}

#[async_trait]
impl AzureApi for Cloud {
    async fn get_media_account(&self, id: &ResourceId) -> Result<Option<MediaAccount>, AzureError> {
        self.read(format!("GET {id}"))?;
        let state = self.state.lock().expect("lock");
        Ok(state
            .account
            .clone()
            .filter(|a| a.id.as_deref().is_some_and(|i| same(i, &id.to_string()))))
    }
    async fn update_media_account(
        &self,
        id: &ResourceId,
        update: &MediaAccountUpdate,
    ) -> Result<Started<MediaAccount>, AzureError> {
        self.fake.update_media_account(id, update).await
    }
    async fn delete_media_account(&self, id: &ResourceId) -> Result<Started<bool>, AzureError> {
        self.fake.delete_media_account(id).await
    }
    async fn poll_operation(
        &self,
        operation: &PendingOperation,
    ) -> Result<PollOutcome<Value>, AzureError> {
        self.fake.poll_operation(operation).await
    }
    async fn get_storage_account(
        &self,
        id: &ResourceId,
    ) -> Result<Option<StorageAccount>, AzureError> {
        self.read(format!("GET {id}"))?;
        let state = self.state.lock().expect("lock");
        Ok(state
            .storage
            .iter()
            .find(|s| s.id.as_deref().is_some_and(|i| same(i, &id.to_string())))
            .cloned())
    }
    async fn update_storage_network_rules(
        &self,
        id: &ResourceId,
        rules: &NetworkRuleSet,
    ) -> Result<Started<StorageAccount>, AzureError> {
        self.fake
            .calls
            .lock()
            .expect("lock")
            .push(format!("PATCH {id}/networkAcls"));
        self.fake.update_storage_network_rules(id, rules).await
    }
    async fn get_vault(&self, id: &ResourceId) -> Result<Option<Vault>, AzureError> {
        self.fake.get_vault(id).await
    }
    async fn list_vaults(&self, subscription: &str) -> Result<Vec<Vault>, AzureError> {
        self.fake.list_vaults(subscription).await
    }
    async fn get_deleted_vault(
        &self,
        subscription: &str,
        location: &str,
        name: &str,
    ) -> Result<Option<DeletedVault>, AzureError> {
        self.fake
            .get_deleted_vault(subscription, location, name)
            .await
    }
    async fn update_vault_access_policy(
        &self,
        vault: &ResourceId,
        kind: AccessPolicyUpdateKind,
        entries: &[AccessPolicyEntry],
    ) -> Result<(), AzureError> {
        self.fake
            .update_vault_access_policy(vault, kind, entries)
            .await
    }
    async fn get_user_assigned_identity(
        &self,
        id: &ResourceId,
    ) -> Result<Option<UserAssignedIdentity>, AzureError> {
        self.read(format!("GET {id}"))?;
        let state = self.state.lock().expect("lock");
        Ok(state
            .identities
            .iter()
            .find(|i| i.id.as_deref().is_some_and(|x| same(x, &id.to_string())))
            .cloned())
    }
    async fn get_role_definition(
        &self,
        scope: &str,
        role_guid: &str,
    ) -> Result<Option<RoleDefinition>, AzureError> {
        self.fake.get_role_definition(scope, role_guid).await
    }
    async fn list_role_assignments(
        &self,
        scope: &str,
        principal_id: Option<&str>,
    ) -> Result<Vec<RoleAssignment>, AzureError> {
        self.read(format!("LIST roleAssignments {scope}"))?;
        let state = self.state.lock().expect("lock");
        let scope = scope.to_ascii_lowercase();
        Ok(state
            .assignments
            .iter()
            .filter(|a| {
                a.properties
                    .scope
                    .as_deref()
                    .is_some_and(|s| scope.starts_with(&s.to_ascii_lowercase()))
            })
            .filter(|a| {
                principal_id.is_none_or(|p| a.properties.principal_id.eq_ignore_ascii_case(p))
            })
            .cloned()
            .collect())
    }
    async fn create_role_assignment(
        &self,
        scope: &ResourceId,
        name: &str,
        role_guid: &str,
        principal_id: &str,
    ) -> Result<RoleAssignment, AzureError> {
        self.fake
            .create_role_assignment(scope, name, role_guid, principal_id)
            .await?;
        let made = RoleAssignment {
            id: Some(format!(
                "{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
            )),
            name: Some(name.to_owned()),
            properties: RoleAssignmentProperties {
                role_definition_id: format!(
                    "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}",
                    scope.subscription()
                ),
                principal_id: principal_id.to_owned(),
                principal_type: Some("ServicePrincipal".to_owned()),
                scope: Some(scope.to_string()),
                description: None,
            },
        };
        self.state
            .lock()
            .expect("lock")
            .assignments
            .push(made.clone());
        Ok(made)
    }
    async fn delete_role_assignment(&self, id: &str) -> Result<bool, AzureError> {
        self.fake.delete_role_assignment(id).await?;
        let mut state = self.state.lock().expect("lock");
        let before = state.assignments.len();
        state
            .assignments
            .retain(|a| !a.id.as_deref().is_some_and(|i| i.eq_ignore_ascii_case(id)));
        Ok(state.assignments.len() < before)
    }
    async fn get_key(
        &self,
        vault_url: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<KeyInfo>, AzureError> {
        self.fake.get_key(vault_url, name, version).await
    }
    async fn list_key_versions(
        &self,
        vault_url: &str,
        name: &str,
    ) -> Result<Vec<KeyVersionInfo>, AzureError> {
        self.fake.list_key_versions(vault_url, name).await
    }
}

/// The provider the context builds its Azure clients from: every identity gets the one fake.
pub struct FakeProvider(pub Arc<Cloud>);

impl AzureProvider for FakeProvider {
    fn api(
        &self,
        _key: &crate::azure::CredentialSourceKey,
        _source: &CredentialSource,
    ) -> Result<Arc<dyn AzureApi>, AzureError> {
        Ok(self.0.clone())
    }
}

/// A context over a mocked apiserver and `cloud`, with the verifier that answers for the
/// apiserver.
#[must_use]
pub fn context(cloud: &Arc<Cloud>) -> (Arc<Context>, ApiServerVerifier) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let ctx = Context::new(
        client,
        Arc::new(FakeProvider(cloud.clone())),
        CredentialSource::ManagedIdentity { client_id: None },
        "ams-security-operator",
    );
    (
        Arc::new(ctx),
        ApiServerVerifier {
            handle,
            event_names: Vec::new(),
        },
    )
}
