//! Sentence embeddings: all-MiniLM-L6-v2 through ONNX Runtime, mean pooled and L2-normalised.
//!
//! [`SentenceEncoder`] tokenises with the model's own `tokenizer.json` (WordPiece, lower-cased),
//! runs the ONNX graph (`input_ids`, `attention_mask`, `token_type_ids` → `last_hidden_state`
//! `[batch, seq, 384]`), averages the hidden states of the real tokens (the attention mask keeps
//! padding out of the mean) and scales each vector to unit length, as sentence-transformers does
//! (`Transformer → Pooling(mean) → Normalize`). [`EmbeddingPipeline`] serves it as the
//! `embeddings` model with one `EMBEDDING` FP32 `[384]` output per document.
//!
//! The packaged `tokenizer.json` pads every input to 128 tokens and truncates at 128. The encoder
//! turns the fixed padding off (each batch is padded to its own longest member) and truncates at
//! [`MAX_TOKENS`] (256, sentence-transformers' `max_seq_length` for this model; the position
//! table has 512 entries).

use std::path::{Path, PathBuf};

use cerulean_models::ModelStore;
use cerulean_serving::backend::BackendOptions;
use cerulean_serving::backend::onnx::new_session;
use cerulean_serving::signature::TensorSpec;
use cerulean_serving::{DataType, Tensor};
use ort::session::Session;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{CognitiveError, Result};
use crate::pipeline::{TextPipeline, TextRunner, fp32_rows, int64_rows, runtime_options};

/// The model name reported with every embedding (the OpenAI route's `model`).
pub const MODEL_VERSION: &str = "all-MiniLM-L6-v2";
/// The model's licence.
pub const LICENCE: &str = "Apache-2.0";
/// The length of one embedding.
pub const DIMENSIONS: usize = 384;
/// The most tokens (with `[CLS]` and `[SEP]`) the encoder reads from one text; the rest is cut.
pub const MAX_TOKENS: usize = 256;
/// The most tokens the model can read at all (its position table).
pub const POSITIONS: usize = 512;
/// The manifest entry of the ONNX model.
pub const MODEL_ENTRY: &str = "minilm-l6-v2";
/// The manifest entry of the tokenizer.
pub const TOKENIZER_ENTRY: &str = "minilm-l6-v2-tokenizer";
/// The name of the embedding pipeline's output.
pub const EMBEDDING_OUTPUT: &str = "EMBEDDING";
/// The pipeline's token-count output: INT64 `[1]` per document, `[CLS]` and `[SEP]` included
/// (what `/v1/embeddings` reports as usage).
pub const TOKENS_OUTPUT: &str = "TOKENS";

/// The most tokens (batch size × padded length) run through the model in one call; larger batches
/// are split (after sorting by length, so each part is padded as little as possible).
const TOKENS_PER_RUN: usize = 32 * 128;

/// One sentence embedding: unit length (or all zeros for a text with no tokens).
pub type Embedding = [f32; DIMENSIONS];

/// The cosine similarity of two embeddings (their dot product, as both have unit length).
pub fn cosine(a: &Embedding, b: &Embedding) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Where the encoder's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderFiles {
    /// The ONNX model (`models/minilm-l6-v2/1/model.onnx`).
    pub model: PathBuf,
    /// The tokenizer (`models/minilm-l6-v2-tokenizer/tokenizer.json`).
    pub tokenizer: PathBuf,
}

impl EncoderFiles {
    /// The files as pulled into `store`; an error naming `cerulean models pull` if one is absent.
    pub fn from_store(store: &ModelStore) -> Result<EncoderFiles> {
        let find = |entry: &str, dest: &str| {
            store.installed_file(entry, dest).ok_or_else(|| {
                CognitiveError::model(
                    MODEL_VERSION,
                    format!(
                        "{dest} of '{entry}' is not installed under {}: run `cerulean models pull {MODEL_ENTRY}`",
                        store.models_dir().display()
                    ),
                )
            })
        };
        Ok(EncoderFiles {
            model: find(MODEL_ENTRY, "1/model.onnx")?,
            tokenizer: find(TOKENIZER_ENTRY, "tokenizer.json")?,
        })
    }
}

