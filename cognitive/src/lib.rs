//! Cerulean's prebuilt cognitive services.
//!
//! Each language capability is a [`pipeline::TextPipeline`]: pre- and post-processing around a
//! prebuilt model (or a rule-based scorer). Pipelines are served as KServe v2 models through the
//! serving crate's batching (see [`pipeline::builtin_model`]), and the Azure-shaped routes call those
//! same models, so every route shares one batch queue per model.
//!
//! | v2 model             | module         | outputs (per document)                                   |
//! |----------------------|----------------|----------------------------------------------------------|
//! | `language-detection` | [`langid`]     | `LANGUAGE` BYTES, `NAME` BYTES, `SCORE` FP32             |
//! | `sentiment`          | [`sentiment`]  | `SENTIMENT` BYTES, `SCORES` FP32 [3], `SENTENCES` BYTES  |
//! | `embeddings`         | [`encoder`]    | `EMBEDDING` FP32 [384]                                   |
//! | `key-phrases`        | [`keyphrases`] | `KEY_PHRASES` BYTES (JSON array of strings)              |
//! | `pii`                | [`pii`]        | `ENTITIES` BYTES (JSON array), `REDACTED` BYTES          |
//!
//! [`text_encoder`] lends the MiniLM encoder to the serving crate's candle backend, which serves
//! text classifiers trained on its embeddings; [`sentiment::binding`] lets such a classifier
//! answer sentiment analysis.

pub mod azure;
pub mod encoder;
pub mod error;
pub mod keyphrases;
pub mod langid;
pub mod openai;
pub mod pii;
pub mod pipeline;
pub mod sentiment;
pub mod services;
pub mod text_encoder;

pub use error::CognitiveError;
