//! [`Registry`]: the registry service object the MLflow REST layer ([`crate::http`]) and the
//! binary share. It owns the metadata store, the artifact store, the event bus and the API keys,
//! and it is where every write that MLflow has and that Cerulean publishes an event for goes
//! through: a model version created, an alias set, moved or deleted (also implicitly, by deleting
//! a version or a model), a stage changed. Reads and writes without events go to
//! [`Registry::store`] directly.
//!
//! It also holds the MLflow server-side rules that are not the store's: the validation of a model
//! version's `source` (MLflow 3.17's `_validate_source_run` / `_validate_source_model`), the
//! lineage of `models:/...` sources, the `mlflow.modelVersions` tag on logged models, and the
//! download URI of a version whose source is a logged model.
//!
//! The training-job writes that publish `job_changed` events (submit, lease, finish, cancel) and
//! the job-spec validator are in the `jobs` submodule.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::artifacts::http::ArtifactHttpConfig;
use crate::artifacts::{ArtifactError, ArtifactPath, ArtifactStore, FileInfo};
use crate::auth::{Auth, AuthError, Principal};
use crate::entities::{AliasEvent, ModelVersion, RegisteredModel};
use crate::error::{RegistryError, Result};
use crate::events::{EventBus, RegistryEvent, RetryPolicy, WebhookConfig, start_webhooks};
use crate::jobs::JobSpecValidator;
use crate::store::{
    self, CreateModelVersion, CreateRegisteredModel, MetadataStore, SetAlias, StageTransition,
    StoreOptions,
};

mod jobs;

/// The `mlflow-artifacts:` scheme of URIs served by the artifact proxy.
pub const MLFLOW_ARTIFACTS_SCHEME: &str = "mlflow-artifacts";

/// The logged-model tag that lists the registered versions made from the model (JSON).
pub const TAG_MODEL_VERSIONS: &str = "mlflow.modelVersions";

/// How a [`Registry`] is set up.
#[derive(Clone)]
pub struct RegistryConfig {
    /// The metadata store: `sqlite:///abs/path.db`, `sqlite://rel.db`,
    /// `postgresql://user@host/db`.
    pub backend_store_uri: String,
    /// Where artifact bytes live: a path or `file:///dir`, `az://container/prefix` (and the other
    /// Azure forms), `s3://bucket/prefix`.
    pub artifacts_destination: String,
    /// `object_store` options of the artifact backend (`account_name`, `endpoint`, ...), applied
    /// after the `AZURE_*` / `AWS_*` environment.
    pub artifact_options: Vec<(String, String)>,
    /// The root of experiments' default artifact locations: experiment `N` gets `<root>/N`. The
    /// default `mlflow-artifacts:` gives `mlflow-artifacts:/N`, which MLflow clients resolve
    /// through this server's artifact proxy.
    pub default_artifact_root: String,
    /// The externally visible base URL of the server (for multipart part URLs); taken from the
    /// request's `Host` / `X-Forwarded-*` headers when `None`.
    pub public_base_url: Option<String>,
    /// The key that signs multipart part URLs; every replica behind one address needs the same.
    /// Random per process when `None`.
    pub part_url_secret: Option<Vec<u8>>,
    /// Webhooks to deliver registry events to.
    pub webhooks: Vec<WebhookConfig>,
    /// How webhook deliveries are retried.
    pub webhook_retry: RetryPolicy,
    /// The API keys file; authentication is off when `None`.
    pub keys_file: Option<PathBuf>,
    /// How often the keys file is checked for changes (keys rotate without a restart).
    pub keys_reload_interval: Duration,
    /// Most database connections (PostgreSQL), or most reader connections (SQLite).
    pub max_connections: u32,
    /// How many events a slow watcher may lag behind before it misses some.
    pub event_capacity: usize,
    /// Checks job specs at submission (the binary installs one that knows the job-file format);
    /// specs are taken as they come when `None`. See [`JobSpecValidator`].
    pub job_spec_validator: Option<JobSpecValidator>,
}

impl RegistryConfig {
    /// A configuration with this metadata store and artifact destination, and defaults for the
    /// rest (no authentication, no webhooks, `mlflow-artifacts:` locations).
    pub fn new(
        backend_store_uri: impl Into<String>,
        artifacts_destination: impl Into<String>,
    ) -> Self {
        RegistryConfig {
            backend_store_uri: backend_store_uri.into(),
            artifacts_destination: artifacts_destination.into(),
            artifact_options: Vec::new(),
            default_artifact_root: "mlflow-artifacts:".into(),
            public_base_url: None,
            part_url_secret: None,
            webhooks: Vec::new(),
            webhook_retry: RetryPolicy::default(),
            keys_file: None,
            keys_reload_interval: Duration::from_secs(5),
            max_connections: StoreOptions::default().max_connections,
            event_capacity: 1024,
            job_spec_validator: None,
        }
    }

    /// This configuration with a job-spec validator installed (see
    /// [`RegistryConfig::job_spec_validator`]).
    pub fn with_job_spec_validator(
        mut self,
        validator: impl Fn(
            &serde_json::Value,
        ) -> std::result::Result<crate::jobs::JobSpecSummary, String>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.job_spec_validator = Some(Arc::new(validator));
        self
    }

