//! The Azure AI Language REST routes (`/language/:analyze-text`, `/text/analytics/v3.x/...`).
//!
//! [`router`] serves the synchronous Text Analytics operations in the shapes the
//! `azure-ai-textanalytics` Python SDK (5.3, 5.4) and the REST specifications define:
//!
//! | route (POST)                                             | kind                   | v2 model             |
//! |----------------------------------------------------------|------------------------|----------------------|
//! | `/language/:analyze-text?api-version=2023-04-01`         | every kind below       |                      |
//! | `/text/analytics/v3.1/languages` (and `v3.0`)            | `LanguageDetection`    | `language-detection` |
//! | `/text/analytics/v3.1/sentiment` (and `v3.0`)            | `SentimentAnalysis`    | `sentiment`          |
//! | `/text/analytics/v3.1/keyPhrases` (and `v3.0`)           | `KeyPhraseExtraction`  | `key-phrases`        |
//! | `/text/analytics/v3.1/entities/recognition/general`      | `EntityRecognition`    | `pii`                |
//! | `/text/analytics/v3.1/entities/recognition/pii` (v3.1)   | `PiiEntityRecognition` | `pii`                |
//!
//! Every route sends its valid documents to the v2 model as one `TEXT` tensor (`BYTES`, `[n, 1]`,
//! split at the model's `max_batch_size`) through [`InferenceServer::infer`], so the Azure routes,
//! the KServe routes and gRPC share one batch queue per model.
//!
//! What is honoured and what is not:
//! - `api-version` `2022-05-01` and `2023-04-01` on `:analyze-text` (both have the same shapes for
//!   these kinds); any other value is a 400 naming the supported ones.
//! - Limits (see [`Limits`]): 1 MB bodies (413), 5,120 text elements per document (a per-document
//!   `InvalidDocument` error; the other documents are still processed) and Azure's documents per
//!   request per kind (400 `InvalidDocumentBatch`).
//! - `stringIndexType`: `UnicodeCodePoint` (what the SDK sends), `Utf16CodeUnit` (offsets are
//!   converted), and `TextElements_v8` (`TextElement_v8` on v3.1), Azure's default when the
//!   parameter is absent, counted as extended grapheme clusters (`unicode-segmentation`, the
//!   current Unicode rules rather than Unicode 8's; they differ only for a few emoji sequences).
//!   Document lengths and `charactersCount` are counted in text elements, as Azure counts them.
//! - `language`: the sentiment, key-phrase, entity and PII pipelines are English only, so a
//!   document whose language is not English (`en`, `en-US`, ...) gets Azure's
//!   `UnsupportedLanguageCode` error; an absent or empty language means English, Azure's default.
//! - `countryHint` (language detection) is accepted and ignored: the detector does not use it.
//! - `opinionMining`: opinion mining is not implemented; when asked for, every sentence carries
//!   empty `targets` and `assessments`.
//! - `piiCategories` filters the entities (and what `redactedText` masks); `All` and `Default` mean
//!   no filter. `domain` accepts `none` and `phi`; `phi` adds nothing (no health categories).
//! - `modelVersion` accepts `latest` or the version the route reports ([`ModelVersions`]); any
//!   other value is Azure's `ModelVersionIncorrect`.
//! - `showStats` adds document and request statistics; `loggingOptOut` is accepted (nothing is
//!   logged anyway).
//! - Model errors map onto Azure's envelope: 503 when the model is not loaded, 429 when its queue
//!   is full.
//! - Sentiment binding ([`LanguageConfig::sentiment_model`]): `SentimentAnalysis` is answered by a
//!   registered text classifier instead of the `sentiment` model, document and sentences
//!   classified separately, with the classifier named in `modelVersion`.

mod analyze;
pub(crate) mod bound;
mod error;
mod legacy;
mod request;
mod task;
pub(crate) mod v2;

#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use cerulean_serving::server::InferenceServer;

pub use error::AzureError;

use crate::sentiment::SentimentBinding;

/// The v2 models the routes call, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelNames {
    /// Language detection (`LANGUAGE`, `NAME`, `SCORE`).
    pub language_detection: String,
    /// Sentiment (`SENTIMENT`, `SCORES`, `SENTENCES`).
    pub sentiment: String,
    /// Key phrases (`KEY_PHRASES`).
    pub key_phrases: String,
    /// PII entities (`ENTITIES`, `REDACTED`); general entity recognition maps them too.
    pub pii: String,
}

