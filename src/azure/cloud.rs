//! Azure clouds: the ARM endpoint, Entra ID authority host, Key Vault DNS suffix and token
//! scopes of Azure public, US Government, China, or a custom cloud.
//!
//! These are always real `https://` endpoints. Reaching the emulator is a transport concern
//! ([`crate::azure::transport`]), never a different cloud. This module does no I/O.

use std::sync::Arc;

use url::Url;

/// Endpoints of a custom (sovereign or private) cloud. All must be `https://`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomCloud {
    /// Name used in logs and errors.
    pub name: String,
    /// ARM endpoint, e.g. `https://management.example.cloud`.
    pub resource_manager: Url,
    /// Entra ID authority host, e.g. `https://login.example.cloud`.
    pub authority_host: Url,
    /// Key Vault DNS suffix without a leading dot, e.g. `vault.example.cloud`.
    pub key_vault_dns_suffix: String,
    /// ARM token audience, e.g. `https://management.example.cloud/`.
    pub resource_manager_audience: String,
}

/// Which Azure cloud the operator talks to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AzureCloud {
    /// Azure public cloud.
    #[default]
    AzurePublic,
    /// Azure US Government.
    AzureUSGovernment,
    /// Azure operated by 21Vianet (China).
    AzureChina,
    /// Any other cloud.
    Custom(Box<CustomCloud>),
}

/// Why a cloud could not be selected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CloudError {
    /// The name is not one of the known clouds.
    #[error(
        "failed to select azure cloud {0:?}: expected AzurePublic, AzureUSGovernment or AzureChina"
    )]
    UnknownName(String),
    /// A custom endpoint is not https.
    #[error("failed to configure azure cloud {cloud}: {field} must be an https URL")]
    NotHttps {
        /// Cloud name.
        cloud: String,
        /// Offending field.
        field: &'static str,
    },
}

// NB: `Url::parse` of these literals cannot fail; they are checked by the unit tests below.
fn url(s: &str) -> Url {
    Url::parse(s).unwrap_or_else(|_| unreachable!("static url {s}"))
}

impl AzureCloud {
    /// Select a known cloud by name (case-insensitive; common aliases accepted).
    pub fn from_name(name: &str) -> Result<Self, CloudError> {
        match name.to_ascii_lowercase().as_str() {
            "azurepublic" | "azurepubliccloud" | "azurecloud" | "public" => Ok(Self::AzurePublic),
            "azureusgovernment" | "azureusgovernmentcloud" | "usgovernment" | "usgov" => {
                Ok(Self::AzureUSGovernment)
            }
            "azurechina" | "azurechinacloud" | "china" => Ok(Self::AzureChina),
            _ => Err(CloudError::UnknownName(name.to_owned())),
        }
    }

    /// A custom cloud, checked to use https everywhere.
    pub fn custom(cloud: CustomCloud) -> Result<Self, CloudError> {
        let https = |u: &Url, field| {
            if u.scheme() == "https" {
                Ok(())
            } else {
                Err(CloudError::NotHttps {
                    cloud: cloud.name.clone(),
                    field,
                })
            }
        };
        https(&cloud.resource_manager, "resource_manager")?;
        https(&cloud.authority_host, "authority_host")?;
        if !cloud.resource_manager_audience.starts_with("https://") {
            return Err(CloudError::NotHttps {
                cloud: cloud.name.clone(),
                field: "resource_manager_audience",
            });
        }
        Ok(Self::Custom(Box::new(cloud)))
    }

    /// Name for logs.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::AzurePublic => "AzurePublic",
            Self::AzureUSGovernment => "AzureUSGovernment",
            Self::AzureChina => "AzureChina",
            Self::Custom(c) => &c.name,
        }
    }

    /// ARM endpoint.
    #[must_use]
    pub fn resource_manager(&self) -> Url {
        match self {
            Self::AzurePublic => url("https://management.azure.com/"),
            Self::AzureUSGovernment => url("https://management.usgovcloudapi.net/"),
            Self::AzureChina => url("https://management.chinacloudapi.cn/"),
            Self::Custom(c) => c.resource_manager.clone(),
        }
    }

    /// Entra ID authority host.
    #[must_use]
    pub fn authority_host(&self) -> Url {
        match self {
            Self::AzurePublic => url("https://login.microsoftonline.com/"),
            Self::AzureUSGovernment => url("https://login.microsoftonline.us/"),
            Self::AzureChina => url("https://login.chinacloudapi.cn/"),
            Self::Custom(c) => c.authority_host.clone(),
        }
    }

    /// Key Vault DNS suffix, e.g. `vault.azure.net`.
    #[must_use]
    pub fn key_vault_dns_suffix(&self) -> &str {
        match self {
            Self::AzurePublic => "vault.azure.net",
            Self::AzureUSGovernment => "vault.usgovcloudapi.net",
            Self::AzureChina => "vault.azure.cn",
            Self::Custom(c) => &c.key_vault_dns_suffix,
        }
    }

    /// ARM token audience (the resource in v1 terms).
    #[must_use]
    pub fn resource_manager_audience(&self) -> &str {
        match self {
            Self::AzurePublic => "https://management.azure.com/",
            Self::AzureUSGovernment => "https://management.usgovcloudapi.net/",
            Self::AzureChina => "https://management.chinacloudapi.cn/",
            Self::Custom(c) => &c.resource_manager_audience,
        }
    }

    /// OAuth scope for ARM tokens.
    #[must_use]
    pub fn resource_manager_scope(&self) -> String {
        format!(
            "{}.default",
            ensure_trailing_slash(self.resource_manager_audience())
        )
    }

    /// OAuth scope for Key Vault data-plane tokens. The Key Vault client normally learns it
    /// from the 401 challenge; this is what the challenge names.
    #[must_use]
    pub fn key_vault_scope(&self) -> String {
        format!("https://{}/.default", self.key_vault_dns_suffix())
    }

    /// The data-plane URL of a vault by name, e.g. `https://myvault.vault.azure.net/`.
    #[must_use]
    pub fn vault_url(&self, vault_name: &str) -> String {
        format!("https://{vault_name}.{}/", self.key_vault_dns_suffix())
    }

    /// Whether a vault URL belongs to this cloud (host ends with the Key Vault suffix).
    #[must_use]
    pub fn is_vault_url(&self, vault_url: &Url) -> bool {
        vault_url.scheme() == "https"
            && vault_url.host_str().is_some_and(|h| {
                let h = h.to_ascii_lowercase();
                h.strip_suffix(self.key_vault_dns_suffix())
                    .is_some_and(|p| p.ends_with('.') && p.len() > 1)
            })
    }

    /// The SDK's cloud configuration, used by `azure_identity` to pick the authority host.
    #[must_use]
    pub fn sdk_configuration(&self) -> Arc<azure_core::cloud::CloudConfiguration> {
        use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
        Arc::new(match self {
            Self::AzurePublic => CloudConfiguration::AzurePublic,
            Self::AzureUSGovernment => CloudConfiguration::AzureGovernment,
            Self::AzureChina => CloudConfiguration::AzureChina,
            Self::Custom(c) => {
                let mut custom = CustomConfiguration::default();
                c.authority_host
                    .as_str()
                    .trim_end_matches('/')
                    .clone_into(&mut custom.authority_host);
                CloudConfiguration::Custom(custom)
            }
        })
    }
}

