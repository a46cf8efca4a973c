//! The OpenAI-shaped `POST /v1/embeddings` route over the `embeddings` v2 model (all-MiniLM-L6-v2,
//! 384 dimensions, L2-normalised).
//!
//! Request: `{"input": string | [string], "model": "all-MiniLM-L6-v2" | "embeddings",
//! "encoding_format"?: "float" | "base64", "dimensions"?: 384, "user"?: string}`.
//! Response: `{"object": "list", "data": [{"object": "embedding", "index", "embedding"}],
//! "model": "all-MiniLM-L6-v2", "usage": {"prompt_tokens", "total_tokens"}}`; `base64` embeddings
//! are the little-endian `f32` bytes, as OpenAI sends them.
//!
//! Refused with OpenAI's error shape (`{"error": {"message", "type", "param", "code"}}`): token-array
//! inputs (the route cannot decode another tokenizer's ids), empty strings, more than
//! [`MAX_INPUTS`] inputs, other `dimensions`, unknown models (404 `model_not_found`).
//!
//! `usage` counts come from the model's `TOKENS` output when it has one; otherwise they are
//! [`approximate_tokens`], an estimate of the BERT tokenizer's count.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use cerulean_serving::ServingError;
use cerulean_serving::server::InferenceServer;
use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use crate::azure::v2::{V2Error, infer_texts};

/// The model name the route reports, and the first of the names it accepts.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";
/// The v2 model the route calls (also accepted as a `model` name).
pub const V2_MODEL: &str = "embeddings";
/// The embedding width.
pub const DIMENSIONS: usize = 384;
/// Inputs per request (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;
/// Largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A refused or failed embeddings request.
#[derive(Debug, thiserror::Error)]
pub enum OpenAiError {
    /// 400 (or 413 for the body size): the request is invalid.
    #[error("{message}")]
    InvalidRequest {
        /// 400 or 413.
        status: StatusCode,
        /// What is wrong.
        message: String,
        /// The request field at fault.
        param: Option<&'static str>,
        /// A machine-readable code, when OpenAI has one.
        code: Option<&'static str>,
    },
    /// 404: the `model` is not served here.
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    /// 503: the embeddings model is not loaded.
    #[error("The embeddings model is not available on this server: {0}")]
    Unavailable(String),
    /// 429: the model's queue is full.
    #[error("The embeddings model is busy, retry shortly: {0}")]
    Busy(String),
    /// 500: the model failed or answered in an unexpected shape.
    #[error("{0}")]
    Internal(String),
}

impl OpenAiError {
    fn invalid(param: &'static str, message: impl Into<String>) -> OpenAiError {
        OpenAiError::InvalidRequest {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param: Some(param),
            code: None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            OpenAiError::InvalidRequest { status, .. } => *status,
            OpenAiError::ModelNotFound(_) => StatusCode::NOT_FOUND,
            OpenAiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            OpenAiError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            OpenAiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's error body.
    pub fn body(&self) -> Value {
        let message = self.to_string();
        let (kind, param, code) = match self {
            OpenAiError::InvalidRequest { param, code, .. } => {
                ("invalid_request_error", *param, *code)
            }
            OpenAiError::ModelNotFound(_) => (
                "invalid_request_error",
                Some("model"),
                Some("model_not_found"),
            ),
            OpenAiError::Unavailable(_) => ("server_error", None, Some("model_not_loaded")),
            OpenAiError::Busy(_) => ("requests", None, Some("rate_limit_exceeded")),
            OpenAiError::Internal(_) => ("server_error", None, None),
        };
        json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::warn!(error = %self, "embeddings request failed");
        }
        (self.status(), Json(self.body())).into_response()
    }
}

impl From<V2Error> for OpenAiError {
    fn from(err: V2Error) -> Self {
        match err {
            V2Error::Serving { source, .. } => match source {
                ServingError::NotFound(m) | ServingError::Unavailable(m) => {
                    OpenAiError::Unavailable(m)
                }
                ServingError::QueueFull(m) => OpenAiError::Busy(m),
                ServingError::BadRequest(m) | ServingError::TooLarge(m) => {
                    OpenAiError::invalid("input", m)
                }
                ServingError::Unsupported(m) | ServingError::Internal(m) => {
                    OpenAiError::Internal(m)
                }
            },
            output @ V2Error::Output { .. } => OpenAiError::Internal(output.to_string()),
        }
    }
}

/// How embeddings are written in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Float,
    Base64,
}

