//! `SentimentAnalysis` answered by a bound text classifier (see
//! [`crate::sentiment::binding`]) instead of the `sentiment` pipeline.
//!
//! Each document is classified as a whole and sentence by sentence (the sentences of
//! [`split_sentences`], one row each), in one call to the classifier's v2 model. The
//! classifier's `probabilities` give the confidence scores through its labels (recorded in its
//! configuration's `labels` parameter): `positive`, `neutral` and `negative` in any case, a label
//! it lacks scoring 0. A sentence's sentiment is its most probable label; a document with both
//! positive and negative sentences is `mixed`, scored with the mean of its sentences' scores (as
//! Azure and the VADER pipeline do), any other takes its own classification.

use cerulean_serving::server::InferenceServer;

use super::error::AzureError;
use super::task::{
    DocumentBody, Offsets, Scores, Sentence, SentimentBody, TaskOptions, round_scores,
};
use super::v2::infer_texts_at;
use crate::sentiment::{SentimentBinding, split_sentences};

/// The classifier's output read here.
const PROBABILITIES: &str = "probabilities";
/// Azure's labels, in [`Scores`] order.
const SENTIMENTS: [&str; 3] = ["positive", "neutral", "negative"];

/// The column of each of Azure's labels in the classifier's `labels` (`None` when it has none).
pub(crate) fn label_columns(labels: &[String]) -> Result<[Option<usize>; 3], String> {
    let mut columns = [None; 3];
    for (i, label) in labels.iter().enumerate() {
        let slot = SENTIMENTS
            .iter()
            .position(|s| s.eq_ignore_ascii_case(label.trim()))
            .ok_or_else(|| {
                format!(
                    "its labels {labels:?} are not a subset of positive, negative and neutral, \
                     so it cannot answer sentiment analysis"
                )
            })?;
        if columns[slot].replace(i).is_some() {
            return Err(format!(
                "its labels {labels:?} name '{}' twice",
                SENTIMENTS[slot]
            ));
        }
    }
    if labels.is_empty() {
        return Err("it records no labels (model.json `labels`)".to_string());
    }
    Ok(columns)
}

/// Azure's scores from one row of probabilities.
fn scores(columns: &[Option<usize>; 3], row: &[f32]) -> Scores {
    let at = |slot: usize| {
        columns[slot]
            .and_then(|c| row.get(c))
            .map_or(0.0, |p| f64::from(*p))
    };
    Scores {
        positive: at(0),
        neutral: at(1),
        negative: at(2),
    }
}

/// The most probable of Azure's labels.
fn label(s: &Scores) -> &'static str {
    let values = [s.positive, s.neutral, s.negative];
    let mut best = 0;
    for i in 1..3 {
        if values[i] > values[best] {
            best = i;
        }
    }
    SENTIMENTS[best]
}

/// The labels the served classifier records, as its configuration's `labels` parameter.
fn labels(server: &InferenceServer, binding: &SentimentBinding) -> Result<Vec<String>, AzureError> {
    let version = binding.version();
    let model = server
        .model(&binding.model, version.as_deref())
        .map_err(|e| AzureError::ModelUnavailable {
            model: binding.to_string(),
            message: format!(
                "the sentiment binding names a model this server does not serve (yet): {e}"
            ),
        })?;
    let json = model
        .config()
        .parameters
        .get("labels")
        .map(|p| p.string_value.as_str())
        .unwrap_or("[]");
    serde_json::from_str(json).map_err(|e| {
        AzureError::Internal(format!(
            "sentiment model {binding}: its `labels` parameter is not a JSON list: {e}"
        ))
    })
}

/// One document classified: its sentiment, scores and sentences (code-point offsets, scores as
/// the classifier gave them).
#[derive(Debug, Clone)]
pub(crate) struct Classified {
    pub(crate) sentiment: &'static str,
    pub(crate) scores: Scores,
    pub(crate) sentences: Vec<Sentence>,
}

