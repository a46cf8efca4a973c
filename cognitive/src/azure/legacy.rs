//! The Text Analytics v3.1 (and v3.0) routes: `/text/analytics/v3.1/{languages, sentiment,
//! keyPhrases, entities/recognition/general, entities/recognition/pii}`.
//!
//! Bodies are `{"documents": [...]}`, options are query parameters (`model-version`, `showStats`,
//! `loggingOptOut`, `stringIndexType`, `opinionMining`, `domain`, `piiCategories`), and the response
//! is the task's results object itself: `{"documents", "errors", "statistics"?, "modelVersion"}`.
//! v3.0 has no PII route and no `stringIndexType`; its offsets count UTF-16 code units (the Python
//! SDK drops v3.0 offsets anyway).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::{AzureError, INVALID_REQUEST_BODY_FORMAT};
use super::request::{
    Document, Kind, Query, RawDocument, StringIndexType, check_domain, parse_json, read_body,
};
use super::task::{TaskOptions, run_task};

#[derive(Debug, Deserialize)]
struct LegacyBody {
    #[serde(default)]
    documents: Option<Vec<RawDocument>>,
}

/// `POST /text/analytics/{version}/languages`.
pub(super) async fn languages(
    State(state): State<Arc<AppState>>,
    Path(version): Path<String>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    respond(&state, Kind::LanguageDetection, &version, query, body).await
}

/// `POST /text/analytics/{version}/sentiment`.
pub(super) async fn sentiment(
    State(state): State<Arc<AppState>>,
    Path(version): Path<String>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    respond(&state, Kind::SentimentAnalysis, &version, query, body).await
}

/// `POST /text/analytics/{version}/keyPhrases`.
pub(super) async fn key_phrases(
    State(state): State<Arc<AppState>>,
    Path(version): Path<String>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    respond(&state, Kind::KeyPhraseExtraction, &version, query, body).await
}

/// `POST /text/analytics/{version}/entities/recognition/general`.
pub(super) async fn entities(
    State(state): State<Arc<AppState>>,
    Path(version): Path<String>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    respond(&state, Kind::EntityRecognition, &version, query, body).await
}

/// `POST /text/analytics/{version}/entities/recognition/pii` (v3.1 only).
pub(super) async fn pii(
    State(state): State<Arc<AppState>>,
    Path(version): Path<String>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    respond(&state, Kind::PiiEntityRecognition, &version, query, body).await
}

async fn respond(
    state: &AppState,
    kind: Kind,
    version: &str,
    query: Option<String>,
    body: Body,
) -> Response {
    match handle(state, kind, version, query.as_deref(), body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

fn operation_path(kind: Kind) -> &'static str {
    match kind {
        Kind::LanguageDetection => "languages",
        Kind::SentimentAnalysis => "sentiment",
        Kind::KeyPhraseExtraction => "keyPhrases",
        Kind::EntityRecognition => "entities/recognition/general",
        Kind::PiiEntityRecognition => "entities/recognition/pii",
    }
}

async fn handle(
    state: &AppState,
    kind: Kind,
    version: &str,
    raw_query: Option<&str>,
    body: Body,
) -> Result<Response, AzureError> {
    let v30 = match version {
        "v3.0" => true,
        "v3.1" => false,
        _ => {
            return Err(AzureError::NotFound(format!(
                "POST /text/analytics/{version}/{} (this server answers v3.0 and v3.1)",
                operation_path(kind)
            )));
        }
    };
    if v30 && kind == Kind::PiiEntityRecognition {
        return Err(AzureError::NotFound(
            "POST /text/analytics/v3.0/entities/recognition/pii (PII recognition starts at v3.1)"
                .to_string(),
        ));
    }
    let query = Query::parse(raw_query);
    let show_stats = query.flag("showStats", false)?;
    query.flag("loggingOptOut", false)?;
    let string_index = if v30 {
        StringIndexType::Utf16
    } else {
        query
            .get("stringIndexType")
            .map(StringIndexType::parse)
            .transpose()?
            .unwrap_or(StringIndexType::TextElements)
    };
    let opinion_mining =
        !v30 && kind == Kind::SentimentAnalysis && query.flag("opinionMining", false)?;
    let pii_categories = if kind == Kind::PiiEntityRecognition {
        check_domain(query.get("domain"))?;
        query.get("piiCategories").map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
    } else {
        None
    };
    let bytes = read_body(body, state.config.limits.max_body_bytes).await?;
    let body: LegacyBody = parse_json(&bytes)?;
    let documents = body.documents.ok_or_else(|| {
        AzureError::bad_request(
            INVALID_REQUEST_BODY_FORMAT,
            "Missing required field 'documents'.",
        )
    })?;
    let options = TaskOptions {
        string_index,
        show_stats,
        opinion_mining,
        pii_categories,
        model_version: query.get("model-version").map(str::to_string),
    };
    let documents: Vec<Document> = documents.into_iter().map(Document::from).collect();
    let results = run_task(state, kind, documents, &options).await?;
    Ok(Json(results).into_response())
}
