//! The model repository: Triton's folder layout (`<repo>/<model>/[config.pbtxt]`,
//! `<repo>/<model>/<version>/model.onnx`), the versions loaded from it, and explicit load and unload.
//! A model that fails to load is recorded as unavailable with its reason; it never stops the server.
//!
//! Besides the folders and builtin models it discovers, the repository serves *managed* models whose
//! versions another component adds and removes one at a time (the registry follower,
//! [`crate::registry_source`]), with a default version for unversioned requests ([`managed`]).

pub mod managed;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cerulean_proto::inference::ModelConfig;
use cerulean_proto::model_config;
use parking_lot::RwLock;

use crate::backend::{BackendOptions, ModelBackend};
use crate::config::{self, ModelDefaults};
use crate::error::{Result, ServingError};
use crate::metrics::Metrics;
use crate::model::LoadedModel;

/// Where models come from.
#[derive(Debug, Clone, Default)]
pub struct RepositorySources {
    /// Folders holding one sub-folder per model.
    pub roots: Vec<PathBuf>,
    /// Single model folders served under the given name (e.g. the prebuilt models).
    pub models: Vec<(String, PathBuf)>,
    /// Models whose backend is built in code (the prebuilt pipelines), served as version 1.
    pub builtin: Vec<BuiltinModel>,
}

/// Builds a builtin model's backend from the options its configuration resolves to.
pub type BackendFactory =
    Arc<dyn Fn(&BackendOptions) -> Result<Box<dyn ModelBackend>> + Send + Sync>;

/// A model whose backend is built in code rather than read from a model folder: the pre- and
/// post-processing pipelines around the prebuilt models. It is served as version 1 with the
/// given configuration (batching, instances), auto-completed from the backend's signature.
#[derive(Clone)]
pub struct BuiltinModel {
    /// The name it is served under.
    pub name: String,
    /// Its configuration, as a `config.pbtxt` would give it.
    pub config: ModelConfig,
    /// Builds the backend; called on every load.
    pub factory: BackendFactory,
}

impl std::fmt::Debug for BuiltinModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinModel")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Where one model comes from.
#[derive(Debug, Clone)]
enum ModelSource {
    Folder(PathBuf),
    Builtin(Box<BuiltinModel>),
}

/// One entry of the repository index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndexEntry {
    /// The model's name.
    pub name: String,
    /// The version, empty for a model with no version state.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// `READY`, `UNAVAILABLE`, or empty for a model never loaded.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// Why a version is unavailable.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// The state of one version.
#[derive(Clone)]
enum VersionState {
    Ready(Arc<LoadedModel>),
    Unavailable(String),
}

/// What the repository knows of one model.
#[derive(Clone, Default)]
struct ModelState {
    versions: BTreeMap<u64, VersionState>,
    /// Why the model as a whole is not serving (bad configuration, unloaded), if so.
    problem: Option<String>,
    /// The version an unversioned request gets; the highest ready one when `None`.
    default_version: Option<u64>,
    /// Whether its versions are added and removed one by one ([`managed`]) rather than read from a
    /// folder or built in code.
    managed: bool,
}

impl ModelState {
    fn ready_versions(&self) -> impl DoubleEndedIterator<Item = (u64, &Arc<LoadedModel>)> {
        self.versions.iter().filter_map(|(&v, s)| match s {
            VersionState::Ready(m) => Some((v, m)),
            VersionState::Unavailable(_) => None,
        })
    }
}

/// The repository and every loaded version.
pub struct ModelRepository {
    sources: RepositorySources,
    defaults: ModelDefaults,
    metrics: Metrics,
    models: RwLock<BTreeMap<String, ModelState>>,
    /// Serialises loads and unloads so two of them never race on one model.
    control: tokio::sync::Mutex<()>,
    /// Loads a managed model's version that is asked for but not loaded ([`managed::OnDemand`]).
    on_demand: RwLock<Option<std::sync::Weak<dyn managed::OnDemand>>>,
}

impl ModelRepository {
    /// A repository over `sources`; nothing is loaded until [`ModelRepository::load_all`].
    pub fn new(
        sources: RepositorySources,
        defaults: ModelDefaults,
        metrics: Metrics,
    ) -> ModelRepository {
        ModelRepository {
            sources,
            defaults,
            metrics,
            models: RwLock::new(BTreeMap::new()),
            control: tokio::sync::Mutex::new(()),
            on_demand: RwLock::new(None),
        }
    }

