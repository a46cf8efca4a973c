//! The serving error type and its mapping onto HTTP statuses and gRPC codes, following Triton.

use http::StatusCode;

/// Everything that can go wrong while serving a request or loading a model.
#[derive(Debug, thiserror::Error, Clone)]
pub enum ServingError {
    /// The request is malformed or does not match the model (Triton `INVALID_ARG`).
    #[error("{0}")]
    BadRequest(String),
    /// The model or version is unknown (Triton `NOT_FOUND`).
    #[error("{0}")]
    NotFound(String),
    /// The model exists but is not ready, or the server is shutting down (Triton `UNAVAILABLE`).
    #[error("{0}")]
    Unavailable(String),
    /// The model's queue is full; the client should retry later.
    #[error("{0}")]
    QueueFull(String),
    /// A request exceeds a configured size limit.
    #[error("{0}")]
    TooLarge(String),
    /// The operation is switched off on this server (e.g. model control).
    #[error("{0}")]
    Unsupported(String),
    /// The model failed while computing, or another internal fault.
    #[error("{0}")]
    Internal(String),
}

impl ServingError {
    /// The HTTP status Triton answers with for this error.
    pub fn http_status(&self) -> StatusCode {
        match self {
            ServingError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServingError::NotFound(_) => StatusCode::NOT_FOUND,
            ServingError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServingError::QueueFull(_) => StatusCode::TOO_MANY_REQUESTS,
            ServingError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServingError::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
            ServingError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC status code that matches [`ServingError::http_status`].
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            ServingError::BadRequest(_) => tonic::Code::InvalidArgument,
            ServingError::NotFound(_) => tonic::Code::NotFound,
            ServingError::Unavailable(_) => tonic::Code::Unavailable,
            ServingError::QueueFull(_) => tonic::Code::ResourceExhausted,
            ServingError::TooLarge(_) => tonic::Code::ResourceExhausted,
            ServingError::Unsupported(_) => tonic::Code::Unimplemented,
            ServingError::Internal(_) => tonic::Code::Internal,
        }
    }

    /// Shorthand for a [`ServingError::BadRequest`] naming a tensor.
    pub fn tensor(name: &str, message: impl std::fmt::Display) -> ServingError {
        ServingError::BadRequest(format!("tensor '{name}': {message}"))
    }
}

impl From<ServingError> for tonic::Status {
    fn from(err: ServingError) -> Self {
        tonic::Status::new(err.grpc_code(), err.to_string())
    }
}

/// Result alias for serving operations.
pub type Result<T, E = ServingError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_triton() {
        assert_eq!(ServingError::BadRequest("x".into()).http_status(), 400);
        assert_eq!(ServingError::NotFound("x".into()).http_status(), 404);
        assert_eq!(ServingError::QueueFull("x".into()).http_status(), 429);
        assert_eq!(ServingError::TooLarge("x".into()).http_status(), 413);
        assert_eq!(ServingError::Unavailable("x".into()).http_status(), 503);
        let status: tonic::Status = ServingError::NotFound("no model".into()).into();
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(status.message(), "no model");
    }

    #[test]
    fn tensor_errors_name_the_tensor() {
        let err = ServingError::tensor("INPUT0", "wrong shape");
        assert!(err.to_string().contains("INPUT0"));
    }
}