fn ensure_trailing_slash(s: &str) -> String {
    if s.ends_with('/') {
        s.to_owned()
    } else {
        format!("{s}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_clouds_have_their_documented_endpoints() {
        let rows = [
            (
                AzureCloud::AzurePublic,
                "https://management.azure.com/",
                "https://login.microsoftonline.com/",
                "vault.azure.net",
                "https://management.azure.com/.default",
                "https://vault.azure.net/.default",
            ),
            (
                AzureCloud::AzureUSGovernment,
                "https://management.usgovcloudapi.net/",
                "https://login.microsoftonline.us/",
                "vault.usgovcloudapi.net",
                "https://management.usgovcloudapi.net/.default",
                "https://vault.usgovcloudapi.net/.default",
            ),
            (
                AzureCloud::AzureChina,
                "https://management.chinacloudapi.cn/",
                "https://login.chinacloudapi.cn/",
                "vault.azure.cn",
                "https://management.chinacloudapi.cn/.default",
                "https://vault.azure.cn/.default",
            ),
        ];
        for (cloud, arm, login, kv, arm_scope, kv_scope) in rows {
            assert_eq!(cloud.resource_manager().as_str(), arm, "{}", cloud.name());
            assert_eq!(cloud.authority_host().as_str(), login, "{}", cloud.name());
            assert_eq!(cloud.key_vault_dns_suffix(), kv, "{}", cloud.name());
            assert_eq!(
                cloud.resource_manager_scope(),
                arm_scope,
                "{}",
                cloud.name()
            );
            assert_eq!(cloud.key_vault_scope(), kv_scope, "{}", cloud.name());
        }
    }

    #[test]
    fn cloud_names_select_clouds_and_unknown_names_fail() {
        assert_eq!(
            AzureCloud::from_name("AzureUSGovernment"),
            Ok(AzureCloud::AzureUSGovernment)
        );
        assert_eq!(
            AzureCloud::from_name("azurechinacloud"),
            Ok(AzureCloud::AzureChina)
        );
        assert_eq!(
            AzureCloud::from_name("AzurePublic"),
            Ok(AzureCloud::AzurePublic)
        );
        assert!(AzureCloud::from_name("AzureGermany").is_err());
    }

    #[test]
    fn custom_cloud_must_be_https() {
        let mut c = CustomCloud {
            name: "stack".into(),
            resource_manager: Url::parse("https://management.local.azurestack.external")
                .expect("url"),
            authority_host: Url::parse("https://login.local.azurestack.external").expect("url"),
            key_vault_dns_suffix: "vault.local.azurestack.external".into(),
            resource_manager_audience: "https://management.local.azurestack.external/".into(),
        };
        let cloud = AzureCloud::custom(c.clone()).expect("https cloud is accepted");
        assert_eq!(
            cloud.resource_manager_scope(),
            "https://management.local.azurestack.external/.default"
        );
        assert_eq!(
            cloud.vault_url("v"),
            "https://v.vault.local.azurestack.external/"
        );
        c.authority_host = Url::parse("http://login.local").expect("url");
        assert_eq!(
            AzureCloud::custom(c),
            Err(CloudError::NotHttps {
                cloud: "stack".into(),
                field: "authority_host"
            })
        );
    }

    #[test]
    fn vault_urls_must_sit_under_the_clouds_suffix() {
        let cloud = AzureCloud::AzurePublic;
        assert!(cloud.is_vault_url(&Url::parse("https://myvault.vault.azure.net/").expect("url")));
        assert!(!cloud.is_vault_url(&Url::parse("https://myvault.vault.azure.cn/").expect("url")));
        assert!(!cloud.is_vault_url(&Url::parse("http://myvault.vault.azure.net/").expect("url")));
        assert!(!cloud.is_vault_url(&Url::parse("https://evilvault.azure.net/").expect("url")));
    }
}
