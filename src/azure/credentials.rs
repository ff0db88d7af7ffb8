//! Entra ID credentials, chosen explicitly (there is no default chain): workload identity in a
//! cluster, a client secret from the Kubernetes Secret a resource names in
//! `credentialsSecretRef` (same namespace only), or managed identity.
//!
//! Credentials are built with `azure_identity` and cached per source
//! ([`CredentialSourceKey`]): the operator's own identity, or one Secret with one content. Two
//! namespaces never share a credential, even for the same client id. Reading the Secret from
//! the API server is the reconciler's job; this module takes the Secret's data already
//! fetched. Tokens and secrets are never logged: the secret is held in
//! `azure_core::credentials::Secret`, whose `Debug` redacts it, and a source's fingerprint is a
//! per-process keyed hash, never the secret.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use super::cloud::AzureCloud;
use super::error::AzureError;

/// Key in the credentials Secret: the Entra tenant id.
pub const SECRET_KEY_TENANT_ID: &str = "tenantId";
/// Key in the credentials Secret: the application (client) id.
pub const SECRET_KEY_CLIENT_ID: &str = "clientId";
/// Key in the credentials Secret: the client secret.
pub const SECRET_KEY_CLIENT_SECRET: &str = "clientSecret";

/// Environment variable of workload identity: client id (set by the AKS webhook).
pub const ENV_CLIENT_ID: &str = "AZURE_CLIENT_ID";
/// Environment variable of workload identity: tenant id.
pub const ENV_TENANT_ID: &str = "AZURE_TENANT_ID";
/// Environment variable of workload identity: projected service-account token file.
pub const ENV_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";

/// Which identity the operator authenticates as.
#[derive(Clone, Debug)]
pub enum CredentialSource {
    /// Entra Workload ID: a federated service-account token exchanged for an Entra token.
    WorkloadIdentity {
        /// Tenant id.
        tenant_id: String,
        /// Client id of the federated application or user-assigned identity.
        client_id: String,
        /// Path of the projected token file.
        token_file: PathBuf,
    },
    /// A service principal's client secret, from a namespaced Kubernetes Secret.
    ClientSecret {
        /// Tenant id.
        tenant_id: String,
        /// Client id.
        client_id: String,
        /// The secret (redacted in `Debug`).
        secret: Secret,
    },
    /// The managed identity of the node or App Service host (system-assigned when no client id).
    ManagedIdentity {
        /// Client id of a user-assigned identity.
        client_id: Option<String>,
    },
}

/// The operator's own identity, chosen by configuration (flag or environment), used for
/// resources without a `credentialsSecretRef`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorCredential {
    /// Entra Workload ID from `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`
    /// (the default in a cluster).
    WorkloadIdentity,
    /// Managed identity (system-assigned, or the user-assigned one with this client id).
    ManagedIdentity {
        /// Client id of a user-assigned identity.
        client_id: Option<String>,
    },
}

impl std::str::FromStr for OperatorCredential {
    type Err = String;

    /// `workload-identity`, `managed-identity` or `managed-identity:<client-id>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None if s.eq_ignore_ascii_case("workload-identity") => Ok(Self::WorkloadIdentity),
            None if s.eq_ignore_ascii_case("managed-identity") => {
                Ok(Self::ManagedIdentity { client_id: None })
            }
            Some((kind, id)) if kind.eq_ignore_ascii_case("managed-identity") && !id.is_empty() => {
                Ok(Self::ManagedIdentity {
                    client_id: Some(id.to_owned()),
                })
            }
            _ => Err(format!(
                "failed to parse azure credential {s:?}: expected workload-identity, managed-identity or managed-identity:<client-id>"
            )),
        }
    }
}

