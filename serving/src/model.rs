//! One loaded model version: its completed configuration, its queue and instances, request
//! validation, and the infer path from a request to its response.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use cerulean_proto::inference::ModelConfig;
use tokio::sync::oneshot;

use crate::backend::{self, ModelBackend, ModelFormat};
use crate::config::{self, ModelDefaults, ModelSettings};
use crate::error::{Result, ServingError};
use crate::inference::{InferRequest, InferResponse, ModelMetadata, TensorMetadata};
use crate::metrics::{Metrics, ModelMetrics};
use crate::scheduler::{Job, Scheduler};
use crate::signature::{Signature, TensorSpec};
use crate::stats::{ModelStats, StatsSnapshot};
use crate::tensor::Tensor;

/// A model version that is loaded and serving.
pub struct LoadedModel {
    name: String,
    version: u64,
    version_label: String,
    config: ModelConfig,
    settings: ModelSettings,
    signature: Arc<Signature>,
    scheduler: Scheduler,
    stats: Arc<ModelStats>,
    metrics: ModelMetrics,
}

impl LoadedModel {
    /// Loads version `version` of model `name` from `version_dir`, configured by `config` (the parsed
    /// `config.pbtxt`, or a default one when the repository has none).
    pub fn load(
        name: &str,
        version: u64,
        version_dir: &Path,
        config: &ModelConfig,
        defaults: &ModelDefaults,
        metrics: &Metrics,
    ) -> Result<LoadedModel> {
        let format = if config.platform.is_empty() && config.backend.is_empty() {
            ModelFormat::detect(version_dir)
        } else {
            ModelFormat::from_platform(&config.platform).or_else(|| ModelFormat::from_platform(&config.backend))
        }
        .ok_or_else(|| {
            ServingError::Unavailable(format!(
                "no servable model file in {} (expected model.onnx, or model.safetensors with model.json; \
                 platform '{}', backend '{}')",
                version_dir.display(),
                config.platform,
                config.backend
            ))
        })?;
        let file = if config.default_model_filename.is_empty() {
            format.default_file()
        } else {
            config.default_model_filename.as_str()
        };
        let options = config::backend_options(config, defaults)?;
        let model_backend = backend::load(format, &version_dir.join(file), &options)?;
        LoadedModel::from_backend(name, version, model_backend, config, defaults, metrics)
    }

    /// Serves `model_backend` as version `version` of model `name`, configured by `config`
    /// (auto-completed from the backend's signature where it is silent).
    pub fn from_backend(
        name: &str,
        version: u64,
        model_backend: Box<dyn ModelBackend>,
        config: &ModelConfig,
        defaults: &ModelDefaults,
        metrics: &Metrics,
    ) -> Result<LoadedModel> {
        let (config, settings) =
            config::complete(config.clone(), name, model_backend.as_ref(), defaults)?;
        let instances = (0..settings.instance_count)
            .map(|_| model_backend.create_instance())
            .collect::<Result<Vec<_>>>()?;
        let version_label = version.to_string();
        let stats = Arc::new(ModelStats::default());
        let model_metrics = metrics.for_model(name, &version_label);
        let signature = Arc::new(settings.signature.clone());
        let scheduler = Scheduler::start(
            &format!("{name}/{version}"),
            instances,
            signature.clone(),
            settings.batching.clone(),
            stats.clone(),
            model_metrics.clone(),
        )?;
        Ok(LoadedModel {
            name: name.to_string(),
            version,
            version_label,
            config,
            settings,
            signature,
            scheduler,
            stats,
            metrics: model_metrics,
        })
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version number.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The completed configuration, as `GET .../config` reports it.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The inputs and outputs (batch dimension excluded for batching models).
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Triton's `max_batch_size`.
    pub fn max_batch_size(&self) -> usize {
        self.settings.max_batch_size
    }

    /// Statistics so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Requests waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.scheduler.queue_depth()
    }

    /// Publishes the current queue depth to the metrics gauge.
    pub fn refresh_queue_depth(&self) {
        self.metrics.set_queue_depth(self.scheduler.queue_depth());
    }

    /// Model metadata; `versions` lists every version of the model being served.
    pub fn metadata(&self, versions: Vec<String>) -> ModelMetadata {
        let describe = |spec: &TensorSpec| TensorMetadata {
            name: spec.name.clone(),
            datatype: spec.datatype.as_str().to_string(),
            shape: self.full_shape(spec),
        };
        ModelMetadata {
            name: self.name.clone(),
            versions,
            platform: self.config.platform.clone(),
            inputs: self.signature.inputs.iter().map(describe).collect(),
            outputs: self.signature.outputs.iter().map(describe).collect(),
        }
    }

    fn full_shape(&self, spec: &TensorSpec) -> Vec<i64> {
        if self.settings.max_batch_size > 0 {
            std::iter::once(-1)
                .chain(spec.dims.iter().copied())
                .collect()
        } else {
            spec.dims.clone()
        }
    }

    /// Runs a request through the model's queue and returns its response. A request whose future is
    /// dropped before it runs (its client went away) is skipped by the scheduler.
    pub async fn infer(&self, request: InferRequest) -> Result<InferResponse> {
        let started = Instant::now();
        let result = self.infer_inner(request).await;
        let elapsed = started.elapsed();
        self.stats.record_request(result.is_ok(), elapsed);
        self.metrics.record_request(result.is_ok(), elapsed);
        result
    }

