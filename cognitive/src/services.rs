//! The language services as a whole: the builtin v2 models behind the Azure and OpenAI routes, each
//! loaded from the files `cerulean models pull` put under `$CERULEAN_HOME/models`, and the routes.
//!
//! A model whose files are missing is reported as not ready with the reason (and the routes that
//! need it answer 503); it never stops the server.

use std::sync::Arc;

use axum::Router;
use cerulean_models::ModelStore;
use cerulean_proto::inference::ModelParameter;
use cerulean_serving::repository::BuiltinModel;
use cerulean_serving::server::InferenceServer;

use crate::azure::{LanguageConfig, ModelNames, ModelVersions};
use crate::encoder::EmbeddingPipeline;
use crate::keyphrases::KeyPhrasePipeline;
use crate::langid::LanguageDetectionPipeline;
use crate::pii::PiiPipeline;
use crate::pipeline::{Batching, TextPipeline, builtin_model_loaded_by};
use crate::sentiment::{BoundSentiment, SentimentBinding, SentimentPipeline};
use crate::{encoder, keyphrases, langid, openai, pii, sentiment};

/// One language model: its v2 name, the version string the routes report, and its licence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LanguageModel {
    /// The v2 model name.
    pub name: &'static str,
    /// What it is.
    pub description: &'static str,
    /// The `modelVersion` the Azure routes report.
    pub model_version: &'static str,
    /// The licence of the model (or lexicon) itself.
    pub licence: &'static str,
}

/// Every language model, as served.
pub const LANGUAGE_MODELS: &[LanguageModel] = &[
    LanguageModel {
        name: "language-detection",
        description: "fastText lid.176 language identification (176 languages)",
        model_version: langid::MODEL_VERSION,
        licence: langid::LICENCE,
    },
    LanguageModel {
        name: "sentiment",
        description: "VADER lexicon and rules (no neural sentiment model ships in any package)",
        model_version: sentiment::MODEL_VERSION,
        licence: sentiment::LICENCE,
    },
    LanguageModel {
        name: openai::V2_MODEL,
        description: "all-MiniLM-L6-v2 sentence embeddings, mean pooled, L2-normalised (384)",
        model_version: encoder::MODEL_VERSION,
        licence: encoder::LICENCE,
    },
    LanguageModel {
        name: "key-phrases",
        description: "noun-phrase candidates ranked by MiniLM similarity with diversity (MMR)",
        model_version: keyphrases::MODEL_VERSION,
        licence: encoder::LICENCE,
    },
    LanguageModel {
        name: "pii",
        description: "Rampart PII token classifier with validated patterns; Azure PII categories",
        model_version: pii::MODEL_VERSION,
        licence: pii::LICENCE,
    },
];

/// The builtin v2 models of the language services, loading their files from `store`'s home.
pub fn builtin_models(store: &ModelStore) -> Vec<BuiltinModel> {
    let home = store.home().to_path_buf();
    let store = move || ModelStore::new(home.clone());
    let cheap = Batching {
        max_batch_size: 64,
        max_queue_delay_us: 0,
    };
    let encoder_batching = Batching {
        max_batch_size: 32,
        max_queue_delay_us: 0,
    };
    let mut models = Vec::new();
    let home = store.clone();
    models.push(describe(builtin_model_loaded_by(
        "language-detection",
        cheap,
        move |_| {
            Ok(Arc::new(LanguageDetectionPipeline::from_store(&home())?) as Arc<dyn TextPipeline>)
        },
    )));
    let home = store.clone();
    models.push(describe(builtin_model_loaded_by(
        "sentiment",
        cheap,
        move |_| Ok(Arc::new(SentimentPipeline::from_store(&home())?) as Arc<dyn TextPipeline>),
    )));
    let home = store.clone();
    models.push(describe(builtin_model_loaded_by(
        openai::V2_MODEL,
        encoder_batching,
        move |options| {
            Ok(Arc::new(EmbeddingPipeline::from_store(&home(), options)?) as Arc<dyn TextPipeline>)
        },
    )));
    let home = store.clone();
    models.push(describe(builtin_model_loaded_by(
        "key-phrases",
        Batching {
            max_batch_size: 8,
            max_queue_delay_us: 0,
        },
        move |options| {
            Ok(Arc::new(KeyPhrasePipeline::from_store(&home(), options)?) as Arc<dyn TextPipeline>)
        },
    )));
    let home = store.clone();
    models.push(describe(builtin_model_loaded_by(
        "pii",
        Batching {
            max_batch_size: 16,
            max_queue_delay_us: 0,
        },
        move |options| {
            Ok(Arc::new(PiiPipeline::from_store(&home(), options.clone())?)
                as Arc<dyn TextPipeline>)
        },
    )));
    models
}

/// Records the model's version and licence in its configuration's `parameters`, so
/// `GET /v2/models/{name}/config` reports them.
fn describe(mut model: BuiltinModel) -> BuiltinModel {
    if let Some(info) = LANGUAGE_MODELS.iter().find(|m| m.name == model.name) {
        for (key, value) in [
            ("model_version", info.model_version),
            ("licence", info.licence),
            ("description", info.description),
        ] {
            model.config.parameters.insert(
                key.to_string(),
                ModelParameter {
                    string_value: value.to_string(),
                },
            );
        }
    }
    model
}