impl OperatorCredential {
    /// The credential source, reading workload-identity variables through `lookup`.
    pub fn source(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<CredentialSource, CredentialConfigError> {
        match self {
            Self::WorkloadIdentity => CredentialSource::workload_identity_from_env(lookup),
            Self::ManagedIdentity { client_id } => Ok(CredentialSource::ManagedIdentity {
                client_id: client_id.clone(),
            }),
        }
    }
}

/// Why a credential could not be selected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialConfigError {
    /// A workload-identity variable is missing.
    #[error("failed to configure workload identity: environment variable {0} is not set")]
    MissingEnv(&'static str),
    /// The Secret lacks a key.
    #[error("failed to read credentials secret {secret}: key {key} is missing or empty")]
    MissingKey {
        /// `namespace/name` of the Secret.
        secret: String,
        /// Missing key.
        key: &'static str,
    },
    /// A value is not UTF-8.
    #[error("failed to read credentials secret {secret}: key {key} is not UTF-8")]
    NotUtf8 {
        /// `namespace/name` of the Secret.
        secret: String,
        /// Offending key.
        key: &'static str,
    },
    /// The reference points into another namespace.
    #[error(
        "failed to use credentials secret {secret_namespace}/{secret_name}: it must be in the resource's namespace {resource_namespace}"
    )]
    OtherNamespace {
        /// Namespace of the referencing resource.
        resource_namespace: String,
        /// Namespace named in the reference.
        secret_namespace: String,
        /// Secret name.
        secret_name: String,
    },
}

impl CredentialSource {
    /// Workload identity from the pod's environment (as the AKS webhook injects it), read
    /// through `lookup` so it can be tested without touching the process environment.
    pub fn workload_identity_from_env(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, CredentialConfigError> {
        let get = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .ok_or(CredentialConfigError::MissingEnv(name))
        };
        Ok(Self::WorkloadIdentity {
            tenant_id: get(ENV_TENANT_ID)?,
            client_id: get(ENV_CLIENT_ID)?,
            token_file: PathBuf::from(get(ENV_FEDERATED_TOKEN_FILE)?),
        })
    }

    /// A client secret from the data of the Secret named by `credentialsSecretRef`
    /// (keys [`SECRET_KEY_TENANT_ID`], [`SECRET_KEY_CLIENT_ID`], [`SECRET_KEY_CLIENT_SECRET`]).
    ///
    /// `secret_namespace` is the namespace written in the reference, if any; it must equal the
    /// resource's namespace, because the operator never reads Secrets elsewhere.
    pub fn client_secret_from_secret_data(
        resource_namespace: &str,
        secret_namespace: Option<&str>,
        secret_name: &str,
        data: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Self, CredentialConfigError> {
        if let Some(ns) = secret_namespace
            && ns != resource_namespace
        {
            return Err(CredentialConfigError::OtherNamespace {
                resource_namespace: resource_namespace.to_owned(),
                secret_namespace: ns.to_owned(),
                secret_name: secret_name.to_owned(),
            });
        }
        let secret = format!("{resource_namespace}/{secret_name}");
        let get = |key: &'static str| -> Result<String, CredentialConfigError> {
            let bytes = data
                .get(key)
                .ok_or_else(|| CredentialConfigError::MissingKey {
                    secret: secret.clone(),
                    key,
                })?;
            let text = std::str::from_utf8(bytes).map_err(|_| CredentialConfigError::NotUtf8 {
                secret: secret.clone(),
                key,
            })?;
            let text = text.trim();
            if text.is_empty() {
                return Err(CredentialConfigError::MissingKey {
                    secret: secret.clone(),
                    key,
                });
            }
            Ok(text.to_owned())
        };
        Ok(Self::ClientSecret {
            tenant_id: get(SECRET_KEY_TENANT_ID)?,
            client_id: get(SECRET_KEY_CLIENT_ID)?,
            secret: Secret::new(get(SECRET_KEY_CLIENT_SECRET)?),
        })
    }