    fn store_options(&self) -> StoreOptions {
        StoreOptions {
            default_artifact_root: self.default_artifact_root.clone(),
            max_connections: self.max_connections,
            ..StoreOptions::default()
        }
    }

    fn artifact_http_config(&self) -> ArtifactHttpConfig {
        let mut config = ArtifactHttpConfig {
            public_base_url: self.public_base_url.clone(),
            ..ArtifactHttpConfig::default()
        };
        if let Some(secret) = &self.part_url_secret {
            config.part_url_secret = Arc::from(secret.as_slice());
        }
        config
    }
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("backend_store_uri", &redact_uri(&self.backend_store_uri))
            .field("artifacts_destination", &self.artifacts_destination)
            .field(
                "artifact_options",
                &self
                    .artifact_options
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("default_artifact_root", &self.default_artifact_root)
            .field("public_base_url", &self.public_base_url)
            .field(
                "part_url_secret",
                &self.part_url_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "webhooks",
                &self
                    .webhooks
                    .iter()
                    .map(|w| w.url.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("keys_file", &self.keys_file)
            .field("max_connections", &self.max_connections)
            .field(
                "job_spec_validator",
                &self.job_spec_validator.as_ref().map(|_| "<installed>"),
            )
            .finish_non_exhaustive()
    }
}

/// A URI with the password of its user info (`user:password@`) replaced by `***`.
pub fn redact_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => uri.to_owned(),
        },
        None => uri.to_owned(),
    }
}

/// Why [`Registry::open`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The metadata store could not be opened or migrated.
    #[error("cannot open the metadata store {uri}: {source}")]
    Store {
        /// The store URI, password redacted.
        uri: String,
        /// Why.
        source: RegistryError,
    },
    /// The artifact store could not be opened, or its container is missing or unreachable.
    #[error("cannot open the artifact store {location}: {source}")]
    Artifacts {
        /// The artifact destination.
        location: String,
        /// Why.
        source: ArtifactError,
    },
    /// The API keys file is missing or invalid.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// The registry service: stores, events and keys, and the writes that publish events.
pub struct Registry {
    store: Arc<dyn MetadataStore>,
    artifacts: Arc<ArtifactStore>,
    events: EventBus,
    auth: Auth,
    config: RegistryConfig,
    artifact_http: ArtifactHttpConfig,
    webhook_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("backend", &self.store.backend())
            .field("artifacts", &self.artifacts)
            .field("auth", &self.auth.is_enabled())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for task in &self.webhook_tasks {
            task.abort();
        }
    }
}

impl Registry {
    /// Opens everything a registry server needs: installs the TLS provider, opens the metadata
    /// store (running its migrations), opens the artifact store and makes sure it takes writes
    /// (creating an Azure container when missing), loads the API keys and starts watching their
    /// file, and starts the webhooks. Must be called inside a Tokio runtime.
    pub async fn open(config: RegistryConfig) -> std::result::Result<Registry, OpenError> {
        crate::install_tls_provider();
        let store = store::open(&config.backend_store_uri, config.store_options())
            .await
            .map_err(|source| OpenError::Store {
                uri: redact_uri(&config.backend_store_uri),
                source,
            })?;
        let artifact_error = |source| OpenError::Artifacts {
            location: config.artifacts_destination.clone(),
            source,
        };
        let artifacts = ArtifactStore::open(
            &config.artifacts_destination,
            config.artifact_options.iter().map(|(k, v)| (k, v.clone())),
        )
        .map_err(artifact_error)?;
        let created = artifacts.ensure_container().await.map_err(artifact_error)?;
        if created {
            tracing::info!(location = %config.artifacts_destination, "created the artifact container");
        }
        let auth = match &config.keys_file {
            Some(path) => {
                let auth = Auth::from_file(path)?;
                auth.watch(config.keys_reload_interval);
                auth
            }
            None => Auth::disabled(),
        };
        let events = EventBus::new(config.event_capacity);
        let webhook_tasks = start_webhooks(&events, config.webhooks.clone(), config.webhook_retry);
        let mut registry = Registry::new(store, Arc::new(artifacts), events, auth, config);
        registry.webhook_tasks = webhook_tasks;
        Ok(registry)
    }

    /// A registry over stores that are already open (embedding, tests). Starts nothing: no
    /// webhooks, no key watcher.
    pub fn new(
        store: Arc<dyn MetadataStore>,
        artifacts: Arc<ArtifactStore>,
        events: EventBus,
        auth: Auth,
        config: RegistryConfig,
    ) -> Registry {
        let artifact_http = config.artifact_http_config();
        Registry {
            store,
            artifacts,
            events,
            auth,
            config,
            artifact_http,
            webhook_tasks: Vec::new(),
        }
    }

    /// The metadata store (reads, and writes that publish no event).
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    /// The artifact store.
    pub fn artifacts(&self) -> &Arc<ArtifactStore> {
        &self.artifacts
    }

    /// The event bus (subscribe to follow the registry).
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The API keys in force.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The configuration the registry was opened with.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The settings of the artifact proxy routes.
    pub fn artifact_http_config(&self) -> &ArtifactHttpConfig {
        &self.artifact_http
    }