/// Loads `tokenizer.json` with the packaged fixed padding removed and truncation at `max_tokens`.
pub fn load_tokenizer(path: &Path, max_tokens: usize) -> Result<Tokenizer> {
    let mut tokenizer = Tokenizer::from_file(path)
        .map_err(|e| CognitiveError::model(MODEL_VERSION, format!("{}: {e}", path.display())))?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        }))
        .map_err(|e| CognitiveError::model(MODEL_VERSION, format!("truncation: {e}")))?;
    Ok(tokenizer)
}

/// Embeddings of a batch of texts with the number of tokens the model read for each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encoded {
    /// One embedding per text, in input order.
    pub embeddings: Vec<Embedding>,
    /// The tokens the model read for each text, `[CLS]` and `[SEP]` included, after truncation at
    /// [`MAX_TOKENS`] (what the OpenAI route reports as `usage.prompt_tokens`, summed).
    pub tokens: Vec<usize>,
}

impl Encoded {
    /// All tokens read for the batch.
    pub fn total_tokens(&self) -> usize {
        self.tokens.iter().sum()
    }
}

/// all-MiniLM-L6-v2: texts in, unit-length 384-d embeddings out. One ONNX Runtime session; not
/// shared between threads (each serving instance makes its own).
pub struct SentenceEncoder {
    session: Session,
    tokenizer: Tokenizer,
    /// Whether the graph takes `token_type_ids` (this model does; a re-export may not).
    token_type_ids: bool,
    ids: Vec<i64>,
    mask: Vec<i64>,
    types: Vec<i64>,
}

impl std::fmt::Debug for SentenceEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEncoder")
            .field("model", &MODEL_VERSION)
            .finish_non_exhaustive()
    }
}

impl SentenceEncoder {
    /// Loads the model and tokenizer from `files`, creating the ONNX Runtime session with
    /// `options` (threads, spinning, and the runtime library the first session loads).
    pub fn load(files: &EncoderFiles, options: &BackendOptions) -> Result<SentenceEncoder> {
        SentenceEncoder::load_reading(files, options, MAX_TOKENS)
    }

    /// Like [`SentenceEncoder::load`], reading at most `max_tokens` tokens of each text (capped
    /// at [`POSITIONS`], the model's position table).
    pub fn load_reading(
        files: &EncoderFiles,
        options: &BackendOptions,
        max_tokens: usize,
    ) -> Result<SentenceEncoder> {
        let tokenizer = load_tokenizer(&files.tokenizer, max_tokens.clamp(2, POSITIONS))?;
        let session = new_session(&files.model, options)?;
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for required in ["input_ids", "attention_mask"] {
            if !names.contains(&required) {
                return Err(CognitiveError::model(
                    MODEL_VERSION,
                    format!(
                        "{} has no input '{required}' (inputs: {names:?})",
                        files.model.display()
                    ),
                ));
            }
        }
        let token_type_ids = names.contains(&"token_type_ids");
        if !session
            .outputs()
            .iter()
            .any(|o| o.name() == "last_hidden_state")
        {
            return Err(CognitiveError::model(
                MODEL_VERSION,
                format!(
                    "{} has no output 'last_hidden_state'",
                    files.model.display()
                ),
            ));
        }
        Ok(SentenceEncoder {
            session,
            tokenizer,
            token_type_ids,
            ids: Vec::new(),
            mask: Vec::new(),
            types: Vec::new(),
        })
    }

    /// Loads the files pulled into `store`. When `options` names no ONNX Runtime library, the one
    /// in `store` is used.
    pub fn from_store(store: &ModelStore, options: &BackendOptions) -> Result<SentenceEncoder> {
        let files = EncoderFiles::from_store(store)?;
        SentenceEncoder::load(&files, &runtime_options(options, store))
    }