impl Default for ModelNames {
    fn default() -> Self {
        ModelNames {
            language_detection: "language-detection".to_string(),
            sentiment: "sentiment".to_string(),
            key_phrases: "key-phrases".to_string(),
            pii: "pii".to_string(),
        }
    }
}

/// The `modelVersion` each kind reports (pass each pipeline's `MODEL_VERSION`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelVersions {
    /// `LanguageDetection`.
    pub language_detection: String,
    /// `SentimentAnalysis`.
    pub sentiment: String,
    /// `KeyPhraseExtraction`.
    pub key_phrases: String,
    /// `EntityRecognition`.
    pub entities: String,
    /// `PiiEntityRecognition`.
    pub pii: String,
}

impl Default for ModelVersions {
    fn default() -> Self {
        ModelVersions {
            language_detection: "cerulean-language-detection-1".to_string(),
            sentiment: "cerulean-sentiment-1".to_string(),
            key_phrases: "cerulean-key-phrases-1".to_string(),
            entities: "cerulean-entities-1".to_string(),
            pii: "cerulean-pii-1".to_string(),
        }
    }
}

/// Request limits, Azure's synchronous-API limits by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body, in bytes (Azure: 1 MB).
    pub max_body_bytes: usize,
    /// Largest document, in text elements (Azure: 5,120).
    pub max_document_chars: usize,
    /// Documents per `LanguageDetection` request (Azure: 1,000).
    pub language_detection_documents: usize,
    /// Documents per `SentimentAnalysis` request (Azure: 10).
    pub sentiment_documents: usize,
    /// Documents per `KeyPhraseExtraction` request (Azure: 10).
    pub key_phrase_documents: usize,
    /// Documents per `EntityRecognition` request (Azure: 5).
    pub entity_documents: usize,
    /// Documents per `PiiEntityRecognition` request (Azure: 5).
    pub pii_documents: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_document_chars: 5120,
            language_detection_documents: 1000,
            sentiment_documents: 10,
            key_phrase_documents: 10,
            entity_documents: 5,
            pii_documents: 5,
        }
    }
}

/// Everything the Azure routes need besides the inference server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LanguageConfig {
    /// The v2 models to call.
    pub models: ModelNames,
    /// The `modelVersion` to report per kind.
    pub model_versions: ModelVersions,
    /// Request limits.
    pub limits: Limits,
    /// When set, `SentimentAnalysis` (on `:analyze-text` and the v3.x `sentiment` route) is
    /// answered by this registered text classifier instead of the `sentiment` model, and reports
    /// it as its `modelVersion` (`NAME@ALIAS (vN)`). While it is not served, those requests get a
    /// 503 in Azure's envelope (no silent fallback to VADER); a classifier whose labels are not a
    /// subset of positive, negative and neutral gets a 500 naming its labels.
    pub sentiment_model: Option<SentimentBinding>,
}

/// What every handler shares.
pub(crate) struct AppState {
    pub(crate) server: Arc<InferenceServer>,
    pub(crate) config: LanguageConfig,
}

/// The Azure AI Language routes over `server`'s models.
///
/// The unified route is registered as `/language/{operation}` and answers only the operation
/// `:analyze-text` (axum 0.8 refuses a literal path segment that starts with `:` unless its checks
/// are switched off, which would also switch them off for any router this one is merged into);
/// other operations get Azure's 404 envelope.
pub fn router(server: Arc<InferenceServer>, config: LanguageConfig) -> Router {
    let state = Arc::new(AppState { server, config });
    Router::new()
        .route("/language/{operation}", post(analyze::analyze_text))
        .route(
            "/text/analytics/{version}/languages",
            post(legacy::languages),
        )
        .route(
            "/text/analytics/{version}/sentiment",
            post(legacy::sentiment),
        )
        .route(
            "/text/analytics/{version}/keyPhrases",
            post(legacy::key_phrases),
        )
        .route(
            "/text/analytics/{version}/entities/recognition/general",
            post(legacy::entities),
        )
        .route(
            "/text/analytics/{version}/entities/recognition/pii",
            post(legacy::pii),
        )
        .with_state(state)
}
