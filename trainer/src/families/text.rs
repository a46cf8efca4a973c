//! The `text-classifier` family: a frozen sentence encoder and a trained head.
//!
//! - Encoder: all-MiniLM-L6-v2 (ONNX Runtime, mean pooled, L2-normalised, 384 values), loaded
//!   from the prebuilt models under `$CERULEAN_HOME` (`cerulean models pull`). It is not trained:
//!   each text of `dataset.text_column` is embedded once, in batches, before the first epoch,
//!   reading at most `model.max_length` tokens (default 256, at most 512).
//! - Head: the tabular network over the embeddings, with the tabular families' split,
//!   standardisation and targets ([`TabularFamily`]): logistic regression without
//!   `model.hidden`, an MLP with it.
//! - Export: the head's `model.safetensors`, and a `model.json` whose architecture is
//!   `text-classifier` (the encoder by name, `max_length`, the head's `mlp`), with input `TEXT`
//!   BYTES `[-1, 1]` and the classification outputs (`probabilities`, `class_index`, `label`).
//!   The serving crate's candle backend serves it with the encoder its server provides.

use std::sync::Arc;

use candle_core::Device;
use candle_nn::VarMap;
use cerulean_serving::backend::BackendOptions;
use cerulean_serving::backend::text_encoder::TextEncoderProvider;

use crate::checkpoint::Weights;
use crate::data::LoadedDataset;
use crate::error::{Result, TrainError};
use crate::export::{self, Architecture, TensorSpecJson};
use crate::families::tabular::TabularFamily;
use crate::families::{Family, Network, Prepared};
use crate::spec::{Hyperparameters, JobSpec, Task};

/// The tokens read per text unless `model.max_length` says otherwise.
pub const DEFAULT_MAX_LENGTH: usize = 256;
/// The most tokens the encoder can read (its position table).
pub const MAX_LENGTH: usize = 512;
/// The name of the exported model's input.
pub const TEXT_INPUT: &str = "TEXT";
/// Texts embedded per encoder call.
const EMBED_CHUNK: usize = 256;

/// The text classifier (see the module documentation).
pub struct TextClassifierFamily {
    head: TabularFamily,
    encoder: Arc<dyn TextEncoderProvider>,
    max_length: usize,
}

/// The encoder the trainer embeds texts with: all-MiniLM-L6-v2 as `cerulean models pull`
/// installed it under `$CERULEAN_HOME`, one ONNX Runtime session using every CPU.
pub fn default_encoder() -> Result<Arc<dyn TextEncoderProvider>> {
    let store = cerulean_models::ModelStore::from_env();
    let options = BackendOptions {
        intra_op_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..BackendOptions::default()
    };
    let provider =
        cerulean_cognitive::text_encoder::MiniLmProvider::from_store(&store, &options)
            .map_err(|e| TrainError::data(format!("the text encoder is not available: {e}")))?;
    Ok(Arc::new(provider))
}

/// The family for `spec` (a `text-classifier` job) with `encoder`.
pub fn family(
    spec: &JobSpec,
    hyper: &Hyperparameters,
    encoder: Arc<dyn TextEncoderProvider>,
) -> Result<TextClassifierFamily> {
    let max_length = encoder_settings(spec, encoder.name(), encoder.dimensions())?;
    Ok(TextClassifierFamily {
        head: TabularFamily::new(
            "text-classifier",
            hyper.hidden.clone(),
            hyper.activation,
            Task::Classification,
        ),
        encoder,
        max_length,
    })
}

/// The text column a text classifier reads (`dataset.text_column`).
pub(crate) fn text_column(data: &LoadedDataset) -> Result<&crate::data::TextColumn> {
    data.text.as_ref().ok_or_else(|| {
        TrainError::spec(
            "dataset.text_column",
            "is required for family text-classifier",
        )
    })
}

/// Checks `model.embedding_dim` against the encoder's width and returns `model.max_length`
/// (default [`DEFAULT_MAX_LENGTH`], at most [`MAX_LENGTH`]).
pub(crate) fn encoder_settings(spec: &JobSpec, encoder: &str, dimensions: usize) -> Result<usize> {
    let single = super::single_setting;
    if let Some(dim) = single("model.embedding_dim", &spec.model.embedding_dim)?
        && dim != dimensions
    {
        return Err(TrainError::spec(
            "model.embedding_dim",
            format!(
                "the {encoder} encoder gives {dimensions} values per text, not {dim} (leave it out)"
            ),
        ));
    }
    let max_length =
        single("model.max_length", &spec.model.max_length)?.unwrap_or(DEFAULT_MAX_LENGTH);
    if max_length > MAX_LENGTH {
        return Err(TrainError::spec(
            "model.max_length",
            format!("the {encoder} encoder reads at most {MAX_LENGTH} tokens"),
        ));
    }
    Ok(max_length)
}

/// The embeddings of `texts`, row-major, computed in chunks by one encoder instance.
pub fn embed(
    encoder: &dyn TextEncoderProvider,
    max_length: usize,
    texts: &[String],
) -> Result<Vec<f32>> {
    let failed = |e: cerulean_serving::ServingError| {
        TrainError::data(format!("text encoder {}: {e}", encoder.name()))
    };
    let mut instance = encoder.create(max_length).map_err(failed)?;
    let mut out = Vec::with_capacity(texts.len() * encoder.dimensions());
    for chunk in texts.chunks(EMBED_CHUNK) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let values = instance.encode(&refs).map_err(failed)?;
        if values.len() != refs.len() * encoder.dimensions() {
            return Err(TrainError::Internal(format!(
                "text encoder {} gave {} values for {} texts",
                encoder.name(),
                values.len(),
                refs.len()
            )));
        }
        out.extend(values);
    }
    Ok(out)
}

impl Family for TextClassifierFamily {
    fn name(&self) -> &'static str {
        "text-classifier"
    }

    fn prepare(
        &mut self,
        data: &LoadedDataset,
        validation_split: f64,
        seed: u64,
        device: &Device,
    ) -> Result<Prepared> {
        let text = text_column(data)?;
        let dim = self.encoder.dimensions();
        // The head sees the embeddings as its features (the texts are copied once more with
        // the rest of the dataset, then dropped; they are small beside the embeddings).
        let embedded = LoadedDataset {
            feature_names: (0..dim).map(|i| format!("embedding_{i}")).collect(),
            features: embed(self.encoder.as_ref(), self.max_length, &text.values)?,
            text: None,
            ..data.clone()
        };
        let mut prepared = self
            .head
            .prepare(&embedded, validation_split, seed, device)?;
        prepared.description = format!(
            "'{}' embedded by {} ({dim} values, up to {} tokens): {}",
            text.name,
            self.encoder.name(),
            self.max_length,
            prepared.description
        );
        Ok(prepared)
    }

    fn build(&self, varmap: &VarMap, device: &Device, seed: u64) -> Result<Box<dyn Network>> {
        self.head.build(varmap, device, seed)
    }

    fn export(&self, weights: &Weights) -> Result<Vec<(String, Vec<u8>)>> {
        let (weights_bytes, mut spec) = self.head.export_parts(weights)?;
        spec.architecture = Architecture::TextClassifier {
            encoder: self.encoder.name().to_owned(),
            max_length: self.max_length,
            head: Box::new(spec.architecture),
            fine_tuned: false,
        };
        spec.inputs = vec![TensorSpecJson {
            name: TEXT_INPUT.to_owned(),
            datatype: "BYTES".to_owned(),
            shape: vec![-1, 1],
        }];
        export::files(weights_bytes, &spec)
    }
}