    /// The server's metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Every model the sources hold, by name.
    fn discover(&self) -> BTreeMap<String, ModelSource> {
        let mut found = BTreeMap::new();
        for root in &self.sources.roots {
            let Ok(entries) = std::fs::read_dir(root) else {
                tracing::warn!(root = %root.display(), "model repository folder cannot be read");
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned)
                else {
                    continue;
                };
                if path.is_dir() && !name.starts_with('.') {
                    found.entry(name).or_insert(ModelSource::Folder(path));
                }
            }
        }
        for (name, path) in &self.sources.models {
            found
                .entry(name.clone())
                .or_insert_with(|| ModelSource::Folder(path.clone()));
        }
        for model in &self.sources.builtin {
            found
                .entry(model.name.clone())
                .or_insert_with(|| ModelSource::Builtin(Box::new(model.clone())));
        }
        found
    }

    /// Loads every model found; failures are recorded, not returned.
    pub async fn load_all(&self) {
        for name in self.discover().into_keys() {
            if let Err(err) = self.load(&name, None).await {
                tracing::warn!(model = %name, error = %err, "model failed to load");
            }
        }
    }

    /// Loads (or reloads) a model. New versions load beside the ones serving and replace them only
    /// once all are ready; if the load fails, the versions already serving keep serving.
    pub async fn load(&self, name: &str, config_override: Option<ModelConfig>) -> Result<()> {
        let _guard = self.control.lock().await;
        self.refuse_managed(name, "loaded")?;
        let source = self.discover().remove(name).ok_or_else(|| {
            ServingError::NotFound(format!("model '{name}' is not in the model repository"))
        })?;
        let defaults = self.defaults.clone();
        let metrics = self.metrics.clone();
        let model = name.to_string();
        let loaded = tokio::task::spawn_blocking(move || match source {
            ModelSource::Folder(dir) => {
                load_model(&model, &dir, config_override, &defaults, &metrics)
            }
            ModelSource::Builtin(builtin) => {
                load_builtin(&builtin, config_override, &defaults, &metrics)
            }
        })
        .await
        .map_err(|e| ServingError::Internal(format!("model loading stopped: {e}")))?;
        let mut models = self.models.write();
        let serving_before = models
            .get(name)
            .is_some_and(|s| s.ready_versions().next().is_some());
        match loaded {
            Ok(mut state) => {
                state.default_version = models.get(name).and_then(|s| s.default_version);
                let failures: Vec<String> = state
                    .versions
                    .iter()
                    .filter_map(|(v, s)| match s {
                        VersionState::Unavailable(reason) => Some(format!("version {v}: {reason}")),
                        VersionState::Ready(_) => None,
                    })
                    .collect();
                let any_ready = state.ready_versions().next().is_some();
                if !any_ready && serving_before {
                    return Err(ServingError::BadRequest(format!(
                        "failed to load '{name}', the versions already serving are kept: {}",
                        failures.join("; ")
                    )));
                }
                self.forget_metrics(name, models.get(name), &state);
                models.insert(name.to_string(), state);
                if any_ready {
                    tracing::info!(model = %name, "model loaded");
                    Ok(())
                } else {
                    Err(ServingError::BadRequest(format!(
                        "failed to load '{name}': {}",
                        failures.join("; ")
                    )))
                }
            }
            Err(err) => {
                if !serving_before {
                    models.insert(
                        name.to_string(),
                        ModelState {
                            problem: Some(err.to_string()),
                            ..ModelState::default()
                        },
                    );
                }
                Err(ServingError::BadRequest(format!(
                    "failed to load '{name}': {err}"
                )))
            }
        }
    }

    /// Stops serving every version of a model. Requests already queued are still answered.
    pub async fn unload(&self, name: &str) -> Result<()> {
        let _guard = self.control.lock().await;
        self.refuse_managed(name, "unloaded")?;
        let mut models = self.models.write();
        let known = models.contains_key(name) || self.discover().contains_key(name);
        if !known {
            return Err(ServingError::NotFound(format!(
                "model '{name}' is not in the model repository"
            )));
        }
        let previous = models.insert(
            name.to_string(),
            ModelState {
                problem: Some("unloaded".to_string()),
                ..ModelState::default()
            },
        );
        if let Some(previous) = previous {
            for version in previous.versions.keys() {
                self.metrics.remove_model(name, &version.to_string());
            }
        }
        tracing::info!(model = %name, "model unloaded");
        Ok(())
    }

    fn forget_metrics(&self, name: &str, previous: Option<&ModelState>, next: &ModelState) {
        if let Some(previous) = previous {
            for version in previous
                .versions
                .keys()
                .filter(|v| !next.versions.contains_key(v))
            {
                self.metrics.remove_model(name, &version.to_string());
            }
        }
    }

    /// The model version a request names: the given version, or the model's default version
    /// ([`ModelRepository::set_default_version`]), or else the highest ready one.
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Arc<LoadedModel>> {
        let models = self.models.read();
        let state = models.get(name).ok_or_else(|| {
            ServingError::NotFound(format!("Request for unknown model: '{name}' is not found"))
        })?;
        match parse_version(version)? {
            Some(v) => match state.versions.get(&v) {
                Some(VersionState::Ready(model)) => Ok(model.clone()),
                Some(VersionState::Unavailable(reason)) => Err(ServingError::Unavailable(format!(
                    "model '{name}' version {v} is not ready: {reason}"
                ))),
                None => Err(ServingError::NotFound(format!(
                    "Request for unknown model: '{name}' version {v} is not found"
                ))),
            },
            None if state.default_version.is_some() => default_of(name, state),
            None => state
                .ready_versions()
                .next_back()
                .map(|(_, m)| m.clone())
                .ok_or_else(|| {
                    ServingError::Unavailable(format!(
                        "model '{name}' has no ready version{}",
                        state
                            .problem
                            .as_ref()
                            .map(|p| format!(": {p}"))
                            .unwrap_or_default()
                    ))
                }),
        }
    }

    /// Whether the named model (and version) is ready; unknown models are simply not ready.
    pub fn is_ready(&self, name: &str, version: Option<&str>) -> bool {
        self.get(name, version).is_ok()
    }

    /// The ready versions of a model, highest last, as strings.
    pub fn ready_versions(&self, name: &str) -> Vec<String> {
        self.models
            .read()
            .get(name)
            .map(|s| s.ready_versions().map(|(v, _)| v.to_string()).collect())
            .unwrap_or_default()
    }

    /// Every ready model version.
    pub fn loaded(&self) -> Vec<Arc<LoadedModel>> {
        self.models
            .read()
            .values()
            .flat_map(|s| {
                s.ready_versions()
                    .map(|(_, m)| m.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Triton's repository index: every model in the sources and every version state known.
    pub fn index(&self, ready_only: bool) -> Vec<IndexEntry> {
        let models = self.models.read();
        let mut names: Vec<String> = self.discover().into_keys().collect();
        names.extend(models.keys().cloned());
        names.sort();
        names.dedup();
        let mut index = Vec::new();
        for name in names {
            let entry = |version: String, state: &str, reason: String| IndexEntry {
                name: name.clone(),
                version,
                state: state.to_string(),
                reason,
            };
            match models.get(&name) {
                None => index.push(entry(String::new(), "", String::new())),
                Some(state) if state.versions.is_empty() => index.push(entry(
                    String::new(),
                    "UNAVAILABLE",
                    state.problem.clone().unwrap_or_default(),
                )),
                Some(state) => {
                    for (v, s) in &state.versions {
                        match s {
                            VersionState::Ready(_) => {
                                index.push(entry(v.to_string(), "READY", String::new()))
                            }
                            VersionState::Unavailable(reason) => {
                                index.push(entry(v.to_string(), "UNAVAILABLE", reason.clone()))
                            }
                        }
                    }
                }
            }
        }
        if ready_only {
            index.retain(|e| e.state == "READY");
        }
        index
    }
}

/// The default version of a model that has one set: that version, or why it cannot serve.
fn default_of(name: &str, state: &ModelState) -> Result<Arc<LoadedModel>> {
    let Some(v) = state.default_version else {
        return Err(ServingError::Unavailable(format!(
            "model '{name}' has no default version"
        )));
    };
    match state.versions.get(&v) {
        Some(VersionState::Ready(model)) => Ok(model.clone()),
        Some(VersionState::Unavailable(reason)) => Err(ServingError::Unavailable(format!(
            "model '{name}' default version {v} is not ready: {reason}"
        ))),
        None => Err(ServingError::Unavailable(format!(
            "model '{name}' default version {v} is not loaded"
        ))),
    }
}

fn parse_version(version: Option<&str>) -> Result<Option<u64>> {
    match version.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .map(Some)
            .ok_or_else(|| ServingError::BadRequest(format!("'{v}' is not a valid model version"))),
    }
}

/// Reads a model folder and loads the versions its policy selects. An error here means the model as a
/// whole cannot be served (e.g. its configuration is invalid); versions that fail are recorded in the
/// returned state.
fn load_model(
    name: &str,
    dir: &Path,
    config_override: Option<ModelConfig>,
    defaults: &ModelDefaults,
    metrics: &Metrics,
) -> Result<ModelState> {
    let config = match config_override {
        Some(config) => config,
        None => read_config(dir)?,
    };
    let available = version_dirs(dir)?;
    let selected = config::select_versions(config.version_policy.as_ref(), &available);
    if selected.is_empty() {
        return Err(ServingError::Unavailable(format!(
            "no version folder in {} matches the version policy (found {:?})",
            dir.display(),
            available
        )));
    }
    let mut state = ModelState::default();
    for version in selected {
        let version_dir = dir.join(version.to_string());
        let result = LoadedModel::load(name, version, &version_dir, &config, defaults, metrics);
        let version_state = match result {
            Ok(model) => VersionState::Ready(Arc::new(model)),
            Err(err) => {
                tracing::warn!(model = %name, version, error = %err, "model version failed to load");
                VersionState::Unavailable(err.to_string())
            }
        };
        state.versions.insert(version, version_state);
    }
    Ok(state)
}

/// Loads a builtin model as version 1.
fn load_builtin(
    builtin: &BuiltinModel,
    config_override: Option<ModelConfig>,
    defaults: &ModelDefaults,
    metrics: &Metrics,
) -> Result<ModelState> {
    let config = config_override.unwrap_or_else(|| builtin.config.clone());
    let options = config::backend_options(&config, defaults)?;
    let result = (builtin.factory)(&options).and_then(|backend| {
        LoadedModel::from_backend(&builtin.name, 1, backend, &config, defaults, metrics)
    });
    let version_state = match result {
        Ok(model) => VersionState::Ready(Arc::new(model)),
        Err(err) => {
            tracing::warn!(model = %builtin.name, error = %err, "builtin model failed to load");
            VersionState::Unavailable(err.to_string())
        }
    };
    let mut state = ModelState::default();
    state.versions.insert(1, version_state);
    Ok(state)
}

/// The model's `config.pbtxt`, or an empty configuration for Triton-style auto-complete.
fn read_config(dir: &Path) -> Result<ModelConfig> {
    let path = dir.join("config.pbtxt");
    match std::fs::read_to_string(&path) {
        Ok(text) => model_config::parse_pbtxt(&text)
            .map_err(|e| ServingError::Unavailable(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ModelConfig::default()),
        Err(e) => Err(ServingError::Unavailable(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// The positive integer sub-folders of a model folder.
fn version_dirs(dir: &Path) -> Result<Vec<u64>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ServingError::Unavailable(format!("cannot read {}: {e}", dir.display())))?;
    Ok(entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()))
        .filter(|&v| v > 0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::candle::tests::write_mlp;

    fn repository(root: &Path) -> ModelRepository {
        ModelRepository::new(
            RepositorySources {
                roots: vec![root.to_path_buf()],
                models: vec![],
                builtin: vec![],
            },
            ModelDefaults::default(),
            Metrics::new(),
        )
    }

    #[tokio::test]
    async fn loads_versions_and_reports_failures_without_stopping() {
        let root = tempfile::tempdir().unwrap();
        for v in ["1", "2"] {
            let dir = root.path().join("mlp").join(v);
            std::fs::create_dir_all(&dir).unwrap();
            write_mlp(&dir, false);
        }
        std::fs::write(
            root.path().join("mlp/config.pbtxt"),
            "version_policy: { all { } }",
        )
        .unwrap();
        let broken = root.path().join("broken/1");
        std::fs::create_dir_all(&broken).unwrap();
        std::fs::write(broken.join("model.safetensors"), b"not safetensors").unwrap();
        std::fs::write(broken.join("model.json"), b"{}").unwrap();
        std::fs::create_dir_all(root.path().join("badconfig/1")).unwrap();
        std::fs::write(
            root.path().join("badconfig/config.pbtxt"),
            "max_batch_size: \"eight\"",
        )
        .unwrap();

        let repo = repository(root.path());
        repo.load_all().await;
        assert_eq!(
            repo.get("mlp", None).unwrap().version(),
            2,
            "unversioned means the highest"
        );
        assert_eq!(repo.get("mlp", Some("1")).unwrap().version(), 1);
        assert!(matches!(
            repo.get("mlp", Some("3")),
            Err(ServingError::NotFound(_))
        ));
        assert!(matches!(
            repo.get("mlp", Some("x")),
            Err(ServingError::BadRequest(_))
        ));
        assert!(matches!(
            repo.get("nope", None),
            Err(ServingError::NotFound(_))
        ));
        assert!(matches!(
            repo.get("broken", None),
            Err(ServingError::Unavailable(_))
        ));
        assert!(!repo.is_ready("badconfig", None));

        let index = repo.index(false);
        let broken = index.iter().find(|e| e.name == "broken").unwrap();
        assert_eq!(broken.state, "UNAVAILABLE");
        assert!(!broken.reason.is_empty());
        let bad = index.iter().find(|e| e.name == "badconfig").unwrap();
        assert!(bad.reason.contains("config.pbtxt"), "{bad:?}");
        assert_eq!(repo.index(true).len(), 2, "two ready versions of mlp");
    }

    #[tokio::test]
    async fn builtin_models_load_as_version_one_and_report_failures() {
        let files = tempfile::tempdir().unwrap();
        write_mlp(files.path(), false);
        let path = files.path().join("model.safetensors");
        let working = BuiltinModel {
            name: "builtin-mlp".to_string(),
            config: ModelConfig::default(),
            factory: Arc::new(move |options| {
                crate::backend::load(crate::backend::ModelFormat::Candle, &path, options)
            }),
        };
        let failing = BuiltinModel {
            name: "builtin-broken".to_string(),
            config: ModelConfig::default(),
            factory: Arc::new(|_| Err(ServingError::Unavailable("no weights".to_string()))),
        };
        let root = tempfile::tempdir().unwrap();
        let repo = ModelRepository::new(
            RepositorySources {
                roots: vec![root.path().to_path_buf()],
                models: vec![],
                builtin: vec![working, failing],
            },
            ModelDefaults::default(),
            Metrics::new(),
        );
        repo.load_all().await;
        assert_eq!(repo.get("builtin-mlp", None).unwrap().version(), 1);
        let index = repo.index(false);
        let broken = index.iter().find(|e| e.name == "builtin-broken").unwrap();
        assert_eq!(broken.state, "UNAVAILABLE");
        assert!(broken.reason.contains("no weights"), "{broken:?}");
        repo.unload("builtin-mlp").await.unwrap();
        assert!(!repo.is_ready("builtin-mlp", None));
        repo.load("builtin-mlp", None).await.unwrap();
        assert!(repo.is_ready("builtin-mlp", Some("1")));
    }

    #[tokio::test]
    async fn unload_and_reload() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("mlp/1");
        std::fs::create_dir_all(&dir).unwrap();
        write_mlp(&dir, false);
        let repo = repository(root.path());
        repo.load_all().await;
        let held = repo.get("mlp", None).unwrap();
        repo.unload("mlp").await.unwrap();
        assert!(!repo.is_ready("mlp", None));
        assert_eq!(
            held.version(),
            1,
            "a request holding the model keeps it alive"
        );
        repo.load("mlp", None).await.unwrap();
        assert!(repo.is_ready("mlp", None));
        assert!(matches!(
            repo.unload("ghost").await,
            Err(ServingError::NotFound(_))
        ));
        assert!(matches!(
            repo.load("ghost", None).await,
            Err(ServingError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_failed_reload_keeps_the_serving_versions() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("mlp/1");
        std::fs::create_dir_all(&dir).unwrap();
        write_mlp(&dir, false);
        let repo = repository(root.path());
        repo.load_all().await;
        std::fs::write(dir.join("model.safetensors"), b"corrupted").unwrap();
        assert!(repo.load("mlp", None).await.is_err());
        assert!(repo.is_ready("mlp", None), "the old version still serves");
    }
}
