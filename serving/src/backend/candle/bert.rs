//! A BERT sentence encoder in candle ([`BertEncoder`]): the encoder of a text classifier whose
//! encoder was fine-tuned (`model.json` `text-classifier` with `fine_tuned: true`), which the
//! model carries itself: its weights under `encoder.` in `model.safetensors`, its
//! [`TOKENIZER_FILE`] and BERT [`CONFIG_FILE`] beside it.
//!
//! An embedding is the mean of the last hidden states over the text's tokens, scaled to unit
//! length (sentence-transformers' all-MiniLM-L6-v2 pooling). The trainer fine-tunes this same
//! type, so training and serving run one forward pass.
//!
//! The network is written here rather than taken from candle-transformers because its BERT runs
//! candle-nn's fused layer normalization and last-dimension softmax, which record no backward
//! pass: gradients would silently stop there and fine-tuning would train nothing. Here every
//! operation is differentiable. Parameter names are Hugging Face's (`embeddings.*`,
//! `encoder.layer.{i}.attention.self.query.*`, ...), so a BERT `model.safetensors` loads as is.

use std::path::Path;
use std::sync::Arc;

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::backend::text_encoder::{TextEncoder, TextEncoderProvider};
use crate::error::{Result, ServingError};

/// The tokenizer file a fine-tuned text classifier carries.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The BERT configuration file a fine-tuned text classifier carries (Hugging Face
/// `config.json`).
pub const CONFIG_FILE: &str = "encoder_config.json";
/// The token id of `[PAD]` (positions holding it are masked out).
pub const PAD_ID: u32 = 0;

/// The BERT configuration (the fields of Hugging Face's `config.json` this encoder uses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Config {
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Width of the hidden states (and of the embedding).
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Positions the position embedding covers.
    pub max_position_embeddings: usize,
    /// Token types.
    pub type_vocab_size: usize,
    /// Layer normalization's epsilon.
    pub layer_norm_eps: f64,
    /// The feed-forward activation; only `gelu` (the exact, erf-based one) is supported.
    pub hidden_act: String,
}

/// Reads and checks a BERT configuration (Hugging Face `config.json`).
pub fn read_config(bytes: &[u8]) -> std::result::Result<Config, String> {
    let config: Config =
        serde_json::from_slice(bytes).map_err(|e| format!("invalid BERT configuration: {e}"))?;
    if config.hidden_act != "gelu" {
        return Err(format!(
            "BERT activation {:?} is not supported (only \"gelu\")",
            config.hidden_act
        ));
    }
    if config.num_attention_heads == 0
        || !config
            .hidden_size
            .is_multiple_of(config.num_attention_heads)
    {
        return Err(format!(
            "{} attention heads do not divide the hidden width {}",
            config.num_attention_heads, config.hidden_size
        ));
    }
    Ok(config)
}

/// A layer normalization made of differentiable operations.
#[derive(Debug, Clone)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn new(vb: VarBuilder<'_>, size: usize, eps: f64) -> candle_core::Result<LayerNorm> {
        Ok(LayerNorm {
            weight: vb.get(size, "weight")?,
            bias: vb.get(size, "bias")?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
        centred
            .broadcast_div(&(variance + self.eps)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// One transformer layer.
#[derive(Debug, Clone)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

impl Layer {
    fn new(vb: VarBuilder<'_>, c: &Config) -> candle_core::Result<Layer> {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let attention = vb.pp("attention");
        Ok(Layer {
            query: candle_nn::linear(h, h, attention.pp("self").pp("query"))?,
            key: candle_nn::linear(h, h, attention.pp("self").pp("key"))?,
            value: candle_nn::linear(h, h, attention.pp("self").pp("value"))?,
            attention_out: candle_nn::linear(h, h, attention.pp("output").pp("dense"))?,
            attention_norm: LayerNorm::new(
                attention.pp("output").pp("LayerNorm"),
                h,
                c.layer_norm_eps,
            )?,
            intermediate: candle_nn::linear(h, i, vb.pp("intermediate").pp("dense"))?,
            output: candle_nn::linear(i, h, vb.pp("output").pp("dense"))?,
            output_norm: LayerNorm::new(vb.pp("output").pp("LayerNorm"), h, c.layer_norm_eps)?,
        })
    }

    /// `x` `[n, length, hidden]`; `mask_bias` `[n, 1, 1, length]` (0 for tokens, a large
    /// negative number for padding).
    fn forward(&self, x: &Tensor, mask_bias: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
        let (n, length, hidden) = x.dims3()?;
        let per_head = hidden / heads;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((n, length, heads, per_head))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scores = (q.matmul(&k.t()?.contiguous()?)? / (per_head as f64).sqrt())?
            .broadcast_add(mask_bias)?;
        let probabilities = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let context = probabilities
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((n, length, hidden))?;
        let attended = self
            .attention_norm
            .forward(&(self.attention_out.forward(&context)? + x)?)?;
        let inner = self.intermediate.forward(&attended)?.gelu_erf()?;
        self.output_norm
            .forward(&(self.output.forward(&inner)? + attended)?)
    }
}

/// Reads a tokenizer that truncates at `max_length` tokens and does not pad.
pub fn read_tokenizer(path: &Path, max_length: usize) -> std::result::Result<Tokenizer, String> {
    let mut tokenizer =
        Tokenizer::from_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        }))
        .map_err(|e| format!("{}: truncation: {e}", path.display()))?;
    Ok(tokenizer)
}

