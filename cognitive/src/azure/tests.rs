//! Routing, validation and response shapes of the Azure routes, over small fake pipelines that
//! keep the v2 contract (no model files needed). The fakes are shared with the OpenAI route's tests.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use cerulean_serving::config::ModelDefaults;
use cerulean_serving::metrics::Metrics;
use cerulean_serving::repository::{ModelRepository, RepositorySources};
use cerulean_serving::server::{InferenceServer, ServerOptions};
use cerulean_serving::signature::TensorSpec;
use cerulean_serving::{DataType, ServingError, Tensor};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::error::AzureError;
use super::request::StringIndexType;
use super::task::Offsets;
use super::v2::V2Error;
use super::{LanguageConfig, Limits, router};
use crate::error::Result;
use crate::pipeline::{Batching, TextPipeline, TextRunner, builtin_model, bytes_rows, fp32_rows};

// ---------------------------------------------------------------------------------------------
// Fake pipelines.

/// A fake pipeline's batch function.
type RunFn = fn(&[&str]) -> Result<Vec<Tensor>>;

/// A pipeline from a per-batch function.
struct Fake {
    outputs: Vec<TensorSpec>,
    run: RunFn,
}

impl TextPipeline for Fake {
    fn outputs(&self) -> Vec<TensorSpec> {
        self.outputs.clone()
    }

    fn runner(&self) -> Result<Box<dyn TextRunner>> {
        Ok(Box::new(FakeRunner(self.run)))
    }
}

struct FakeRunner(RunFn);

impl TextRunner for FakeRunner {
    fn run(&mut self, texts: &[&str]) -> Result<Vec<Tensor>> {
        (self.0)(texts)
    }
}

fn bytes_spec(name: &str) -> TensorSpec {
    TensorSpec::new(name, DataType::Bytes, vec![1])
}

fn fp32_spec(name: &str, width: i64) -> TensorSpec {
    TensorSpec::new(name, DataType::Fp32, vec![width])
}

/// `fr` for "bonjour", `es` for "hola", `(Unknown)` for text without letters, `en` otherwise.
fn langid(texts: &[&str]) -> Result<Vec<Tensor>> {
    let mut codes = Vec::new();
    let mut names = Vec::new();
    let mut scores = Vec::new();
    for text in texts {
        let lower = text.to_lowercase();
        let (code, name, score) = if lower.contains("bonjour") {
            ("fr", "French", 0.953)
        } else if lower.contains("hola") {
            ("es", "Spanish", 0.9)
        } else if !text.chars().any(char::is_alphabetic) {
            ("(Unknown)", "(Unknown)", 0.0)
        } else {
            ("en", "English", 0.99)
        };
        codes.push(code);
        names.push(name);
        scores.push(score);
    }
    Ok(vec![
        bytes_rows("LANGUAGE", &codes)?,
        bytes_rows("NAME", &names)?,
        fp32_rows("SCORE", texts.len(), &[1], &scores)?,
    ])
}

/// Sentences end at `.`; "good" is positive, "bad" negative, anything else neutral.
fn sentiment(texts: &[&str]) -> Result<Vec<Tensor>> {
    let mut labels = Vec::new();
    let mut scores = Vec::new();
    let mut sentences = Vec::new();
    for text in texts {
        let mut found = Vec::new();
        let mut start = 0;
        let chars: Vec<char> = text.chars().collect();
        for (i, c) in chars.iter().enumerate() {
            if *c == '.' || i + 1 == chars.len() {
                let piece: String = chars[start..=i].iter().collect();
                let lead = piece.len() - piece.trim_start().len();
                let lead_chars = piece[..lead].chars().count();
                let trimmed = piece.trim();
                if !trimmed.is_empty() {
                    let (label, s) = if trimmed.contains("good") {
                        ("positive", [0.9, 0.08, 0.02])
                    } else if trimmed.contains("bad") {
                        ("negative", [0.01, 0.04, 0.95])
                    } else {
                        ("neutral", [0.1, 0.8, 0.1])
                    };
                    found.push((
                        trimmed.to_string(),
                        start + lead_chars,
                        trimmed.chars().count(),
                        label,
                        s,
                    ));
                }
                start = i + 1;
            }
        }
        let positive = found.iter().any(|f| f.3 == "positive");
        let negative = found.iter().any(|f| f.3 == "negative");
        let (label, s) = match (positive, negative) {
            (true, true) => ("mixed", [0.5, 0.0, 0.5]),
            (true, false) => ("positive", [0.9, 0.08, 0.02]),
            (false, true) => ("negative", [0.01, 0.04, 0.95]),
            (false, false) => ("neutral", [0.1, 0.8, 0.1]),
        };
        labels.push(label);
        scores.extend(s);
        let json: Vec<Value> = found
            .iter()
            .map(|(t, offset, length, label, s)| {
                json!({"text": t, "offset": offset, "length": length, "sentiment": label,
                       "confidenceScores": {"positive": s[0], "neutral": s[1], "negative": s[2]}})
            })
            .collect();
        sentences.push(Value::Array(json).to_string());
    }
    Ok(vec![
        bytes_rows("SENTIMENT", &labels)?,
        fp32_rows("SCORES", texts.len(), &[3], &scores)?,
        bytes_rows("SENTENCES", &sentences)?,
    ])
}