/// A validated request.
#[derive(Debug)]
struct EmbeddingsRequest {
    inputs: Vec<String>,
    encoding: Encoding,
}

#[derive(Debug, Serialize)]
struct EmbeddingsResponse {
    object: &'static str,
    data: Vec<EmbeddingData>,
    model: &'static str,
    usage: Usage,
}

#[derive(Debug, Serialize)]
struct EmbeddingData {
    object: &'static str,
    index: usize,
    embedding: EmbeddingValue,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum EmbeddingValue {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Serialize)]
struct Usage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// The `/v1/embeddings` route over `server`'s `embeddings` model.
pub fn router(server: Arc<InferenceServer>) -> Router {
    Router::new()
        .route("/v1/embeddings", post(embeddings))
        .with_state(server)
}

async fn embeddings(State(server): State<Arc<InferenceServer>>, body: Body) -> Response {
    match handle(&server, body).await {
        Ok(response) => Json(response).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn handle(server: &InferenceServer, body: Body) -> Result<EmbeddingsResponse, OpenAiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|err| {
            let inner = err.into_inner();
            if inner
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                OpenAiError::InvalidRequest {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    message: format!("The request body is larger than {MAX_BODY_BYTES} bytes."),
                    param: None,
                    code: None,
                }
            } else {
                OpenAiError::InvalidRequest {
                    status: StatusCode::BAD_REQUEST,
                    message: format!("The request body could not be read: {inner}."),
                    param: None,
                    code: None,
                }
            }
        })?;
    let request = parse_request(&bytes)?;
    let texts: Vec<&str> = request.inputs.iter().map(String::as_str).collect();
    let outputs = infer_texts(server, V2_MODEL, &texts, &[]).await?;
    let width = outputs.width("EMBEDDING")?;
    if width != DIMENSIONS {
        return Err(OpenAiError::Internal(format!(
            "the embeddings model returned {width} dimensions, not {DIMENSIONS}"
        )));
    }
    let vectors = outputs.fp32("EMBEDDING", width)?;
    // The embeddings pipeline counts tokens exactly (its `TOKENS` output); a model without that
    // output gets the approximation.
    let tokens: Vec<u64> = match outputs.has("TOKENS").then(|| outputs.counts("TOKENS")) {
        Some(Some(counts)) => counts,
        _ => texts.iter().map(|t| approximate_tokens(t) as u64).collect(),
    };
    let total: u64 = tokens.iter().sum();
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| EmbeddingData {
            object: "embedding",
            index,
            embedding: match request.encoding {
                Encoding::Float => EmbeddingValue::Float(vector),
                Encoding::Base64 => {
                    let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                    EmbeddingValue::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
            },
        })
        .collect();
    Ok(EmbeddingsResponse {
        object: "list",
        data,
        model: MODEL_NAME,
        usage: Usage {
            prompt_tokens: total,
            total_tokens: total,
        },
    })
}

fn parse_request(bytes: &[u8]) -> Result<EmbeddingsRequest, OpenAiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| OpenAiError::InvalidRequest {
        status: StatusCode::BAD_REQUEST,
        message: format!("We could not parse the JSON body of your request: {e}."),
        param: None,
        code: None,
    })?;
    let Some(object) = value.as_object() else {
        return Err(OpenAiError::InvalidRequest {
            status: StatusCode::BAD_REQUEST,
            message: "The request body must be a JSON object.".to_string(),
            param: None,
            code: None,
        });
    };
    let model = match object.get("model") {
        None | Some(Value::Null) => {
            return Err(OpenAiError::invalid(
                "model",
                "You must provide a model parameter.",
            ));
        }
        Some(Value::String(m)) => m.as_str(),
        Some(other) => {
            return Err(OpenAiError::invalid(
                "model",
                format!("Invalid type for 'model': expected a string, but got {other}."),
            ));
        }
    };
    let inputs = parse_input(object.get("input"))?;
    let encoding = match object.get("encoding_format") {
        None | Some(Value::Null) => Encoding::Float,
        Some(Value::String(s)) if s == "float" => Encoding::Float,
        Some(Value::String(s)) if s == "base64" => Encoding::Base64,
        Some(other) => {
            return Err(OpenAiError::invalid(
                "encoding_format",
                format!(
                    "Invalid value for 'encoding_format': {other}. Supported values are: 'float' and 'base64'."
                ),
            ));
        }
    };
    match object.get("dimensions") {
        None | Some(Value::Null) => {}
        Some(d) if d.as_u64() == Some(DIMENSIONS as u64) => {}
        Some(d) => {
            return Err(OpenAiError::invalid(
                "dimensions",
                format!(
                    "This model produces {DIMENSIONS}-dimensional embeddings and cannot shorten \
                     them: 'dimensions' must be {DIMENSIONS} or absent, not {d}."
                ),
            ));
        }
    }
    if model != MODEL_NAME && model != V2_MODEL {
        return Err(OpenAiError::ModelNotFound(model.to_string()));
    }
    Ok(EmbeddingsRequest { inputs, encoding })
}