/// Classifies each text and its sentences with the bound classifier; returns the documents and
/// the `modelVersion` to report.
pub(crate) async fn classify(
    server: &InferenceServer,
    binding: &SentimentBinding,
    texts: &[&str],
) -> Result<(Vec<Classified>, String), AzureError> {
    let labels = labels(server, binding)?;
    let columns = label_columns(&labels)
        .map_err(|m| AzureError::Internal(format!("sentiment model {binding}: {m}")))?;
    let split: Vec<_> = texts.iter().map(|t| split_sentences(t)).collect();
    let mut rows: Vec<&str> = Vec::new();
    for (text, sentences) in texts.iter().zip(&split) {
        rows.push(text);
        rows.extend(sentences.iter().map(|s| s.text));
    }
    let version = binding.version();
    let out = infer_texts_at(
        server,
        &binding.model,
        version.as_deref(),
        &rows,
        &[PROBABILITIES],
    )
    .await?;
    let probabilities = out.fp32(PROBABILITIES, labels.len())?;
    let mut next = probabilities.iter().map(|row| scores(&columns, row));
    let mut too_few = || {
        next.next()
            .ok_or_else(|| AzureError::Internal("the classifier returned too few rows".into()))
    };
    let mut documents = Vec::with_capacity(texts.len());
    for spans in split {
        let whole = too_few()?;
        let mut sentences = Vec::with_capacity(spans.len());
        for span in spans {
            let s = too_few()?;
            sentences.push(Sentence {
                text: span.text.to_string(),
                sentiment: label(&s).to_string(),
                confidence_scores: s,
                offset: span.offset,
                length: span.length,
                targets: None,
                assessments: None,
            });
        }
        let has = |l: &str| sentences.iter().any(|s| s.sentiment == l);
        let (sentiment, scores) = if has("positive") && has("negative") {
            let n = sentences.len() as f64;
            let mean = |f: fn(&Scores) -> f64| {
                sentences
                    .iter()
                    .map(|s| f(&s.confidence_scores))
                    .sum::<f64>()
                    / n
            };
            let mixed = Scores {
                positive: mean(|s| s.positive),
                neutral: mean(|s| s.neutral),
                negative: mean(|s| s.negative),
            };
            ("mixed", mixed)
        } else {
            (label(&whole), whole)
        };
        documents.push(Classified {
            sentiment,
            scores,
            sentences,
        });
    }
    Ok((documents, binding.model_version(out.version())))
}