    /// The user id recorded on what a caller creates: the key's name when authentication is on,
    /// none otherwise (as MLflow without its auth plugin).
    fn user_id(&self, actor: &Principal) -> Option<String> {
        self.auth.is_enabled().then(|| actor.name.clone())
    }

    fn publish_alias_event(&self, event: &AliasEvent) {
        self.events
            .publish_with_alias_event_id(alias_moved(event), Some(event.id));
    }

    /// Creates a registered model, recording the caller as its user.
    pub async fn create_registered_model(
        &self,
        mut req: CreateRegisteredModel,
        actor: &Principal,
    ) -> Result<RegisteredModel> {
        req.user_id = self.user_id(actor);
        self.store.create_registered_model(req).await
    }

    /// Creates a model version as MLflow 3.17's server does: resolves the lineage of a
    /// `models:/NAME/VERSION` source, fills `run_id` from a logged model, validates the source
    /// against the run or logged model it must belong to, tags the logged model with
    /// `mlflow.modelVersions`, and publishes `version_created`.
    pub async fn create_model_version(
        &self,
        mut req: CreateModelVersion,
        actor: &Principal,
    ) -> Result<ModelVersion> {
        if req.name.is_empty() {
            return Err(missing("name"));
        }
        if req.source.is_empty() {
            return Err(missing("source"));
        }
        req.run_id = req.run_id.filter(|r| !r.is_empty());
        req.model_id = req.model_id.filter(|m| !m.is_empty());
        self.resolve_source_lineage(&mut req).await?;
        match req.model_id.clone() {
            Some(model_id) => self.validate_source_model(&req.source, &model_id).await?,
            None => {
                self.validate_source_run(&req.source, req.run_id.as_deref())
                    .await?
            }
        }
        // A version registered from a logged model names that model's run, as MLflow's store
        // does (`run_id = run_id or model.source_run_id`); the model must exist before the
        // version is made, since it is tagged with the version afterwards.
        let logged_model_id = req
            .model_id
            .clone()
            .or_else(|| logged_model_id_of(&req.source).map(str::to_owned));
        if let Some(model_id) = &logged_model_id
            && (req.run_id.is_none() || req.model_id.is_some())
        {
            let model = self.store.get_logged_model(model_id).await.map_err(|e| {
                if e.http_status() == 404 {
                    RegistryError::invalid(format!(
                        "Unable to fetch model from model URI source artifact location '{}'. \
                         Error: {e}",
                        req.source
                    ))
                } else {
                    e
                }
            })?;
            if req.run_id.is_none() {
                req.run_id = model.info.source_run_id;
            }
        }
        req.user_id = self.user_id(actor);
        let version = self.store.create_model_version(req.clone()).await?;
        if let Some(model_id) = &req.model_id {
            self.tag_logged_model_versions(model_id, &version.name, &version.version)
                .await?;
        }
        self.events.publish(RegistryEvent::VersionCreated {
            name: version.name.clone(),
            version: version.version.clone(),
            source: version.source.clone(),
            run_id: version.run_id.clone(),
            timestamp: version.creation_timestamp,
        });
        Ok(version)
    }

    /// Adds `{name, version}` to the logged model's `mlflow.modelVersions` tag (a JSON list), as
    /// MLflow's `set_model_versions_tags`.
    async fn tag_logged_model_versions(
        &self,
        model_id: &str,
        name: &str,
        version: &str,
    ) -> Result<()> {
        let model = self.store.get_logged_model(model_id).await?;
        let number: serde_json::Value = version
            .parse::<i64>()
            .map(serde_json::Value::from)
            .unwrap_or_else(|_| serde_json::Value::from(version));
        let entry = serde_json::json!({"name": name, "version": number});
        let mut list: Vec<serde_json::Value> = model
            .info
            .tags
            .iter()
            .find(|t| t.key == TAG_MODEL_VERSIONS)
            .and_then(|t| serde_json::from_str(&t.value).ok())
            .unwrap_or_default();
        if list.contains(&entry) {
            return Ok(());
        }
        list.push(entry);
        let value = python_json_list(&list);
        self.store
            .set_logged_model_tags(
                model_id,
                vec![crate::entities::Tag::new(TAG_MODEL_VERSIONS, value)],
            )
            .await?;
        Ok(())
    }

