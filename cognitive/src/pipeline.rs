//! The seam between language pipelines and the inference server.
//!
//! A [`TextPipeline`] takes a batch of UTF-8 documents and returns one row per document in each of
//! its outputs. [`builtin_model`] wraps it as a serving [`BuiltinModel`] whose v2 signature is one
//! `TEXT` input (`BYTES`, shape `[n, 1]`) and the pipeline's outputs with a leading batch dimension,
//! so `tritonclient` calls it like any other model and requests are batched dynamically.

use std::sync::Arc;

use bytes::Bytes;
use cerulean_models::ModelStore;
use cerulean_proto::inference::model_config::SchedulingChoice;
use cerulean_proto::inference::{ModelConfig, ModelDynamicBatching};
use cerulean_serving::backend::{BackendInstance, BackendOptions, BatchInput, ModelBackend};
use cerulean_serving::repository::BuiltinModel;
use cerulean_serving::signature::{Signature, TensorSpec};
use cerulean_serving::tensor::{BytesElements, append_bytes_element};
use cerulean_serving::{DataType, ServingError, Tensor};

use crate::error::Result;

/// The name of every text pipeline's input tensor.
pub const TEXT_INPUT: &str = "TEXT";

/// A language pipeline: documents in, one row per document out.
pub trait TextPipeline: Send + Sync + 'static {
    /// The outputs, each with its per-document dims (no batch dimension), in the order
    /// [`TextRunner::run`] returns them.
    fn outputs(&self) -> Vec<TensorSpec>;

    /// Creates a runner for one serving instance: its own ONNX Runtime session and buffers.
    fn runner(&self) -> Result<Box<dyn TextRunner>>;
}

/// One instance of a pipeline, owned by one serving worker thread.
pub trait TextRunner: Send {
    /// Runs a batch of documents and returns one tensor per output, each with `texts.len()` rows
    /// (use [`fp32_rows`] and [`bytes_rows`] to build them).
    fn run(&mut self, texts: &[&str]) -> Result<Vec<Tensor>>;
}

/// `options`, with the ONNX Runtime library that `store` holds when `options` names none.
pub fn runtime_options(options: &BackendOptions, store: &ModelStore) -> BackendOptions {
    let mut options = options.clone();
    if options.onnxruntime_library.is_none() {
        options.onnxruntime_library = store.onnxruntime_library();
    }
    options
}

/// How a builtin model batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// The largest batch the pipeline is given.
    pub max_batch_size: i32,
    /// How long a request may wait for others to join its batch, in microseconds.
    pub max_queue_delay_us: u64,
}

impl Default for Batching {
    fn default() -> Self {
        Batching {
            max_batch_size: 32,
            max_queue_delay_us: 500,
        }
    }
}

/// Wraps `pipeline` as a model the server serves under `name` (version 1).
pub fn builtin_model(
    name: &str,
    pipeline: Arc<dyn TextPipeline>,
    batching: Batching,
) -> BuiltinModel {
    builtin_model_loaded_by(name, batching, move |_options| Ok(pipeline.clone()))
}

/// A model served under `name` (version 1) whose pipeline `load` builds on every (re)load from the
/// options the model's configuration resolves to. A failing `load` leaves the model unavailable with
/// the reason; it never stops the server.
pub fn builtin_model_loaded_by(
    name: &str,
    batching: Batching,
    load: impl Fn(&BackendOptions) -> Result<Arc<dyn TextPipeline>> + Send + Sync + 'static,
) -> BuiltinModel {
    let config = ModelConfig {
        name: name.to_string(),
        max_batch_size: batching.max_batch_size,
        scheduling_choice: Some(SchedulingChoice::DynamicBatching(ModelDynamicBatching {
            max_queue_delay_microseconds: batching.max_queue_delay_us,
            ..Default::default()
        })),
        ..Default::default()
    };
    BuiltinModel {
        name: name.to_string(),
        config,
        factory: Arc::new(move |options| {
            let pipeline = load(options)?;
            Ok(Box::new(TextBackend::new(pipeline)) as Box<dyn ModelBackend>)
        }),
    }
}

/// A [`ModelBackend`] over a [`TextPipeline`].
pub struct TextBackend {
    pipeline: Arc<dyn TextPipeline>,
    signature: Signature,
}

impl TextBackend {
    /// Wraps `pipeline`; its natural signature gets a dynamic batch dimension.
    pub fn new(pipeline: Arc<dyn TextPipeline>) -> TextBackend {
        let batched = |spec: TensorSpec| {
            let mut dims = vec![-1];
            dims.extend(spec.dims);
            TensorSpec::new(spec.name, spec.datatype, dims)
        };
        let signature = Signature {
            inputs: vec![TensorSpec::new(TEXT_INPUT, DataType::Bytes, vec![-1, 1])],
            outputs: pipeline.outputs().into_iter().map(batched).collect(),
        };
        TextBackend {
            pipeline,
            signature,
        }
    }
}

impl ModelBackend for TextBackend {
    fn platform(&self) -> &'static str {
        "cerulean_pipeline"
    }

    fn backend_name(&self) -> &'static str {
        "cerulean"
    }

    fn natural_signature(&self) -> &Signature {
        &self.signature
    }

    fn create_instance(&self) -> cerulean_serving::Result<Box<dyn BackendInstance>> {
        Ok(Box::new(TextInstance {
            runner: self.pipeline.runner()?,
        }))
    }
}

