//! Inference backends: the seam between the server and what computes a batch.
//!
//! A [`ModelBackend`] is a model file loaded once (its natural signature known); it creates
//! [`BackendInstance`]s, one per `instance_group` count, each driven by its own worker thread.

pub mod candle;
pub mod onnx;
pub mod text_encoder;

use std::path::{Path, PathBuf};

use crate::error::{Result, ServingError};
use crate::signature::{Signature, TensorSpec};
use crate::tensor::Tensor;

/// One input of a batch, handed to a backend without having been concatenated: the backend writes the
/// parts, in order, straight into its own input buffer, whose full shape is `shape`.
#[derive(Debug)]
pub struct BatchInput<'a> {
    /// The input's spec (name and datatype).
    pub spec: &'a TensorSpec,
    /// The full shape of the batched tensor.
    pub shape: Vec<i64>,
    /// The contents of each request's tensor, in batch order, in the v2 binary layout.
    pub parts: Vec<&'a [u8]>,
}

impl BatchInput<'_> {
    /// The total number of content bytes.
    pub fn byte_len(&self) -> usize {
        self.parts.iter().map(|p| p.len()).sum()
    }

    /// Copies every part into `dst`, which must be exactly [`BatchInput::byte_len`] long.
    pub fn copy_into(&self, dst: &mut [u8]) {
        let mut offset = 0;
        for part in &self.parts {
            dst[offset..offset + part.len()].copy_from_slice(part);
            offset += part.len();
        }
    }
}

/// A loaded model that can create instances to run batches.
pub trait ModelBackend: Send + Sync {
    /// Triton's platform string, e.g. `onnxruntime_onnx`.
    fn platform(&self) -> &'static str;
    /// Triton's backend name, e.g. `onnxruntime`.
    fn backend_name(&self) -> &'static str;
    /// The signature the model file itself declares: full shapes, `-1` for dynamic dimensions.
    fn natural_signature(&self) -> &Signature;
    /// Creates an independent instance; instances run concurrently on separate threads.
    fn create_instance(&self) -> Result<Box<dyn BackendInstance>>;
    /// What the model file records about itself for its configuration's `parameters` (e.g. a
    /// classifier's `labels` as a JSON array); a configured parameter of the same name wins.
    fn parameters(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// One instance of a model, owned by one worker thread.
pub trait BackendInstance: Send {
    /// Runs one batch. `inputs` follow the model's input order; the result holds every output the
    /// model declares, each with its full batched shape.
    fn execute(&mut self, inputs: &[BatchInput<'_>]) -> Result<Vec<Tensor>>;
}

/// Options shared by every backend.
#[derive(Debug, Clone)]
pub struct BackendOptions {
    /// Threads ONNX Runtime uses inside one operator.
    pub intra_op_threads: usize,
    /// Threads ONNX Runtime uses across operators.
    pub inter_op_threads: usize,
    /// Whether ONNX Runtime's idle threads spin waiting for work. Off by default: on a small machine
    /// a spinning thread takes a core from the network threads that feed it.
    pub allow_spinning: bool,
    /// The ONNX Runtime shared library, when ONNX models are to be served.
    pub onnxruntime_library: Option<PathBuf>,
    /// The text encoders that text classifiers (candle, architecture `text-classifier`) may name;
    /// none by default (see [`text_encoder`]).
    pub text_encoders: text_encoder::TextEncoders,
    /// Where the candle backend computes (CPU unless built with `cuda` and configured).
    pub candle_device: candle::device::DeviceSpec,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            intra_op_threads: 1,
            inter_op_threads: 1,
            allow_spinning: false,
            onnxruntime_library: None,
            text_encoders: text_encoder::TextEncoders::default(),
            candle_device: candle::device::DeviceSpec::Cpu,
        }
    }
}

/// The model file formats the server recognises in a version directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// `model.onnx`, run by ONNX Runtime.
    Onnx,
    /// `model.safetensors` with `model.json`, run by candle.
    Candle,
}

impl ModelFormat {
    /// The default file name of this format.
    pub fn default_file(self) -> &'static str {
        match self {
            ModelFormat::Onnx => "model.onnx",
            ModelFormat::Candle => "model.safetensors",
        }
    }

    /// The format a Triton `platform`/`backend` string names, if any.
    pub fn from_platform(platform: &str) -> Option<ModelFormat> {
        match platform {
            "onnxruntime_onnx" | "onnxruntime" | "onnx" => Some(ModelFormat::Onnx),
            "candle" => Some(ModelFormat::Candle),
            _ => None,
        }
    }

    /// Detects the format from the files in a version directory.
    pub fn detect(version_dir: &Path) -> Option<ModelFormat> {
        [ModelFormat::Onnx, ModelFormat::Candle]
            .into_iter()
            .find(|f| version_dir.join(f.default_file()).exists())
    }
}

/// Loads the model file at `path` with the backend for `format`.
pub fn load(
    format: ModelFormat,
    path: &Path,
    options: &BackendOptions,
) -> Result<Box<dyn ModelBackend>> {
    if !path.exists() {
        return Err(ServingError::Unavailable(format!(
            "model file {} does not exist",
            path.display()
        )));
    }
    match format {
        ModelFormat::Onnx => Ok(Box::new(onnx::OnnxModel::load(path, options)?)),
        ModelFormat::Candle => Ok(Box::new(candle::CandleModel::load_on(
            path,
            &options.text_encoders,
            options.candle_device,
        )?)),
    }
}
