//! The `text-classifier` family with `model.fine_tune_encoder = true`: the head and the encoder
//! train together.
//!
//! - Encoder: all-MiniLM-L6-v2's FP32 weights (`minilm-l6-v2-weights`, with the tokenizer and
//!   BERT configuration of `minilm-l6-v2-tokenizer`, from `cerulean models pull`) in the serving
//!   crate's [`BertEncoder`] (BERT in candle, mean pooling, unit length), its
//!   parameters trainable (`encoder.*` in the variable map). Each text is tokenized once (at most
//!   `model.max_length` tokens, padded to the longest text).
//! - Learning rates: the head learns at `train.learning_rate`, the encoder at
//!   `model.encoder_learning_rate` (default [`DEFAULT_ENCODER_LEARNING_RATE`]): a pretrained
//!   transformer forgets what it knew at a new head's rate.
//! - Head: the tabular network ([`TabularFamily`]), standardising the embeddings with the
//!   statistics of the pretrained encoder's embeddings of the training texts (a fixed affine map
//!   that the exported model applies too).
//! - Export: `model.safetensors` with the fine-tuned encoder (`encoder.*`) and the head
//!   (`layers.*`), the tokenizer and the BERT configuration beside it ([`TOKENIZER_FILE`],
//!   [`CONFIG_FILE`]), and `model.json` of architecture `text-classifier` with `fine_tuned: true`;
//!   the candle backend serves it with the encoder it carries, so no server-side encoder is
//!   needed.
//!
//! Every AdamW step updates the encoder's 22.7 million parameters too, so an epoch is far slower
//! than with a frozen encoder, and each checkpoint holds the encoder and its optimizer state
//! (about 270 MB).

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use cerulean_serving::backend::candle::bert::{
    self, BertEncoder, CONFIG_FILE, Config, TOKENIZER_FILE, read_config,
};
use tokenizers::Tokenizer;

use crate::checkpoint::Weights;
use crate::data::LoadedDataset;
use crate::error::{Result, TrainError};
use crate::export::{self, Architecture, TensorSpecJson};
use crate::families::tabular::TabularFamily;
use crate::families::text::{TEXT_INPUT, encoder_settings, text_column};
use crate::families::{Family, Network, Prepared};
use crate::spec::{Hyperparameters, JobSpec, Task};

/// The encoder's name in `model.json` (the one it was fine-tuned from).
pub const ENCODER_NAME: &str = "all-MiniLM-L6-v2";
/// The variable-map prefix of the encoder's parameters.
const ENCODER_PREFIX: &str = "encoder";
/// Texts through the encoder per pass when embedding or evaluating.
const CHUNK: usize = 32;
/// The encoder's learning rate unless `model.encoder_learning_rate` says otherwise.
pub const DEFAULT_ENCODER_LEARNING_RATE: f64 = 3e-5;

/// The pretrained encoder's files.
pub struct PretrainedBert {
    /// The weights by BERT's own names, on the host.
    pub tensors: Vec<(String, Tensor)>,
    /// The BERT configuration and its file's bytes.
    pub config: (Config, Vec<u8>),
    /// The tokenizer file's bytes.
    pub tokenizer_json: Vec<u8>,
}

/// The pretrained all-MiniLM-L6-v2 as `cerulean models pull` installed it under `$CERULEAN_HOME`.
pub fn pretrained_from_store() -> Result<Arc<PretrainedBert>> {
    let store = cerulean_models::ModelStore::from_env();
    let missing = |what: &str| {
        TrainError::Pretrained(format!(
            "fine-tuning needs all-MiniLM-L6-v2's {what}, not installed under {} (run \
             `cerulean models pull minilm-l6-v2-weights`)",
            store.models_dir().display()
        ))
    };
    let weights = store
        .installed_file("minilm-l6-v2-weights", "model.safetensors")
        .ok_or_else(|| missing("weights"))?;
    let config = store
        .installed_file("minilm-l6-v2-tokenizer", "config.json")
        .ok_or_else(|| missing("configuration"))?;
    let tokenizer = store
        .installed_file("minilm-l6-v2-tokenizer", "tokenizer.json")
        .ok_or_else(|| missing("tokenizer"))?;
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| TrainError::Pretrained(format!("cannot read {}: {e}", path.display())))
    };
    let config_bytes = read(&config)?;
    let config_parsed = read_config(&config_bytes).map_err(TrainError::Pretrained)?;
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)?
        .into_iter()
        // The pooler is not part of the sentence encoder; integer buffers are not parameters.
        .filter(|(name, t)| !name.starts_with("pooler.") && t.dtype() == DType::F32)
        .collect();
    Ok(Arc::new(PretrainedBert {
        tensors,
        config: (config_parsed, config_bytes),
        tokenizer_json: read(&tokenizer)?,
    }))
}

