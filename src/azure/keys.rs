//! Key Vault keys (data plane, api-version 7.5) through `azure_security_keyvault_keys`: get a
//! key (latest or a version), list its versions, and the facts the operator checks (type,
//! RSA size from the modulus, enabled, not-before, expiry).
//!
//! The SDK's client does Key Vault's challenge authentication and checks that the vault host
//! belongs to the challenge's resource. Vault URLs outside the configured cloud are refused
//! before any token is requested. No key material beyond the public modulus is read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use azure_core::credentials::TokenCredential;
use azure_core::time::OffsetDateTime;
use azure_security_keyvault_keys::models::{Key, KeyProperties, KeyType};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use futures::TryStreamExt;
use url::Url;

use super::api_version::API_VERSION_KEY_VAULT_KEYS;
use super::arm::ClientSettings;
use super::call::Caller;
use super::cloud::AzureCloud;
use super::error::{AzureError, ErrorClass, from_sdk};
use super::operation::Operation;

/// Key types the operator distinguishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA, software-protected.
    Rsa,
    /// RSA in an HSM.
    RsaHsm,
    /// Elliptic curve, software-protected.
    Ec,
    /// Elliptic curve in an HSM.
    EcHsm,
    /// Symmetric or unknown.
    Other(String),
}

impl KeyKind {
    /// Whether Media Services can wrap its account key with it.
    #[must_use]
    pub fn is_rsa(&self) -> bool {
        matches!(self, Self::Rsa | Self::RsaHsm)
    }
}

impl From<&KeyType> for KeyKind {
    fn from(k: &KeyType) -> Self {
        match k {
            KeyType::Rsa => Self::Rsa,
            KeyType::RsaHsm => Self::RsaHsm,
            KeyType::Ec => Self::Ec,
            KeyType::EcHsm => Self::EcHsm,
            other => Self::Other(other.to_string()),
        }
    }
}

/// What the operator knows about one key version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Versioned key id, `https://{vault}/keys/{name}/{version}`.
    pub kid: String,
    /// Key name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Type.
    pub kind: KeyKind,
    /// RSA modulus size in bits.
    pub rsa_bits: Option<u32>,
    /// Enabled flag (Azure's default is enabled).
    pub enabled: bool,
    /// Not usable before.
    pub not_before: Option<OffsetDateTime>,
    /// Not usable after.
    pub expires: Option<OffsetDateTime>,
    /// Permitted operations, e.g. `wrapKey`.
    pub key_ops: Vec<String>,
}

impl KeyInfo {
    /// Whether the key is usable at `now`: enabled and within not-before/expiry.
    #[must_use]
    pub fn is_active_at(&self, now: OffsetDateTime) -> bool {
        self.enabled
            && self.not_before.is_none_or(|nbf| nbf <= now)
            && self.expires.is_none_or(|exp| now < exp)
    }
}

/// One version in a key's version list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyVersionInfo {
    /// Versioned key id.
    pub kid: String,
    /// Version.
    pub version: String,
    /// Enabled flag.
    pub enabled: bool,
    /// Created.
    pub created: Option<OffsetDateTime>,
    /// Not usable before.
    pub not_before: Option<OffsetDateTime>,
    /// Not usable after.
    pub expires: Option<OffsetDateTime>,
}

/// Size in bits of a big-endian unsigned modulus (leading zero bytes ignored).
#[must_use]
pub fn modulus_bits(n: &[u8]) -> Option<u32> {
    let start = n.iter().position(|b| *b != 0)?;
    let significant = u32::try_from(n.len() - start).ok()?;
    Some((significant - 1) * 8 + (8 - n[start].leading_zeros()))
}

/// Split `https://{vault}/keys/{name}/{version}` into `(name, version)`.
#[must_use]
pub fn split_kid(kid: &str) -> Option<(String, String)> {
    let url = Url::parse(kid).ok()?;
    let mut segs = url.path_segments()?.filter(|s| !s.is_empty());
    if segs.next()? != "keys" {
        return None;
    }
    let name = segs.next()?.to_owned();
    let version = segs.next().unwrap_or_default().to_owned();
    Some((name, version))
}

