//! Azure container creation: `object_store` cannot create containers, so `cerulean registry`
//! (and the tests) create a missing one with a SharedKey-signed `PUT ?restype=container`.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use reqwest::Url;
use sha2::Sha256;

use super::ArtifactError;
use crate::install_tls_provider as install_crypto_provider;

/// The account of Azurite and the legacy storage emulator.
const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
/// The published, well-known key of the emulator account (not a secret).
const EMULATOR_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The Blob service REST version the request is signed for.
const MS_VERSION: &str = "2023-11-03";

/// Where to create an Azure container and the SharedKey credential to sign the request with.
#[derive(Clone)]
pub struct AzureContainerTarget {
    /// The container URL, e.g. `https://acct.blob.core.windows.net/models` or, for Azurite,
    /// `http://127.0.0.1:10000/devstoreaccount1/models`.
    pub container_url: String,
    /// The storage account name.
    pub account: String,
    /// The account key (base64); creation needs it.
    pub access_key: Option<String>,
    /// The container name.
    pub container: String,
}

impl std::fmt::Debug for AzureContainerTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureContainerTarget")
            .field("container_url", &self.container_url)
            .field("account", &self.account)
            .field(
                "access_key",
                &self.access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("container", &self.container)
            .finish()
    }
}

impl AzureContainerTarget {
    /// A container of Azurite's well-known account at `blob_url` (e.g. `http://127.0.0.1:10000`).
    pub fn emulator(blob_url: &str, container: &str) -> Self {
        Self {
            container_url: format!(
                "{}/{EMULATOR_ACCOUNT}/{container}",
                blob_url.trim_end_matches('/')
            ),
            account: EMULATOR_ACCOUNT.into(),
            access_key: Some(EMULATOR_ACCOUNT_KEY.into()),
            container: container.into(),
        }
    }

    /// Derives the target from an Azure location URL and the builder's configuration (after the
    /// environment and explicit options were applied). `None` when no container name is known.
    pub(crate) fn from_builder(url: &Url, builder: &MicrosoftAzureBuilder) -> Option<Self> {
        let config = |key: AzureConfigKey| builder.get_config_value(&key).filter(|v| !v.is_empty());
        let host = url.host_str().unwrap_or_default();
        let host_account = || {
            let is_azure_host = [".core.windows.net", ".fabric.microsoft.com"]
                .iter()
                .any(|suffix| host.ends_with(suffix));
            is_azure_host.then(|| host.split('.').next().unwrap_or_default().to_owned())
        };
        let (container, url_account) = match url.scheme() {
            "https" | "http" => (
                url.path_segments()
                    .and_then(|mut s| s.next())
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
                host_account(),
            ),
            _ if !url.username().is_empty() => (Some(url.username().to_owned()), host_account()),
            _ => (Some(host.to_owned()).filter(|h| !h.is_empty()), None),
        };
        let container = container.or_else(|| config(AzureConfigKey::ContainerName))?;
        let use_emulator = config(AzureConfigKey::UseEmulator).is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on")
        });

        if use_emulator {
            let blob_url = std::env::var("AZURITE_BLOB_STORAGE_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:10000".into());
            let account =
                config(AzureConfigKey::AccountName).unwrap_or_else(|| EMULATOR_ACCOUNT.into());
            let access_key =
                config(AzureConfigKey::AccessKey).or_else(|| Some(EMULATOR_ACCOUNT_KEY.into()));
            return Some(Self {
                container_url: format!("{}/{account}/{container}", blob_url.trim_end_matches('/')),
                account,
                access_key,
                container,
            });
        }
        let account = config(AzureConfigKey::AccountName).or(url_account)?;
        let endpoint = config(AzureConfigKey::Endpoint)
            .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
        Some(Self {
            container_url: format!("{}/{container}", endpoint.trim_end_matches('/')),
            account,
            access_key: config(AzureConfigKey::AccessKey),
            container,
        })
    }
}