/// Token ids `[texts, longest]` (U32, padded with [`PAD_ID`]) of `texts`.
pub fn token_ids(
    tokenizer: &Tokenizer,
    texts: &[&str],
    device: &Device,
) -> std::result::Result<Tensor, String> {
    let encodings = tokenizer
        .encode_batch(texts.to_vec(), true)
        .map_err(|e| format!("tokenizing: {e}"))?;
    let longest = encodings
        .iter()
        .map(|e| e.get_ids().len())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut ids = Vec::with_capacity(texts.len() * longest);
    for encoding in &encodings {
        let row = encoding.get_ids();
        ids.extend_from_slice(row);
        ids.extend(std::iter::repeat_n(PAD_ID, longest - row.len()));
    }
    Tensor::from_vec(ids, (texts.len(), longest), device).map_err(|e| e.to_string())
}

/// The BERT encoder with mean pooling and unit-length embeddings.
#[derive(Debug, Clone)]
pub struct BertEncoder {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    max_positions: usize,
    dimensions: usize,
}

impl BertEncoder {
    /// Builds the encoder from `vb` (BERT's own parameter names, e.g. `embeddings.*`,
    /// `encoder.layer.{i}.*`) and its configuration.
    pub fn new(vb: VarBuilder<'_>, config: &Config) -> candle_core::Result<BertEncoder> {
        let h = config.hidden_size;
        let embeddings = vb.pp("embeddings");
        Ok(BertEncoder {
            words: candle_nn::embedding(config.vocab_size, h, embeddings.pp("word_embeddings"))?,
            positions: candle_nn::embedding(
                config.max_position_embeddings,
                h,
                embeddings.pp("position_embeddings"),
            )?,
            token_types: candle_nn::embedding(
                config.type_vocab_size,
                h,
                embeddings.pp("token_type_embeddings"),
            )?,
            embedding_norm: LayerNorm::new(embeddings.pp("LayerNorm"), h, config.layer_norm_eps)?,
            layers: (0..config.num_hidden_layers)
                .map(|i| Layer::new(vb.pp("encoder").pp("layer").pp(i), config))
                .collect::<candle_core::Result<_>>()?,
            heads: config.num_attention_heads,
            max_positions: config.max_position_embeddings,
            dimensions: h,
        })
    }

    /// Values in one embedding.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// The unit-length embeddings `[n, dimensions]` of token ids `[n, length]` (U32; positions
    /// holding [`PAD_ID`] are ignored).
    pub fn embed(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (n, length) = ids.dims2()?;
        if length > self.max_positions {
            candle_core::bail!(
                "{length} tokens are more than the encoder's {} positions",
                self.max_positions
            );
        }
        let device = ids.device();
        let positions = Tensor::arange(0u32, length as u32, device)?;
        let mut x = self
            .words
            .forward(ids)?
            .broadcast_add(&self.positions.forward(&positions)?.unsqueeze(0)?)?
            .broadcast_add(
                &self
                    .token_types
                    .forward(&Tensor::zeros(1, DType::U32, device)?)?,
            )?;
        x = self.embedding_norm.forward(&x)?;
        let mask = ids.ne(PAD_ID)?.to_dtype(DType::F32)?;
        // 0 where a token is, -10000 where padding is (BERT's additive attention mask).
        let mask_bias = ((mask.clone() - 1.0)? * 10_000.0)?.reshape((n, 1, 1, length))?;
        for layer in &self.layers {
            x = layer.forward(&x, &mask_bias, self.heads)?;
        }
        let hidden = x;
        let weights = mask.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&weights)?.sum(1)?;
        let counts = weights.sum(1)?.clamp(1e-9f32, f32::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        mean.broadcast_div(&norm)
    }
}

/// A fine-tuned text classifier's own encoder, as a [`TextEncoderProvider`] for the candle
/// backend's text path.
pub(crate) struct CarriedEncoder {
    name: String,
    encoder: Arc<BertEncoder>,
    tokenizer: Tokenizer,
    device: Device,
}