/// Convert the SDK's key bundle into [`KeyInfo`].
#[must_use]
pub fn key_info(key: &Key) -> Option<KeyInfo> {
    let jwk = key.key.as_ref()?;
    let kid = jwk.kid.clone()?;
    let (name, version) = split_kid(&kid)?;
    let key_kind = jwk
        .kty
        .as_ref()
        .map_or(KeyKind::Other(String::new()), KeyKind::from);
    let rsa_bits = if key_kind.is_rsa() {
        jwk.n.as_deref().and_then(modulus_bits)
    } else {
        None
    };
    let attrs = key.attributes.as_ref();
    Some(KeyInfo {
        kid,
        name,
        version,
        kind: key_kind,
        rsa_bits,
        enabled: attrs.and_then(|a| a.enabled).unwrap_or(true),
        not_before: (attrs.and_then(|a| a.not_before)),
        expires: (attrs.and_then(|a| a.expires)),
        key_ops: jwk.key_ops.clone().unwrap_or_default(),
    })
}

/// Convert one item of a version list.
#[must_use]
pub fn key_version_info(p: &KeyProperties) -> Option<KeyVersionInfo> {
    let kid = p.kid.clone()?;
    let (_, version) = split_kid(&kid)?;
    let attrs = p.attributes.as_ref();
    Some(KeyVersionInfo {
        kid,
        version,
        enabled: attrs.and_then(|a| a.enabled).unwrap_or(true),
        created: (attrs.and_then(|a| a.created)),
        not_before: (attrs.and_then(|a| a.not_before)),
        expires: (attrs.and_then(|a| a.expires)),
    })
}

/// The address of a shared credential identifies it: the credential cache hands out one `Arc`
/// per identity, and every SDK client built on it keeps it alive, so the address is not reused
/// while an entry refers to it.
fn credential_ptr(credential: &Arc<dyn TokenCredential>) -> usize {
    Arc::as_ptr(credential).cast::<()>() as usize
}

/// Key Vault keys client over many vaults, one SDK client per (vault, credential).
pub struct KeyVaultKeys {
    cloud: AzureCloud,
    settings: ClientSettings,
    clients: Mutex<HashMap<(String, usize), Arc<KeyClient>>>,
    caller: Caller,
}

impl std::fmt::Debug for KeyVaultKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVaultKeys")
            .field("cloud", &self.cloud.name())
            .finish_non_exhaustive()
    }
}