    /// Embeds each text (an empty slice gives an empty vector).
    pub fn encode(&mut self, texts: &[&str]) -> Result<Vec<Embedding>> {
        Ok(self.encode_with_usage(texts)?.embeddings)
    }

    /// Embeds each text and counts the tokens the model read for it.
    pub fn encode_with_usage(&mut self, texts: &[&str]) -> Result<Encoded> {
        let token_ids = self.tokenize(texts)?;
        let tokens: Vec<usize> = token_ids.iter().map(Vec::len).collect();
        let mut embeddings = vec![[0.0_f32; DIMENSIONS]; texts.len()];
        // Shortest first, so each run pads its members to similar lengths.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| tokens[i]);
        let mut start = 0;
        while start < order.len() {
            let mut end = start + 1;
            while end < order.len() && tokens[order[end]] * (end + 1 - start) <= TOKENS_PER_RUN {
                end += 1;
            }
            let part: Vec<&[u32]> = order[start..end]
                .iter()
                .map(|&i| token_ids[i].as_slice())
                .collect();
            let pooled = self.run(&part)?;
            for (&i, embedding) in order[start..end].iter().zip(pooled) {
                embeddings[i] = embedding;
            }
            start = end;
        }
        Ok(Encoded { embeddings, tokens })
    }

    /// The token ids of each text, `[CLS]` and `[SEP]` included, truncated at [`MAX_TOKENS`] (or
    /// the limit given to [`SentenceEncoder::load_reading`]).
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        texts
            .iter()
            .map(|text| {
                self.tokenizer
                    .encode(*text, true)
                    .map(|e| e.get_ids().to_vec())
                    .map_err(|e| CognitiveError::BadInput(format!("cannot tokenise the text: {e}")))
            })
            .collect()
    }

    /// Runs one padded batch and pools it.
    fn run(&mut self, batch: &[&[u32]]) -> Result<Vec<Embedding>> {
        let rows = batch.len();
        let seq = batch.iter().map(|t| t.len()).max().unwrap_or(0);
        if rows == 0 || seq == 0 {
            return Ok(vec![[0.0; DIMENSIONS]; rows]);
        }
        self.ids.clear();
        self.mask.clear();
        for tokens in batch {
            self.ids.extend(tokens.iter().map(|&t| i64::from(t)));
            self.ids.extend(std::iter::repeat_n(0, seq - tokens.len()));
            self.mask.extend(std::iter::repeat_n(1, tokens.len()));
            self.mask.extend(std::iter::repeat_n(0, seq - tokens.len()));
        }
        let shape = [rows as i64, seq as i64];
        let ids = ort::value::TensorRef::from_array_view((shape, self.ids.as_slice()))?;
        let mask = ort::value::TensorRef::from_array_view((shape, self.mask.as_slice()))?;
        self.types.clear();
        self.types.resize(rows * seq, 0);
        let outputs = if self.token_type_ids {
            let types = ort::value::TensorRef::from_array_view((shape, self.types.as_slice()))?;
            self.session.run(ort::inputs![
                "input_ids" => ids,
                "attention_mask" => mask,
                "token_type_ids" => types,
            ])?
        } else {
            self.session.run(ort::inputs![
                "input_ids" => ids,
                "attention_mask" => mask,
            ])?
        };
        let hidden = outputs.get("last_hidden_state").ok_or_else(|| {
            CognitiveError::Runtime("the model produced no 'last_hidden_state'".into())
        })?;
        let (out_shape, hidden) = hidden.try_extract_tensor::<f32>()?;
        if out_shape.len() != 3
            || out_shape[0] != rows as i64
            || out_shape[1] != seq as i64
            || out_shape[2] != DIMENSIONS as i64
        {
            return Err(CognitiveError::Runtime(format!(
                "last_hidden_state has shape {out_shape:?}, expected [{rows}, {seq}, {DIMENSIONS}]"
            )));
        }
        Ok(batch
            .iter()
            .enumerate()
            .map(|(row, tokens)| {
                let states = &hidden[row * seq * DIMENSIONS..(row + 1) * seq * DIMENSIONS];
                mean_pool(states, tokens.len())
            })
            .collect())
    }
}

