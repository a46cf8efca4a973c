//! One synchronous task over a batch of documents, shared by the unified and the legacy routes:
//! batch checks, per-document errors, the call to the v2 model and the per-kind result shapes.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

use super::error::{AzureError, INVALID_DOCUMENT, INVALID_DOCUMENT_BATCH, MISSING_INPUT_RECORDS};
use super::request::{Document, Kind, StringIndexType, check_model_version};
use super::v2::{Outputs, V2Error, infer_texts};
use super::{AppState, LanguageConfig};

/// How a task reads its input and shapes its output.
#[derive(Debug, Clone)]
pub(crate) struct TaskOptions {
    /// How offsets and lengths are counted.
    pub(crate) string_index: StringIndexType,
    /// Whether to add statistics.
    pub(crate) show_stats: bool,
    /// Whether opinion mining was asked for (sentences then carry empty targets and assessments).
    pub(crate) opinion_mining: bool,
    /// PII categories to keep; `None` keeps every category.
    pub(crate) pii_categories: Option<Vec<String>>,
    /// The `modelVersion` asked for.
    pub(crate) model_version: Option<String>,
}

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions {
            string_index: StringIndexType::TextElements,
            show_stats: false,
            opinion_mining: false,
            pii_categories: None,
            model_version: None,
        }
    }
}

/// A task's results: the `results` object of `:analyze-text`, the whole body of the v3.x routes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TaskResults {
    pub(crate) documents: Vec<DocumentResult>,
    pub(crate) errors: Vec<DocumentError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) statistics: Option<RequestStatistics>,
    pub(crate) model_version: String,
}

/// One document's result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DocumentResult {
    pub(crate) id: String,
    #[serde(flatten)]
    pub(crate) body: DocumentBody,
    pub(crate) warnings: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) statistics: Option<DocumentStatistics>,
}