/// The route's bodies for `texts` by the bound classifier, and the `modelVersion` to report.
pub(crate) async fn sentiment_bodies(
    server: &InferenceServer,
    binding: &SentimentBinding,
    texts: &[&str],
    options: &TaskOptions,
) -> Result<(Vec<DocumentBody>, String), AzureError> {
    let (documents, version) = classify(server, binding, texts).await?;
    let bodies = documents
        .into_iter()
        .zip(texts)
        .map(|(doc, text)| {
            let offsets = Offsets::new(text, options.string_index);
            let sentences = doc
                .sentences
                .into_iter()
                .map(|s| {
                    let (offset, length) = offsets.span(s.offset, s.length);
                    Sentence {
                        offset,
                        length,
                        confidence_scores: round_scores(s.confidence_scores),
                        targets: options.opinion_mining.then(Vec::new),
                        assessments: options.opinion_mining.then(Vec::new),
                        ..s
                    }
                })
                .collect();
            DocumentBody::Sentiment(SentimentBody {
                sentiment: doc.sentiment.to_string(),
                confidence_scores: round_scores(doc.scores),
                sentences,
            })
        })
        .collect();
    Ok((bodies, version))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cerulean_proto::inference::ModelParameter;
    use cerulean_serving::config::ModelDefaults;
    use cerulean_serving::metrics::Metrics;
    use cerulean_serving::repository::{ModelRepository, RepositorySources};
    use cerulean_serving::server::ServerOptions;
    use cerulean_serving::signature::TensorSpec;
    use cerulean_serving::{DataType, Tensor};
    use http::StatusCode;
    use serde_json::json;

    use super::*;
    use crate::azure::tests::send;
    use crate::azure::{LanguageConfig, router};
    use crate::pipeline::{Batching, TextPipeline, TextRunner, builtin_model, fp32_rows};

    /// A classifier over `negative`, `neutral`, `positive`: "good" is positive, "bad" negative.
    struct Classifier;

    impl TextPipeline for Classifier {
        fn outputs(&self) -> Vec<TensorSpec> {
            vec![TensorSpec::new(PROBABILITIES, DataType::Fp32, vec![3])]
        }

        fn runner(&self) -> crate::error::Result<Box<dyn TextRunner>> {
            Ok(Box::new(Classifier))
        }
    }

    impl TextRunner for Classifier {
        fn run(&mut self, texts: &[&str]) -> crate::error::Result<Vec<Tensor>> {
            let mut values = Vec::new();
            for text in texts {
                let (good, bad) = (text.contains("good"), text.contains("bad"));
                values.extend(match (good, bad) {
                    (true, false) => [0.1, 0.1, 0.8],
                    (false, true) => [0.7, 0.2, 0.1],
                    _ => [0.2, 0.6, 0.2],
                });
            }
            Ok(vec![fp32_rows(PROBABILITIES, texts.len(), &[3], &values)?])
        }
    }

    async fn server(labels: Option<&str>) -> Arc<InferenceServer> {
        server_with(labels, Vec::new()).await
    }

    async fn server_with(
        labels: Option<&str>,
        mut builtin: Vec<cerulean_serving::repository::BuiltinModel>,
    ) -> Arc<InferenceServer> {
        if let Some(labels) = labels {
            let mut model =
                builtin_model("my-sentiment", Arc::new(Classifier), Batching::default());
            model.config.parameters.insert(
                "labels".to_string(),
                ModelParameter {
                    string_value: labels.to_string(),
                },
            );
            builtin.push(model);
        }
        let repository = ModelRepository::new(
            RepositorySources {
                roots: vec![],
                models: vec![],
                builtin,
            },
            ModelDefaults::default(),
            Metrics::new(),
        );
        repository.load_all().await;
        let server = InferenceServer::new(Arc::new(repository), ServerOptions::default());
        server.mark_ready(true);
        server
    }

    fn app(server: Arc<InferenceServer>) -> axum::Router {
        let config = LanguageConfig {
            sentiment_model: Some("models:/my-sentiment@champion".parse().unwrap()),
            ..LanguageConfig::default()
        };
        router(server, config)
    }

    async fn sentiment(app: &axum::Router, text: &str) -> (StatusCode, serde_json::Value) {
        let body = json!({"documents": [{"id": "1", "text": text, "language": "en"}]});
        let (status, value, _) = send(
            app,
            "POST",
            "/text/analytics/v3.1/sentiment",
            body.to_string(),
        )
        .await;
        (status, value)
    }

    #[tokio::test]
    async fn the_bound_classifier_answers_documents_and_sentences() {
        let app = app(server(Some(r#"["negative", "neutral", "positive"]"#)).await);
        let (status, body) = sentiment(&app, "The food was good. The service was bad.").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            body["modelVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("my-sentiment@champion (v")),
            "{body}"
        );
        let doc = &body["documents"][0];
        assert_eq!(doc["sentiment"], "mixed");
        assert_eq!(doc["sentences"][0]["sentiment"], "positive");
        assert_eq!(doc["sentences"][0]["confidenceScores"]["positive"], 0.8);
        assert_eq!(doc["sentences"][1]["sentiment"], "negative");
        assert_eq!(doc["confidenceScores"]["negative"], 0.4);
        let (_, body) = sentiment(&app, "It is a good day.").await;
        assert_eq!(body["documents"][0]["sentiment"], "positive", "{body}");
        let (_, body) = sentiment(&app, "It is a table.").await;
        assert_eq!(body["documents"][0]["sentiment"], "neutral", "{body}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_sentiment_v2_model_calls_the_bound_classifier() {
        let bound =
            crate::sentiment::BoundSentiment::new("models:/my-sentiment@champion".parse().unwrap());
        let sentiment = builtin_model("sentiment", bound.pipeline(), Batching::default());
        let labels = r#"["negative", "neutral", "positive"]"#;
        let server = server_with(Some(labels), vec![sentiment]).await;
        let texts = ["It was good.", "It was good. It was bad."];
        let err = crate::azure::v2::infer_texts(&server, "sentiment", &texts, &[])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not attached"), "{err}");
        bound.attach(&server);
        let out = crate::azure::v2::infer_texts(&server, "sentiment", &texts, &[])
            .await
            .unwrap();
        assert_eq!(out.strings("SENTIMENT").unwrap(), ["positive", "mixed"]);
        assert!((out.fp32("SCORES", 3).unwrap()[0][0] - 0.8).abs() < 1e-6);
        let sentences: Vec<Sentence> =
            serde_json::from_str(out.strings("SENTENCES").unwrap()[1]).unwrap();
        assert_eq!(sentences[1].sentiment, "negative");
        assert_eq!((sentences[1].offset, sentences[1].length), (13, 11));
    }

    #[tokio::test]
    async fn a_model_not_served_is_a_503_and_foreign_labels_a_500() {
        let (status, body) = sentiment(&app(server(None).await), "Good.").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("models:/my-sentiment@champion"), "{body}");
        let (status, body) = sentiment(&app(server(Some(r#"["spam", "ham"]"#)).await), "Hi.").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("not a subset"), "{body}");
    }

    #[test]
    fn labels_map_onto_azure_sentiments() {
        let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cols = label_columns(&labels(&["NEGATIVE", "neutral", "Positive"])).unwrap();
        assert_eq!(cols, [Some(2), Some(1), Some(0)]);
        let s = scores(&cols, &[0.1, 0.2, 0.7]);
        assert_eq!(
            (s.positive, s.negative),
            (f64::from(0.7f32), f64::from(0.1f32))
        );
        assert_eq!(label(&s), "positive");
        let binary = label_columns(&labels(&["negative", "positive"])).unwrap();
        assert_eq!(scores(&binary, &[0.9, 0.1]).neutral, 0.0);
        let err = label_columns(&labels(&["spam", "ham"])).unwrap_err();
        assert!(err.contains("not a subset"), "{err}");
        assert!(label_columns(&[]).is_err());
    }
}