    async fn infer_inner(&self, request: InferRequest) -> Result<InferResponse> {
        let (inputs, rows) = self.order_inputs(request.inputs)?;
        let selected = self.select_outputs(&request.outputs)?;
        let entered = self.scheduler.enter();
        let outputs = match self.scheduler.try_execute_inline(&entered, &inputs, rows) {
            Some(result) => result?,
            None => {
                let (reply, receiver) = oneshot::channel();
                self.scheduler.submit(Job {
                    inputs,
                    rows,
                    enqueued: Instant::now(),
                    reply,
                })?;
                receiver
                    .await
                    .map_err(|_| {
                        ServingError::Unavailable("the model stopped before answering".to_string())
                    })??
                    .outputs
            }
        };
        let mut outputs: Vec<Option<Tensor>> = outputs.into_iter().map(Some).collect();
        let outputs = match selected {
            Some(indices) => indices
                .into_iter()
                .filter_map(|i| outputs[i].take())
                .collect(),
            None => outputs.into_iter().flatten().collect(),
        };
        Ok(InferResponse {
            model_name: self.name.clone(),
            model_version: self.version_label.clone(),
            id: request.id,
            outputs,
        })
    }

    /// Checks the inputs against the signature and puts them in the model's order. Returns them with
    /// the batch size they share (1 for a model that does not batch).
    fn order_inputs(&self, inputs: Vec<Tensor>) -> Result<(Vec<Tensor>, usize)> {
        let mut slots: Vec<Option<Tensor>> = vec![None; self.signature.inputs.len()];
        for tensor in inputs {
            let index = self
                .signature
                .inputs
                .iter()
                .position(|spec| spec.name == tensor.name)
                .ok_or_else(|| {
                    ServingError::BadRequest(format!(
                        "unexpected input tensor '{}' for model '{}' (it expects {})",
                        tensor.name,
                        self.name,
                        self.input_names()
                    ))
                })?;
            if slots[index].is_some() {
                return Err(ServingError::tensor(&tensor.name, "given more than once"));
            }
            slots[index] = Some(tensor);
        }
        let mut rows: Option<usize> = None;
        let mut ordered = Vec::with_capacity(slots.len());
        for (spec, slot) in self.signature.inputs.iter().zip(slots) {
            let tensor = slot.ok_or_else(|| {
                ServingError::BadRequest(format!(
                    "missing input tensor '{}' for model '{}'",
                    spec.name, self.name
                ))
            })?;
            let tensor_rows = self.check_input(spec, &tensor)?;
            match rows {
                Some(r) if r != tensor_rows => {
                    return Err(ServingError::tensor(
                        &tensor.name,
                        format!("batch size {tensor_rows} differs from the other inputs' {r}"),
                    ));
                }
                _ => rows = Some(tensor_rows),
            }
            ordered.push(tensor);
        }
        Ok((ordered, rows.unwrap_or(1)))
    }

    /// Checks one input; returns its batch size.
    fn check_input(&self, spec: &TensorSpec, tensor: &Tensor) -> Result<usize> {
        if tensor.datatype != spec.datatype {
            return Err(ServingError::tensor(
                &tensor.name,
                format!(
                    "datatype {} does not match the model's {}",
                    tensor.datatype, spec.datatype
                ),
            ));
        }
        let wrong_shape = || {
            ServingError::tensor(
                &tensor.name,
                format!(
                    "shape {:?} does not match the model's {:?}",
                    tensor.shape,
                    self.full_shape(spec)
                ),
            )
        };
        let max = self.settings.max_batch_size;
        if max == 0 {
            if !spec.accepts_shape(&tensor.shape) {
                return Err(wrong_shape());
            }
            return Ok(1);
        }
        let Some((&batch, rest)) = tensor.shape.split_first() else {
            return Err(wrong_shape());
        };
        if !spec.accepts_shape(rest) {
            return Err(wrong_shape());
        }
        let batch = usize::try_from(batch).map_err(|_| wrong_shape())?;
        if batch == 0 || batch > max {
            return Err(ServingError::tensor(
                &tensor.name,
                format!("batch size {batch} is outside 1..={max} (the model's max_batch_size)"),
            ));
        }
        Ok(batch)
    }

    /// The output indices asked for, in the order asked; `None` for all.
    fn select_outputs(
        &self,
        requested: &[crate::inference::RequestedOutput],
    ) -> Result<Option<Vec<usize>>> {
        if requested.is_empty() {
            return Ok(None);
        }
        requested
            .iter()
            .map(|r| {
                self.signature
                    .outputs
                    .iter()
                    .position(|o| o.name == r.name)
                    .ok_or_else(|| {
                        ServingError::BadRequest(format!(
                            "unknown output '{}' for model '{}'",
                            r.name, self.name
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    fn input_names(&self) -> String {
        self.signature
            .inputs
            .iter()
            .map(|i| format!("'{}'", i.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Drop for LoadedModel {
    fn drop(&mut self) {
        tracing::info!(model = %self.name, version = self.version, "model version unloaded");
    }
}
