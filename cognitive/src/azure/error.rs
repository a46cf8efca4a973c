//! Request-level errors of the Azure routes and their envelope:
//! `{"error": {"code", "message", "innererror": {"code", "message"}}}`.
//!
//! The Python SDK reads the inner code (`HttpResponseError.error.code == "InvalidDocumentBatch"`),
//! so every client error carries one.

use axum::Json;
use axum::response::{IntoResponse, Response};
use cerulean_serving::ServingError;
use http::{HeaderValue, StatusCode};
use serde_json::json;

use super::v2::V2Error;

/// Inner code: the batch is refused as a whole (too many documents, body too large).
pub const INVALID_DOCUMENT_BATCH: &str = "InvalidDocumentBatch";
/// Inner code: a document is malformed (duplicate ids, empty id).
pub const INVALID_DOCUMENT: &str = "InvalidDocument";
/// Inner code: a parameter has a value the service does not accept.
pub const INVALID_PARAMETER_VALUE: &str = "InvalidParameterValue";
/// Inner code: the body is not JSON of the expected shape.
pub const INVALID_REQUEST_BODY_FORMAT: &str = "InvalidRequestBodyFormat";
/// Inner code: the request holds no documents.
pub const MISSING_INPUT_RECORDS: &str = "MissingInputRecords";
/// Inner code: `modelVersion` names a version the service does not have.
pub const MODEL_VERSION_INCORRECT: &str = "ModelVersionIncorrect";

/// A request the Azure routes refuse or cannot answer as a whole (per-document problems are not
/// errors: they go into the 200 response's `errors`).
#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    /// 400: the request is invalid; `inner_code` is one of this module's inner codes.
    #[error("{inner_code}: {message}")]
    BadRequest {
        /// Azure's inner error code.
        inner_code: &'static str,
        /// What is wrong, naming the field or parameter.
        message: String,
    },
    /// 413: the body is larger than the limit.
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// 404: no such operation or API version.
    #[error("resource not found: {0}")]
    NotFound(String),
    /// 503: the model behind the route is not loaded (or not in the repository).
    #[error("model '{model}' is not available: {message}")]
    ModelUnavailable {
        /// The v2 model.
        model: String,
        /// Why.
        message: String,
    },
    /// 429: the model's queue is full.
    #[error("model '{model}' is busy: {message}")]
    Busy {
        /// The v2 model.
        model: String,
        /// The serving layer's message.
        message: String,
    },
    /// 400: the model refused the documents.
    #[error("model '{model}' refused the documents: {message}")]
    ModelRejected {
        /// The v2 model.
        model: String,
        /// The model's message.
        message: String,
    },
    /// 500: the model failed, or answered in a shape the route cannot read.
    #[error("{0}")]
    Internal(String),
}

impl AzureError {
    /// Shorthand for a [`AzureError::BadRequest`].
    pub fn bad_request(inner_code: &'static str, message: impl Into<String>) -> AzureError {
        AzureError::BadRequest {
            inner_code,
            message: message.into(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            AzureError::BadRequest { .. } | AzureError::ModelRejected { .. } => {
                StatusCode::BAD_REQUEST
            }
            AzureError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AzureError::NotFound(_) => StatusCode::NOT_FOUND,
            AzureError::ModelUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AzureError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            AzureError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON envelope.
    pub fn body(&self) -> serde_json::Value {
        let outer =
            |code: &str, message: &str| json!({"error": {"code": code, "message": message}});
        let with_inner = |inner_code: &str, message: &str| {
            let outer_message = match inner_code {
                INVALID_DOCUMENT_BATCH | INVALID_DOCUMENT | MISSING_INPUT_RECORDS => {
                    "Invalid document in request."
                }
                _ => "Invalid Request.",
            };
            json!({"error": {
                "code": "InvalidRequest",
                "message": outer_message,
                "innererror": {"code": inner_code, "message": message},
            }})
        };
        match self {
            AzureError::BadRequest {
                inner_code,
                message,
            } => with_inner(inner_code, message),
            AzureError::BodyTooLarge { limit } => with_inner(
                INVALID_DOCUMENT_BATCH,
                &format!(
                    "Request Payload sent is too large to be processed. Limit request size to: {limit}"
                ),
            ),
            AzureError::ModelRejected { message, .. } => with_inner(INVALID_DOCUMENT, message),
            AzureError::NotFound(what) => outer("404", &format!("Resource not found: {what}")),
            AzureError::ModelUnavailable { .. } => outer("ServiceUnavailable", &self.to_string()),
            AzureError::Busy { .. } => outer("TooManyRequests", &self.to_string()),
            AzureError::Internal(message) => outer("InternalServerError", message),
        }
    }
}

impl IntoResponse for AzureError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::warn!(error = %self, "azure language request failed");
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        if matches!(self, AzureError::Busy { .. }) {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<V2Error> for AzureError {
    fn from(err: V2Error) -> Self {
        match err {
            V2Error::Serving { model, source } => match source {
                ServingError::NotFound(m) | ServingError::Unavailable(m) => {
                    AzureError::ModelUnavailable { model, message: m }
                }
                ServingError::QueueFull(m) => AzureError::Busy { model, message: m },
                ServingError::BadRequest(m) | ServingError::TooLarge(m) => {
                    AzureError::ModelRejected { model, message: m }
                }
                ServingError::Unsupported(m) | ServingError::Internal(m) => {
                    AzureError::Internal(format!("model '{model}' failed: {m}"))
                }
            },
            output @ V2Error::Output { .. } => AzureError::Internal(output.to_string()),
        }
    }
}
