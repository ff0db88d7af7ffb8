//! The HTTP transport under every Azure client: reqwest with rustls, as `azure_core` uses by
//! default, plus two explicit, off-by-default settings used to reach the emulator:
//! an extra trusted CA (added to the system roots, never replacing them) and a resolver that
//! maps Azure host names (exact or `*.suffix`) to a socket address.
//!
//! URLs stay the real `https://` Azure ones and TLS is verified as usual, so nothing here
//! weakens TLS against real Azure. This module does not authenticate or retry.
//!
//! NB: the two emulator settings exist only with the `test-endpoints` feature (which `emulator`
//! brings). Without it, as the image is built, the fields, the resolver and the code that reads
//! them are not compiled at all: the shipped binary cannot be configured to send Azure traffic,
//! tokens included, anywhere but Azure.

#[cfg(feature = "test-endpoints")]
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use azure_core::http::Transport;

/// Map one host name, or every host under a suffix (`*.vault.azure.net`), to an address.
#[cfg(feature = "test-endpoints")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostOverride {
    /// `management.azure.com` or `*.vault.azure.net`.
    pub pattern: String,
    /// Where to connect instead.
    pub addr: SocketAddr,
}

#[cfg(feature = "test-endpoints")]
impl std::str::FromStr for HostOverride {
    type Err = String;

    /// `host=ip:port` or `*.suffix=ip:port`, as given on the command line.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (pattern, addr) = s
            .split_once('=')
            .ok_or_else(|| format!("failed to parse host override {s:?}: expected HOST=IP:PORT"))?;
        let pattern = pattern.trim();
        let valid = !pattern.is_empty()
            && pattern
                .strip_prefix("*.")
                .unwrap_or(pattern)
                .split('.')
                .all(|label| {
                    !label.is_empty()
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
        if !valid {
            return Err(format!(
                "failed to parse host override {s:?}: {pattern:?} is not a host name or *.suffix"
            ));
        }
        let addr = addr
            .trim()
            .parse()
            .map_err(|e| format!("failed to parse host override {s:?}: {e}"))?;
        Ok(Self {
            pattern: pattern.to_ascii_lowercase(),
            addr,
        })
    }
}

#[cfg(feature = "test-endpoints")]
impl HostOverride {
    fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        match self.pattern.strip_prefix("*.") {
            Some(suffix) => host.len().checked_sub(suffix.len() + 1).is_some_and(|cut| {
                host.is_char_boundary(cut)
                    && host[cut..].eq_ignore_ascii_case(&format!(".{suffix}"))
                    && cut > 0
            }),
            None => host.eq_ignore_ascii_case(&self.pattern),
        }
    }
}