/// The fine-tuning text classifier (see the module documentation).
pub struct FineTunedTextFamily {
    head: TabularFamily,
    pretrained: Arc<PretrainedBert>,
    tokenizer: Tokenizer,
    max_length: usize,
    /// The encoder's learning rate over the job's.
    encoder_factor: f64,
}

/// The family for `spec` (a `text-classifier` job with `fine_tune_encoder = true`).
pub fn family(
    spec: &JobSpec,
    hyper: &Hyperparameters,
    pretrained: Arc<PretrainedBert>,
) -> Result<FineTunedTextFamily> {
    let max_length = encoder_settings(spec, ENCODER_NAME, pretrained.config.0.hidden_size)?;
    let tokenizer = tokenizer_from_json(&pretrained.tokenizer_json, max_length)?;
    Ok(FineTunedTextFamily {
        head: TabularFamily::new(
            "text-classifier (fine-tuned encoder)",
            hyper.hidden.clone(),
            hyper.activation,
            Task::Classification,
        ),
        pretrained,
        tokenizer,
        max_length,
        encoder_factor: spec
            .model
            .encoder_learning_rate
            .unwrap_or(DEFAULT_ENCODER_LEARNING_RATE)
            / hyper.learning_rate,
    })
}

/// A tokenizer from `json` that truncates at `max_length` tokens and does not pad.
fn tokenizer_from_json(json: &[u8], max_length: usize) -> Result<Tokenizer> {
    let mut tokenizer = Tokenizer::from_bytes(json)
        .map_err(|e| TrainError::Pretrained(format!("tokenizer.json: {e}")))?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(tokenizers::TruncationParams {
            max_length,
            ..Default::default()
        }))
        .map_err(|e| TrainError::Pretrained(format!("tokenizer truncation: {e}")))?;
    Ok(tokenizer)
}

/// The training network: encoder, fixed standardisation, head.
struct FineTuned {
    encoder: BertEncoder,
    head: Box<dyn Network>,
    mean: Tensor,
    inv_std: Tensor,
}

impl Network for FineTuned {
    fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let features = self
            .encoder
            .embed(ids)?
            .broadcast_sub(&self.mean)?
            .broadcast_mul(&self.inv_std)?;
        self.head.forward(&features)
    }

    fn eval_chunk_rows(&self) -> Option<usize> {
        Some(CHUNK)
    }
}

