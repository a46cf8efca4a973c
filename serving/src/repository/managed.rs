//! Managed models: models whose versions another component adds and removes one at a time (the
//! registry follower, [`crate::registry_source`]), rather than models read from a repository folder
//! or built in code.
//!
//! * [`ModelRepository::load_version`] loads one version folder beside the versions already serving;
//!   [`ModelRepository::unload_version`] stops serving one. A request in flight holds its
//!   `Arc<LoadedModel>`, so an unloaded version is dropped only once its last request has been
//!   answered.
//! * [`ModelRepository::set_default_version`] picks the version unversioned requests get (the
//!   `champion` alias target), switched atomically once the new version is ready.
//! * An [`OnDemand`] source loads a version that is asked for by number but not loaded:
//!   [`ModelRepository::get_or_load`] waits for it (inference), [`ModelRepository::get_or_start_loading`]
//!   starts it and answers "loading" (metadata, readiness).
//!
//! A managed model refuses the explicit load and unload of Triton's repository API: its versions
//! follow its source. A managed model never shadows a local one: a name that the repository's folders
//! or builtin models hold is refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;

use super::{ModelRepository, ModelState, VersionState, parse_version, read_config};
use crate::error::{Result, ServingError};
use crate::model::LoadedModel;

/// How long an inference request waits for a version that is loaded on demand.
pub const ON_DEMAND_WAIT: Duration = Duration::from_secs(120);

/// The state of one version of a managed model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionStatus {
    /// Loaded and serving.
    Ready,
    /// Known but not serving, with the reason.
    Unavailable(String),
}

/// Loads versions of managed models that requests ask for by number but that are not loaded.
pub trait OnDemand: Send + Sync {
    /// Whether the source has `version` of model `name` (a quick, in-memory check).
    fn has_version(&self, name: &str, version: u64) -> bool;

    /// Loads `version` of model `name` into the repository. `Ok(false)` when the source does not
    /// have it.
    fn load_version<'a>(&'a self, name: &'a str, version: u64) -> BoxFuture<'a, Result<bool>>;
}

impl ModelRepository {
    /// An error when `name` is managed: its versions follow its source, not explicit control.
    pub(super) fn refuse_managed(&self, name: &str, what: &str) -> Result<()> {
        if self.models.read().get(name).is_some_and(|s| s.managed) {
            return Err(ServingError::Unsupported(format!(
                "model '{name}' follows the model registry and cannot be {what} explicitly: \
                 register, delete or alias its versions in the registry instead"
            )));
        }
        Ok(())
    }

    /// Whether a repository folder or builtin model of this name exists (a managed model of the
    /// same name is then refused).
    pub fn is_local(&self, name: &str) -> bool {
        self.discover().contains_key(name)
    }

    /// Loads version `version` of the managed model `name` from `dir` (a version folder:
    /// `model.onnx`, or `model.safetensors` with `model.json`, and an optional `config.pbtxt`),
    /// beside the versions already serving. On failure the version is recorded as unavailable with
    /// the reason, unless it was already serving, in which case it keeps serving.
    pub async fn load_version(&self, name: &str, version: u64, dir: &Path) -> Result<()> {
        let _guard = self.control.lock().await;
        if self.is_local(name) {
            return Err(ServingError::BadRequest(format!(
                "model '{name}' is served from the local model repository; the managed model of \
                 the same name is not served"
            )));
        }
        let defaults = self.defaults.clone();
        let metrics = self.metrics.clone();
        let model = name.to_string();
        let dir = dir.to_path_buf();
        let loaded = tokio::task::spawn_blocking(move || {
            let config = read_config(&dir)?;
            LoadedModel::load(&model, version, &dir, &config, &defaults, &metrics)
        })
        .await
        .map_err(|e| ServingError::Internal(format!("model loading stopped: {e}")))?;
        let mut models = self.models.write();
        let state = managed_entry(&mut models, name);
        match loaded {
            Ok(model) => {
                state
                    .versions
                    .insert(version, VersionState::Ready(Arc::new(model)));
                tracing::info!(model = %name, version, "model version loaded");
                Ok(())
            }
            Err(err) => {
                tracing::warn!(model = %name, version, error = %err, "model version failed to load");
                if !matches!(state.versions.get(&version), Some(VersionState::Ready(_))) {
                    state
                        .versions
                        .insert(version, VersionState::Unavailable(err.to_string()));
                }
                Err(err)
            }
        }
    }