    /// [`Self::client_secret_from_secret_data`] for a Secret object as the API server returned
    /// it; the Secret must sit in `resource_namespace`.
    pub fn client_secret_from_k8s_secret(
        resource_namespace: &str,
        secret: &k8s_openapi::api::core::v1::Secret,
    ) -> Result<Self, CredentialConfigError> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let data: BTreeMap<String, Vec<u8>> = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        Self::client_secret_from_secret_data(
            resource_namespace,
            secret.metadata.namespace.as_deref(),
            &name,
            &data,
        )
    }

    /// Short kind name for logs and metrics.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::WorkloadIdentity { .. } => "WorkloadIdentity",
            Self::ClientSecret { .. } => "ClientSecret",
            Self::ManagedIdentity { .. } => "ManagedIdentity",
        }
    }

    /// Fingerprint of what the credential is built from (tenant, client id and the secret or
    /// token file): a changed Secret is another source, with its own credential and token cache.
    /// A hash keyed per process, so it says nothing about the secret outside this process.
    #[must_use]
    pub fn fingerprint(&self) -> u64 {
        static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
        let keys = KEYS.get_or_init(std::collections::hash_map::RandomState::new);
        match self {
            Self::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => keys.hash_one((
                0_u8,
                tenant_id.to_ascii_lowercase(),
                client_id.to_ascii_lowercase(),
                token_file,
            )),
            Self::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => keys.hash_one((
                1_u8,
                tenant_id.to_ascii_lowercase(),
                client_id.to_ascii_lowercase(),
                secret.secret(),
            )),
            Self::ManagedIdentity { client_id } => {
                keys.hash_one((2_u8, client_id.as_deref().map(str::to_ascii_lowercase)))
            }
        }
    }
}

/// Whose credential an Azure call uses: the key of the credential cache, the Azure client
/// cache and the key probers. Never a client id alone: two namespaces whose Secrets hold the
/// same application's (different) secrets are two sources, and one's revoked secret never
/// touches the other's calls.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CredentialSourceKey {
    /// The operator's own identity, for resources without `credentialsSecretRef`.
    Operator,
    /// The Secret a resource names in `credentialsSecretRef`, with what it held when read.
    Secret {
        /// Namespace of the Secret (the resource's own).
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// [`CredentialSource::fingerprint`] of its content: a changed Secret is a new key.
        fingerprint: u64,
    },
}

impl CredentialSourceKey {
    /// The key of the credential read from Secret `namespace/name`.
    #[must_use]
    pub fn secret(namespace: &str, name: &str, source: &CredentialSource) -> Self {
        Self::Secret {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            fingerprint: source.fingerprint(),
        }
    }

    /// Who this is, as condition messages name it.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Operator => "the operator's own identity".to_owned(),
            Self::Secret {
                namespace, name, ..
            } => format!("Secret {namespace}/{name}"),
        }
    }

    /// Whether both keys are the same Secret (whatever its content).
    fn same_secret(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Self::Secret {
                    namespace: a,
                    name: b,
                    ..
                },
                Self::Secret {
                    namespace: c,
                    name: d,
                    ..
                },
            ) => a == c && b == d,
            _ => false,
        }
    }
}

impl std::fmt::Display for CredentialSourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Operator => f.write_str("operator"),
            Self::Secret {
                namespace,
                name,
                fingerprint,
            } => write!(f, "secret/{namespace}/{name}/{fingerprint:016x}"),
        }
    }
}

/// How long a source's cached credential and client outlive their last use. Every resource
/// asks for its source on each pass, at least once per resync (ten minutes by default), so a
/// source still in use is never evicted; one no resource names any more goes within this.
pub const IDLE_EVICTION: Duration = Duration::from_secs(3600);

/// One cached value per credential source, bounded: a Secret keeps one entry (its newest
/// content replaces the older content's entry), an entry built from other material than asked
/// for is rebuilt, and entries unused for longer than the idle bound go at the next insertion.
/// So it holds at most one entry per source used within the bound. Time is passed in, so
/// eviction is tested without waiting.
#[derive(Debug)]
pub(crate) struct SourceCache<T> {
    entries: HashMap<CredentialSourceKey, (u64, T, Instant)>,
    idle: Duration,
}