impl CarriedEncoder {
    /// Loads the encoder a model carries: weights under `encoder.` in the safetensors at
    /// `weights`, the tokenizer and configuration beside it.
    pub(crate) fn load(
        name: &str,
        weights: &Path,
        vb: VarBuilder<'_>,
        max_length: usize,
        device: &Device,
    ) -> Result<CarriedEncoder> {
        let unavailable = |e: String| ServingError::Unavailable(format!("model.json: {e}"));
        let config_path = weights.with_file_name(CONFIG_FILE);
        let config_bytes = std::fs::read(&config_path).map_err(|e| {
            unavailable(format!(
                "the fine-tuned encoder needs {}: {e}",
                config_path.display()
            ))
        })?;
        let config = read_config(&config_bytes).map_err(unavailable)?;
        let tokenizer = read_tokenizer(&weights.with_file_name(TOKENIZER_FILE), max_length)
            .map_err(|e| unavailable(format!("the fine-tuned encoder's tokenizer: {e}")))?;
        let encoder = BertEncoder::new(vb.pp("encoder"), &config).map_err(|e| {
            unavailable(format!(
                "{} does not hold the fine-tuned encoder: {e}",
                weights.display()
            ))
        })?;
        Ok(CarriedEncoder {
            name: name.to_owned(),
            encoder: Arc::new(encoder),
            tokenizer,
            device: device.clone(),
        })
    }
}

impl TextEncoderProvider for CarriedEncoder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimensions(&self) -> usize {
        self.encoder.dimensions()
    }

    fn create(&self, _max_tokens: usize) -> Result<Box<dyn TextEncoder>> {
        Ok(Box::new(CarriedInstance {
            encoder: self.encoder.clone(),
            tokenizer: self.tokenizer.clone(),
            device: self.device.clone(),
        }))
    }
}

/// One instance of a carried encoder (the weights are shared).
struct CarriedInstance {
    encoder: Arc<BertEncoder>,
    tokenizer: Tokenizer,
    device: Device,
}

impl TextEncoder for CarriedInstance {
    fn encode(&mut self, texts: &[&str]) -> Result<Vec<f32>> {
        let ids = token_ids(&self.tokenizer, texts, &self.device)
            .map_err(|e| ServingError::BadRequest(format!("input text: {e}")))?;
        self.encoder
            .embed(&ids)
            .and_then(|e| e.flatten_all())
            .and_then(|e| e.to_vec1())
            .map_err(|e| ServingError::Internal(format!("candle failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    const CONFIG: &str = r#"{"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 6,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}"#;

    #[test]
    fn configurations_are_checked() {
        let config = read_config(CONFIG.as_bytes()).unwrap();
        assert_eq!((config.hidden_size, config.num_hidden_layers), (8, 2));
        let relu = CONFIG.replace("\"gelu\"", "\"relu\"");
        assert!(
            read_config(relu.as_bytes())
                .unwrap_err()
                .contains("\"relu\"")
        );
        let heads = CONFIG.replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 3");
        assert!(
            read_config(heads.as_bytes())
                .unwrap_err()
                .contains("3 attention heads")
        );
    }

    #[test]
    fn padding_does_not_change_an_embedding_and_gradients_reach_every_parameter() {
        let config = read_config(CONFIG.as_bytes()).unwrap();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let encoder = BertEncoder::new(vb, &config).unwrap();
        // Random weights (a variable map starts its variables at zero).
        for var in varmap.all_vars() {
            let values = Tensor::randn(0f32, 0.5, var.shape(), &Device::Cpu).unwrap();
            var.set(&values).unwrap();
        }
        let ids = Tensor::new(&[[3u32, 4, 5, 0, 0], [3, 4, 5, 6, 7]], &Device::Cpu).unwrap();
        let short = Tensor::new(&[[3u32, 4, 5]], &Device::Cpu).unwrap();
        let padded: Vec<Vec<f32>> = encoder.embed(&ids).unwrap().to_vec2().unwrap();
        let alone: Vec<Vec<f32>> = encoder.embed(&short).unwrap().to_vec2().unwrap();
        for (a, b) in padded[0].iter().zip(&alone[0]) {
            assert!((a - b).abs() < 1e-5, "{padded:?} vs {alone:?}");
        }
        let norm: f32 = padded[1].iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        // Every parameter gets a gradient (none is cut off by a kernel without a backward pass).
        let grads = encoder
            .embed(&ids)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let vars = varmap.data().lock().unwrap();
        let missing: Vec<&String> = vars
            .iter()
            .filter(|(_, v)| grads.get(v.as_tensor()).is_none())
            .map(|(n, _)| n)
            .collect();
        assert!(missing.is_empty(), "no gradient for {missing:?}");
        let too_long = Tensor::zeros((1, 7), DType::U32, &Device::Cpu).unwrap();
        assert!(encoder.embed(&too_long).is_err());
    }
}
