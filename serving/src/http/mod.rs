//! The REST front end: KServe v2 with Triton's extensions (binary tensors, model configuration,
//! statistics, repository index/load/unload) and Prometheus `/metrics`.

pub mod codec;
mod trace;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::error::ServingError;
use crate::server::InferenceServer;
use crate::stats::{DurationSnapshot, StatsSnapshot};

/// The REST routes, with no fallback, so they can be merged into a larger router (whose fallback
/// should answer unknown `/v2` paths with [`not_found`]).
pub fn router(server: Arc<InferenceServer>) -> Router {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/stats", get(all_statistics))
        .route("/v2/models/{model}", get(model_metadata))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(model_metadata_version),
        )
        .route("/v2/models/{model}/ready", get(model_ready))
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(model_ready_version),
        )
        .route("/v2/models/{model}/infer", post(infer))
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            post(infer_version),
        )
        .route("/v2/models/{model}/config", get(model_config))
        .route(
            "/v2/models/{model}/versions/{version}/config",
            get(model_config_version),
        )
        .route("/v2/models/{model}/stats", get(model_statistics))
        .route(
            "/v2/models/{model}/versions/{version}/stats",
            get(model_statistics_version),
        )
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{model}/load", post(load))
        .route("/v2/repository/models/{model}/unload", post(unload))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn(trace::trace_context))
        .with_state(server)
}

/// Serves the REST routes on `listener` until `shutdown` completes.
pub async fn serve_http(
    server: Arc<InferenceServer>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(server).fallback(not_found))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A [`ServingError`] as Triton's HTTP error: its status and `{"error": "..."}`.
pub struct HttpError(pub ServingError);

impl From<ServingError> for HttpError {
    fn from(err: ServingError) -> Self {
        HttpError(err)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (
            self.0.http_status(),
            Json(json!({ "error": self.0.to_string() })),
        )
            .into_response()
    }
}

type HttpResult<T> = Result<T, HttpError>;

/// The answer to an unknown path: Triton's 404 with an `{"error": ...}` body.
pub async fn not_found(request: Request) -> HttpError {
    HttpError(ServingError::NotFound(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    )))
}

async fn live(State(server): State<Arc<InferenceServer>>) -> Response {
    let live = server.is_live();
    let status = if live {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "live": live }))).into_response()
}

async fn ready(State(server): State<Arc<InferenceServer>>) -> Response {
    let ready = server.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready }))).into_response()
}

async fn server_metadata(State(server): State<Arc<InferenceServer>>) -> Response {
    Json(server.metadata()).into_response()
}

async fn model_metadata(
    State(server): State<Arc<InferenceServer>>,
    Path(model): Path<String>,
) -> HttpResult<Response> {
    Ok(Json(server.model_metadata(&model, None)?).into_response())
}

async fn model_metadata_version(
    State(server): State<Arc<InferenceServer>>,
    Path((model, version)): Path<(String, String)>,
) -> HttpResult<Response> {
    Ok(Json(server.model_metadata(&model, Some(&version))?).into_response())
}

fn readiness(server: &InferenceServer, model: &str, version: Option<&str>) -> Response {
    match server.model(model, version) {
        Ok(_) => (
            StatusCode::OK,
            Json(json!({ "name": model, "ready": true })),
        )
            .into_response(),
        Err(err) => {
            let status = match err {
                ServingError::NotFound(_) | ServingError::BadRequest(_) => err.http_status(),
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            (
                status,
                Json(json!({ "name": model, "ready": false, "error": err.to_string() })),
            )
                .into_response()
        }
    }
}

async fn model_ready(
    State(server): State<Arc<InferenceServer>>,
    Path(model): Path<String>,
) -> Response {
    readiness(&server, &model, None)
}

async fn model_ready_version(
    State(server): State<Arc<InferenceServer>>,
    Path((model, version)): Path<(String, String)>,
) -> Response {
    readiness(&server, &model, Some(&version))
}

async fn infer(
    State(server): State<Arc<InferenceServer>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> HttpResult<Response> {
    run_infer(&server, &model, None, &headers, body).await
}

async fn infer_version(
    State(server): State<Arc<InferenceServer>>,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> HttpResult<Response> {
    run_infer(&server, &model, Some(&version), &headers, body).await
}

async fn run_infer(
    server: &InferenceServer,
    model: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> HttpResult<Response> {
    let body = read_body(server, headers, body).await?;
    let header_length = match headers.get(codec::HEADER_LENGTH) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    ServingError::BadRequest(
                        "Inference-Header-Content-Length must be a byte count".to_string(),
                    )
                })?,
        ),
    };
    let request = codec::decode_request(body, header_length)?;
    let parameters = request.parameters.clone();
    let requested = request.outputs.clone();
    let response = server.infer(model, version, request).await?;
    let encoded = codec::encode_response(&response, &parameters, &requested)?;
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_LENGTH, encoded.len());
    let body = match encoded.header_length() {
        Some(json_len) => {
            builder = builder
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(codec::HEADER_LENGTH, json_len);
            let chunks = std::iter::once(encoded.json)
                .chain(encoded.binary)
                .map(Ok::<Bytes, Infallible>);
            Body::from_stream(futures::stream::iter(chunks))
        }
        None => {
            builder = builder.header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Body::from(encoded.json)
        }
    };
    builder.body(body).map_err(|e| {
        HttpError(ServingError::Internal(format!(
            "cannot build the response: {e}"
        )))
    })
}