/// The Azure routes' configuration for the models [`builtin_models`] serves.
pub fn language_config() -> LanguageConfig {
    LanguageConfig {
        models: ModelNames::default(),
        model_versions: ModelVersions {
            language_detection: langid::MODEL_VERSION.to_string(),
            sentiment: sentiment::MODEL_VERSION.to_string(),
            key_phrases: keyphrases::MODEL_VERSION.to_string(),
            entities: pii::MODEL_VERSION.to_string(),
            pii: pii::MODEL_VERSION.to_string(),
        },
        limits: Default::default(),
        sentiment_model: None,
    }
}

/// The Azure AI Language routes and `POST /v1/embeddings`, over `server`'s language models.
pub fn router(server: Arc<InferenceServer>) -> Router {
    LanguageServices::default().router(server)
}

/// The language services of one server: the builtin v2 models and the routes over them, with
/// sentiment analysis answered by a registered text classifier when one is bound
/// (`[cognitive.sentiment] model`, see [`crate::sentiment::binding`]).
#[derive(Debug, Clone, Default)]
pub struct LanguageServices {
    sentiment: Option<BoundSentiment>,
}

impl LanguageServices {
    /// The services, with sentiment bound to `sentiment_model` when given.
    pub fn new(sentiment_model: Option<SentimentBinding>) -> LanguageServices {
        LanguageServices {
            sentiment: sentiment_model.map(BoundSentiment::new),
        }
    }

    /// The builtin models ([`builtin_models`]); when sentiment is bound, the `sentiment` model
    /// calls the bound classifier instead of VADER (and its configuration says so).
    pub fn builtin_models(&self, store: &ModelStore) -> Vec<BuiltinModel> {
        let mut models = builtin_models(store);
        if let Some(bound) = &self.sentiment
            && let Some(model) = models.iter_mut().find(|m| m.name == "sentiment")
        {
            let pipeline = bound.pipeline();
            let batching = Batching {
                max_batch_size: model.config.max_batch_size,
                max_queue_delay_us: 0,
            };
            let mut replaced =
                builtin_model_loaded_by("sentiment", batching, move |_| Ok(pipeline.clone()));
            for (key, value) in [
                ("model_version", bound.binding().reference().to_string()),
                (
                    "description",
                    format!("the text classifier {}", bound.binding()),
                ),
            ] {
                replaced.config.parameters.insert(
                    key.to_string(),
                    ModelParameter {
                        string_value: value,
                    },
                );
            }
            *model = replaced;
        }
        models
    }

    /// The Azure AI Language routes and `POST /v1/embeddings` over `server`'s language models;
    /// attaches the sentiment binding to `server` (call it from async code).
    pub fn router(&self, server: Arc<InferenceServer>) -> Router {
        let config = LanguageConfig {
            sentiment_model: self.sentiment.as_ref().map(|b| b.binding().clone()),
            ..language_config()
        };
        if let Some(bound) = &self.sentiment {
            bound.attach(&server);
        }
        crate::azure::router(server.clone(), config).merge(openai::router(server))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cerulean_serving::backend::BackendOptions;

    #[test]
    fn every_builtin_model_is_described_with_its_licence() {
        let store = ModelStore::new(std::env::temp_dir().join("cerulean-no-such-home"));
        let models = builtin_models(&store);
        assert_eq!(models.len(), LANGUAGE_MODELS.len());
        for model in &models {
            let licence = &model.config.parameters["licence"].string_value;
            assert!(!licence.is_empty(), "{}", model.name);
        }
        let pii = models.iter().find(|m| m.name == "pii").unwrap();
        assert_eq!(pii.config.parameters["licence"].string_value, "CC-BY-4.0");
    }

    #[test]
    fn a_bound_sentiment_model_says_which_classifier_answers() {
        let store = ModelStore::new(std::env::temp_dir().join("cerulean-no-such-home"));
        let binding = "models:/my-sentiment@champion".parse().unwrap();
        let models = LanguageServices::new(Some(binding)).builtin_models(&store);
        assert_eq!(models.len(), LANGUAGE_MODELS.len());
        let sentiment = models.iter().find(|m| m.name == "sentiment").unwrap();
        let version = &sentiment.config.parameters["model_version"].string_value;
        assert_eq!(version, "my-sentiment@champion");
        // No VADER lexicon is needed: the model loads without any files.
        assert!((sentiment.factory)(&BackendOptions::default()).is_ok());
    }

    #[test]
    fn missing_files_fail_the_load_not_the_process() {
        let store = ModelStore::new(std::env::temp_dir().join("cerulean-no-such-home"));
        for model in builtin_models(&store) {
            let err = (model.factory)(&BackendOptions::default())
                .err()
                .unwrap_or_else(|| panic!("{} loaded without its files", model.name));
            assert!(!err.to_string().is_empty());
        }
    }
}