struct TextInstance {
    runner: Box<dyn TextRunner>,
}

impl BackendInstance for TextInstance {
    fn execute(&mut self, inputs: &[BatchInput<'_>]) -> cerulean_serving::Result<Vec<Tensor>> {
        let input = inputs
            .first()
            .ok_or_else(|| ServingError::BadRequest(format!("input '{TEXT_INPUT}' is missing")))?;
        let mut texts = Vec::new();
        for part in &input.parts {
            for element in BytesElements::new(part) {
                let text = std::str::from_utf8(element).map_err(|e| {
                    ServingError::tensor(
                        TEXT_INPUT,
                        format!("element {} is not UTF-8: {e}", texts.len()),
                    )
                })?;
                texts.push(text);
            }
        }
        Ok(self.runner.run(&texts)?)
    }
}

/// An `FP32` output of `rows` rows of `dims` each, from row-major `values`.
pub fn fp32_rows(name: &str, rows: usize, dims: &[i64], values: &[f32]) -> Result<Tensor> {
    let mut shape = vec![rows as i64];
    shape.extend_from_slice(dims);
    let data = Bytes::copy_from_slice(bytemuck::cast_slice(values));
    Ok(Tensor::new(name, DataType::Fp32, shape, data)?)
}

/// An `INT64` output of `rows` rows of `dims` each, from row-major `values`.
pub fn int64_rows(name: &str, rows: usize, dims: &[i64], values: &[i64]) -> Result<Tensor> {
    let mut shape = vec![rows as i64];
    shape.extend_from_slice(dims);
    let data = Bytes::copy_from_slice(bytemuck::cast_slice(values));
    Ok(Tensor::new(name, DataType::Int64, shape, data)?)
}

/// A `BYTES` output with one element per row (shape `[rows, 1]`).
pub fn bytes_rows<S: AsRef<[u8]>>(name: &str, rows: &[S]) -> Result<Tensor> {
    let mut data = Vec::with_capacity(rows.iter().map(|r| r.as_ref().len() + 4).sum());
    for row in rows {
        append_bytes_element(&mut data, row.as_ref());
    }
    Ok(Tensor::new(
        name,
        DataType::Bytes,
        vec![rows.len() as i64, 1],
        Bytes::from(data),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cerulean_serving::tensor::encode_bytes_elements;

    struct Lengths;

    impl TextPipeline for Lengths {
        fn outputs(&self) -> Vec<TensorSpec> {
            vec![
                TensorSpec::new("LENGTH", DataType::Fp32, vec![1]),
                TensorSpec::new("UPPER", DataType::Bytes, vec![1]),
            ]
        }

        fn runner(&self) -> Result<Box<dyn TextRunner>> {
            Ok(Box::new(LengthsRunner))
        }
    }

    struct LengthsRunner;

    impl TextRunner for LengthsRunner {
        fn run(&mut self, texts: &[&str]) -> Result<Vec<Tensor>> {
            let lengths: Vec<f32> = texts.iter().map(|t| t.chars().count() as f32).collect();
            let upper: Vec<String> = texts.iter().map(|t| t.to_uppercase()).collect();
            Ok(vec![
                fp32_rows("LENGTH", texts.len(), &[1], &lengths)?,
                bytes_rows("UPPER", &upper)?,
            ])
        }
    }

    #[test]
    fn signature_has_a_batch_dimension() {
        let backend = TextBackend::new(Arc::new(Lengths));
        let sig = backend.natural_signature();
        assert_eq!(sig.inputs[0].name, TEXT_INPUT);
        assert_eq!(sig.inputs[0].dims, vec![-1, 1]);
        assert_eq!(sig.outputs[0].dims, vec![-1, 1]);
        assert_eq!(sig.outputs[1].datatype, DataType::Bytes);
    }

    #[test]
    fn a_batch_of_parts_runs_as_one() {
        let backend = TextBackend::new(Arc::new(Lengths));
        let mut instance = backend.create_instance().unwrap();
        let first = encode_bytes_elements([b"ab".as_slice(), "héllo".as_bytes()]);
        let second = encode_bytes_elements([b"xyz".as_slice()]);
        let spec = backend.natural_signature().inputs[0].clone();
        let outputs = instance
            .execute(&[BatchInput {
                spec: &spec,
                shape: vec![3, 1],
                parts: vec![&first, &second],
            }])
            .unwrap();
        assert_eq!(outputs[0].shape, vec![3, 1]);
        let lengths: Vec<f32> = outputs[0]
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(lengths, vec![2.0, 5.0, 3.0]);
        let upper: Vec<&[u8]> = BytesElements::new(&outputs[1].data).collect();
        assert_eq!(upper, vec![b"AB".as_slice(), "HÉLLO".as_bytes(), b"XYZ"]);
    }

    #[test]
    fn invalid_utf8_names_the_tensor() {
        let backend = TextBackend::new(Arc::new(Lengths));
        let mut instance = backend.create_instance().unwrap();
        let bad = encode_bytes_elements([[0xff_u8, 0xfe].as_slice()]);
        let spec = backend.natural_signature().inputs[0].clone();
        let err = instance
            .execute(&[BatchInput {
                spec: &spec,
                shape: vec![1, 1],
                parts: vec![&bad],
            }])
            .err()
            .unwrap();
        assert!(matches!(err, ServingError::BadRequest(_)));
        assert!(err.to_string().contains("TEXT"), "{err}");
    }
}