    /// Records that version `version` of the managed model `name` cannot be served, and why (it is
    /// reported by the repository index and by requests for it). A version already serving is left
    /// serving.
    pub fn set_version_unavailable(&self, name: &str, version: u64, reason: impl Into<String>) {
        let mut models = self.models.write();
        let state = managed_entry(&mut models, name);
        if !matches!(state.versions.get(&version), Some(VersionState::Ready(_))) {
            state
                .versions
                .insert(version, VersionState::Unavailable(reason.into()));
        }
    }

    /// Stops serving version `version` of the managed model `name` (and forgets it). Requests
    /// already holding it are still answered. Returns whether the version was known.
    pub fn unload_version(&self, name: &str, version: u64) -> bool {
        let mut models = self.models.write();
        let Some(state) = models.get_mut(name).filter(|s| s.managed) else {
            return false;
        };
        let removed = state.versions.remove(&version).is_some();
        if removed {
            self.metrics.remove_model(name, &version.to_string());
            tracing::info!(model = %name, version, "model version no longer served");
        }
        removed
    }

    /// Stops serving every version of the managed model `name` and forgets the model (requests for
    /// it are then answered "unknown model"). Returns whether it was a managed model.
    pub fn remove_model(&self, name: &str) -> bool {
        let mut models = self.models.write();
        if !models.get(name).is_some_and(|s| s.managed) {
            return false;
        }
        if let Some(state) = models.remove(name) {
            for version in state.versions.keys() {
                self.metrics.remove_model(name, &version.to_string());
            }
        }
        tracing::info!(model = %name, "model no longer served");
        true
    }

    /// Sets the version that requests without a version get (`None`: the highest ready one, the
    /// default). A default version that is not ready makes those requests fail with the reason, it
    /// never falls back to another version. No effect on a model the repository does not know.
    pub fn set_default_version(&self, name: &str, version: Option<u64>) {
        if let Some(state) = self.models.write().get_mut(name)
            && state.default_version != version
        {
            state.default_version = version;
            tracing::info!(model = %name, version = ?version, "default version set");
        }
    }

    /// The version set by [`ModelRepository::set_default_version`], if any.
    pub fn default_version(&self, name: &str) -> Option<u64> {
        self.models.read().get(name).and_then(|s| s.default_version)
    }