/// The L2-normalised mean of the first `len` rows of `states` (`[seq, 384]`, row-major): the real
/// tokens of a right-padded row.
fn mean_pool(states: &[f32], len: usize) -> Embedding {
    let mut sum = [0.0_f32; DIMENSIONS];
    for token in states.chunks_exact(DIMENSIONS).take(len) {
        for (s, v) in sum.iter_mut().zip(token) {
            *s += v;
        }
    }
    normalise(&mut sum);
    sum
}

/// Scales `v` to unit length (a zero vector stays zero).
fn normalise(v: &mut Embedding) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The `embeddings` text pipeline: one `EMBEDDING` FP32 `[384]` row per document.
#[derive(Debug, Clone)]
pub struct EmbeddingPipeline {
    files: EncoderFiles,
    options: BackendOptions,
}

impl EmbeddingPipeline {
    /// A pipeline whose runners load `files`, each with its own session created with `options`.
    pub fn new(files: EncoderFiles, options: BackendOptions) -> EmbeddingPipeline {
        EmbeddingPipeline { files, options }
    }

    /// A pipeline over the files pulled into `store`; when `options` names no ONNX Runtime
    /// library, the one in `store` is used.
    pub fn from_store(store: &ModelStore, options: &BackendOptions) -> Result<EmbeddingPipeline> {
        Ok(EmbeddingPipeline::new(
            EncoderFiles::from_store(store)?,
            runtime_options(options, store),
        ))
    }

    /// The files the runners load.
    pub fn files(&self) -> &EncoderFiles {
        &self.files
    }
}

impl TextPipeline for EmbeddingPipeline {
    fn outputs(&self) -> Vec<TensorSpec> {
        vec![
            TensorSpec::new(EMBEDDING_OUTPUT, DataType::Fp32, vec![DIMENSIONS as i64]),
            TensorSpec::new(TOKENS_OUTPUT, DataType::Int64, vec![1]),
        ]
    }

    fn runner(&self) -> Result<Box<dyn TextRunner>> {
        Ok(Box::new(EmbeddingRunner {
            encoder: SentenceEncoder::load(&self.files, &self.options)?,
        }))
    }
}

/// One instance of the [`EmbeddingPipeline`].
struct EmbeddingRunner {
    encoder: SentenceEncoder,
}

impl TextRunner for EmbeddingRunner {
    fn run(&mut self, texts: &[&str]) -> Result<Vec<Tensor>> {
        let encoded = self.encoder.encode_with_usage(texts)?;
        let values: &[f32] = encoded.embeddings.as_flattened();
        let tokens: Vec<i64> = encoded.tokens.iter().map(|&n| n as i64).collect();
        Ok(vec![
            fp32_rows(EMBEDDING_OUTPUT, texts.len(), &[DIMENSIONS as i64], values)?,
            int64_rows(TOKENS_OUTPUT, texts.len(), &[1], &tokens)?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pool_ignores_padding_and_normalises() {
        let mut states = vec![0.0_f32; 3 * DIMENSIONS];
        states[0] = 1.0; // token 0
        states[DIMENSIONS] = 3.0; // token 1
        states[2 * DIMENSIONS + 1] = 100.0; // padding
        let pooled = mean_pool(&states, 2);
        assert!((pooled[0] - 1.0).abs() < 1e-6);
        assert_eq!(pooled[1], 0.0);
    }

    #[test]
    fn zero_vectors_stay_zero() {
        let mut v = [0.0; DIMENSIONS];
        normalise(&mut v);
        assert!(v.iter().all(|x| *x == 0.0));
    }

    #[test]
    fn missing_files_name_the_pull_command() {
        let home = tempfile::tempdir().unwrap();
        let store = ModelStore::new(home.path());
        let err = EncoderFiles::from_store(&store).unwrap_err().to_string();
        assert!(err.contains("cerulean models pull"), "{err}");
    }
}