/// Creates the container with a SharedKey-signed `PUT <container_url>?restype=container`.
/// Returns `true` when it was created (201) and `false` when it already existed (409).
pub async fn create_azure_container(target: &AzureContainerTarget) -> Result<bool, ArtifactError> {
    let fail = |reason: String| ArtifactError::Container {
        container: target.container.clone(),
        reason,
    };
    let key = target.access_key.as_deref().ok_or_else(|| {
        fail("an account key is needed to create it; create the container yourself or configure access_key".into())
    })?;
    let key = STANDARD
        .decode(key)
        .map_err(|e| fail(format!("the account key is not base64: {e}")))?;
    let url = Url::parse(&format!("{}?restype=container", target.container_url))
        .map_err(|e| fail(format!("bad container URL {:?}: {e}", target.container_url)))?;

    let date = httpdate::fmt_http_date(SystemTime::now());
    // VERB, then 11 standard headers (all empty; Content-Length is empty for 0 since 2015-02-21),
    // then the canonicalized x-ms-* headers and the canonicalized resource.
    let string_to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{MS_VERSION}\n/{}{}\nrestype:container",
        target.account,
        url.path()
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| fail(e.to_string()))?;
    mac.update(string_to_sign.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());

    install_crypto_provider();
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| fail(format!("HTTP client: {e}")))?;
    let response = client
        .put(url)
        .header("x-ms-date", &date)
        .header("x-ms-version", MS_VERSION)
        .header(
            "Authorization",
            format!("SharedKey {}:{signature}", target.account),
        )
        .header("Content-Length", "0")
        .send()
        .await
        .map_err(|e| fail(format!("request to {}: {e}", target.container_url)))?;
    match response.status().as_u16() {
        201 => Ok(true),
        409 => Ok(false),
        status => {
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(500).collect();
            Err(fail(format!("HTTP {status}: {body}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(location: &str, options: &[(&str, &str)]) -> Option<AzureContainerTarget> {
        let url = Url::parse(location).unwrap();
        let mut builder = MicrosoftAzureBuilder::new().with_url(location);
        for (k, v) in options {
            builder = builder.with_config(k.parse().unwrap(), *v);
        }
        AzureContainerTarget::from_builder(&url, &builder)
    }

    #[test]
    fn targets_from_urls() {
        let t = target(
            "az://models/pre",
            &[("account_name", "acct"), ("access_key", "a2V5")],
        )
        .unwrap();
        assert_eq!(t.container_url, "https://acct.blob.core.windows.net/models");
        assert_eq!(t.access_key.as_deref(), Some("a2V5"));

        let t = target("abfss://fs@acct2.dfs.core.windows.net/p", &[]).unwrap();
        assert_eq!(t.container, "fs");
        assert_eq!(t.container_url, "https://acct2.blob.core.windows.net/fs");

        let t = target("https://acct3.blob.core.windows.net/c1/x", &[]).unwrap();
        assert_eq!((t.account.as_str(), t.container.as_str()), ("acct3", "c1"));

        let t = target(
            "az://models",
            &[
                ("account_name", "devstoreaccount1"),
                ("endpoint", "http://127.0.0.1:10000/devstoreaccount1/"),
            ],
        )
        .unwrap();
        assert_eq!(
            t.container_url,
            "http://127.0.0.1:10000/devstoreaccount1/models"
        );

        let t = target("azure://c9/p", &[("use_emulator", "true")]).unwrap();
        assert!(t.container_url.ends_with("/devstoreaccount1/c9"));
        assert_eq!(t.access_key.as_deref(), Some(EMULATOR_ACCOUNT_KEY));

        assert!(target("az://models", &[]).is_none(), "no account known");
        assert!(
            !format!("{t:?}").contains(EMULATOR_ACCOUNT_KEY),
            "Debug redacts the key"
        );
    }
}