impl Family for FineTunedTextFamily {
    fn name(&self) -> &'static str {
        "text-classifier (fine-tuned encoder)"
    }

    fn prepare(
        &mut self,
        data: &LoadedDataset,
        validation_split: f64,
        seed: u64,
        device: &Device,
    ) -> Result<Prepared> {
        let text = text_column(data)?;
        let refs: Vec<&str> = text.values.iter().map(String::as_str).collect();
        let ids = bert::token_ids(&self.tokenizer, &refs, device).map_err(TrainError::data)?;
        // The pretrained encoder's embeddings give the head's standardisation (and split).
        let (config, _) = &self.pretrained.config;
        let frozen = BertEncoder::new(
            VarBuilder::from_tensors(
                self.pretrained
                    .tensors
                    .iter()
                    .map(|(n, t)| Ok((n.clone(), t.to_device(device)?)))
                    .collect::<candle_core::Result<_>>()?,
                DType::F32,
                device,
            ),
            config,
        )?;
        let mut embeddings = Vec::with_capacity(data.rows * config.hidden_size);
        for start in (0..data.rows).step_by(CHUNK) {
            let len = CHUNK.min(data.rows - start);
            let chunk = frozen.embed(&ids.narrow(0, start, len)?)?;
            embeddings.extend(chunk.flatten_all()?.to_vec1::<f32>()?);
        }
        let embedded = LoadedDataset {
            feature_names: (0..config.hidden_size)
                .map(|i| format!("embedding_{i}"))
                .collect(),
            features: embeddings,
            text: None,
            ..data.clone()
        };
        let mut prepared = self
            .head
            .prepare(&embedded, validation_split, seed, device)?;
        // The head's rows are the split's, in its order: the network reads their token ids.
        let (train_idx, val_idx) = cerulean_lake::split(data.rows, validation_split, seed)?;
        let rows = |idx: &[usize]| -> Result<Tensor> {
            let idx: Vec<u32> = idx.iter().map(|&r| r as u32).collect();
            let count = idx.len();
            let idx = Tensor::from_vec(idx, count, device)?;
            Ok(ids.index_select(&idx, 0)?)
        };
        prepared.train_x = rows(&train_idx)?;
        prepared.val_x = rows(&val_idx)?;
        prepared.description = format!(
            "'{}' tokenized (up to {} tokens, {} in the longest text), all-MiniLM-L6-v2 \
             fine-tuned: {}",
            text.name,
            self.max_length,
            ids.dim(1)?,
            prepared.description
        );
        Ok(prepared)
    }

    fn build(&self, varmap: &VarMap, device: &Device, seed: u64) -> Result<Box<dyn Network>> {
        let head = self.head.build(varmap, device, seed)?;
        {
            let mut vars = varmap
                .data()
                .lock()
                .map_err(|_| TrainError::Internal("the variable map's lock is poisoned".into()))?;
            for (name, tensor) in &self.pretrained.tensors {
                vars.insert(
                    format!("{ENCODER_PREFIX}.{name}"),
                    Var::from_tensor(&tensor.to_device(device)?)?,
                );
            }
        }
        let vb = VarBuilder::from_varmap(varmap, DType::F32, device);
        let encoder = BertEncoder::new(vb.pp(ENCODER_PREFIX), &self.pretrained.config.0)?;
        let (mean, std) = self.head.standardization()?;
        let inv: Vec<f32> = std
            .iter()
            .map(|&s| if s > 0.0 { 1.0 / s } else { 1.0 })
            .collect();
        Ok(Box::new(FineTuned {
            encoder,
            head,
            mean: Tensor::from_slice(mean, (1, mean.len()), device)?,
            inv_std: Tensor::from_vec(inv, (1, std.len()), device)?,
        }))
    }

    fn learning_rate_factor(&self, name: &str) -> f64 {
        if name.starts_with(ENCODER_PREFIX) && name[ENCODER_PREFIX.len()..].starts_with('.') {
            self.encoder_factor
        } else {
            1.0
        }
    }

    fn export(&self, weights: &Weights) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = format!("{ENCODER_PREFIX}.");
        let (encoder_weights, head_weights): (Weights, Weights) = weights
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .partition(|(k, _)| k.starts_with(&prefix));
        let (mut tensors, mut spec) = self.head.export_tensors(&head_weights)?;
        tensors.extend(encoder_weights);
        spec.architecture = Architecture::TextClassifier {
            encoder: ENCODER_NAME.to_owned(),
            max_length: self.max_length,
            head: Box::new(spec.architecture),
            fine_tuned: true,
        };
        spec.inputs = vec![TensorSpecJson {
            name: TEXT_INPUT.to_owned(),
            datatype: "BYTES".to_owned(),
            shape: vec![-1, 1],
        }];
        let mut files = export::files(export::encode_weights(&tensors)?, &spec)?;
        files.push((
            TOKENIZER_FILE.to_owned(),
            self.pretrained.tokenizer_json.clone(),
        ));
        files.push((CONFIG_FILE.to_owned(), self.pretrained.config.1.clone()));
        Ok(files)
    }
}
