//! The registry's error type, carrying MLflow's error codes and the HTTP status each one maps to.
//!
//! The MLflow REST edge renders every error as `{"error_code": "...", "message": "..."}` with the
//! status of [`RegistryError::http_status`] (the table of `mlflow/exceptions.py`). The messages
//! follow MLflow's wording where clients or users may read them.

use thiserror::Error;

/// MLflow's error codes (`databricks.proto` `ErrorCode`) that the registry uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A request field has a bad value (400).
    InvalidParameterValue,
    /// The request is malformed (400).
    BadRequest,
    /// The entity already exists (400 in MLflow, unlike `ALREADY_EXISTS`).
    ResourceAlreadyExists,
    /// The entity does not exist (404).
    ResourceDoesNotExist,
    /// No such endpoint (404); the client falls back to another path on it.
    EndpointNotFound,
    /// The caller may not do this (403).
    PermissionDenied,
    /// No or bad credentials (401).
    Unauthenticated,
    /// The request conflicts with the entity's current state (409).
    ResourceConflict,
    /// Too many requests (429).
    RequestLimitExceeded,
    /// A server-side failure (500).
    InternalError,
    /// The stored state is inconsistent (500).
    InvalidState,
    /// The operation is not implemented (501).
    NotImplemented,
    /// The service is busy or starting; retry (503).
    TemporarilyUnavailable,
    /// Cerulean: a worker's lease on a job is no longer current (another worker took the job
    /// over, or it ended) (409).
    LeaseLost,
}

impl ErrorCode {
    /// The code's name as it appears in `error_code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            ErrorCode::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            ErrorCode::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::ResourceConflict => "RESOURCE_CONFLICT",
            ErrorCode::RequestLimitExceeded => "REQUEST_LIMIT_EXCEEDED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::InvalidState => "INVALID_STATE",
            ErrorCode::NotImplemented => "NOT_IMPLEMENTED",
            ErrorCode::TemporarilyUnavailable => "TEMPORARILY_UNAVAILABLE",
            ErrorCode::LeaseLost => "LEASE_LOST",
        }
    }

    /// The HTTP status MLflow answers this code with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidParameterValue
            | ErrorCode::BadRequest
            | ErrorCode::ResourceAlreadyExists => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::ResourceDoesNotExist | ErrorCode::EndpointNotFound => 404,
            ErrorCode::ResourceConflict | ErrorCode::LeaseLost => 409,
            ErrorCode::RequestLimitExceeded => 429,
            ErrorCode::InternalError | ErrorCode::InvalidState => 500,
            ErrorCode::NotImplemented => 501,
            ErrorCode::TemporarilyUnavailable => 503,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every failure of the registry's metadata layer (and of the layers above it).