impl<T: Clone> SourceCache<T> {
    /// An empty cache evicting entries idle for longer than `idle`.
    pub(crate) fn new(idle: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            idle,
        }
    }

    /// The entry of `key` built from material with `fingerprint`, marked used at `now`.
    pub(crate) fn get(
        &mut self,
        key: &CredentialSourceKey,
        fingerprint: u64,
        now: Instant,
    ) -> Option<T> {
        let (known, value, used) = self.entries.get_mut(key)?;
        if *known != fingerprint {
            return None;
        }
        *used = now;
        Some(value.clone())
    }

    /// Stores `value` for `key`; returns what it evicts: the entry it replaces, the entries of
    /// the same Secret's earlier content, and entries idle for longer than the bound.
    pub(crate) fn insert(
        &mut self,
        key: CredentialSourceKey,
        fingerprint: u64,
        value: T,
        now: Instant,
    ) -> Vec<T> {
        let idle = self.idle;
        let stale: Vec<CredentialSourceKey> = self
            .entries
            .iter()
            .filter(|(k, (_, _, used))| {
                **k == key || k.same_secret(&key) || now.saturating_duration_since(*used) > idle
            })
            .map(|(k, _)| k.clone())
            .collect();
        let evicted = stale
            .iter()
            .filter_map(|k| self.entries.remove(k))
            .map(|(_, v, _)| v)
            .collect();
        self.entries.insert(key, (fingerprint, value, now));
        evicted
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A credential that says whose it is when Entra ID refuses it: the refusal then reaches the
/// resource as [`AzureError::CredentialsRejected`], naming the Secret (or the operator's own
/// identity) and Entra's error code, from whichever call asked for the token.
#[derive(Debug)]
struct Named {
    inner: Arc<dyn TokenCredential>,
    who: String,
}

#[async_trait::async_trait]
impl TokenCredential for Named {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.inner
            .get_token(scopes, options)
            .await
            .map_err(|e| super::error::name_rejection(&self.who, e))
    }
}

/// Builds credentials once per source and shares them (and their token caches).
pub struct CredentialCache {
    cloud: AzureCloud,
    transport: Option<Transport>,
    cache: Mutex<SourceCache<Arc<dyn TokenCredential>>>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("cloud", &self.cloud.name())
            .finish_non_exhaustive()
    }
}

impl CredentialCache {
    /// A cache whose credentials talk to `cloud`'s authority host over `transport`
    /// (`None`: `azure_core`'s default transport).
    #[must_use]
    pub fn new(cloud: AzureCloud, transport: Option<Transport>) -> Self {
        Self {
            cloud,
            transport,
            cache: Mutex::new(SourceCache::new(IDLE_EVICTION)),
        }
    }

    fn client_options(&self) -> ClientOptions {
        ClientOptions {
            transport: self.transport.clone(),
            cloud: Some(self.cloud.sdk_configuration()),
            // Token requests get one quick retry at most; the calling operation has a budget.
            retry: RetryOptions::exponential(azure_core::http::ExponentialRetryOptions {
                initial_delay: azure_core::time::Duration::milliseconds(200),
                max_retries: 1,
                max_total_elapsed: azure_core::time::Duration::seconds(5),
                max_delay: azure_core::time::Duration::seconds(1),
            }),
            ..ClientOptions::default()
        }
    }

