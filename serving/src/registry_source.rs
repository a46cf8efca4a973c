//! Registered models served straight from the model registry: the [`RegistryFollower`] keeps the
//! model repository in step with a registry (`cerulean up`'s own, or `cerulean serve --registry URL`).
//!
//! * **Which versions.** For each registered model the newest [`FollowerConfig::keep_versions`]
//!   versions and every alias target are loaded, as versions of a managed model of the same name
//!   ([`crate::repository::managed`]). Any other registered version is loaded on its first request
//!   (`/v2/models/NAME/versions/N`) and unloaded again once it has been idle for
//!   [`FollowerConfig::idle_unload`].
//! * **Which version answers `/v2/models/NAME`.** The target of the `champion` alias
//!   ([`FollowerConfig::default_alias`]), or the newest version when there is no such alias. When the
//!   alias moves, the new target is loaded beside the old one and becomes the default once it is
//!   ready; the old one is unloaded after that (unless the policy keeps it), and requests already
//!   holding it are answered by it. A target that fails to load leaves the previous default serving.
//! * **Files.** Each version's artifact folder (`model.onnx`, or `model.safetensors` with
//!   `model.json`, and an optional `config.pbtxt`) is fetched through the registry's artifact proxy
//!   into `CACHE/<model>/<version>/`, once ([`fetch`]). A version that cannot be served (an MLflow
//!   Python model, say) is reported unavailable with the reason.
//! * **Staying in step.** The follower reads the whole registry, then follows its watch stream (a
//!   version created or an alias moved is applied within seconds) and reads the whole registry again
//!   every [`FollowerConfig::poll_interval`] (deletions, which the stream does not carry, and
//!   anything missed) and on every reconnection. An unreachable registry never stops the server: the
//!   follower logs and retries with backoff.

mod fetch;
mod follow;
mod plan;
mod sync;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cerulean_registry::client::{ClientError, RegistryClient};
use futures::future::BoxFuture;

use crate::error::ServingError;
use crate::repository::ModelRepository;
use crate::repository::managed::OnDemand;

/// The alias whose target answers requests without a version.
pub const DEFAULT_ALIAS: &str = "champion";

/// How a [`RegistryFollower`] behaves.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    /// Where versions' files are cached (`CACHE/<model>/<version>/`).
    pub cache_dir: PathBuf,
    /// How many of each model's newest versions stay loaded (alias targets come on top).
    pub keep_versions: usize,
    /// The alias whose target answers requests without a version.
    pub default_alias: String,
    /// How often the whole registry is read again.
    pub poll_interval: Duration,
    /// How long a version loaded on demand stays loaded without a request.
    pub idle_unload: Duration,
}

impl FollowerConfig {
    /// The defaults: the 3 newest versions, `champion`, a full read every 30 s, on-demand versions
    /// unloaded after 10 idle minutes.
    pub fn new(cache_dir: impl Into<PathBuf>) -> FollowerConfig {
        FollowerConfig {
            cache_dir: cache_dir.into(),
            keep_versions: 3,
            default_alias: DEFAULT_ALIAS.to_string(),
            poll_interval: Duration::from_secs(30),
            idle_unload: Duration::from_secs(600),
        }
    }
}

/// What following the registry can fail with.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// A registry call failed.
    #[error(transparent)]
    Registry(#[from] ClientError),
    /// The version's files cannot be served (their format, their location); retrying will not help
    /// until the version changes.
    #[error("{0}")]
    Unservable(String),
    /// A download or call did not complete; it is retried.
    #[error("{0}")]
    Incomplete(String),
    /// A local file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The model repository refused or failed to load the version.
    #[error(transparent)]
    Serving(#[from] ServingError),
}

impl FollowError {
    fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> FollowError {
        FollowError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether retrying cannot help (the version's files are complete and cannot be served).
    pub fn is_permanent(&self) -> bool {
        matches!(self, FollowError::Unservable(_) | FollowError::Serving(_))
    }
}

/// Keeps a [`ModelRepository`] serving a registry's registered models; stops when dropped.
pub struct RegistryFollower {
    inner: Arc<sync::Follower>,
    task: tokio::task::JoinHandle<()>,
}

impl RegistryFollower {
    /// Starts following the registry that `client` talks to, in the background (on the current
    /// tokio runtime), and lets `repository` load registered versions on demand through it.
    pub fn start(
        client: RegistryClient,
        repository: Arc<ModelRepository>,
        config: FollowerConfig,
    ) -> RegistryFollower {
        let inner = Arc::new(sync::Follower::new(client, repository.clone(), config));
        let on_demand: Arc<dyn OnDemand> = inner.clone();
        repository.set_on_demand(Arc::downgrade(&on_demand));
        let task = tokio::spawn(follow::run(inner.clone()));
        tracing::info!(registry = %inner.registry_url(), "following the model registry");
        RegistryFollower { inner, task }
    }

    /// Reads the whole registry now and applies it (the background task does this by itself).
    pub async fn sync(&self) -> Result<(), FollowError> {
        self.inner.sync_all().await
    }
}

impl Drop for RegistryFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OnDemand for sync::Follower {
    fn has_version(&self, name: &str, version: u64) -> bool {
        self.is_registered(name, version)
    }

    fn load_version<'a>(
        &'a self,
        name: &'a str,
        version: u64,
    ) -> BoxFuture<'a, crate::error::Result<bool>> {
        Box::pin(async move {
            self.load_on_demand(name, version)
                .await
                .map_err(|e| match e {
                    FollowError::Serving(e) => e,
                    other => ServingError::Unavailable(other.to_string()),
                })
        })
    }
}