/// Transport settings. The default talks to real Azure with the system's trust store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// PEM of one more CA to trust, in addition to the system roots.
    #[cfg(feature = "test-endpoints")]
    pub extra_root_ca_pem: Option<String>,
    /// Host name overrides (DNS), tried in order.
    #[cfg(feature = "test-endpoints")]
    pub host_overrides: Vec<HostOverride>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            #[cfg(feature = "test-endpoints")]
            extra_root_ca_pem: None,
            #[cfg(feature = "test-endpoints")]
            host_overrides: Vec::new(),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Why the transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The extra CA is not valid PEM.
    #[cfg(feature = "test-endpoints")]
    #[error("failed to read the extra trusted CA certificate")]
    InvalidCa(#[source] reqwest::Error),
    /// reqwest refused the configuration (e.g. no usable TLS roots).
    #[error("failed to build the https client")]
    Build(#[source] reqwest::Error),
}

impl TransportConfig {
    /// Settings to reach an emulator at `addr` whose CA is `ca_pem`: every Azure host of the
    /// public, US Government and China clouds resolves to `addr`.
    #[cfg(feature = "test-endpoints")]
    #[must_use]
    pub fn emulator(addr: SocketAddr, ca_pem: &str) -> Self {
        let hosts = [
            "login.microsoftonline.com",
            "login.microsoftonline.us",
            "login.chinacloudapi.cn",
            "management.azure.com",
            "management.usgovcloudapi.net",
            "management.chinacloudapi.cn",
            "*.vault.azure.net",
            "*.vault.usgovcloudapi.net",
            "*.vault.azure.cn",
        ];
        Self {
            extra_root_ca_pem: Some(ca_pem.to_owned()),
            host_overrides: hosts
                .iter()
                .map(|h| HostOverride {
                    pattern: (*h).to_owned(),
                    addr,
                })
                .collect(),
            ..Self::default()
        }
    }

    /// Whether any emulator-style setting is on.
    #[cfg(feature = "test-endpoints")]
    #[must_use]
    pub fn is_customised(&self) -> bool {
        self.extra_root_ca_pem.is_some() || !self.host_overrides.is_empty()
    }

    /// Build the reqwest client.
    pub fn build_client(&self) -> Result<reqwest::Client, TransportError> {
        // Same shape as azure_core's default client: no redirects (ARM never relies on them),
        // a bounded connect time; per-attempt timeouts are the retry policy's job.
        let builder = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .redirect(reqwest::redirect::Policy::none());
        #[cfg(feature = "test-endpoints")]
        let builder = self.with_test_endpoints(builder)?;
        builder.build().map_err(TransportError::Build)
    }

    /// The extra CA and the host overrides, when set.
    #[cfg(feature = "test-endpoints")]
    fn with_test_endpoints(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, TransportError> {
        if let Some(pem) = &self.extra_root_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(TransportError::InvalidCa)?;
            builder = builder.tls_certs_merge(certs);
        }
        if !self.host_overrides.is_empty() {
            builder = builder.dns_resolver(Arc::new(OverrideResolver {
                overrides: self.host_overrides.clone(),
            }));
        }
        Ok(builder)
    }

    /// Build the `azure_core` transport.
    pub fn build(&self) -> Result<Transport, TransportError> {
        Ok(Transport::new(Arc::new(self.build_client()?)))
    }
}

#[cfg(feature = "test-endpoints")]
struct OverrideResolver {
    overrides: Vec<HostOverride>,
}

#[cfg(feature = "test-endpoints")]
impl reqwest::dns::Resolve for OverrideResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let hit = self
            .overrides
            .iter()
            .find(|o| o.matches(&host))
            .map(|o| o.addr);
        Box::pin(async move {
            if let Some(addr) = hit {
                let addrs: reqwest::dns::Addrs = Box::new(std::iter::once(addr));
                return Ok(addrs);
            }
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "test-endpoints")]
    #[test]
    fn overrides_match_exact_hosts_and_wildcard_suffixes_only() {
        let addr: SocketAddr = "127.0.0.1:8443".parse().expect("addr");
        let exact = HostOverride {
            pattern: "management.azure.com".into(),
            addr,
        };
        let wild = HostOverride {
            pattern: "*.vault.azure.net".into(),
            addr,
        };
        assert!(exact.matches("management.azure.com"));
        assert!(exact.matches("MANAGEMENT.azure.com."));
        assert!(!exact.matches("evilmanagement.azure.com"));
        assert!(wild.matches("myvault.vault.azure.net"));
        assert!(
            !wild.matches("vault.azure.net"),
            "the bare suffix is not a vault"
        );
        assert!(!wild.matches("myvault.vault.azure.net.evil.com"));
        assert!(!wild.matches("myvaultvault.azure.net"));
    }

    #[cfg(feature = "test-endpoints")]
    #[test]
    fn overrides_parse_from_flags() {
        let o: HostOverride = "*.vault.azure.net=127.0.0.1:8443".parse().expect("valid");
        assert_eq!(o.pattern, "*.vault.azure.net");
        assert_eq!(o.addr, "127.0.0.1:8443".parse().expect("addr"));
        assert!("management.azure.com".parse::<HostOverride>().is_err());
        assert!(
            "management.azure.com=localhost"
                .parse::<HostOverride>()
                .is_err()
        );
        assert!("*.=127.0.0.1:1".parse::<HostOverride>().is_err());
        assert!("bad host=127.0.0.1:1".parse::<HostOverride>().is_err());
    }

    #[test]
    fn default_transport_has_no_overrides_and_builds() {
        let cfg = TransportConfig::default();
        #[cfg(feature = "test-endpoints")]
        assert!(!cfg.is_customised());
        cfg.build().expect("default transport builds");
    }

    #[cfg(feature = "test-endpoints")]
    #[test]
    fn invalid_extra_ca_is_rejected() {
        let cfg = TransportConfig {
            extra_root_ca_pem: Some(
                "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".into(),
            ),
            ..TransportConfig::default()
        };
        assert!(cfg.build().is_err());
    }
}