    /// Every version of a model the repository knows, with its state.
    pub fn version_statuses(&self, name: &str) -> BTreeMap<u64, VersionStatus> {
        self.models
            .read()
            .get(name)
            .map(|s| {
                s.versions
                    .iter()
                    .map(|(&v, state)| {
                        let status = match state {
                            VersionState::Ready(_) => VersionStatus::Ready,
                            VersionState::Unavailable(reason) => {
                                VersionStatus::Unavailable(reason.clone())
                            }
                        };
                        (v, status)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The names of the managed models.
    pub fn managed_models(&self) -> Vec<String> {
        self.models
            .read()
            .iter()
            .filter(|(_, s)| s.managed)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Sets the source that loads managed versions on demand. The repository holds it weakly, so
    /// the source may hold the repository.
    pub fn set_on_demand(&self, source: Weak<dyn OnDemand>) {
        *self.on_demand.write() = Some(source);
    }

    /// Like [`ModelRepository::get`], but a version of a managed model that its source has and that
    /// is not loaded is loaded first (waiting at most [`ON_DEMAND_WAIT`]).
    pub async fn get_or_load(&self, name: &str, version: Option<&str>) -> Result<Arc<LoadedModel>> {
        let err = match self.get(name, version) {
            Err(err @ ServingError::NotFound(_)) => err,
            other => return other,
        };
        let Some((source, v)) = self.on_demand_target(name, version) else {
            return Err(err);
        };
        tracing::info!(model = %name, version = v, "loading a version on demand");
        match tokio::time::timeout(ON_DEMAND_WAIT, source.load_version(name, v)).await {
            Ok(Ok(true)) => self.get(name, version),
            Ok(Ok(false)) => Err(err),
            Ok(Err(load_err)) => Err(ServingError::Unavailable(format!(
                "model '{name}' version {v} failed to load: {load_err}"
            ))),
            Err(_) => Err(ServingError::Unavailable(format!(
                "model '{name}' version {v} is still loading; retry shortly"
            ))),
        }
    }

    /// Like [`ModelRepository::get`], but for a version of a managed model that its source has and
    /// that is not loaded, starts loading it in the background and answers that it is loading.
    pub fn get_or_start_loading(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<LoadedModel>> {
        let err = match self.get(name, version) {
            Err(err @ ServingError::NotFound(_)) => err,
            other => return other,
        };
        let Some((source, v)) = self.on_demand_target(name, version) else {
            return Err(err);
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(err);
        };
        let model = name.to_string();
        runtime.spawn(async move {
            if let Err(e) = source.load_version(&model, v).await {
                tracing::warn!(model = %model, version = v, error = %e, "on-demand load failed");
            }
        });
        Err(ServingError::Unavailable(format!(
            "model '{name}' version {v} is registered but was not loaded; it is loading now, retry \
             shortly"
        )))
    }

    /// The on-demand source and version number for a request of a managed model's version that is
    /// not loaded and that the source has.
    fn on_demand_target(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Option<(Arc<dyn OnDemand>, u64)> {
        let v = parse_version(version).ok().flatten()?;
        let managed = self
            .models
            .read()
            .get(name)
            .is_some_and(|s| s.managed && !s.versions.contains_key(&v));
        if !managed {
            return None;
        }
        let source = self.on_demand.read().as_ref()?.upgrade()?;
        source.has_version(name, v).then_some((source, v))
    }
}

/// The state of a managed model, created (managed, no versions) when missing.
fn managed_entry<'a>(
    models: &'a mut BTreeMap<String, ModelState>,
    name: &str,
) -> &'a mut ModelState {
    let state = models.entry(name.to_string()).or_default();
    state.managed = true;
    state.problem = None;
    state
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::backend::candle::tests::write_mlp;
    use crate::config::ModelDefaults;
    use crate::metrics::Metrics;
    use crate::repository::RepositorySources;

    fn empty_repository(root: &Path) -> ModelRepository {
        ModelRepository::new(
            RepositorySources {
                roots: vec![root.to_path_buf()],
                ..RepositorySources::default()
            },
            ModelDefaults::default(),
            Metrics::new(),
        )
    }

    fn version_dir(root: &Path, name: &str, version: u64) -> std::path::PathBuf {
        let dir = root.join(name).join(version.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        write_mlp(&dir, false);
        dir
    }

    #[tokio::test]
    async fn managed_versions_load_one_by_one_and_follow_the_default() {
        let local = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let repo = empty_repository(local.path());
        for v in [1, 2] {
            let dir = version_dir(cache.path(), "m", v);
            repo.load_version("m", v, &dir).await.unwrap();
        }
        assert_eq!(
            repo.get("m", None).unwrap().version(),
            2,
            "highest by default"
        );
        repo.set_default_version("m", Some(1));
        let held = repo.get("m", None).unwrap();
        assert_eq!(held.version(), 1);
        assert_eq!(repo.default_version("m"), Some(1));

        // The old default stays alive for a request holding it, after it is unloaded.
        repo.set_default_version("m", Some(2));
        assert!(repo.unload_version("m", 1));
        assert_eq!(held.version(), 1);
        assert_eq!(repo.get("m", None).unwrap().version(), 2);
        assert!(matches!(
            repo.get("m", Some("1")),
            Err(ServingError::NotFound(_))
        ));

        // A default that is not ready fails with the reason; it does not fall back.
        repo.set_version_unavailable("m", 3, "an MLflow pyfunc model");
        repo.set_default_version("m", Some(3));
        let Err(err) = repo.get("m", None) else {
            panic!("an unavailable default serves")
        };
        assert!(err.to_string().contains("pyfunc"), "{err}");
        assert_eq!(
            repo.version_statuses("m").get(&3),
            Some(&VersionStatus::Unavailable("an MLflow pyfunc model".into()))
        );
        let index = repo.index(false);
        assert!(
            index
                .iter()
                .any(|e| e.name == "m" && e.state == "UNAVAILABLE")
        );

        // Explicit control is refused; removal forgets the model.
        assert!(matches!(
            repo.unload("m").await,
            Err(ServingError::Unsupported(_))
        ));
        assert!(matches!(
            repo.load("m", None).await,
            Err(ServingError::Unsupported(_))
        ));
        assert_eq!(repo.managed_models(), vec!["m".to_string()]);
        assert!(repo.remove_model("m"));
        assert!(matches!(
            repo.get("m", None),
            Err(ServingError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn failures_are_recorded_and_local_models_win() {
        let local = tempfile::tempdir().unwrap();
        version_dir(local.path(), "local", 1);
        let cache = tempfile::tempdir().unwrap();
        let repo = empty_repository(local.path());
        repo.load_all().await;
        let dir = version_dir(cache.path(), "local", 1);
        assert!(repo.load_version("local", 1, &dir).await.is_err());
        assert!(repo.managed_models().is_empty());

        let broken = cache.path().join("b/1");
        std::fs::create_dir_all(&broken).unwrap();
        std::fs::write(broken.join("MLmodel"), "flavors:\n  python_function: {}\n").unwrap();
        assert!(repo.load_version("b", 1, &broken).await.is_err());
        let statuses = repo.version_statuses("b");
        assert!(matches!(
            statuses.get(&1),
            Some(VersionStatus::Unavailable(_))
        ));
    }

    struct Source {
        repo: Arc<ModelRepository>,
        dir: std::path::PathBuf,
        loads: AtomicUsize,
    }

    impl OnDemand for Source {
        fn has_version(&self, name: &str, version: u64) -> bool {
            name == "m" && version == 1
        }

        fn load_version<'a>(&'a self, name: &'a str, version: u64) -> BoxFuture<'a, Result<bool>> {
            Box::pin(async move {
                if !self.has_version(name, version) {
                    return Ok(false);
                }
                self.loads.fetch_add(1, Ordering::SeqCst);
                self.repo.load_version(name, version, &self.dir).await?;
                Ok(true)
            })
        }
    }

    #[tokio::test]
    async fn versions_load_on_demand() {
        let local = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let repo = Arc::new(empty_repository(local.path()));
        let v2 = version_dir(cache.path(), "m", 2);
        repo.load_version("m", 2, &v2).await.unwrap();
        let source = Arc::new(Source {
            repo: repo.clone(),
            dir: version_dir(cache.path(), "m", 1),
            loads: AtomicUsize::new(0),
        });
        let as_dyn: Arc<dyn OnDemand> = source.clone();
        repo.set_on_demand(Arc::downgrade(&as_dyn));

        assert_eq!(repo.get_or_load("m", Some("1")).await.unwrap().version(), 1);
        assert_eq!(source.loads.load(Ordering::SeqCst), 1);
        assert!(matches!(
            repo.get_or_load("m", Some("7")).await,
            Err(ServingError::NotFound(_))
        ));
        assert!(repo.unload_version("m", 1));
        let Err(err) = repo.get_or_start_loading("m", Some("1")) else {
            panic!("an unloaded version serves")
        };
        assert!(matches!(err, ServingError::Unavailable(_)), "{err}");
        for _ in 0..100 {
            if repo.get("m", Some("1")).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(repo.get("m", Some("1")).is_ok(), "loaded in the background");
        drop(as_dyn);
    }
}