    /// MLflow's `_resolve_registered_model_source_lineage`: a `models:/NAME/VERSION` (or alias,
    /// stage, `latest`) source becomes `models:/NAME/<number>`, and takes that version's run and
    /// logged model unless the request names them (they must then match).
    async fn resolve_source_lineage(&self, req: &mut CreateModelVersion) -> Result<()> {
        let parsed = UriParts::parse(&req.source);
        if parsed.scheme != "models" {
            return Ok(());
        }
        if !parsed.netloc.is_empty() {
            return Err(RegistryError::invalid(format!(
                "Invalid model version source: '{}'. Registered model sources must use the active \
                 model registry.",
                req.source
            )));
        }
        let model_uri = match ModelUri::parse(&req.source) {
            Some(uri) => uri,
            None => return Err(invalid_source(&req.source, "model_id")),
        };
        let (name, version) = match model_uri {
            ModelUri::LoggedModel(_) => return Ok(()),
            ModelUri::Version { name, version } => (name, version),
            ModelUri::Alias { name, alias } => {
                let mv = self.store.get_model_version_by_alias(&name, &alias).await?;
                (name, mv.version)
            }
            ModelUri::Latest { name, stage } => {
                let version = self.latest_version(&name, stage.as_deref()).await?;
                (name, version)
            }
        };
        let source_version = self.store.get_model_version(&name, &version).await?;
        let run_mismatch = req
            .run_id
            .as_ref()
            .is_some_and(|r| Some(r) != source_version.run_id.as_ref());
        let model_mismatch = req
            .model_id
            .as_ref()
            .is_some_and(|m| Some(m) != source_version.model_id.as_ref());
        if run_mismatch || model_mismatch {
            return Err(RegistryError::invalid(format!(
                "Invalid model version source: '{}'. The run_id and model_id request parameters \
                 must match the referenced model version.",
                req.source
            )));
        }
        req.source = format!("models:/{name}/{}", source_version.version);
        if req.run_id.is_none() {
            req.run_id = source_version.run_id;
        }
        if req.model_id.is_none() {
            req.model_id = source_version.model_id;
        }
        Ok(())
    }

    /// The latest version of a model, in a stage (any case) or overall.
    async fn latest_version(&self, name: &str, stage: Option<&str>) -> Result<String> {
        let stages: Vec<String> = stage.map(|s| vec![s.to_owned()]).unwrap_or_default();
        let versions = self.store.get_latest_versions(name, &stages).await?;
        versions
            .iter()
            .filter_map(|v| v.version.parse::<i64>().ok())
            .max()
            .map(|v| v.to_string())
            .ok_or_else(|| {
                RegistryError::not_found(match stage {
                    Some(stage) => {
                        format!("No versions of model with name '{name}' and stage '{stage}' found")
                    }
                    None => format!("No versions of model with name '{name}' found"),
                })
            })
    }

    /// MLflow's `_validate_source_run`.
    async fn validate_source_run(&self, source: &str, run_id: Option<&str>) -> Result<()> {
        if is_local_uri(source) {
            if let Some(run_id) = run_id {
                let run = self.store.get_run(run_id).await.map_err(|e| {
                    if e.http_status() == 404 {
                        invalid_source(source, "run_id")
                    } else {
                        e
                    }
                })?;
                if local_path_within(source, &run.info.artifact_uri) {
                    return Ok(());
                }
            }
            return Err(RegistryError::invalid(format!(
                "Invalid model version source: '{source}'. To use a local path as a model version \
                 source, the run_id request parameter has to be specified and the local path has \
                 to be contained within the artifact directory of the run specified by the run_id."
            )));
        }
        validate_no_relative_paths(source)?;
        let parsed = UriParts::parse(source);
        match parsed.scheme.as_str() {
            "runs" => {
                if !parsed.netloc.is_empty() {
                    return Err(invalid_source(source, "run_id"));
                }
                let source_run = runs_uri_run_id(source)?;
                return match run_id {
                    Some(run_id) if run_id == source_run => Ok(()),
                    _ => Err(invalid_source(source, "run_id")),
                };
            }
            "models"
                if !parsed.netloc.is_empty()
                    || matches!(
                        ModelUri::parse(source),
                        Some(ModelUri::LoggedModel(_)) | None
                    ) =>
            {
                return Err(invalid_source(source, "model_id"));
            }
            _ => {}
        }
        if is_mlflow_artifact_source(source) {
            if let Some(run_id) = run_id {
                let run = self.store.get_run(run_id).await.map_err(|e| {
                    if e.http_status() == 404 {
                        invalid_source(source, "run_id")
                    } else {
                        e
                    }
                })?;
                if is_uri_within_root(source, &run.info.artifact_uri) {
                    return Ok(());
                }
            }
            return Err(invalid_source(source, "run_id"));
        }
        Ok(())
    }

    /// MLflow's `_validate_source_model`.
    async fn validate_source_model(&self, source: &str, model_id: &str) -> Result<()> {
        let fetch = || async {
            self.store.get_logged_model(model_id).await.map_err(|e| {
                if e.http_status() == 404 {
                    invalid_source(source, "model_id")
                } else {
                    e
                }
            })
        };
        if is_local_uri(source) {
            let model = fetch().await?;
            if local_path_within(source, &model.info.artifact_uri) {
                return Ok(());
            }
            return Err(RegistryError::invalid(format!(
                "Invalid model version source: '{source}'. To use a local path as a model version \
                 source, the model_id request parameter has to be specified and the local path \
                 has to be contained within the artifact directory of the run specified by the \
                 model_id."
            )));
        }
        validate_no_relative_paths(source)?;
        let parsed = UriParts::parse(source);
        match parsed.scheme.as_str() {
            "models" => {
                if !parsed.netloc.is_empty() {
                    return Err(invalid_source(source, "model_id"));
                }
                match ModelUri::parse(source) {
                    None => return Err(invalid_source(source, "model_id")),
                    Some(ModelUri::LoggedModel(id)) => {
                        return if id == model_id {
                            Ok(())
                        } else {
                            Err(invalid_source(source, "model_id"))
                        };
                    }
                    Some(_) => {}
                }
            }
            "runs" => return Err(invalid_source(source, "model_id")),
            _ => {}
        }
        if is_mlflow_artifact_source(source) {
            let model = fetch().await?;
            if is_uri_within_root(source, &model.info.artifact_uri) {
                return Ok(());
            }
            return Err(invalid_source(source, "model_id"));
        }
        Ok(())
    }