/// Reads a request body, refusing it with 413 when it exceeds the configured limit.
async fn read_body(server: &InferenceServer, headers: &HeaderMap, body: Body) -> HttpResult<Bytes> {
    let limit = server.options().http_body_limit;
    let too_large = || {
        HttpError(ServingError::TooLarge(format!(
            "the request body exceeds the limit of {limit} bytes (--http-body-limit)"
        )))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit")
        {
            too_large()
        } else {
            HttpError(ServingError::BadRequest(format!(
                "cannot read the request body: {e}"
            )))
        }
    })
}

async fn model_config(
    State(server): State<Arc<InferenceServer>>,
    Path(model): Path<String>,
) -> HttpResult<Response> {
    Ok(Json(cerulean_proto::model_config::to_json(
        &server.model_config(&model, None)?,
    ))
    .into_response())
}

async fn model_config_version(
    State(server): State<Arc<InferenceServer>>,
    Path((model, version)): Path<(String, String)>,
) -> HttpResult<Response> {
    Ok(Json(cerulean_proto::model_config::to_json(
        &server.model_config(&model, Some(&version))?,
    ))
    .into_response())
}

async fn all_statistics(State(server): State<Arc<InferenceServer>>) -> HttpResult<Response> {
    statistics(&server, None, None)
}

async fn model_statistics(
    State(server): State<Arc<InferenceServer>>,
    Path(model): Path<String>,
) -> HttpResult<Response> {
    statistics(&server, Some(&model), None)
}

async fn model_statistics_version(
    State(server): State<Arc<InferenceServer>>,
    Path((model, version)): Path<(String, String)>,
) -> HttpResult<Response> {
    statistics(&server, Some(&model), Some(&version))
}

fn statistics(
    server: &InferenceServer,
    model: Option<&str>,
    version: Option<&str>,
) -> HttpResult<Response> {
    let stats = server.statistics(model, version)?;
    let model_stats: Vec<Value> = stats
        .iter()
        .map(|s| stats_json(&s.name, &s.version, &s.stats))
        .collect();
    Ok(Json(json!({ "model_stats": model_stats })).into_response())
}

/// One model version's statistics in Triton's JSON shape.
fn stats_json(name: &str, version: &str, s: &StatsSnapshot) -> Value {
    let d = |d: &DurationSnapshot| json!({ "count": d.count, "ns": d.ns });
    json!({
        "name": name,
        "version": version,
        "last_inference": s.last_inference,
        "inference_count": s.inference_count,
        "execution_count": s.execution_count,
        "inference_stats": {
            "success": d(&s.success),
            "fail": d(&s.fail),
            "queue": d(&s.queue),
            "compute_input": d(&s.compute_input),
            "compute_infer": d(&s.compute_infer),
            "compute_output": d(&s.compute_output),
            "cache_hit": { "count": 0, "ns": 0 },
            "cache_miss": { "count": 0, "ns": 0 },
        },
        "batch_stats": s.batches.iter().map(|b| json!({
            "batch_size": b.batch_size,
            "compute_input": d(&b.compute_input),
            "compute_infer": d(&b.compute_infer),
            "compute_output": d(&b.compute_output),
        })).collect::<Vec<_>>(),
        "memory_usage": [],
    })
}

/// Parses an optional JSON body; an empty body is an empty object (tritonclient posts none).
async fn optional_json(
    server: &InferenceServer,
    headers: &HeaderMap,
    body: Body,
) -> HttpResult<Value> {
    let bytes = read_body(server, headers, body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| HttpError(ServingError::BadRequest(format!("invalid JSON body: {e}"))))
}

async fn repository_index(
    State(server): State<Arc<InferenceServer>>,
    headers: HeaderMap,
    body: Body,
) -> HttpResult<Response> {
    let options = optional_json(&server, &headers, body).await?;
    let ready_only = options
        .get("ready")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Json(server.index(ready_only)).into_response())
}

async fn load(
    State(server): State<Arc<InferenceServer>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> HttpResult<Response> {
    let options = optional_json(&server, &headers, body).await?;
    let config = match options.pointer("/parameters/config") {
        None => None,
        Some(Value::String(text)) => Some(
            cerulean_proto::model_config::from_json_str(text).map_err(|e| {
                ServingError::BadRequest(format!(
                    "parameters.config is not a valid model configuration: {e}"
                ))
            })?,
        ),
        Some(other) => Some(cerulean_proto::model_config::from_json(other).map_err(|e| {
            ServingError::BadRequest(format!(
                "parameters.config is not a valid model configuration: {e}"
            ))
        })?),
    };
    server.load(&model, config).await?;
    Ok(StatusCode::OK.into_response())
}

async fn unload(
    State(server): State<Arc<InferenceServer>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> HttpResult<Response> {
    optional_json(&server, &headers, body).await?;
    server.unload(&model).await?;
    Ok(StatusCode::OK.into_response())
}

async fn metrics(State(server): State<Arc<InferenceServer>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        server.render_metrics(),
    )
        .into_response()
}