#[derive(Debug, Error)]
pub enum RegistryError {
    /// A request field has a bad value: `INVALID_PARAMETER_VALUE` (400).
    #[error("{0}")]
    InvalidParameter(String),
    /// The request is malformed: `BAD_REQUEST` (400).
    #[error("{0}")]
    BadRequest(String),
    /// The entity already exists: `RESOURCE_ALREADY_EXISTS` (400).
    #[error("{0}")]
    AlreadyExists(String),
    /// The entity does not exist: `RESOURCE_DOES_NOT_EXIST` (404).
    #[error("{0}")]
    NotFound(String),
    /// No such endpoint: `ENDPOINT_NOT_FOUND` (404).
    #[error("{0}")]
    EndpointNotFound(String),
    /// Not allowed: `PERMISSION_DENIED` (403).
    #[error("{0}")]
    PermissionDenied(String),
    /// No or bad credentials: `UNAUTHENTICATED` (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// Conflicts with the current state: `RESOURCE_CONFLICT` (409).
    #[error("{0}")]
    Conflict(String),
    /// The stored state is inconsistent: `INVALID_STATE` (500).
    #[error("{0}")]
    InvalidState(String),
    /// The store is busy or unreachable; retry: `TEMPORARILY_UNAVAILABLE` (503).
    #[error("{0}")]
    Unavailable(String),
    /// A worker's lease on a job is no longer current: `LEASE_LOST` (409).
    #[error("{0}")]
    LeaseLost(String),
    /// Anything else: `INTERNAL_ERROR` (500).
    #[error("{0}")]
    Internal(String),
    /// A database failure not mapped to a more precise variant: `INTERNAL_ERROR` (500), or
    /// `TEMPORARILY_UNAVAILABLE` (503) when the pool timed out or the connection was lost.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl RegistryError {
    /// MLflow's error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            RegistryError::InvalidParameter(_) => ErrorCode::InvalidParameterValue,
            RegistryError::BadRequest(_) => ErrorCode::BadRequest,
            RegistryError::AlreadyExists(_) => ErrorCode::ResourceAlreadyExists,
            RegistryError::NotFound(_) => ErrorCode::ResourceDoesNotExist,
            RegistryError::EndpointNotFound(_) => ErrorCode::EndpointNotFound,
            RegistryError::PermissionDenied(_) => ErrorCode::PermissionDenied,
            RegistryError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            RegistryError::Conflict(_) => ErrorCode::ResourceConflict,
            RegistryError::InvalidState(_) => ErrorCode::InvalidState,
            RegistryError::Unavailable(_) => ErrorCode::TemporarilyUnavailable,
            RegistryError::LeaseLost(_) => ErrorCode::LeaseLost,
            RegistryError::Internal(_) => ErrorCode::InternalError,
            RegistryError::Database(e) => match e {
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                    ErrorCode::TemporarilyUnavailable
                }
                _ => ErrorCode::InternalError,
            },
        }
    }

    /// MLflow's error code name, e.g. `RESOURCE_DOES_NOT_EXIST`.
    pub fn error_code(&self) -> &'static str {
        self.code().as_str()
    }

    /// The HTTP status for this error, e.g. 404 for `RESOURCE_DOES_NOT_EXIST`.
    pub fn http_status(&self) -> u16 {
        self.code().http_status()
    }

    /// The MLflow error body: `{"error_code": "...", "message": "..."}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"error_code": self.error_code(), "message": self.to_string()})
    }

    /// `INVALID_PARAMETER_VALUE` with this message.
    pub fn invalid(message: impl Into<String>) -> Self {
        RegistryError::InvalidParameter(message.into())
    }

    /// `RESOURCE_DOES_NOT_EXIST` with this message.
    pub fn not_found(message: impl Into<String>) -> Self {
        RegistryError::NotFound(message.into())
    }

    /// `RESOURCE_ALREADY_EXISTS` with this message.
    pub fn already_exists(message: impl Into<String>) -> Self {
        RegistryError::AlreadyExists(message.into())
    }

    /// "No Experiment with id=X exists" (404).
    pub fn experiment_not_found(id: &str) -> Self {
        Self::not_found(format!("No Experiment with id={id} exists"))
    }

    /// "Experiment with name 'X' does not exist." (404).
    pub fn experiment_name_not_found(name: &str) -> Self {
        Self::not_found(format!("Experiment with name '{name}' does not exist."))
    }

    /// "Experiment with name 'X' already exists." (400).
    pub fn experiment_exists(name: &str) -> Self {
        Self::already_exists(format!("Experiment with name '{name}' already exists."))
    }

    /// "Run with id=X not found" (404).
    pub fn run_not_found(run_id: &str) -> Self {
        Self::not_found(format!("Run with id={run_id} not found"))
    }

    /// "Registered Model with name=X not found" (404).
    pub fn model_not_found(name: &str) -> Self {
        Self::not_found(format!("Registered Model with name={name} not found"))
    }

    /// "Registered Model (name=X) already exists." (400).
    pub fn model_exists(name: &str) -> Self {
        Self::already_exists(format!("Registered Model (name={name}) already exists."))
    }

    /// "Model Version (name=X, version=N) not found" (404).
    pub fn version_not_found(name: &str, version: impl std::fmt::Display) -> Self {
        Self::not_found(format!(
            "Model Version (name={name}, version={version}) not found"
        ))
    }

    /// "Registered model alias X not found." — `INVALID_PARAMETER_VALUE` (400), as MLflow answers.
    pub fn alias_not_found(alias: &str) -> Self {
        Self::invalid(format!("Registered model alias {alias} not found."))
    }

    /// "Logged model with ID 'X' not found." (404).
    pub fn logged_model_not_found(model_id: &str) -> Self {
        Self::not_found(format!("Logged model with ID '{model_id}' not found."))
    }

    /// "No job with id=X exists" (404).
    pub fn job_not_found(job_id: &str) -> Self {
        Self::not_found(format!("No job with id={job_id} exists"))
    }

    /// Whether the database refused the write because of a unique constraint.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, RegistryError::Database(sqlx::Error::Database(e))
            if e.kind() == sqlx::error::ErrorKind::UniqueViolation)
    }
}

/// The registry's result type.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_mlflow_statuses() {
        let cases = [
            (RegistryError::invalid("x"), "INVALID_PARAMETER_VALUE", 400),
            (RegistryError::BadRequest("x".into()), "BAD_REQUEST", 400),
            (
                RegistryError::already_exists("x"),
                "RESOURCE_ALREADY_EXISTS",
                400,
            ),
            (
                RegistryError::not_found("x"),
                "RESOURCE_DOES_NOT_EXIST",
                404,
            ),
            (
                RegistryError::EndpointNotFound("x".into()),
                "ENDPOINT_NOT_FOUND",
                404,
            ),
            (
                RegistryError::PermissionDenied("x".into()),
                "PERMISSION_DENIED",
                403,
            ),
            (
                RegistryError::Unauthenticated("x".into()),
                "UNAUTHENTICATED",
                401,
            ),
            (RegistryError::Internal("x".into()), "INTERNAL_ERROR", 500),
            (RegistryError::LeaseLost("x".into()), "LEASE_LOST", 409),
            (
                RegistryError::Unavailable("x".into()),
                "TEMPORARILY_UNAVAILABLE",
                503,
            ),
            (
                RegistryError::Database(sqlx::Error::PoolTimedOut),
                "TEMPORARILY_UNAVAILABLE",
                503,
            ),
        ];
        for (err, code, status) in cases {
            assert_eq!(err.error_code(), code);
            assert_eq!(err.http_status(), status);
        }
    }

    #[test]
    fn messages_follow_mlflow() {
        assert_eq!(
            RegistryError::alias_not_found("champion").to_string(),
            "Registered model alias champion not found."
        );
        assert_eq!(
            RegistryError::model_not_found("x").to_string(),
            "Registered Model with name=x not found"
        );
        assert_eq!(
            RegistryError::run_not_found("abc").to_string(),
            "Run with id=abc not found"
        );
        assert_eq!(
            RegistryError::experiment_exists("x").to_string(),
            "Experiment with name 'x' already exists."
        );
        let body = RegistryError::not_found("gone").to_json();
        assert_eq!(body["error_code"], "RESOURCE_DOES_NOT_EXIST");
        assert_eq!(body["message"], "gone");
    }
}