fn parse_input(input: Option<&Value>) -> Result<Vec<String>, OpenAiError> {
    let token_arrays = || {
        OpenAiError::invalid(
            "input",
            "Token arrays are not supported by this server: send 'input' as a string or an array \
             of strings.",
        )
    };
    let inputs = match input {
        None | Some(Value::Null) => {
            return Err(OpenAiError::invalid(
                "input",
                "'input' is a required property.",
            ));
        }
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(OpenAiError::invalid(
                    "input",
                    "'input' is an empty array: send at least one string.",
                ));
            }
            if items.len() > MAX_INPUTS {
                return Err(OpenAiError::invalid(
                    "input",
                    format!(
                        "Invalid 'input': maximum length of array is {MAX_INPUTS}, but got an \
                         array with length {} instead.",
                        items.len()
                    ),
                ));
            }
            let mut texts = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => texts.push(s.clone()),
                    Value::Number(_) | Value::Array(_) => return Err(token_arrays()),
                    other => {
                        return Err(OpenAiError::invalid(
                            "input",
                            format!(
                                "Invalid type for 'input[{i}]': expected a string, but got {other}."
                            ),
                        ));
                    }
                }
            }
            texts
        }
        Some(other) => {
            return Err(OpenAiError::invalid(
                "input",
                format!(
                    "Invalid type for 'input': expected a string or an array of strings, but got {other}."
                ),
            ));
        }
    };
    if let Some(i) = inputs.iter().position(String::is_empty) {
        let which = if inputs.len() == 1 {
            "'input'".to_string()
        } else {
            format!("'input[{i}]'")
        };
        return Err(OpenAiError::invalid(
            "input",
            format!("{which} is an empty string: every input must be a non-empty string."),
        ));
    }
    Ok(inputs)
}

/// An estimate of how many tokens the MiniLM (BERT uncased WordPiece) tokenizer makes of `text`:
/// `[CLS]` and `[SEP]`, one per run of letters and digits, one per punctuation or symbol character
/// and one per CJK character, as BERT's pre-tokenizer splits them. WordPiece splits rare words into
/// several pieces, so this is a lower bound of the exact count.
pub fn approximate_tokens(text: &str) -> usize {
    let mut tokens = 2;
    let mut in_word = false;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            in_word = false;
        } else if is_cjk(c) || !c.is_alphanumeric() {
            tokens += 1;
            in_word = false;
        } else if !in_word {
            tokens += 1;
            in_word = true;
        }
    }
    tokens
}