/// Capitalised words.
fn key_phrases(texts: &[&str]) -> Result<Vec<Tensor>> {
    let rows: Vec<String> = texts
        .iter()
        .map(|t| {
            let words: Vec<&str> = t
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.chars().next().is_some_and(char::is_uppercase))
                .collect();
            serde_json::to_string(&words).unwrap_or_default()
        })
        .collect();
    Ok(vec![bytes_rows("KEY_PHRASES", &rows)?])
}

/// "John Smith" is a Person, words with `@` are Emails, `ddd-dd-dddd` is a US SSN and
/// `ddd-ddd-dddd` a phone number; offsets in code points.
fn pii(texts: &[&str]) -> Result<Vec<Tensor>> {
    let mut entities = Vec::new();
    let mut redacted = Vec::new();
    for text in texts {
        let mut found: Vec<Value> = Vec::new();
        let chars: Vec<char> = text.chars().collect();
        let s: String = chars.iter().collect();
        if let Some(byte) = s.find("John Smith") {
            let offset = s[..byte].chars().count();
            found.push(
                json!({"text": "John Smith", "category": "Person", "offset": offset,
                              "length": 10, "confidenceScore": 0.97}),
            );
        }
        let mut i = 0;
        while i < chars.len() {
            if chars[i].is_whitespace() {
                i += 1;
                continue;
            }
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
            let mut word: String = chars[start..i].iter().collect();
            while word.ends_with(['.', ',']) {
                word.pop();
            }
            let length = word.chars().count();
            let shape: String = word
                .chars()
                .map(|c| if c.is_ascii_digit() { 'd' } else { c })
                .collect();
            let category = if word.contains('@') {
                Some(("Email", 0.8))
            } else if shape == "ddd-dd-dddd" {
                Some(("USSocialSecurityNumber", 0.85))
            } else if shape == "ddd-ddd-dddd" {
                Some(("PhoneNumber", 0.8))
            } else {
                None
            };
            if let Some((category, score)) = category {
                found.push(json!({"text": word, "category": category, "offset": start,
                                  "length": length, "confidenceScore": score}));
            }
        }
        found.sort_by_key(|e| e["offset"].as_u64());
        let mut masked = chars.clone();
        for e in &found {
            let offset = e["offset"].as_u64().unwrap_or(0) as usize;
            let length = e["length"].as_u64().unwrap_or(0) as usize;
            for c in &mut masked[offset..offset + length] {
                *c = '*';
            }
        }
        entities.push(Value::Array(found).to_string());
        redacted.push(masked.into_iter().collect::<String>());
    }
    Ok(vec![
        bytes_rows("ENTITIES", &entities)?,
        bytes_rows("REDACTED", &redacted)?,
    ])
}

/// A unit vector whose hot index is the text's length in code points (mod 384).
fn embeddings(texts: &[&str]) -> Result<Vec<Tensor>> {
    let mut values = vec![0.0f32; texts.len() * 384];
    for (row, text) in texts.iter().enumerate() {
        values[row * 384 + text.chars().count() % 384] = 1.0;
    }
    Ok(vec![fp32_rows("EMBEDDING", texts.len(), &[384], &values)?])
}

fn fake(name: &str) -> Arc<dyn TextPipeline> {
    let (outputs, run): (Vec<TensorSpec>, RunFn) = match name {
        "language-detection" => (
            vec![
                bytes_spec("LANGUAGE"),
                bytes_spec("NAME"),
                fp32_spec("SCORE", 1),
            ],
            langid,
        ),
        "sentiment" => (
            vec![
                bytes_spec("SENTIMENT"),
                fp32_spec("SCORES", 3),
                bytes_spec("SENTENCES"),
            ],
            sentiment,
        ),
        "key-phrases" => (vec![bytes_spec("KEY_PHRASES")], key_phrases),
        "pii" => (vec![bytes_spec("ENTITIES"), bytes_spec("REDACTED")], pii),
        "embeddings" => (vec![fp32_spec("EMBEDDING", 384)], embeddings),
        other => panic!("no fake pipeline {other}"),
    };
    Arc::new(Fake { outputs, run })
}