    /// Where a version's files are, as MLflow answers `get-download-uri`: the source, except that
    /// a `models:/<model_id>` source is the logged model's artifact location, and a
    /// `models:/NAME/N` source is that version's download URI.
    pub async fn get_model_version_download_uri(
        &self,
        name: &str,
        version: &str,
    ) -> Result<String> {
        let mut uri = self
            .store
            .get_model_version_download_uri(name, version)
            .await?;
        // Follow models:/ chains (bounded: a chain can only point at older versions).
        for _ in 0..8 {
            if !uri.starts_with("models:") {
                break;
            }
            match ModelUri::parse(&uri) {
                Some(ModelUri::LoggedModel(id)) => {
                    uri = self.store.get_logged_model(&id).await?.info.artifact_uri;
                }
                Some(ModelUri::Version { name, version }) => {
                    uri = self
                        .store
                        .get_model_version_download_uri(&name, &version)
                        .await?;
                }
                _ => break,
            }
        }
        Ok(uri)
    }

    /// Points an alias at a version, recording who (the caller) and why, and publishes
    /// `alias_moved`.
    pub async fn set_registered_model_alias(
        &self,
        mut req: SetAlias,
        actor: &Principal,
    ) -> Result<AliasEvent> {
        req.actor = Some(actor.name.clone());
        let event = self.store.set_registered_model_alias(req).await?;
        self.publish_alias_event(&event);
        Ok(event)
    }

    /// Deletes an alias, recording who and why, and publishes `alias_moved` (to no version).
    pub async fn delete_registered_model_alias(
        &self,
        name: &str,
        alias: &str,
        actor: &Principal,
        reason: Option<&str>,
    ) -> Result<AliasEvent> {
        let event = self
            .store
            .delete_registered_model_alias(name, alias, &actor.name, reason)
            .await?;
        self.publish_alias_event(&event);
        Ok(event)
    }

    /// Deletes a model version; publishes `alias_moved` for each alias that pointed at it.
    pub async fn delete_model_version(
        &self,
        name: &str,
        version: &str,
        actor: &Principal,
    ) -> Result<Vec<AliasEvent>> {
        let events = self
            .store
            .delete_model_version(name, version, &actor.name)
            .await?;
        for event in &events {
            self.publish_alias_event(event);
        }
        Ok(events)
    }

    /// Deletes a registered model; publishes `alias_moved` for each of its aliases.
    pub async fn delete_registered_model(
        &self,
        name: &str,
        actor: &Principal,
    ) -> Result<Vec<AliasEvent>> {
        let events = self
            .store
            .delete_registered_model(name, &actor.name)
            .await?;
        for event in &events {
            self.publish_alias_event(event);
        }
        Ok(events)
    }

    /// Moves a version to a stage (optionally archiving the others in it); publishes
    /// `stage_changed` for the version and for each archived one.
    pub async fn transition_model_version_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing_versions: bool,
    ) -> Result<StageTransition> {
        let transition = self
            .store
            .transition_model_version_stage(name, version, stage, archive_existing_versions)
            .await?;
        let mv = &transition.model_version;
        let timestamp = mv.last_updated_timestamp;
        if transition.previous_stage != mv.current_stage {
            self.events.publish(RegistryEvent::StageChanged {
                name: mv.name.clone(),
                version: mv.version.clone(),
                from_stage: transition.previous_stage.clone(),
                to_stage: mv.current_stage.clone(),
                timestamp,
            });
        }
        for (archived_version, from_stage) in &transition.archived {
            self.events.publish(RegistryEvent::StageChanged {
                name: mv.name.clone(),
                version: archived_version.clone(),
                from_stage: from_stage.clone(),
                to_stage: crate::entities::stages::ARCHIVED.into(),
                timestamp,
            });
        }
        Ok(transition)
    }

    /// Lists one level of the artifacts under `root_uri` (a run's or logged model's artifact
    /// location, `mlflow-artifacts:/...`) at the relative directory `path`, with entry paths
    /// relative to `root_uri` (`dir/file`), as MLflow's `artifacts/list` answers. A 0-byte file
    /// has no `file_size`, as in MLflow's proto JSON.
    pub async fn list_artifacts(
        &self,
        root_uri: &str,
        path: Option<&str>,
    ) -> std::result::Result<Vec<FileInfo>, ArtifactError> {
        let Some(root) = artifact_path_of_uri(root_uri)? else {
            return Err(ArtifactError::InvalidParameter(format!(
                "artifacts at {root_uri:?} are not served by this server's artifact proxy \
                 (mlflow-artifacts:/...); list them where they are stored"
            )));
        };
        let rel = path.map(|p| p.trim_matches('/')).filter(|p| !p.is_empty());
        let dir = match rel {
            Some(rel) => {
                let rel_path = ArtifactPath::parse(rel)?;
                ArtifactPath::join_opt(root.as_ref(), rel_path.as_str())?
            }
            None => match root {
                Some(root) => root,
                None => {
                    return self.artifacts.list(None).await;
                }
            },
        };
        let mut files = self.artifacts.list(Some(&dir)).await?;
        for file in &mut files {
            if let Some(rel) = rel {
                file.path = format!("{rel}/{}", file.path);
            }
            if file.file_size == Some(0) {
                file.file_size = None;
            }
        }
        Ok(files)
    }
}