/// The CJK ideograph blocks BERT's pre-tokenizer splits into single characters.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B820..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::tests::{ALL_MODELS, fake_server, send};

    async fn app() -> Router {
        router(fake_server(&ALL_MODELS).await)
    }

    async fn embed(app: &Router, body: Value) -> (StatusCode, Value) {
        let (status, value, _) = send(app, "POST", "/v1/embeddings", body.to_string()).await;
        (status, value)
    }

    fn hot_index(embedding: &Value) -> usize {
        let values = embedding.as_array().expect("a float array");
        assert_eq!(values.len(), DIMENSIONS);
        values.iter().position(|v| v.as_f64() == Some(1.0)).unwrap()
    }

    #[tokio::test]
    async fn embeddings_have_the_openai_shape() {
        let app = app().await;
        let (status, body) = embed(
            &app,
            json!({"input": ["hello world", "a, b!"], "model": "all-MiniLM-L6-v2"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["object"], "list");
        assert_eq!(body["model"], "all-MiniLM-L6-v2");
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 4 + 6, "total_tokens": 4 + 6})
        );
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 2);
        for (i, item) in data.iter().enumerate() {
            assert_eq!(item["object"], "embedding");
            assert_eq!(item["index"], i);
        }
        assert_eq!(hot_index(&data[0]["embedding"]), 11);
        assert_eq!(hot_index(&data[1]["embedding"]), 5);

        let (status, body) =
            embed(&app, json!({"input": "one string", "model": "embeddings"})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"].as_array().unwrap().len(), 1);
        assert_eq!(body["model"], "all-MiniLM-L6-v2");
    }

    #[tokio::test]
    async fn many_inputs_are_batched_in_order() {
        let app = app().await;
        let inputs: Vec<String> = (1..=37).map(|n| "x".repeat(n)).collect();
        let (status, body) = embed(
            &app,
            json!({"input": inputs, "model": "all-MiniLM-L6-v2", "dimensions": 384}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for (i, item) in body["data"].as_array().unwrap().iter().enumerate() {
            assert_eq!(item["index"], i);
            assert_eq!(hot_index(&item["embedding"]), i + 1);
        }
    }

    #[tokio::test]
    async fn base64_is_little_endian_f32() {
        let app = app().await;
        let (status, body) = embed(
            &app,
            json!({"input": ["abc"], "model": "all-MiniLM-L6-v2", "encoding_format": "base64"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let encoded = body["data"][0]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(values.len(), DIMENSIONS);
        assert_eq!(values[3], 1.0);
        assert_eq!(values.iter().sum::<f32>(), 1.0);
    }

    #[tokio::test]
    async fn unknown_models_are_404_model_not_found() {
        let app = app().await;
        let (status, body) = embed(
            &app,
            json!({"input": "hi", "model": "text-embedding-3-small"}),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body,
            json!({"error": {
                "message": "The model `text-embedding-3-small` does not exist or you do not have access to it.",
                "type": "invalid_request_error",
                "param": "model",
                "code": "model_not_found",
            }})
        );
    }

    #[tokio::test]
    async fn invalid_requests_name_the_parameter() {
        let app = app().await;
        let model = "all-MiniLM-L6-v2";
        let many: Vec<&str> = vec!["x"; MAX_INPUTS + 1];
        let cases = [
            (
                json!({"input": "", "model": model}),
                "input",
                "'input' is an empty string",
            ),
            (
                json!({"input": ["a", ""], "model": model}),
                "input",
                "'input[1]'",
            ),
            (json!({"input": [], "model": model}), "input", "empty array"),
            (
                json!({"input": [1, 2, 3], "model": model}),
                "input",
                "Token arrays",
            ),
            (
                json!({"input": [[1, 2]], "model": model}),
                "input",
                "Token arrays",
            ),
            (
                json!({"input": many, "model": model}),
                "input",
                "maximum length of array is 2048",
            ),
            (
                json!({"input": {"a": 1}, "model": model}),
                "input",
                "Invalid type",
            ),
            (json!({"model": model}), "input", "required"),
            (json!({"input": "a"}), "model", "model parameter"),
            (
                json!({"input": "a", "model": model, "dimensions": 256}),
                "dimensions",
                "384",
            ),
            (
                json!({"input": "a", "model": model, "encoding_format": "int8"}),
                "encoding_format",
                "float",
            ),
        ];
        for (body, param, message) in cases {
            let (status, value) = embed(&app, body.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {value}");
            assert_eq!(value["error"]["type"], "invalid_request_error", "{body}");
            assert_eq!(value["error"]["param"], param, "{body}: {value}");
            let text = value["error"]["message"].as_str().unwrap();
            assert!(text.contains(message), "{body}: {text}");
        }
        let (status, value, _) = send(&app, "POST", "/v1/embeddings", "{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(value["error"]["param"], Value::Null);
        assert!(
            value["error"]["message"]
                .as_str()
                .unwrap()
                .contains("could not parse the JSON body")
        );
    }

    #[tokio::test]
    async fn bodies_over_the_limit_get_413() {
        let app = app().await;
        let big = json!({"input": "x".repeat(MAX_BODY_BYTES), "model": MODEL_NAME}).to_string();
        let (status, value, _) = send(&app, "POST", "/v1/embeddings", big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(value["error"]["type"], "invalid_request_error");
    }

    #[tokio::test]
    async fn a_missing_embeddings_model_is_503() {
        let app = router(fake_server(&["sentiment"]).await);
        let (status, body) = embed(&app, json!({"input": "hi", "model": "embeddings"})).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["type"], "server_error");
        assert_eq!(body["error"]["code"], "model_not_loaded");
    }

    #[test]
    fn token_estimates_follow_bert_pre_tokenisation() {
        assert_eq!(approximate_tokens(""), 2);
        assert_eq!(approximate_tokens("hello world"), 4);
        assert_eq!(approximate_tokens("a, b!"), 6);
        assert_eq!(approximate_tokens("don't  stop"), 6);
        assert_eq!(approximate_tokens("猫は幸せ"), 2 + 3 + 1);
    }
}