/// Every fake model.
pub(crate) const ALL_MODELS: [&str; 5] = [
    "language-detection",
    "sentiment",
    "key-phrases",
    "pii",
    "embeddings",
];

/// A ready server with the named fake models, batching at most 4 documents (so routes must split).
pub(crate) async fn fake_server(models: &[&str]) -> Arc<InferenceServer> {
    let builtin = models
        .iter()
        .map(|name| {
            builtin_model(
                name,
                fake(name),
                Batching {
                    max_batch_size: 4,
                    max_queue_delay_us: 200,
                },
            )
        })
        .collect();
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

/// Sends a request and returns the status, the JSON body (or the text as a string) and the
/// response headers.
pub(crate) async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    body: impl Into<Body>,
) -> (StatusCode, Value, http::HeaderMap) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("request builds");
    let response = app.clone().oneshot(request).await.expect("router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body reads");
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value, headers)
}

async fn app() -> Router {
    router(fake_server(&ALL_MODELS).await, LanguageConfig::default())
}

const ANALYZE: &str = "/language/:analyze-text?api-version=2023-04-01";

async fn analyze(app: &Router, body: Value) -> (StatusCode, Value) {
    let (status, value, _) = send(app, "POST", ANALYZE, body.to_string()).await;
    (status, value)
}

fn task(kind: &str, documents: Value) -> Value {
    json!({"kind": kind, "analysisInput": {"documents": documents}})
}

fn docs(texts: &[&str]) -> Value {
    Value::Array(
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"id": i.to_string(), "text": t, "language": "en"}))
            .collect(),
    )
}

fn inner_error(code: &str, message: &str) -> Value {
    let outer = match code {
        "InvalidDocumentBatch" | "InvalidDocument" | "MissingInputRecords" => {
            "Invalid document in request."
        }
        _ => "Invalid Request.",
    };
    json!({"error": {"code": "InvalidRequest", "message": outer,
                     "innererror": {"code": code, "message": message}}})
}

fn empty_document_error(id: &str) -> Value {
    json!({"id": id, "error": {"code": "InvalidArgument", "message": "Invalid document in request.",
           "innererror": {"code": "InvalidDocument", "message": "Document text is empty."}}})
}

// ---------------------------------------------------------------------------------------------
// :analyze-text, per kind.

