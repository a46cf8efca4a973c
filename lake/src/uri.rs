//! [`LakeUri`]: where a dataset lives, and [`open_store`]: the object store that reaches it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;

use crate::{LakeError, Result};

/// A dataset location.
///
/// Accepted forms:
/// - `file:///abs/path` (three slashes; the path is taken literally, without percent-decoding);
/// - a plain path, absolute or relative to the current directory (made absolute when parsed);
/// - `az://container/path` (also `azure://`): Azure Blob Storage / ADLS Gen2, or Azurite;
/// - `s3://bucket/path`: Amazon S3 or an S3-compatible server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LakeUri {
    /// An absolute path on the local file system.
    Local(PathBuf),
    /// An Azure Blob container and a key prefix in it (without leading or trailing `/`).
    Azure {
        /// The container name.
        container: String,
        /// The key (or prefix) inside the container; empty for the whole container.
        path: String,
    },
    /// An S3 bucket and a key prefix in it (without leading or trailing `/`).
    S3 {
        /// The bucket name.
        bucket: String,
        /// The key (or prefix) inside the bucket; empty for the whole bucket.
        path: String,
    },
}

impl LakeUri {
    /// Parses a URI or a plain path (see the type's documentation for the forms).
    pub fn parse(uri: &str) -> Result<Self> {
        let bad = |reason: &str| LakeError::InvalidUri {
            uri: uri.to_owned(),
            reason: reason.to_owned(),
        };
        if uri.trim().is_empty() {
            return Err(bad("it is empty"));
        }
        let Some((scheme, rest)) = uri.split_once("://") else {
            if uri.starts_with("file:") {
                return Err(bad("use file:///absolute/path (three slashes)"));
            }
            let path = std::path::absolute(uri).map_err(|e| bad(&e.to_string()))?;
            return Ok(Self::Local(path));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                if !rest.starts_with('/') {
                    return Err(bad(
                        "a file URI needs an absolute path: file:///absolute/path (three slashes)",
                    ));
                }
                Ok(Self::Local(PathBuf::from(rest)))
            }
            "az" | "azure" => {
                let (container, path) = bucket_and_path(rest)
                    .ok_or_else(|| bad("expected az://container/path; the container is missing"))?;
                Ok(Self::Azure { container, path })
            }
            "s3" => {
                let (bucket, path) = bucket_and_path(rest)
                    .ok_or_else(|| bad("expected s3://bucket/path; the bucket is missing"))?;
                Ok(Self::S3 { bucket, path })
            }
            other => Err(bad(&format!(
                "unsupported scheme {other:?}; use file://, az://, s3:// or a plain path"
            ))),
        }
    }
}

/// Splits `container/some/path/` into the container and the path without surrounding slashes.
fn bucket_and_path(rest: &str) -> Option<(String, String)> {
    let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((bucket.to_owned(), path.trim_matches('/').to_owned()))
}

impl FromStr for LakeUri {
    type Err = LakeError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for LakeUri {
    /// Writes the canonical URI: `file:///abs/path`, `az://container/path` or `s3://bucket/path`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(path) => write!(f, "file://{}", path.display()),
            Self::Azure { container, path } => write!(f, "az://{container}/{path}"),
            Self::S3 { bucket, path } => write!(f, "s3://{bucket}/{path}"),
        }
    }
}

/// Opens the object store that holds `uri` and returns it with the object path (key or prefix)
/// that `uri` names inside it.
///
/// - Local paths use the local file system (rooted at `/`).
/// - Azure is configured like the registry's artifact store: `MicrosoftAzureBuilder::from_env()`,
///   i.e. from `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`,
///   `AZURE_STORAGE_USE_EMULATOR` (Azurite), `AZURITE_BLOB_STORAGE_URL`, ...
/// - S3 is configured from `AmazonS3Builder::from_env()`: `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`,
///   `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, ...
///
/// Containers and buckets must already exist (`object_store` cannot create them).
pub fn open_store(uri: &LakeUri) -> Result<(Arc<dyn ObjectStore>, Path)> {
    let config = |source| LakeError::StoreConfig {
        uri: uri.to_string(),
        source,
    };
    match uri {
        LakeUri::Local(path) => {
            let location = Path::from_absolute_path(path).map_err(|e| LakeError::InvalidUri {
                uri: uri.to_string(),
                reason: e.to_string(),
            })?;
            Ok((Arc::new(LocalFileSystem::new()), location))
        }
        LakeUri::Azure { container, path } => {
            install_tls_provider();
            let store = MicrosoftAzureBuilder::from_env()
                .with_container_name(container)
                .build()
                .map_err(config)?;
            Ok((Arc::new(store), Path::from(path.as_str())))
        }
        LakeUri::S3 { bucket, path } => {
            install_tls_provider();
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(config)?;
            Ok((Arc::new(store), Path::from(path.as_str())))
        }
    }
}

/// Installs rustls' ring crypto provider for the HTTP clients of the cloud stores (the workspace
/// builds rustls without aws-lc). An error only means a provider is already installed.
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
