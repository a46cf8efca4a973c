//! The MiniLM sentence encoder as the serving crate's [`TextEncoderProvider`]: what lets the
//! candle backend serve text classifiers trained on its embeddings (architecture
//! `text-classifier`, encoder `all-MiniLM-L6-v2`), and what the trainer embeds texts with.

use cerulean_models::ModelStore;
use cerulean_serving::ServingError;
use cerulean_serving::backend::BackendOptions;
use cerulean_serving::backend::text_encoder::{TextEncoder, TextEncoderProvider, TextEncoders};

use crate::encoder::{DIMENSIONS, EncoderFiles, MODEL_VERSION, SentenceEncoder};
use crate::error::Result;
use crate::pipeline::runtime_options;

/// all-MiniLM-L6-v2 (mean pooled, L2-normalised, 384 values) under the name
/// [`MODEL_VERSION`]; each instance is its own ONNX Runtime session.
#[derive(Debug, Clone)]
pub struct MiniLmProvider {
    files: EncoderFiles,
    options: BackendOptions,
}

impl MiniLmProvider {
    /// The encoder in `files`, run with `options`.
    pub fn new(files: EncoderFiles, options: BackendOptions) -> MiniLmProvider {
        MiniLmProvider { files, options }
    }

    /// The encoder pulled into `store` (an error naming `cerulean models pull` when it is not);
    /// when `options` names no ONNX Runtime library, the one in `store` is used.
    pub fn from_store(store: &ModelStore, options: &BackendOptions) -> Result<MiniLmProvider> {
        Ok(MiniLmProvider::new(
            EncoderFiles::from_store(store)?,
            runtime_options(options, store),
        ))
    }

    /// A loaded encoder reading at most `max_tokens` tokens per text.
    pub fn encoder(&self, max_tokens: usize) -> Result<SentenceEncoder> {
        SentenceEncoder::load_reading(&self.files, &self.options, max_tokens)
    }
}

impl TextEncoderProvider for MiniLmProvider {
    fn name(&self) -> &str {
        MODEL_VERSION
    }

    fn dimensions(&self) -> usize {
        DIMENSIONS
    }

    fn create(&self, max_tokens: usize) -> cerulean_serving::Result<Box<dyn TextEncoder>> {
        let encoder = self
            .encoder(max_tokens)
            .map_err(|e| ServingError::Unavailable(e.to_string()))?;
        Ok(Box::new(Instance(encoder)))
    }
}

/// One serving instance.
struct Instance(SentenceEncoder);

impl TextEncoder for Instance {
    fn encode(&mut self, texts: &[&str]) -> cerulean_serving::Result<Vec<f32>> {
        let embeddings = self
            .0
            .encode(texts)
            .map_err(|e| ServingError::Internal(format!("{MODEL_VERSION}: {e}")))?;
        Ok(embeddings.as_flattened().to_vec())
    }
}

/// The text encoders the cognitive crate provides from `store`: MiniLM when it is pulled, none
/// otherwise (a text classifier then loads as UNAVAILABLE, naming the missing encoder).
pub fn text_encoders(store: &ModelStore, options: &BackendOptions) -> TextEncoders {
    match MiniLmProvider::from_store(store, options) {
        Ok(provider) => TextEncoders::new().with(std::sync::Arc::new(provider)),
        Err(e) => {
            tracing::info!("no text encoder for text classifiers: {e}");
            TextEncoders::new()
        }
    }
}