impl KeyVaultKeys {
    /// Clients for vaults of `cloud`.
    #[must_use]
    pub fn new(cloud: AzureCloud, settings: ClientSettings) -> Self {
        Self {
            cloud,
            caller: settings.caller(),
            settings,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(
        &self,
        operation: Operation,
        vault_url: &str,
        credential: &Arc<dyn TokenCredential>,
    ) -> Result<Arc<KeyClient>, AzureError> {
        let invalid = |reason: String| AzureError::InvalidInput {
            operation,
            resource: vault_url.to_owned(),
            reason,
        };
        let url = Url::parse(vault_url).map_err(|e| invalid(format!("not a URL ({e})")))?;
        if !self.cloud.is_vault_url(&url) {
            return Err(invalid(format!(
                "not a vault of {} (expected https://<name>.{}/)",
                self.cloud.name(),
                self.cloud.key_vault_dns_suffix()
            )));
        }
        let base = format!(
            "https://{}/",
            url.host_str().unwrap_or_default().to_ascii_lowercase()
        );
        let key = (base.clone(), credential_ptr(credential));
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let options = KeyClientOptions {
            api_version: API_VERSION_KEY_VAULT_KEYS.to_owned(),
            client_options: self.settings.client_options(),
            verify_challenge_resource: Some(true),
        };
        let client = Arc::new(
            KeyClient::new(&base, credential.clone(), Some(options))
                .map_err(|e| from_sdk(operation, vault_url, e))?,
        );
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Drop the clients built on `credential` (its identity's secret rotated).
    pub fn forget_credential(&self, credential: &Arc<dyn TokenCredential>) {
        let ptr = credential_ptr(credential);
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(_, p), _| *p != ptr);
    }

    /// Get a key (latest version when `version` is `None`); `None` when it does not exist.
    pub async fn get_key(
        &self,
        credential: &Arc<dyn TokenCredential>,
        vault_url: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<KeyInfo>, AzureError> {
        const OP: Operation = Operation::GetKey;
        let resource = format!(
            "{}/keys/{name}/{}",
            vault_url.trim_end_matches('/'),
            version.unwrap_or_default()
        );
        self.caller
            .call(OP, &resource, API_VERSION_KEY_VAULT_KEYS, async {
                let client = self.client(OP, vault_url, credential)?;
                let options = azure_security_keyvault_keys::models::KeyClientGetKeyOptions {
                    key_version: version.map(str::to_owned),
                    ..Default::default()
                };
                let key = match client.get_key(name, Some(options)).await {
                    Ok(r) => r.into_model().map_err(|e| from_sdk(OP, &resource, e))?,
                    Err(e) => {
                        let err = from_sdk(OP, &resource, e);
                        return if err.class() == ErrorClass::NotFound {
                            Ok(None)
                        } else {
                            Err(err)
                        };
                    }
                };
                key_info(&key).map(Some).ok_or_else(|| AzureError::Decode {
                    operation: OP,
                    resource: resource.clone(),
                    source: "key bundle without kid or key".into(),
                })
            })
            .await
    }

    /// All versions of a key, following `nextLink`.
    pub async fn list_key_versions(
        &self,
        credential: &Arc<dyn TokenCredential>,
        vault_url: &str,
        name: &str,
    ) -> Result<Vec<KeyVersionInfo>, AzureError> {
        const OP: Operation = Operation::GetKeyVersions;
        let resource = format!("{}/keys/{name}", vault_url.trim_end_matches('/'));
        self.caller
            .call(OP, &resource, API_VERSION_KEY_VAULT_KEYS, async {
                let client = self.client(OP, vault_url, credential)?;
                let pager = client
                    .list_key_properties_versions(name, None)
                    .map_err(|e| from_sdk(OP, &resource, e))?;
                let items: Vec<KeyProperties> = pager
                    .try_collect()
                    .await
                    .map_err(|e| from_sdk(OP, &resource, e))?;
                Ok(items.iter().filter_map(key_version_info).collect())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_size_ignores_leading_zero_bytes() {
        let mut n2048 = vec![0u8];
        n2048.push(0xc3);
        n2048.extend(std::iter::repeat_n(0xffu8, 255));
        assert_eq!(modulus_bits(&n2048), Some(2048));
        let mut n3072 = vec![0x80u8];
        n3072.extend(std::iter::repeat_n(1u8, 383));
        assert_eq!(modulus_bits(&n3072), Some(3072));
        assert_eq!(modulus_bits(&[0x01]), Some(1));
        assert_eq!(modulus_bits(&[0, 0]), None);
    }

    #[test]
    fn kid_splits_into_name_and_version() {
        assert_eq!(
            split_kid(
                "https://myvault.vault.azure.net/keys/CreateSoftKeyTest/78deebed173b48e48f55abf87ed4cf71"
            ),
            Some((
                "CreateSoftKeyTest".into(),
                "78deebed173b48e48f55abf87ed4cf71".into()
            ))
        );
        assert_eq!(
            split_kid("https://myvault.vault.azure.net/keys/k"),
            Some(("k".into(), String::new()))
        );
        assert_eq!(
            split_kid("https://myvault.vault.azure.net/secrets/k/v"),
            None
        );
    }

    #[test]
    fn activity_window_honours_enabled_nbf_and_exp() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time");
        let mut k = KeyInfo {
            kid: "k".into(),
            name: "n".into(),
            version: "v".into(),
            kind: KeyKind::Rsa,
            rsa_bits: Some(2048),
            enabled: true,
            not_before: None,
            expires: None,
            key_ops: vec![],
        };
        assert!(k.is_active_at(now));
        k.expires = Some(now);
        assert!(!k.is_active_at(now), "expiry is exclusive");
        k.expires = None;
        k.not_before = Some(now + azure_core::time::Duration::seconds(1));
        assert!(!k.is_active_at(now));
        k.not_before = None;
        k.enabled = false;
        assert!(!k.is_active_at(now));
    }
}

#[cfg(test)]
mod pipeline_tests {
    //! The keys client through the SDK's real pipeline (challenge authentication included),
    //! with a scripted transport in place of the network.

    use std::collections::VecDeque;

    use async_trait::async_trait;
    use azure_core::credentials::{AccessToken, TokenRequestOptions};
    use azure_core::http::headers::Headers;
    use azure_core::http::policies::{Policy, PolicyResult};
    use azure_core::http::{AsyncRawResponse, Context, Request, StatusCode, Transport};

    use super::*;

    #[derive(Debug, Default)]
    struct Scopes(Mutex<Vec<String>>);

    #[async_trait]
    impl TokenCredential for Scopes {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.0
                .lock()
                .expect("lock")
                .extend(scopes.iter().map(|s| (*s).to_owned()));
            Ok(AccessToken::new(
                "token",
                OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }

    type Scripted = (u16, Vec<(&'static str, &'static str)>, String);

    #[derive(Debug, Default)]
    struct Script {
        replies: Mutex<VecDeque<Scripted>>,
        urls: Mutex<Vec<(String, bool)>>,
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
            self.urls
                .lock()
                .expect("lock")
                .push((request.url().to_string(), auth));
            let (status, headers, body) = self
                .replies
                .lock()
                .expect("lock")
                .pop_front()
                .expect("scripted");
            let mut h = Headers::new();
            for (k, v) in headers {
                h.insert(k, v);
            }
            Ok(AsyncRawResponse::from_bytes(
                StatusCode::from(status),
                h,
                body.into_bytes(),
            ))
        }
    }

    const CHALLENGE: (&str, &str) = (
        "www-authenticate",
        r#"Bearer authorization="https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net""#,
    );

    fn spec_body(file: &str) -> String {
        let p = format!(
            "{}/../shared/azure-specs/specification/keyvault/data-plane/Microsoft.KeyVault/stable/7.5/examples/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")),
        )
        .expect("json");
        v["responses"]["200"]["body"].to_string()
    }

    fn keys(script: &Arc<Script>) -> KeyVaultKeys {
        let settings = ClientSettings {
            transport: Some(Transport::with_policy(script.clone())),
            ..ClientSettings::default()
        };
        KeyVaultKeys::new(AzureCloud::AzurePublic, settings)
    }

    /// Challenge, then the key at api-version 7.5 with its RSA size read from the modulus.
    #[tokio::test]
    async fn get_key_answers_the_challenge_and_uses_api_version_7_5() {
        let script = Arc::new(Script::default());
        script.replies.lock().expect("lock").extend([
            (401, vec![CHALLENGE], String::new()),
            (200, vec![], spec_body("GetKey-example.json")),
        ]);
        let credential = Arc::new(Scopes::default());
        let dyn_credential: Arc<dyn TokenCredential> = credential.clone();
        let key = keys(&script)
            .get_key(
                &dyn_credential,
                "https://myvault.vault.azure.net/",
                "CreateSoftKeyTest",
                Some("78deebed173b48e48f55abf87ed4cf71"),
            )
            .await
            .expect("ok")
            .expect("exists");
        assert_eq!(
            (key.kind.clone(), key.rsa_bits, key.enabled),
            (KeyKind::Rsa, Some(2048), true)
        );
        let urls = script.urls.lock().expect("lock").clone();
        assert_eq!(urls.len(), 2, "{urls:?}");
        assert!(urls.iter().all(|(u, _)| u.starts_with("https://myvault.vault.azure.net/keys/CreateSoftKeyTest/78deebed173b48e48f55abf87ed4cf71?api-version=7.5")), "{urls:?}");
        assert!(
            !urls[0].1 && urls[1].1,
            "token only after the challenge: {urls:?}"
        );
        assert_eq!(
            credential.0.lock().expect("lock").as_slice(),
            ["https://vault.azure.net/.default"]
        );
    }

    #[tokio::test]
    async fn missing_key_reads_as_none_and_forbidden_is_user_action() {
        let script = Arc::new(Script::default());
        script.replies.lock().expect("lock").extend([
            (401, vec![CHALLENGE], String::new()),
            (404, vec![], r#"{"error":{"code":"KeyNotFound","message":"A key with (name/id) k was not found in this key vault."}}"#.to_owned()),
            (403, vec![], r#"{"error":{"code":"Forbidden","message":"The user, group or application does not have keys get permission","innererror":{"code":"ForbiddenByPolicy"}}}"#.to_owned()),
        ]);
        let kv = keys(&script);
        let credential: Arc<dyn TokenCredential> = Arc::new(Scopes::default());
        assert_eq!(
            kv.get_key(&credential, "https://myvault.vault.azure.net", "k", None)
                .await
                .expect("ok"),
            None
        );
        let err = kv
            .get_key(&credential, "https://myvault.vault.azure.net", "k", None)
            .await
            .expect_err("forbidden");
        assert_eq!(err.code(), Some("ForbiddenByPolicy"));
        assert_eq!(err.class(), ErrorClass::UserActionRequired);
    }

    /// Versions are paged with `nextLink`.
    #[tokio::test]
    async fn list_key_versions_follows_next_link() {
        let script = Arc::new(Script::default());
        let first = spec_body("GetKeyVersions-example.json");
        script.replies.lock().expect("lock").extend([
            (401, vec![CHALLENGE], String::new()),
            (200, vec![], first),
            (200, vec![], r#"{"value":[{"kid":"https://myvault.vault.azure.net/keys/listkeyversionstest/v2","attributes":{"enabled":false,"created":1493937852}}]}"#.to_owned()),
        ]);
        let credential: Arc<dyn TokenCredential> = Arc::new(Scopes::default());
        let versions = keys(&script)
            .list_key_versions(
                &credential,
                "https://myvault.vault.azure.net/",
                "listkeyversionstest",
            )
            .await
            .expect("lists");
        let names: Vec<_> = versions
            .iter()
            .map(|v| (v.version.as_str(), v.enabled))
            .collect();
        assert_eq!(
            names,
            [("7c9dc6775d0e4177827c4f98f482fc12", true), ("v2", false)]
        );
        let urls = script.urls.lock().expect("lock").clone();
        assert!(
            urls[2].0.contains("api-version=7.5") && urls[2].0.contains("skiptoken"),
            "{urls:?}"
        );
    }

    /// A vault outside the cloud's Key Vault suffix is refused before any request or token.
    #[tokio::test]
    async fn vaults_outside_the_cloud_are_refused_unsent() {
        let script = Arc::new(Script::default());
        let credential = Arc::new(Scopes::default());
        let dyn_credential: Arc<dyn TokenCredential> = credential.clone();
        for url in [
            "https://attacker.example.com/",
            "http://myvault.vault.azure.net/",
            "https://127.0.0.1/",
        ] {
            let err = keys(&script)
                .get_key(&dyn_credential, url, "k", None)
                .await
                .expect_err("refused");
            assert!(
                matches!(err, AzureError::InvalidInput { .. }),
                "{url}: {err:?}"
            );
        }
        assert!(script.urls.lock().expect("lock").is_empty());
        assert!(credential.0.lock().expect("lock").is_empty());
    }
}