/// The alias move an [`AliasEvent`] records, as a [`RegistryEvent`].
pub fn alias_moved(event: &AliasEvent) -> RegistryEvent {
    RegistryEvent::AliasMoved {
        name: event.name.clone(),
        alias: event.alias.clone(),
        from_version: event.from_version.clone(),
        to_version: event.to_version.clone(),
        actor: event.actor.clone(),
        reason: event.reason.clone(),
        timestamp: event.timestamp,
    }
}

/// Where a `mlflow-artifacts:` URI points in the artifact store: `Ok(Some(Some(path)))`, or
/// `Ok(Some(None))` for the store's root; `Ok(None)` for a URI of another scheme (not served by
/// the proxy); an error for a proxy URI whose path is not safe.
pub fn artifact_path_of_uri(
    uri: &str,
) -> std::result::Result<Option<Option<ArtifactPath>>, ArtifactError> {
    let parts = UriParts::parse(uri);
    if parts.scheme != MLFLOW_ARTIFACTS_SCHEME {
        return Ok(None);
    }
    let path = parts.path.trim_matches('/');
    if path.is_empty() {
        return Ok(Some(None));
    }
    Ok(Some(Some(ArtifactPath::parse(path)?)))
}

fn missing(name: &str) -> RegistryError {
    RegistryError::invalid(format!("Missing value for required parameter '{name}'."))
}

fn invalid_source(source: &str, id_name: &str) -> RegistryError {
    RegistryError::invalid(format!(
        "Invalid model version source: '{source}'. The {id_name} request parameter must identify \
         the resource that contains the source."
    ))
}

/// Writes a JSON list as Python's `json.dumps` does (`", "` and `": "` separators), which is what
/// MLflow stores in `mlflow.modelVersions`.
fn python_json_list(items: &[serde_json::Value]) -> String {
    fn write(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write(x, out);
                }
                out.push(']');
            }
            serde_json::Value::Object(o) => {
                out.push('{');
                for (i, (k, x)) in o.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&serde_json::Value::from(k.as_str()).to_string());
                    out.push_str(": ");
                    write(x, out);
                }
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(&serde_json::Value::Array(items.to_vec()), &mut out);
    out
}

/// A URI split as Python's `urllib.parse.urlparse` does (scheme lower-cased; no params).
#[derive(Debug, Clone, PartialEq, Eq)]
struct UriParts<'a> {
    scheme: String,
    netloc: &'a str,
    path: &'a str,
}