#[tokio::test]
async fn language_detection_has_the_sdk_shape_and_keeps_document_order() {
    let app = app().await;
    let documents = json!([
        {"id": "a", "text": "Hello world, this is English.", "countryHint": "US"},
        {"id": "b", "text": "Bonjour tout le monde"},
        {"id": "c", "text": ""},
        {"id": "d", "text": "Hola mundo", "countryHint": "es"},
        {"id": "e", "text": ":-) 1234"},
    ]);
    let (status, body) = analyze(&app, task("LanguageDetection", documents)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let detected = |name: &str, code: &str, score: f64| json!({"name": name, "iso6391Name": code, "confidenceScore": score});
    assert_eq!(
        body,
        json!({"kind": "LanguageDetectionResults", "results": {
            "documents": [
                {"id": "a", "detectedLanguage": detected("English", "en", 0.99), "warnings": []},
                {"id": "b", "detectedLanguage": detected("French", "fr", 0.95), "warnings": []},
                {"id": "d", "detectedLanguage": detected("Spanish", "es", 0.9), "warnings": []},
                {"id": "e", "detectedLanguage": detected("(Unknown)", "(Unknown)", 0.0),
                 "warnings": []},
            ],
            "errors": [empty_document_error("c")],
            "modelVersion": "cerulean-language-detection-1",
        }})
    );
}

#[tokio::test]
async fn many_documents_are_split_at_the_model_batch_size_and_stay_in_order() {
    let app = app().await;
    let texts: Vec<String> = (0..23)
        .map(|i| {
            if i % 3 == 0 {
                format!("bonjour {i}")
            } else {
                format!("hello {i}")
            }
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (status, body) = analyze(&app, task("LanguageDetection", docs(&refs))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let documents = body["results"]["documents"].as_array().unwrap();
    assert_eq!(documents.len(), 23);
    for (i, doc) in documents.iter().enumerate() {
        assert_eq!(doc["id"], i.to_string());
        let expected = if i % 3 == 0 { "fr" } else { "en" };
        assert_eq!(doc["detectedLanguage"]["iso6391Name"], expected, "{doc}");
    }
}

#[tokio::test]
async fn sentiment_reports_documents_and_sentences() {
    let app = app().await;
    let body = json!({"kind": "SentimentAnalysis",
    "parameters": {"stringIndexType": "UnicodeCodePoint", "opinionMining": false},
    "analysisInput": {"documents": [
        {"id": "1", "language": "en", "text": "The food was good. The service was bad."},
        {"id": "2", "text": "It is a table."},
    ]}});
    let (status, body) = analyze(&app, body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let scores = |p: f64, n: f64, g: f64| json!({"positive": p, "neutral": n, "negative": g});
    assert_eq!(
        body,
        json!({"kind": "SentimentAnalysisResults", "results": {
            "documents": [
                {"id": "1", "sentiment": "mixed", "confidenceScores": scores(0.5, 0.0, 0.5),
                 "sentences": [
                    {"text": "The food was good.", "sentiment": "positive",
                     "confidenceScores": scores(0.9, 0.08, 0.02), "offset": 0, "length": 18},
                    {"text": "The service was bad.", "sentiment": "negative",
                     "confidenceScores": scores(0.01, 0.04, 0.95), "offset": 19, "length": 20},
                 ],
                 "warnings": []},
                {"id": "2", "sentiment": "neutral", "confidenceScores": scores(0.1, 0.8, 0.1),
                 "sentences": [
                    {"text": "It is a table.", "sentiment": "neutral",
                     "confidenceScores": scores(0.1, 0.8, 0.1), "offset": 0, "length": 14},
                 ],
                 "warnings": []},
            ],
            "errors": [],
            "modelVersion": "cerulean-sentiment-1",
        }})
    );
}

#[tokio::test]
async fn opinion_mining_adds_empty_targets_and_assessments() {
    let app = app().await;
    let body = json!({"kind": "SentimentAnalysis", "parameters": {"opinionMining": true},
        "analysisInput": {"documents": [{"id": "1", "text": "good."}]}});
    let (status, body) = analyze(&app, body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sentence = &body["results"]["documents"][0]["sentences"][0];
    assert_eq!(sentence["targets"], json!([]));
    assert_eq!(sentence["assessments"], json!([]));
}

#[tokio::test]
async fn other_languages_get_unsupported_language_code_per_document() {
    let app = app().await;
    let documents = json!([
        {"id": "1", "text": "Microsoft and Contoso", "language": "en"},
        {"id": "2", "text": "Le petit chat", "language": "fr"},
        {"id": "3", "text": "American English", "language": "en-US"},
        {"id": "4", "text": "Default Language", "language": ""},
    ]);
    let (status, body) = analyze(&app, task("KeyPhraseExtraction", documents)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"kind": "KeyPhraseExtractionResults", "results": {
            "documents": [
                {"id": "1", "keyPhrases": ["Microsoft", "Contoso"], "warnings": []},
                {"id": "3", "keyPhrases": ["American", "English"], "warnings": []},
                {"id": "4", "keyPhrases": ["Default", "Language"], "warnings": []},
            ],
            "errors": [{"id": "2", "error": {"code": "InvalidArgument",
                "message": "Invalid Language Code.",
                "innererror": {"code": "UnsupportedLanguageCode",
                    "message": "Invalid language code. Supported languages: en. For additional \
                                details see https://aka.ms/text-analytics/language-support"}}}],
            "modelVersion": "cerulean-key-phrases-1",
        }})
    );
}

const REFERENCE: &str = "Hi, I'm John Smith. Email me at john.smith@example.com or call \
                         415-555-0132. My SSN is 123-45-6789.";

#[tokio::test]
async fn pii_redacts_exactly_the_entities() {
    let app = app().await;
    let (status, body) = analyze(&app, task("PiiEntityRecognition", docs(&[REFERENCE]))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let doc = &body["results"]["documents"][0];
    assert_eq!(body["kind"], "PiiEntityRecognitionResults");
    assert_eq!(
        doc["entities"],
        json!([
            {"text": "John Smith", "category": "Person", "offset": 8, "length": 10,
             "confidenceScore": 0.97},
            {"text": "john.smith@example.com", "category": "Email", "offset": 32, "length": 22,
             "confidenceScore": 0.8},
            {"text": "415-555-0132", "category": "PhoneNumber", "offset": 63, "length": 12,
             "confidenceScore": 0.8},
            {"text": "123-45-6789", "category": "USSocialSecurityNumber", "offset": 87,
             "length": 11, "confidenceScore": 0.85},
        ])
    );
    assert_eq!(
        doc["redactedText"],
        "Hi, I'm **********. Email me at ********************** or call ************. \
         My SSN is ***********."
    );
    assert_eq!(doc["warnings"], json!([]));
}

#[tokio::test]
async fn pii_categories_filter_entities_and_redaction() {
    let app = app().await;
    let body = json!({"kind": "PiiEntityRecognition",
        "parameters": {"piiCategories": ["email", "USSocialSecurityNumber"], "domain": "none"},
        "analysisInput": {"documents": [{"id": "1", "text": REFERENCE}]}});
    let (status, body) = analyze(&app, body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let doc = &body["results"]["documents"][0];
    let categories: Vec<&str> = doc["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["category"].as_str().unwrap())
        .collect();
    assert_eq!(categories, ["Email", "USSocialSecurityNumber"]);
    assert_eq!(
        doc["redactedText"],
        "Hi, I'm John Smith. Email me at ********************** or call 415-555-0132. \
         My SSN is ***********."
    );

    let all = json!({"kind": "PiiEntityRecognition", "parameters": {"piiCategories": ["All"]},
        "analysisInput": {"documents": [{"id": "1", "text": REFERENCE}]}});
    let (_, all) = analyze(&app, all).await;
    assert_eq!(
        all["results"]["documents"][0]["entities"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn entity_recognition_keeps_general_categories_only() {
    let app = app().await;
    let (status, body) = analyze(&app, task("EntityRecognition", docs(&[REFERENCE]))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["kind"], "EntityRecognitionResults");
    let doc = &body["results"]["documents"][0];
    let categories: Vec<&str> = doc["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["category"].as_str().unwrap())
        .collect();
    assert_eq!(categories, ["Person", "Email", "PhoneNumber"]);
    assert!(doc.get("redactedText").is_none(), "{doc}");
    assert_eq!(
        body["results"]["modelVersion"],
        json!("cerulean-entities-1")
    );
}

#[tokio::test]
async fn offsets_follow_the_string_index_type() {
    let app = app().await;
    // "é" as e + combining accent (2 code points, 1 text element), then an emoji outside the BMP
    // (1 code point, 2 UTF-16 units, 1 text element).
    let text = "Cafe\u{301} \u{1F600} John Smith";
    let cases = [
        ("UnicodeCodePoint", 8),
        ("Utf16CodeUnit", 9),
        ("TextElements_v8", 7),
    ];
    for (unit, offset) in cases {
        let body = json!({"kind": "PiiEntityRecognition", "parameters": {"stringIndexType": unit},
            "analysisInput": {"documents": [{"id": "1", "text": text}]}});
        let (status, body) = analyze(&app, body).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let entity = &body["results"]["documents"][0]["entities"][0];
        assert_eq!(entity["offset"], offset, "{unit}: {entity}");
        assert_eq!(entity["length"], 10, "{unit}: {entity}");
    }
    // Absent means Azure's default, text elements.
    let (_, body) = analyze(&app, task("PiiEntityRecognition", docs(&[text]))).await;
    assert_eq!(body["results"]["documents"][0]["entities"][0]["offset"], 7);
}

#[test]
fn offset_tables_clamp_and_cover_partial_elements() {
    let text = "a\u{301}b\u{1F600}";
    let elements = Offsets::new(text, StringIndexType::TextElements);
    assert_eq!(elements.span(0, 2), (0, 1));
    assert_eq!(
        elements.span(1, 1),
        (0, 1),
        "a span inside an element covers it"
    );
    assert_eq!(elements.span(2, 2), (1, 2));
    assert_eq!(
        elements.span(3, 50),
        (2, 1),
        "spans are clamped to the text"
    );
    assert_eq!(elements.span(9, 1), (3, 0));
    let utf16 = Offsets::new(text, StringIndexType::Utf16);
    assert_eq!(utf16.span(3, 1), (3, 2));
    assert_eq!(utf16.span(0, 4), (0, 5));
    let points = Offsets::new(text, StringIndexType::CodePoints);
    assert_eq!(points.span(2, 9), (2, 2));
}

#[tokio::test]
async fn show_stats_adds_document_and_request_statistics() {
    let app = app().await;
    let long = "x".repeat(1500);
    let documents = json!([
        {"id": "56", "text": ":)"},
        {"id": "0", "text": long},
        {"id": "22", "text": ""},
    ]);
    let (status, value, _) = send(
        &app,
        "POST",
        "/language/:analyze-text?api-version=2022-05-01&showStats=true",
        task("LanguageDetection", documents).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{value}");
    let results = &value["results"];
    assert_eq!(
        results["statistics"],
        json!({"documentsCount": 3, "validDocumentsCount": 2, "erroneousDocumentsCount": 1,
               "transactionsCount": 3})
    );
    assert_eq!(
        results["documents"][0]["statistics"],
        json!({"charactersCount": 2, "transactionsCount": 1})
    );
    assert_eq!(
        results["documents"][1]["statistics"],
        json!({"charactersCount": 1500, "transactionsCount": 2})
    );
}

#[tokio::test]
async fn a_too_long_document_fails_alone() {
    let app = app().await;
    let long = "a".repeat(5121);
    let fits = "b".repeat(5120);
    let documents = json!([
        {"id": "1", "text": long},
        {"id": "2", "text": fits},
        {"id": "3", "text": "good."},
    ]);
    let (status, body) = analyze(&app, task("SentimentAnalysis", documents)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["results"]["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["2", "3"]);
    assert_eq!(
        body["results"]["errors"],
        json!([{"id": "1", "error": {"code": "InvalidArgument",
            "message": "Invalid document in request.",
            "innererror": {"code": "InvalidDocument",
                "message": "A document within the request was too large to be processed. \
                            Limit document size to: 5120 text elements. For additional details \
                            on the data limitations see https://aka.ms/text-analytics-data-limits"}}}])
    );
}

// ---------------------------------------------------------------------------------------------
// Request-level errors.

#[tokio::test]
async fn too_many_documents_per_kind_is_invalid_document_batch() {
    let app = app().await;
    for (kind, max) in [
        ("LanguageDetection", 1000),
        ("SentimentAnalysis", 10),
        ("KeyPhraseExtraction", 10),
        ("EntityRecognition", 5),
        ("PiiEntityRecognition", 5),
    ] {
        let texts = vec!["text"; max + 1];
        let (status, body) = analyze(&app, task(kind, docs(&texts))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{kind}: {body}");
        assert_eq!(
            body,
            inner_error(
                "InvalidDocumentBatch",
                &format!(
                    "Batch request contains too many records. Max {max} records are permitted."
                )
            ),
            "{kind}"
        );
        let texts = vec!["text"; max];
        let (status, body) = analyze(&app, task(kind, docs(&texts))).await;
        assert_eq!(status, StatusCode::OK, "{kind} at the limit: {body}");
    }
}

#[tokio::test]
async fn duplicate_and_empty_ids_are_refused() {
    let app = app().await;
    let documents = json!([{"id": "1", "text": "a"}, {"id": "1", "text": "b"}]);
    let (status, body) = analyze(&app, task("SentimentAnalysis", documents)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        inner_error(
            "InvalidDocument",
            "Request contains duplicated Ids. Make sure each document has a unique Id."
        )
    );
    let documents = json!([{"id": "", "text": "a"}]);
    let (status, body) = analyze(&app, task("SentimentAnalysis", documents)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["innererror"]["code"], "InvalidDocument");
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let app = app().await;
    let big = "x".repeat(1024 * 1024);
    let body = task("LanguageDetection", json!([{"id": "1", "text": big}])).to_string();
    let (status, value, _) = send(&app, "POST", ANALYZE, body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        value,
        inner_error(
            "InvalidDocumentBatch",
            "Request Payload sent is too large to be processed. Limit request size to: 1048576"
        )
    );
    let small = LanguageConfig {
        limits: Limits {
            max_body_bytes: 100,
            ..Limits::default()
        },
        ..LanguageConfig::default()
    };
    let app = router(fake_server(&[]).await, small);
    let (status, _, _) = send(
        &app,
        "POST",
        "/text/analytics/v3.1/languages",
        "x".repeat(101),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn malformed_json_names_the_field() {
    let app = app().await;
    let cases = [
        (
            r#"{"kind": "LanguageDetection", "analysisInput": {"documents": [{"id": "1", "text": "a"}, {"id": 2, "text": "b"}]}}"#,
            "analysisInput.documents[1].id",
        ),
        (
            r#"{"kind": "LanguageDetection", "analysisInput": {"documents": [{"text": "a"}]}}"#,
            "missing field `id`",
        ),
        (
            r#"{"kind": "PiiEntityRecognition", "parameters": {"piiCategories": "Email"}, "analysisInput": {"documents": []}}"#,
            "parameters.piiCategories",
        ),
        (r#"{"kind": "LanguageDetection", "#, "EOF"),
        ("", "The request body is empty."),
        (r#"{"kind": 5}"#, "kind"),
    ];
    for (body, expected) in cases {
        let (status, value, _) = send(&app, "POST", ANALYZE, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {value}");
        assert_eq!(
            value["error"]["innererror"]["code"], "InvalidRequestBodyFormat",
            "{body}: {value}"
        );
        let message = value["error"]["innererror"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }
}

#[tokio::test]
async fn kind_api_version_and_input_are_checked() {
    let app = app().await;
    let (status, body) = analyze(&app, task("EntityLinking", docs(&["a"]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        inner_error(
            "InvalidParameterValue",
            "Unsupported kind 'EntityLinking'. Supported kinds: LanguageDetection, \
             SentimentAnalysis, KeyPhraseExtraction, EntityRecognition, PiiEntityRecognition."
        )
    );

    let body = task("LanguageDetection", docs(&["a"])).to_string();
    for uri in [
        "/language/:analyze-text",
        "/language/:analyze-text?api-version=2021-01-01",
    ] {
        let (status, value, _) = send(&app, "POST", uri, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(
            value["error"]["innererror"]["code"],
            "InvalidParameterValue"
        );
        let message = value["error"]["innererror"]["message"].as_str().unwrap();
        assert!(message.contains("2022-05-01, 2023-04-01"), "{message}");
    }
    let (status, _, _) = send(
        &app,
        "POST",
        "/language/:analyze-text?api-version=2022-05-01",
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = analyze(&app, json!({"kind": "SentimentAnalysis"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        inner_error(
            "InvalidRequestBodyFormat",
            "Missing required field 'analysisInput.documents'."
        )
    );
    let (status, body) = analyze(&app, task("SentimentAnalysis", json!([]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        inner_error(
            "MissingInputRecords",
            "Missing input records: the request holds no documents."
        )
    );
    let (status, body) = analyze(&app, json!({"analysisInput": {"documents": []}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        inner_error("InvalidRequestBodyFormat", "Missing required field 'kind'.")
    );
}

#[tokio::test]
async fn parameters_are_validated() {
    let app = app().await;
    let with = |parameters: Value| {
        json!({"kind": "PiiEntityRecognition", "parameters": parameters,
               "analysisInput": {"documents": [{"id": "1", "text": "a"}]}})
    };
    let (status, body) = analyze(&app, with(json!({"stringIndexType": "Bytes"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["innererror"]["code"], "InvalidParameterValue");
    let (status, body) = analyze(&app, with(json!({"domain": "finance"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["innererror"]["code"], "InvalidParameterValue");
    let (status, body) = analyze(&app, with(json!({"modelVersion": "2019-01-01"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        inner_error(
            "ModelVersionIncorrect",
            "Invalid model version '2019-01-01'. Possible values are: latest,cerulean-pii-1."
        )
    );
    for ok in [
        json!({"modelVersion": "latest"}),
        json!({"modelVersion": "cerulean-pii-1", "loggingOptOut": true, "domain": "phi"}),
        json!({"stringIndexType": "utf16codeunit"}),
    ] {
        let (status, body) = analyze(&app, with(ok.clone())).await;
        assert_eq!(status, StatusCode::OK, "{ok}: {body}");
    }
    let (status, value, _) = send(
        &app,
        "POST",
        "/language/:analyze-text?api-version=2023-04-01&showStats=maybe",
        with(json!({})).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        value["error"]["innererror"]["code"],
        "InvalidParameterValue"
    );
}

#[tokio::test]
async fn model_versions_come_from_the_config() {
    let mut config = LanguageConfig::default();
    config.model_versions.language_detection = "fasttext-lid.176".to_string();
    let app = router(fake_server(&ALL_MODELS).await, config);
    let (_, body) = analyze(&app, task("LanguageDetection", docs(&["a"]))).await;
    assert_eq!(body["results"]["modelVersion"], "fasttext-lid.176");
}

#[tokio::test]
async fn a_missing_model_is_503_but_invalid_documents_still_answer() {
    let app = router(fake_server(&["sentiment"]).await, LanguageConfig::default());
    let (status, body) = analyze(&app, task("PiiEntityRecognition", docs(&["hello"]))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "ServiceUnavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("'pii'"), "{message}");
    let (status, body) = analyze(&app, task("PiiEntityRecognition", docs(&[""]))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"]["errors"][0], empty_document_error("0"));
}

#[test]
fn serving_errors_map_onto_azure_statuses() {
    let map = |source: ServingError| {
        AzureError::from(V2Error::Serving {
            model: "sentiment".to_string(),
            source,
        })
    };
    let cases = [
        (
            ServingError::Unavailable("x".into()),
            503,
            "ServiceUnavailable",
        ),
        (
            ServingError::NotFound("x".into()),
            503,
            "ServiceUnavailable",
        ),
        (ServingError::QueueFull("x".into()), 429, "TooManyRequests"),
        (
            ServingError::Internal("x".into()),
            500,
            "InternalServerError",
        ),
        (ServingError::BadRequest("x".into()), 400, "InvalidRequest"),
    ];
    for (source, status, code) in cases {
        let err = map(source);
        assert_eq!(err.status().as_u16(), status, "{err}");
        assert_eq!(err.body()["error"]["code"], code, "{err}");
    }
}

#[tokio::test]
async fn a_busy_model_answers_429_with_retry_after() {
    let response = axum::response::IntoResponse::into_response(AzureError::Busy {
        model: "sentiment".to_string(),
        message: "queue full".to_string(),
    });
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
}

// ---------------------------------------------------------------------------------------------
// Routing.

#[tokio::test]
async fn the_colon_path_is_literal_and_merges_into_other_routers() {
    let server = fake_server(&ALL_MODELS).await;
    // axum 0.8 panics when a router with `:`-segments is merged into one with its v0.7 checks on;
    // this router has none, so merging into a plain router works.
    let app = Router::new()
        .route("/v2/health/live", axum::routing::get(|| async { "live" }))
        .merge(router(server.clone(), LanguageConfig::default()))
        .merge(crate::openai::router(server));
    let body = task("LanguageDetection", docs(&["hello"])).to_string();
    for uri in [ANALYZE, "/language/%3Aanalyze-text?api-version=2023-04-01"] {
        let (status, value, _) = send(&app, "POST", uri, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {value}");
        assert_eq!(value["kind"], "LanguageDetectionResults");
    }
    for uri in [
        "/language/analyze-text?api-version=2023-04-01",
        "/language/:analyze-conversations?api-version=2023-04-01",
    ] {
        let (status, value, _) = send(&app, "POST", uri, body.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(value["error"]["code"], "404", "{uri}: {value}");
    }
    let (status, _, _) = send(&app, "GET", ANALYZE, Body::empty()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

// ---------------------------------------------------------------------------------------------
// Text Analytics v3.1 / v3.0.

#[tokio::test]
async fn legacy_routes_return_the_results_object() {
    let app = app().await;
    let (status, body, _) = send(
        &app,
        "POST",
        "/text/analytics/v3.1/languages?showStats=false",
        json!({"documents": [{"id": "1", "text": "bonjour", "countryHint": "FR"},
                             {"id": "2", "text": ""}]})
        .to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "documents": [{"id": "1", "detectedLanguage": {"name": "French", "iso6391Name": "fr",
                           "confidenceScore": 0.95}, "warnings": []}],
            "errors": [empty_document_error("2")],
            "modelVersion": "cerulean-language-detection-1",
        })
    );

    let reference = json!({"documents": [{"id": "1", "language": "en", "text": REFERENCE}]});
    let (status, body, _) = send(
        &app,
        "POST",
        "/text/analytics/v3.1/entities/recognition/pii?stringIndexType=UnicodeCodePoint\
         &piiCategories=Person,PhoneNumber&domain=none&model-version=latest",
        reference.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["documents"][0]["redactedText"],
        "Hi, I'm **********. Email me at john.smith@example.com or call ************. \
         My SSN is 123-45-6789."
    );
    assert_eq!(body["modelVersion"], "cerulean-pii-1");

    for (path, field) in [
        ("sentiment?opinionMining=true", "sentences"),
        ("keyPhrases", "keyPhrases"),
        ("entities/recognition/general", "entities"),
    ] {
        for version in ["v3.1", "v3.0"] {
            let uri = format!("/text/analytics/{version}/{path}");
            let (status, body, _) = send(&app, "POST", &uri, reference.to_string()).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {body}");
            assert!(body["documents"][0][field].is_array(), "{uri}: {body}");
            assert_eq!(body["errors"], json!([]), "{uri}");
        }
    }
    let (_, body, _) = send(
        &app,
        "POST",
        "/text/analytics/v3.1/sentiment?opinionMining=true",
        reference.to_string(),
    )
    .await;
    assert_eq!(body["documents"][0]["sentences"][0]["targets"], json!([]));
}

#[tokio::test]
async fn legacy_routes_check_versions_limits_and_bodies() {
    let app = app().await;
    let one = json!({"documents": [{"id": "1", "text": "a"}]}).to_string();
    for uri in [
        "/text/analytics/v3.0/entities/recognition/pii",
        "/text/analytics/v3.2/languages",
    ] {
        let (status, body, _) = send(&app, "POST", uri, one.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(body["error"]["code"], "404");
    }
    let six = json!({"documents": (0..6).map(|i| json!({"id": i.to_string(), "text": "x"})).collect::<Vec<_>>()});
    let (status, body, _) = send(
        &app,
        "POST",
        "/text/analytics/v3.1/entities/recognition/general",
        six.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        inner_error(
            "InvalidDocumentBatch",
            "Batch request contains too many records. Max 5 records are permitted."
        )
    );
    let (status, body, _) = send(&app, "POST", "/text/analytics/v3.1/sentiment", "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        inner_error(
            "InvalidRequestBodyFormat",
            "Missing required field 'documents'."
        )
    );
    let (status, body, _) = send(
        &app,
        "POST",
        "/text/analytics/v3.1/sentiment?stringIndexType=TextElement_v8&showStats=true",
        one.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["statistics"]["documentsCount"], 1);
    let (status, body, _) = send(
        &app,
        "POST",
        "/text/analytics/v3.1/keyPhrases?model-version=old",
        one,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["innererror"]["code"], "ModelVersionIncorrect");
}
