//! `POST /language/:analyze-text?api-version=...`: the Language API's synchronous route.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{AzureError, INVALID_PARAMETER_VALUE, INVALID_REQUEST_BODY_FORMAT};
use super::request::{
    Document, Kind, Query, RawDocument, StringIndexType, check_domain, parse_json, read_body,
};
use super::task::{TaskOptions, TaskResults, run_task};

/// The operation the unified route answers.
pub(crate) const OPERATION: &str = ":analyze-text";

/// The `api-version`s served; both have the same shapes for the synchronous kinds.
pub(crate) const API_VERSIONS: [&str; 2] = ["2022-05-01", "2023-04-01"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnalyzeTextBody {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
    #[serde(default)]
    analysis_input: Option<AnalysisInput>,
}

#[derive(Debug, Deserialize)]
struct AnalysisInput {
    #[serde(default)]
    documents: Option<Vec<RawDocument>>,
}

/// Every kind's parameters in one struct; a kind ignores the ones it does not have
/// (`loggingOptOut` is accepted and ignored: nothing is logged).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Parameters {
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    string_index_type: Option<String>,
    #[serde(default)]
    opinion_mining: Option<bool>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    pii_categories: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
struct AnalyzeTextResponse {
    kind: &'static str,
    results: TaskResults,
}

/// The handler of `/language/{operation}`.
pub(super) async fn analyze_text(
    State(state): State<Arc<AppState>>,
    Path(operation): Path<String>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    match handle(&state, &operation, query.as_deref(), body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// Checks the `api-version` query parameter.
pub(crate) fn check_api_version(query: &Query) -> Result<(), AzureError> {
    let supported = API_VERSIONS.join(", ");
    match query.get("api-version") {
        Some(v) if API_VERSIONS.contains(&v) => Ok(()),
        Some(v) => Err(AzureError::bad_request(
            INVALID_PARAMETER_VALUE,
            format!("Unsupported api-version '{v}'. Supported versions: {supported}."),
        )),
        None => Err(AzureError::bad_request(
            INVALID_PARAMETER_VALUE,
            format!(
                "Missing required query parameter 'api-version'. Supported versions: {supported}."
            ),
        )),
    }
}

async fn handle(
    state: &AppState,
    operation: &str,
    raw_query: Option<&str>,
    body: Body,
) -> Result<Response, AzureError> {
    if operation != OPERATION {
        return Err(AzureError::NotFound(format!(
            "POST /language/{operation} (this server answers POST /language/{OPERATION})"
        )));
    }
    let query = Query::parse(raw_query);
    check_api_version(&query)?;
    let show_stats = query.flag("showStats", false)?;
    let bytes = read_body(body, state.config.limits.max_body_bytes).await?;
    let body: AnalyzeTextBody = parse_json(&bytes)?;

    let kind_name = body.kind.ok_or_else(|| {
        AzureError::bad_request(
            INVALID_REQUEST_BODY_FORMAT,
            "Missing required field 'kind'.",
        )
    })?;
    let kind = Kind::from_name(&kind_name).ok_or_else(|| {
        let supported: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        AzureError::bad_request(
            INVALID_PARAMETER_VALUE,
            format!(
                "Unsupported kind '{kind_name}'. Supported kinds: {}.",
                supported.join(", ")
            ),
        )
    })?;
    let parameters = body.parameters.unwrap_or_default();
    let string_index = parameters
        .string_index_type
        .as_deref()
        .map(StringIndexType::parse)
        .transpose()?
        .unwrap_or(StringIndexType::TextElements);
    if kind == Kind::PiiEntityRecognition {
        check_domain(parameters.domain.as_deref())?;
    }
    let documents = body
        .analysis_input
        .and_then(|input| input.documents)
        .ok_or_else(|| {
            AzureError::bad_request(
                INVALID_REQUEST_BODY_FORMAT,
                "Missing required field 'analysisInput.documents'.",
            )
        })?;
    let options = TaskOptions {
        string_index,
        show_stats,
        opinion_mining: kind == Kind::SentimentAnalysis
            && parameters.opinion_mining.unwrap_or(false),
        pii_categories: parameters.pii_categories,
        model_version: parameters.model_version,
    };
    let documents: Vec<Document> = documents.into_iter().map(Document::from).collect();
    let results = run_task(state, kind, documents, &options).await?;
    Ok(Json(AnalyzeTextResponse {
        kind: kind.results_name(),
        results,
    })
    .into_response())
}