impl<'a> UriParts<'a> {
    fn parse(uri: &'a str) -> UriParts<'a> {
        let (scheme, rest) = match uri.find(':') {
            Some(i)
                if i > 0
                    && uri[..i].starts_with(|c: char| c.is_ascii_alphabetic())
                    && uri[..i]
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
            {
                (uri[..i].to_ascii_lowercase(), &uri[i + 1..])
            }
            _ => (String::new(), uri),
        };
        let (netloc, rest) = match rest.strip_prefix("//") {
            Some(after) => {
                let end = after.find(['/', '?', '#']).unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
            None => ("", rest),
        };
        let end = rest.find(['?', '#']).unwrap_or(rest.len());
        UriParts {
            scheme,
            netloc,
            path: &rest[..end],
        }
    }
}

/// A parsed `models:/` URI (MLflow's `_parse_model_uri`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum ModelUri {
    /// `models:/<model_id>`.
    LoggedModel(String),
    /// `models:/<name>/<number>`.
    Version { name: String, version: String },
    /// `models:/<name>@<alias>`.
    Alias { name: String, alias: String },
    /// `models:/<name>/latest` or `models:/<name>/<stage>`.
    Latest { name: String, stage: Option<String> },
}

impl ModelUri {
    fn parse(uri: &str) -> Option<ModelUri> {
        let parts = UriParts::parse(uri);
        if parts.scheme != "models" {
            return None;
        }
        let path = parts.path;
        if !path.starts_with('/') || path.len() <= 1 {
            return None;
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if segments.len() > 2 || segments[0].trim().is_empty() {
            return None;
        }
        if let [name, suffix] = segments[..] {
            if suffix.trim().is_empty() {
                return None;
            }
            return Some(if suffix.chars().all(|c| c.is_ascii_digit()) {
                ModelUri::Version {
                    name: name.to_owned(),
                    version: suffix.to_owned(),
                }
            } else if suffix.eq_ignore_ascii_case("latest") {
                ModelUri::Latest {
                    name: name.to_owned(),
                    stage: None,
                }
            } else {
                ModelUri::Latest {
                    name: name.to_owned(),
                    stage: Some(suffix.to_owned()),
                }
            });
        }
        if path.contains('@') {
            let (name, alias) = segments[0].rsplit_once('@')?;
            if alias.trim().is_empty() {
                return None;
            }
            return Some(ModelUri::Alias {
                name: name.to_owned(),
                alias: alias.to_owned(),
            });
        }
        Some(ModelUri::LoggedModel(segments[0].to_owned()))
    }
}

/// The logged model a `models:/<model_id>` source names.
fn logged_model_id_of(source: &str) -> Option<&str> {
    let parts = UriParts::parse(source);
    if parts.scheme != "models" || !parts.netloc.is_empty() {
        return None;
    }
    let id = parts.path.strip_prefix('/')?;
    (!id.is_empty() && !id.contains(['/', '@'])).then_some(id)
}

/// The run id of a `runs:/<run_id>/<path>` URI.
fn runs_uri_run_id(uri: &str) -> Result<String> {
    let parts = UriParts::parse(uri);
    let bad = || {
        RegistryError::invalid(format!(
            "Not a proper runs:/ URI: {uri}. Runs URIs must be of the form 'runs:/<run_id>/run-relative/path/to/artifact'"
        ))
    };
    let path = parts.path.strip_prefix('/').ok_or_else(bad)?;
    let run_id = path.split('/').next().unwrap_or_default();
    if run_id.is_empty() {
        return Err(bad());
    }
    Ok(run_id.to_owned())
}

/// Percent-decodes `s` (and `+` as a space when `plus` is set); invalid escapes stay as they are.
pub(crate) fn percent_decode(s: &str, plus: bool) -> std::borrow::Cow<'_, str> {
    if !(s.contains('%') || plus && s.contains('+')) {
        return std::borrow::Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(a), Some(b)) => {
                        out.push((a * 16 + b) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Decodes until nothing changes (MLflow's iterative `unquote_plus`).
fn unquote_all(s: &str) -> String {
    let mut current = s.to_owned();
    loop {
        let next = percent_decode(&current, true).into_owned();
        if next == current {
            return current;
        }
        current = next;
    }
}

/// POSIX `normpath` of an absolute path.
fn normpath_abs(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// MLflow's `_validate_non_local_source_contains_relative_paths`.
fn validate_no_relative_paths(source: &str) -> Result<()> {
    let invalid = || {
        RegistryError::invalid(format!(
            "Invalid model version source: '{source}'. If supplying a source as an http, https, \
             local file path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must be \
             provided without relative path references present. Please provide an absolute path."
        ))
    };
    let decoded = unquote_all(source);
    let parsed_path = UriParts::parse(&decoded).path.trim_end_matches('/');
    let mut source_path = String::with_capacity(parsed_path.len());
    for c in parsed_path.chars() {
        if c == '/' && source_path.ends_with('/') {
            continue;
        }
        source_path.push(c);
    }
    if source_path.contains('\0') || decoded.split('/').any(|p| p == "..") {
        return Err(invalid());
    }
    if !source_path.starts_with('/') || normpath_abs(&source_path) != source_path {
        return Err(invalid());
    }
    Ok(())
}

/// MLflow's `is_local_uri`: no scheme, or `file:` without a remote host.
fn is_local_uri(uri: &str) -> bool {
    let parts = UriParts::parse(uri);
    match parts.scheme.as_str() {
        "" => true,
        "file" => {
            let host = parts.netloc.rsplit('@').next().unwrap_or_default();
            let host = host.split(':').next().unwrap_or_default();
            host.is_empty() || host == "localhost" || host == "127.0.0.1"
        }
        // A Windows drive letter (`C:/...`).
        s if s.len() == 1 => true,
        _ => false,
    }
}

/// The local file system path of a local URI (`file:///x`, `/x`), lexically normalized.
fn local_path_of(uri: &str) -> Option<String> {
    let parts = UriParts::parse(uri);
    let path = match parts.scheme.as_str() {
        "" => uri,
        "file" => parts.path,
        _ => return None,
    };
    let path = percent_decode(path, false);
    let absolute = if path.starts_with('/') {
        path.into_owned()
    } else {
        let cwd = std::env::current_dir().ok()?;
        format!("{}/{}", cwd.display(), path)
    };
    Some(normpath_abs(&absolute))
}

/// Whether the local path `source` lies inside the local directory `root` (or is it).
fn local_path_within(source: &str, root: &str) -> bool {
    if !is_local_uri(root) {
        return false;
    }
    match (local_path_of(source), local_path_of(root)) {
        (Some(s), Some(r)) => s == r || s.starts_with(&format!("{}/", r.trim_end_matches('/'))),
        _ => false,
    }
}

/// MLflow's `_normalized_uri_parts`: lower-cased scheme and authority, decoded path segments.
fn normalized_uri_parts(uri: &str) -> (String, String, Vec<String>) {
    let parts = UriParts::parse(uri);
    let segments = parts
        .path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut current = p.to_owned();
            loop {
                let next = percent_decode(&current, false).into_owned();
                if next == current {
                    break current;
                }
                current = next;
            }
        })
        .collect();
    (parts.scheme, parts.netloc.to_ascii_lowercase(), segments)
}

/// MLflow's `_is_uri_within_root`.
fn is_uri_within_root(source: &str, root: &str) -> bool {
    let (ss, sa, sp) = normalized_uri_parts(source);
    let (rs, ra, rp) = normalized_uri_parts(root);
    ss == rs && sa == ra && !rp.is_empty() && sp.len() >= rp.len() && sp[..rp.len()] == rp[..]
}

/// MLflow's `_is_mlflow_artifact_source`: a `mlflow-artifacts:` URI, or an HTTP URL of an
/// artifact proxy.
fn is_mlflow_artifact_source(source: &str) -> bool {
    let (scheme, _, segments) = normalized_uri_parts(source);
    if scheme == MLFLOW_ARTIFACTS_SCHEME {
        return true;
    }
    const ROUTE: [&str; 4] = ["api", "2.0", "mlflow-artifacts", "artifacts"];
    (scheme == "http" || scheme == "https")
        && segments
            .windows(ROUTE.len())
            .any(|w| w.iter().zip(ROUTE).all(|(a, b)| a == b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_split_like_urlparse() {
        let p = UriParts::parse("runs:/abc/model");
        assert_eq!(
            (p.scheme.as_str(), p.netloc, p.path),
            ("runs", "", "/abc/model")
        );
        let p = UriParts::parse("mlflow-artifacts://host:5000/1/x?y#z");
        assert_eq!(
            (p.scheme.as_str(), p.netloc, p.path),
            ("mlflow-artifacts", "host:5000", "/1/x")
        );
        let p = UriParts::parse("/local/dir");
        assert_eq!((p.scheme.as_str(), p.path), ("", "/local/dir"));
    }

    #[test]
    fn model_uris() {
        assert_eq!(
            ModelUri::parse("models:/m-abc"),
            Some(ModelUri::LoggedModel("m-abc".into()))
        );
        assert_eq!(
            ModelUri::parse("models:/fraud/3"),
            Some(ModelUri::Version {
                name: "fraud".into(),
                version: "3".into()
            })
        );
        assert_eq!(
            ModelUri::parse("models:/fraud@champion"),
            Some(ModelUri::Alias {
                name: "fraud".into(),
                alias: "champion".into()
            })
        );
        assert_eq!(
            ModelUri::parse("models:/fraud/Production"),
            Some(ModelUri::Latest {
                name: "fraud".into(),
                stage: Some("Production".into())
            })
        );
        assert_eq!(ModelUri::parse("models:/a/b/c"), None);
        assert_eq!(ModelUri::parse("models:/"), None);
        assert_eq!(logged_model_id_of("models:/m-1"), Some("m-1"));
        assert_eq!(logged_model_id_of("models:/a/1"), None);
    }

    #[test]
    fn relative_paths_are_refused() {
        for ok in [
            "mlflow-artifacts:/1/abc/artifacts/model",
            "s3://bucket/a/b",
            "models:/m-1",
            "runs:/abc/model",
        ] {
            validate_no_relative_paths(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "mlflow-artifacts:/1/../../etc",
            "mlflow-artifacts:/1/%2e%2e/x",
            "http://h/api/2.0/mlflow-artifacts/artifacts/..%2f..%2fx",
            "s3://bucket/a/./b",
            "s3://bucket",
            "mlflow-artifacts:/1/x%00",
        ] {
            assert!(validate_no_relative_paths(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn uri_roots() {
        assert!(is_uri_within_root(
            "mlflow-artifacts:/1/abc/artifacts/model",
            "mlflow-artifacts:/1/abc/artifacts"
        ));
        assert!(!is_uri_within_root(
            "mlflow-artifacts:/1/abd/artifacts/model",
            "mlflow-artifacts:/1/abc/artifacts"
        ));
        assert!(is_mlflow_artifact_source(
            "https://h/api/2.0/mlflow-artifacts/artifacts/1/x"
        ));
        assert!(!is_mlflow_artifact_source("s3://b/x"));
        assert!(is_local_uri("/tmp/x") && is_local_uri("file:///tmp/x"));
        assert!(!is_local_uri("file://remote/x") && !is_local_uri("s3://b/x"));
        assert!(local_path_within(
            "/data/runs/1/model",
            "file:///data/runs/1"
        ));
        assert!(!local_path_within("/data/runs/10/model", "/data/runs/1"));
        assert!(!local_path_within("/data/x", "mlflow-artifacts:/1"));
    }

    #[test]
    fn artifact_uris_map_to_proxy_paths() {
        let p = artifact_path_of_uri("mlflow-artifacts:/1/abc/artifacts")
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(p.as_str(), "1/abc/artifacts");
        assert!(artifact_path_of_uri("s3://b/x").unwrap().is_none());
        assert!(
            artifact_path_of_uri("mlflow-artifacts:/")
                .unwrap()
                .unwrap()
                .is_none()
        );
        assert!(artifact_path_of_uri("mlflow-artifacts:/1/../x").is_err());
    }

    #[test]
    fn misc() {
        assert_eq!(
            redact_uri("postgresql://u:secret@h:5432/db"),
            "postgresql://u:***@h:5432/db"
        );
        assert_eq!(redact_uri("postgresql://u@h/db"), "postgresql://u@h/db");
        assert_eq!(percent_decode("a%20b+c", true), "a b c");
        assert_eq!(percent_decode("a%2", false), "a%2");
        assert_eq!(percent_decode("%zz%41", false), "%zzA");
        assert_eq!(
            python_json_list(&[serde_json::json!({"name": "m", "version": 1})]),
            r#"[{"name": "m", "version": 1}]"#
        );
    }
}
