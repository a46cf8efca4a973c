//! The protocol-neutral server: what both the REST and the gRPC front ends call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cerulean_proto::inference::ModelConfig;

use crate::error::{Result, ServingError};
use crate::inference::{InferRequest, InferResponse, ModelMetadata};
use crate::model::LoadedModel;
use crate::repository::{IndexEntry, ModelRepository};
use crate::stats::StatsSnapshot;

/// The extensions listed in server metadata, which clients read to discover support.
pub const EXTENSIONS: &[&str] = &[
    "classification",
    "binary_tensor_data",
    "model_repository",
    "model_repository(unload_dependents)",
    "schedule_policy",
    "model_configuration",
    "statistics",
];

/// Server-wide switches and limits.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Whether clients may load and unload models (Triton's explicit model control).
    pub model_control: bool,
    /// Largest HTTP request body, in bytes.
    pub http_body_limit: usize,
    /// Largest gRPC message, in bytes, both ways.
    pub grpc_message_limit: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            model_control: true,
            http_body_limit: 256 * 1024 * 1024,
            grpc_message_limit: 256 * 1024 * 1024,
        }
    }
}

/// Server metadata.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerMetadata {
    /// The server's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The protocol extensions it supports.
    pub extensions: Vec<String>,
}

/// One model version's statistics.
#[derive(Debug, Clone)]
pub struct ModelStatistics {
    /// The model.
    pub name: String,
    /// The version.
    pub version: String,
    /// The counters.
    pub stats: StatsSnapshot,
}

/// The inference server shared by every front end.
pub struct InferenceServer {
    repository: Arc<ModelRepository>,
    options: ServerOptions,
    ready: AtomicBool,
}

impl InferenceServer {
    /// A server over `repository`. It reports ready once [`InferenceServer::mark_ready`] is called.
    pub fn new(repository: Arc<ModelRepository>, options: ServerOptions) -> Arc<InferenceServer> {
        Arc::new(InferenceServer {
            repository,
            options,
            ready: AtomicBool::new(false),
        })
    }

    /// The model repository.
    pub fn repository(&self) -> &Arc<ModelRepository> {
        &self.repository
    }

    /// The options the server runs with.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// Marks the server ready (after the initial load) or not ready (while shutting down).
    pub fn mark_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Liveness: the process answers.
    pub fn is_live(&self) -> bool {
        true
    }

    /// Readiness: the initial load is done and the server is not shutting down.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Server metadata.
    pub fn metadata(&self) -> ServerMetadata {
        ServerMetadata {
            name: "cerulean".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            extensions: EXTENSIONS.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// The model version a request names. A registered version that is not loaded starts loading
    /// and is answered as unavailable meanwhile.
    pub fn model(&self, name: &str, version: Option<&str>) -> Result<Arc<LoadedModel>> {
        self.repository.get_or_start_loading(name, version)
    }

    /// Whether a model (version) is ready.
    pub fn is_model_ready(&self, name: &str, version: Option<&str>) -> bool {
        self.model(name, version).is_ok()
    }

    /// Model metadata.
    pub fn model_metadata(&self, name: &str, version: Option<&str>) -> Result<ModelMetadata> {
        let model = self.model(name, version)?;
        Ok(model.metadata(self.repository.ready_versions(name)))
    }

    /// The completed model configuration.
    pub fn model_config(&self, name: &str, version: Option<&str>) -> Result<ModelConfig> {
        Ok(self.model(name, version)?.config().clone())
    }

    /// Runs an inference; a registered version that is not loaded is loaded first.
    pub async fn infer(
        &self,
        name: &str,
        version: Option<&str>,
        request: InferRequest,
    ) -> Result<InferResponse> {
        // The request holds its version until answered: a version unloaded meanwhile (an alias
        // moved) is dropped only after its requests in flight.
        let model = self.repository.get_or_load(name, version).await?;
        model.infer(request).await
    }

    /// Statistics for every ready version, or for one model (and version).
    pub fn statistics(
        &self,
        name: Option<&str>,
        version: Option<&str>,
    ) -> Result<Vec<ModelStatistics>> {
        let models = match name {
            None | Some("") => self.repository.loaded(),
            Some(name) => match version {
                Some(v) if !v.is_empty() => vec![self.model(name, Some(v))?],
                _ => {
                    let versions = self.repository.ready_versions(name);
                    if versions.is_empty() {
                        // Report the reason (unknown or not ready) the same way infer would.
                        vec![self.model(name, None)?]
                    } else {
                        versions
                            .iter()
                            .map(|v| self.model(name, Some(v)))
                            .collect::<Result<Vec<_>>>()?
                    }
                }
            },
        };
        Ok(models
            .iter()
            .map(|m| ModelStatistics {
                name: m.name().to_string(),
                version: m.version().to_string(),
                stats: m.stats(),
            })
            .collect())
    }

    /// The repository index.
    pub fn index(&self, ready_only: bool) -> Vec<IndexEntry> {
        self.repository.index(ready_only)
    }

    /// Loads or reloads a model, when model control is on.
    pub async fn load(&self, name: &str, config: Option<ModelConfig>) -> Result<()> {
        self.check_model_control()?;
        self.repository.load(name, config).await
    }

    /// Unloads a model, when model control is on.
    pub async fn unload(&self, name: &str) -> Result<()> {
        self.check_model_control()?;
        self.repository.unload(name).await
    }

    fn check_model_control(&self) -> Result<()> {
        if self.options.model_control {
            Ok(())
        } else {
            Err(ServingError::Unsupported(
                "model control is disabled on this server (started with --no-model-control)"
                    .to_string(),
            ))
        }
    }

    /// The Prometheus text exposition, with queue depths read now.
    pub fn render_metrics(&self) -> String {
        for model in self.repository.loaded() {
            model.refresh_queue_depth();
        }
        self.repository.metrics().render()
    }
}