    /// Number of distinct credentials built so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether no credential was built yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shared credential of source `key`, built from `source` on first use (and again when
    /// `source` holds other material than the cached one was built from).
    pub fn get(
        &self,
        key: &CredentialSourceKey,
        source: &CredentialSource,
    ) -> Result<Arc<dyn TokenCredential>, AzureError> {
        let fingerprint = source.fingerprint();
        let now = Instant::now();
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = cache.get(key, fingerprint, now) {
            return Ok(c);
        }
        let credential: Arc<dyn TokenCredential> = Arc::new(Named {
            inner: self.build(source)?,
            who: key.describe(),
        });
        cache.insert(key.clone(), fingerprint, credential.clone(), now);
        Ok(credential)
    }

    fn build(&self, source: &CredentialSource) -> Result<Arc<dyn TokenCredential>, AzureError> {
        let fail = |e: azure_core::Error| AzureError::Credential {
            operation: super::operation::Operation::BuildCredential,
            resource: source.kind().to_owned(),
            source: Box::new(e),
        };
        Ok(match source {
            CredentialSource::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => {
                let options = WorkloadIdentityCredentialOptions {
                    credential_options: ClientAssertionCredentialOptions {
                        client_options: self.client_options(),
                    },
                    client_id: Some(client_id.clone()),
                    tenant_id: Some(tenant_id.clone()),
                    token_file_path: Some(token_file.clone()),
                };
                WorkloadIdentityCredential::new(Some(options)).map_err(fail)?
            }
            CredentialSource::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => {
                let options = ClientSecretCredentialOptions {
                    client_options: self.client_options(),
                };
                ClientSecretCredential::new(
                    tenant_id,
                    client_id.clone(),
                    secret.clone(),
                    Some(options),
                )
                .map_err(fail)?
            }
            CredentialSource::ManagedIdentity { client_id } => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    client_options: self.client_options(),
                };
                ManagedIdentityCredential::new(Some(options)).map_err(fail)?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn workload_identity_reads_the_three_webhook_variables() {
        let env = |k: &str| match k {
            ENV_TENANT_ID => Some("72f988bf-86f1-41af-91ab-2d7cd011db47".to_owned()),
            ENV_CLIENT_ID => Some("11111111-1111-1111-1111-111111111111".to_owned()),
            ENV_FEDERATED_TOKEN_FILE => {
                Some("/var/run/secrets/azure/tokens/azure-identity-token".to_owned())
            }
            _ => None,
        };
        let src = CredentialSource::workload_identity_from_env(env).expect("complete");
        assert!(
            matches!(&src, CredentialSource::WorkloadIdentity { token_file, .. } if token_file.ends_with("azure-identity-token"))
        );
        let missing = CredentialSource::workload_identity_from_env(|k| {
            (k != ENV_FEDERATED_TOKEN_FILE).then(|| "x".to_owned())
        });
        assert_eq!(
            missing.err(),
            Some(CredentialConfigError::MissingEnv(ENV_FEDERATED_TOKEN_FILE))
        );
    }

    #[test]
    fn client_secret_is_read_from_secret_data_and_redacted_in_debug() {
        let d = data(&[
            ("tenantId", "t"),
            ("clientId", "c"),
            ("clientSecret", "s3cr3t-value\n"),
        ]);
        let src =
            CredentialSource::client_secret_from_secret_data("media", None, "azure-creds", &d)
                .expect("complete");
        let debug = format!("{src:?}");
        assert!(
            !debug.contains("s3cr3t-value"),
            "secret leaked into Debug: {debug}"
        );
        match src {
            CredentialSource::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => {
                assert_eq!(
                    (tenant_id.as_str(), client_id.as_str(), secret.secret()),
                    ("t", "c", "s3cr3t-value")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn client_secret_errors_name_the_secret_and_key_but_not_the_value() {
        let d = data(&[("tenantId", "t"), ("clientId", " ")]);
        let err =
            CredentialSource::client_secret_from_secret_data("media", None, "azure-creds", &d)
                .expect_err("incomplete");
        assert_eq!(
            err,
            CredentialConfigError::MissingKey {
                secret: "media/azure-creds".into(),
                key: "clientId"
            }
        );
        let mut bad = data(&[("tenantId", "t"), ("clientId", "c")]);
        bad.insert("clientSecret".into(), vec![0xff, 0xfe]);
        assert!(matches!(
            CredentialSource::client_secret_from_secret_data("media", None, "azure-creds", &bad),
            Err(CredentialConfigError::NotUtf8 {
                key: "clientSecret",
                ..
            })
        ));
    }

    #[test]
    fn client_secret_reads_a_kubernetes_secret_object() {
        use k8s_openapi::ByteString;
        let mut secret = k8s_openapi::api::core::v1::Secret::default();
        secret.metadata.name = Some("azure-creds".into());
        secret.metadata.namespace = Some("media".into());
        secret.data = Some(
            [("tenantId", "t"), ("clientId", "c"), ("clientSecret", "s")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        );
        let src =
            CredentialSource::client_secret_from_k8s_secret("media", &secret).expect("complete");
        assert_eq!(src.kind(), "ClientSecret");
        let err = CredentialSource::client_secret_from_k8s_secret("other", &secret)
            .expect_err("namespace");
        assert!(
            matches!(err, CredentialConfigError::OtherNamespace { .. }),
            "{err:?}"
        );
        secret.data = None;
        let err =
            CredentialSource::client_secret_from_k8s_secret("media", &secret).expect_err("empty");
        assert_eq!(
            err,
            CredentialConfigError::MissingKey {
                secret: "media/azure-creds".into(),
                key: "tenantId"
            }
        );
    }

    #[test]
    fn secrets_in_other_namespaces_are_refused() {
        let d = data(&[("tenantId", "t"), ("clientId", "c"), ("clientSecret", "s")]);
        let err = CredentialSource::client_secret_from_secret_data(
            "media",
            Some("kube-system"),
            "azure-creds",
            &d,
        )
        .expect_err("refused");
        assert!(
            err.to_string()
                .starts_with("failed to use credentials secret kube-system/azure-creds"),
            "{err}"
        );
        assert!(
            CredentialSource::client_secret_from_secret_data(
                "media",
                Some("media"),
                "azure-creds",
                &d
            )
            .is_ok()
        );
    }

    #[test]
    fn operator_credential_is_chosen_explicitly() {
        assert_eq!(
            "workload-identity".parse(),
            Ok(OperatorCredential::WorkloadIdentity)
        );
        assert_eq!(
            "managed-identity".parse(),
            Ok(OperatorCredential::ManagedIdentity { client_id: None })
        );
        assert_eq!(
            "managed-identity:abc".parse(),
            Ok(OperatorCredential::ManagedIdentity {
                client_id: Some("abc".into())
            })
        );
        assert!("default".parse::<OperatorCredential>().is_err());
        let src = OperatorCredential::ManagedIdentity { client_id: None }
            .source(|_| None)
            .expect("no env needed");
        assert_eq!(src.kind(), "ManagedIdentity");
        assert!(
            OperatorCredential::WorkloadIdentity
                .source(|_| None)
                .is_err(),
            "workload identity needs its variables"
        );
    }

    fn client_secret(tenant: &str, app: &str, secret: &'static str) -> CredentialSource {
        CredentialSource::ClientSecret {
            tenant_id: tenant.into(),
            client_id: app.into(),
            secret: Secret::new(secret),
        }
    }

    /// The key of a Secret's credential names the Secret and its content, never the secret:
    /// the same application's two secrets in two namespaces are two keys, and so is a Secret
    /// whose content changed.
    #[test]
    fn source_keys_name_the_secret_and_its_content_but_never_the_secret() {
        let one = client_secret("tenant", "app", "secret-one");
        let key = CredentialSourceKey::secret("team-a", "azure-creds", &one);
        assert_eq!(key.describe(), "Secret team-a/azure-creds");
        assert_eq!(
            CredentialSourceKey::Operator.describe(),
            "the operator's own identity"
        );
        for shown in [key.to_string(), format!("{key:?}")] {
            assert!(!shown.contains("secret-one"), "secret leaked: {shown}");
        }
        assert_eq!(
            key,
            CredentialSourceKey::secret(
                "team-a",
                "azure-creds",
                &client_secret("TENANT", "APP", "secret-one")
            ),
            "tenant and client id compare without case"
        );
        let other_namespace = CredentialSourceKey::secret("team-b", "azure-creds", &one);
        let other_secret = CredentialSourceKey::secret(
            "team-a",
            "azure-creds",
            &client_secret("tenant", "app", "secret-two"),
        );
        assert_ne!(key, other_namespace);
        assert_ne!(key, other_secret);
        assert!(key.same_secret(&other_secret) && !key.same_secret(&other_namespace));
        assert!(!CredentialSourceKey::Operator.same_secret(&CredentialSourceKey::Operator));
    }

    /// One credential per source: a source shares its token cache; the same application's
    /// secret in another namespace gets its own credential; a Secret's new content replaces
    /// the credential of its old content.
    #[test]
    fn cache_keeps_one_credential_per_source() {
        let cache = CredentialCache::new(AzureCloud::AzurePublic, None);
        let one = client_secret("tenant", "app", "one");
        let a = CredentialSourceKey::secret("team-a", "creds", &one);
        let c1 = cache.get(&a, &one).expect("builds");
        let c2 = cache.get(&a, &one).expect("builds");
        assert!(Arc::ptr_eq(&c1, &c2), "same source must share a credential");
        let b = CredentialSourceKey::secret("team-b", "creds", &one);
        let other = cache.get(&b, &one).expect("builds");
        assert!(
            !Arc::ptr_eq(&c1, &other),
            "another namespace's Secret gets its own credential"
        );
        let two = client_secret("tenant", "app", "two");
        let rotated = cache
            .get(&CredentialSourceKey::secret("team-a", "creds", &two), &two)
            .expect("builds");
        assert!(!Arc::ptr_eq(&c1, &rotated));
        assert_eq!(
            cache.len(),
            2,
            "the new content replaced the old one's credential"
        );
    }

    /// The caches stay bounded: an entry unused for longer than the idle bound goes at the next
    /// insertion, a Secret keeps one entry, and material other than the cached entry's is not
    /// served from it.
    #[test]
    fn source_cache_evicts_idle_sources_and_old_secret_content() {
        let idle = Duration::from_secs(60);
        let mut cache: SourceCache<&str> = SourceCache::new(idle);
        let t0 = Instant::now();
        let secret = |ns: &str, fp: u64| CredentialSourceKey::Secret {
            namespace: ns.into(),
            name: "creds".into(),
            fingerprint: fp,
        };
        assert!(
            cache
                .insert(CredentialSourceKey::Operator, 7, "operator", t0)
                .is_empty()
        );
        assert!(cache.insert(secret("a", 1), 1, "a1", t0).is_empty());
        assert!(cache.insert(secret("b", 1), 1, "b1", t0).is_empty());
        // Used later: the operator's entry stays fresh; other material is not served.
        assert_eq!(
            cache.get(&CredentialSourceKey::Operator, 7, t0 + idle),
            Some("operator")
        );
        assert_eq!(
            cache.get(&CredentialSourceKey::Operator, 8, t0 + idle),
            None
        );
        assert_eq!(cache.get(&secret("a", 1), 1, t0 + idle), Some("a1"));
        // Secret a changes: its old content goes; b, unused past the bound, goes too.
        let mut evicted = cache.insert(secret("a", 2), 2, "a2", t0 + idle + Duration::from_secs(1));
        evicted.sort_unstable();
        assert_eq!(evicted, vec!["a1", "b1"]);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&secret("a", 2), 2, t0 + idle), Some("a2"));
        assert_eq!(cache.get(&secret("b", 1), 1, t0 + idle), None);
    }
}