/// The kind-specific fields of a document's result.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum DocumentBody {
    Language(LanguageBody),
    Sentiment(SentimentBody),
    KeyPhrases(KeyPhrasesBody),
    Entities(EntitiesBody),
    Pii(PiiBody),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LanguageBody {
    pub(crate) detected_language: DetectedLanguage,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DetectedLanguage {
    pub(crate) name: String,
    pub(crate) iso6391_name: String,
    pub(crate) confidence_score: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SentimentBody {
    pub(crate) sentiment: String,
    pub(crate) confidence_scores: Scores,
    pub(crate) sentences: Vec<Sentence>,
}

/// Positive, neutral and negative confidence.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Scores {
    pub(crate) positive: f64,
    pub(crate) neutral: f64,
    pub(crate) negative: f64,
}

/// A sentence as the sentiment pipeline returns it (code-point offsets) and as the route answers
/// (offsets in the requested unit; `targets` and `assessments` only when opinion mining was asked).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Sentence {
    pub(crate) text: String,
    pub(crate) sentiment: String,
    pub(crate) confidence_scores: Scores,
    pub(crate) offset: usize,
    pub(crate) length: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) targets: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) assessments: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeyPhrasesBody {
    pub(crate) key_phrases: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntitiesBody {
    pub(crate) entities: Vec<Entity>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PiiBody {
    pub(crate) redacted_text: String,
    pub(crate) entities: Vec<Entity>,
}

/// An entity as the PII pipeline returns it (code-point offsets) and as the routes answer.
pub(crate) type Entity = crate::pii::PiiEntity;

/// A per-document error.
#[derive(Debug, Serialize)]
pub(crate) struct DocumentError {
    pub(crate) id: String,
    pub(crate) error: ErrorDetail,
}

#[derive(Debug, Serialize)]
pub(crate) struct ErrorDetail {
    pub(crate) code: &'static str,
    pub(crate) message: &'static str,
    pub(crate) innererror: InnerError,
}

#[derive(Debug, Serialize)]
pub(crate) struct InnerError {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DocumentStatistics {
    pub(crate) characters_count: usize,
    pub(crate) transactions_count: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RequestStatistics {
    pub(crate) documents_count: usize,
    pub(crate) valid_documents_count: usize,
    pub(crate) erroneous_documents_count: usize,
    pub(crate) transactions_count: usize,
}

impl DocumentError {
    fn new(id: &str, message: &'static str, code: &'static str, detail: String) -> DocumentError {
        DocumentError {
            id: id.to_string(),
            error: ErrorDetail {
                code: "InvalidArgument",
                message,
                innererror: InnerError {
                    code,
                    message: detail,
                },
            },
        }
    }

    /// Azure's error for an empty document.
    pub(crate) fn empty(id: &str) -> DocumentError {
        DocumentError::new(
            id,
            "Invalid document in request.",
            "InvalidDocument",
            "Document text is empty.".to_string(),
        )
    }

    /// Azure's error for a document over the size limit.
    pub(crate) fn too_long(id: &str, limit: usize) -> DocumentError {
        DocumentError::new(
            id,
            "Invalid document in request.",
            "InvalidDocument",
            format!(
                "A document within the request was too large to be processed. Limit document \
                 size to: {limit} text elements. For additional details on the data limitations \
                 see https://aka.ms/text-analytics-data-limits"
            ),
        )
    }

    /// Azure's error for a language the pipeline does not support.
    pub(crate) fn unsupported_language(id: &str) -> DocumentError {
        DocumentError::new(
            id,
            "Invalid Language Code.",
            "UnsupportedLanguageCode",
            "Invalid language code. Supported languages: en. For additional details see \
             https://aka.ms/text-analytics/language-support"
                .to_string(),
        )
    }
}

/// Text elements (extended grapheme clusters), the unit of Azure's size limit and statistics.
pub(crate) fn text_elements(text: &str) -> usize {
    text.graphemes(true).count()
}

/// Whether a `language` hint names English (absent or empty means Azure's default, English).
pub(crate) fn is_english(language: Option<&str>) -> bool {
    match language.map(str::trim) {
        None | Some("") => true,
        Some(l) => l
            .split(['-', '_'])
            .next()
            .is_some_and(|p| p.eq_ignore_ascii_case("en")),
    }
}

impl LanguageConfig {
    fn model_for(&self, kind: Kind) -> &str {
        match kind {
            Kind::LanguageDetection => &self.models.language_detection,
            Kind::SentimentAnalysis => &self.models.sentiment,
            Kind::KeyPhraseExtraction => &self.models.key_phrases,
            Kind::EntityRecognition | Kind::PiiEntityRecognition => &self.models.pii,
        }
    }

    fn version_for(&self, kind: Kind) -> &str {
        match kind {
            Kind::LanguageDetection => &self.model_versions.language_detection,
            Kind::SentimentAnalysis => match &self.sentiment_model {
                Some(binding) => binding.reference(),
                None => &self.model_versions.sentiment,
            },
            Kind::KeyPhraseExtraction => &self.model_versions.key_phrases,
            Kind::EntityRecognition => &self.model_versions.entities,
            Kind::PiiEntityRecognition => &self.model_versions.pii,
        }
    }
}

/// Checks the batch as a whole: documents present, not too many, unique non-empty ids.
pub(crate) fn check_batch(
    config: &LanguageConfig,
    kind: Kind,
    documents: &[Document],
) -> Result<(), AzureError> {
    if documents.is_empty() {
        return Err(AzureError::bad_request(
            MISSING_INPUT_RECORDS,
            "Missing input records: the request holds no documents.",
        ));
    }
    let max = kind.max_documents(&config.limits);
    if documents.len() > max {
        return Err(AzureError::bad_request(
            INVALID_DOCUMENT_BATCH,
            format!("Batch request contains too many records. Max {max} records are permitted."),
        ));
    }
    let mut seen = HashSet::with_capacity(documents.len());
    for doc in documents {
        if doc.id.is_empty() {
            return Err(AzureError::bad_request(
                INVALID_DOCUMENT,
                "Document id is empty. Every document needs a unique, non-empty id.",
            ));
        }
        if !seen.insert(doc.id.as_str()) {
            return Err(AzureError::bad_request(
                INVALID_DOCUMENT,
                "Request contains duplicated Ids. Make sure each document has a unique Id.",
            ));
        }
    }
    Ok(())
}

/// Runs one task: batch checks (request-level errors), per-document checks (per-document errors),
/// then the valid documents through the kind's v2 model.
pub(crate) async fn run_task(
    state: &AppState,
    kind: Kind,
    documents: Vec<Document>,
    options: &TaskOptions,
) -> Result<TaskResults, AzureError> {
    let config = &state.config;
    check_batch(config, kind, &documents)?;
    let served = config.version_for(kind);
    check_model_version(options.model_version.as_deref(), served)?;

    let limit = config.limits.max_document_chars;
    let mut valid: Vec<(usize, &Document, usize)> = Vec::new();
    let mut failed: Vec<(usize, DocumentError)> = Vec::new();
    for (index, doc) in documents.iter().enumerate() {
        let elements = text_elements(&doc.text);
        if doc.text.trim().is_empty() {
            failed.push((index, DocumentError::empty(&doc.id)));
        } else if kind.needs_language() && !is_english(doc.language.as_deref()) {
            failed.push((index, DocumentError::unsupported_language(&doc.id)));
        } else if elements > limit {
            failed.push((index, DocumentError::too_long(&doc.id, limit)));
        } else {
            valid.push((index, doc, elements));
        }
    }

    let texts: Vec<&str> = valid.iter().map(|(_, d, _)| d.text.as_str()).collect();
    let mut model_version = served.to_string();
    let bodies = match &config.sentiment_model {
        _ if texts.is_empty() => Vec::new(),
        Some(binding) if kind == Kind::SentimentAnalysis => {
            let (bodies, version) =
                super::bound::sentiment_bodies(&state.server, binding, &texts, options).await?;
            model_version = version;
            bodies
        }
        _ => {
            let model = config.model_for(kind);
            run_model(state, kind, model, &texts, options).await?
        }
    };

    let mut transactions = 0;
    let results: Vec<DocumentResult> = valid
        .iter()
        .zip(bodies)
        .map(|((_, doc, elements), body)| {
            let doc_transactions = elements.div_ceil(1000).max(1);
            transactions += doc_transactions;
            DocumentResult {
                id: doc.id.clone(),
                body,
                warnings: Vec::new(),
                statistics: options.show_stats.then_some(DocumentStatistics {
                    characters_count: *elements,
                    transactions_count: doc_transactions,
                }),
            }
        })
        .collect();
    let statistics = options.show_stats.then_some(RequestStatistics {
        documents_count: documents.len(),
        valid_documents_count: results.len(),
        erroneous_documents_count: failed.len(),
        transactions_count: transactions,
    });
    Ok(TaskResults {
        documents: results,
        errors: failed.into_iter().map(|(_, e)| e).collect(),
        statistics,
        model_version,
    })
}

async fn run_model(
    state: &AppState,
    kind: Kind,
    model: &str,
    texts: &[&str],
    options: &TaskOptions,
) -> Result<Vec<DocumentBody>, AzureError> {
    let server = &state.server;
    let bodies = match kind {
        Kind::LanguageDetection => {
            let out = infer_texts(server, model, texts, &["LANGUAGE", "NAME", "SCORE"]).await?;
            language_bodies(&out)?
        }
        Kind::SentimentAnalysis => {
            let out =
                infer_texts(server, model, texts, &["SENTIMENT", "SCORES", "SENTENCES"]).await?;
            sentiment_bodies(&out, model, texts, options)?
        }
        Kind::KeyPhraseExtraction => {
            let out = infer_texts(server, model, texts, &["KEY_PHRASES"]).await?;
            out.strings("KEY_PHRASES")?
                .into_iter()
                .map(|json| {
                    let key_phrases = parse_row::<Vec<String>>(model, "KEY_PHRASES", json)?;
                    Ok(DocumentBody::KeyPhrases(KeyPhrasesBody { key_phrases }))
                })
                .collect::<Result<_, V2Error>>()?
        }
        Kind::EntityRecognition | Kind::PiiEntityRecognition => {
            let out = infer_texts(server, model, texts, &["ENTITIES"]).await?;
            let rows = out.strings("ENTITIES")?;
            let mut bodies = Vec::with_capacity(rows.len());
            for (json, text) in rows.into_iter().zip(texts) {
                let entities = parse_row::<Vec<Entity>>(model, "ENTITIES", json)?;
                bodies.push(if kind == Kind::EntityRecognition {
                    let entities = general_entities(&entities);
                    DocumentBody::Entities(EntitiesBody {
                        entities: convert_entities(entities, text, options.string_index),
                    })
                } else {
                    let entities = filter_categories(entities, options.pii_categories.as_deref());
                    DocumentBody::Pii(PiiBody {
                        redacted_text: crate::pii::redact(text, &entities),
                        entities: convert_entities(entities, text, options.string_index),
                    })
                });
            }
            bodies
        }
    };
    Ok(bodies)
}

fn parse_row<T: serde::de::DeserializeOwned>(
    model: &str,
    output: &str,
    json: &str,
) -> Result<T, V2Error> {
    serde_json::from_str(json).map_err(|e| V2Error::Output {
        model: model.to_string(),
        message: format!("output '{output}' that is not the contract's JSON: {e}"),
    })
}

fn language_bodies(out: &Outputs) -> Result<Vec<DocumentBody>, V2Error> {
    let codes = out.strings("LANGUAGE")?;
    let names = out.strings("NAME")?;
    let scores = out.fp32("SCORE", 1)?;
    Ok(codes
        .into_iter()
        .zip(names)
        .zip(scores)
        .map(|((code, name), score)| {
            DocumentBody::Language(LanguageBody {
                detected_language: DetectedLanguage {
                    name: name.to_string(),
                    iso6391_name: code.to_string(),
                    confidence_score: round_score(f64::from(score[0])),
                },
            })
        })
        .collect())
}

fn sentiment_bodies(
    out: &Outputs,
    model: &str,
    texts: &[&str],
    options: &TaskOptions,
) -> Result<Vec<DocumentBody>, V2Error> {
    let labels = out.strings("SENTIMENT")?;
    let scores = out.fp32("SCORES", 3)?;
    let sentences = out.strings("SENTENCES")?;
    let mut bodies = Vec::with_capacity(labels.len());
    for (((label, score), json), text) in labels.into_iter().zip(scores).zip(sentences).zip(texts) {
        let parsed: Vec<Sentence> = parse_row(model, "SENTENCES", json)?;
        let offsets = Offsets::new(text, options.string_index);
        let sentences = parsed
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
        bodies.push(DocumentBody::Sentiment(SentimentBody {
            sentiment: label.to_string(),
            confidence_scores: round_scores(Scores {
                positive: f64::from(score[0]),
                neutral: f64::from(score[1]),
                negative: f64::from(score[2]),
            }),
            sentences,
        }));
    }
    Ok(bodies)
}

/// Scores with Azure's two decimals (non-finite values become 0).
fn round_score(x: f64) -> f64 {
    if x.is_finite() {
        (x.clamp(0.0, 1.0) * 100.0).round() / 100.0
    } else {
        0.0
    }
}

pub(crate) fn round_scores(s: Scores) -> Scores {
    Scores {
        positive: round_score(s.positive),
        neutral: round_score(s.neutral),
        negative: round_score(s.negative),
    }
}

/// PII entities seen as general named entities (Azure's `EntityRecognition` categories); the
/// pii module owns the mapping.
fn general_entities(entities: &[Entity]) -> Vec<Entity> {
    crate::pii::general_entities(entities)
}

/// The entities a `piiCategories` list keeps (no list keeps every entity).
fn filter_categories(entities: Vec<Entity>, categories: Option<&[String]>) -> Vec<Entity> {
    match categories {
        Some(categories) => crate::pii::filter_categories(&entities, categories),
        None => entities,
    }
}

fn convert_entities(entities: Vec<Entity>, text: &str, unit: StringIndexType) -> Vec<Entity> {
    let offsets = Offsets::new(text, unit);
    entities
        .into_iter()
        .map(|e| {
            let (offset, length) = offsets.span(e.offset, e.length);
            Entity {
                offset,
                length,
                confidence_score: round_score(e.confidence_score),
                ..e
            }
        })
        .collect()
}

/// Converts code-point spans of one text into the requested unit.
pub(crate) struct Offsets {
    unit: StringIndexType,
    chars: usize,
    /// UTF-16: units before code point `i`; text elements: elements starting before code point `i`.
    table: Vec<usize>,
}

impl Offsets {
    /// The conversion table for `text`.
    pub(crate) fn new(text: &str, unit: StringIndexType) -> Offsets {
        let chars = text.chars().count();
        let table = match unit {
            StringIndexType::CodePoints => Vec::new(),
            StringIndexType::Utf16 => std::iter::once(0)
                .chain(text.chars().scan(0, |acc, c| {
                    *acc += c.len_utf16();
                    Some(*acc)
                }))
                .collect(),
            StringIndexType::TextElements => {
                let mut starts = vec![false; chars];
                let mut at = 0;
                for g in text.graphemes(true) {
                    if let Some(s) = starts.get_mut(at) {
                        *s = true;
                    }
                    at += g.chars().count();
                }
                std::iter::once(0)
                    .chain(starts.iter().scan(0, |acc, &s| {
                        *acc += usize::from(s);
                        Some(*acc)
                    }))
                    .collect()
            }
        };
        Offsets { unit, chars, table }
    }

    /// The `(offset, length)` of a code-point span, clamped to the text.
    pub(crate) fn span(&self, offset: usize, length: usize) -> (usize, usize) {
        let start = offset.min(self.chars);
        let end = offset.saturating_add(length).min(self.chars);
        match self.unit {
            StringIndexType::CodePoints => (start, end - start),
            StringIndexType::Utf16 => (self.table[start], self.table[end] - self.table[start]),
            StringIndexType::TextElements => {
                // The element containing `start`; the elements that begin before `end`.
                let first = if start < self.chars {
                    self.table[start + 1].saturating_sub(1)
                } else {
                    self.table[self.chars]
                };
                (first, self.table[end].saturating_sub(first))
            }
        }
    }
}
