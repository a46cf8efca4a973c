//! The artifact store behind MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/...`).
//!
//! - [`ArtifactStore`]: one root location (`file:///dir` or a plain path, `az://container/prefix`
//!   and the other Azure URL forms, `s3://bucket/prefix`) and the streaming operations the proxy
//!   needs: put, get (with byte ranges), list one level, delete (file or prefix) and MLflow's
//!   multipart upload (create, upload part, complete, abort).
//! - [`ArtifactPath`]: a validated relative path that cannot escape the root.
//! - [`http::router`]: the axum routes of the MLflow artifact proxy over an [`ArtifactStore`].
//! - [`create_azure_container`]: the SharedKey-signed `PUT ?restype=container` that `object_store`
//!   lacks.

mod azure;
pub mod http;
mod path;
mod store;

pub use azure::{AzureContainerTarget, create_azure_container};
pub use path::{ArtifactPath, MAX_PATH_BYTES, MAX_SEGMENT_BYTES, client_file_name};
pub use store::{
    ArtifactDownload, ArtifactLimits, ArtifactMeta, ArtifactStore, ByteRange, CompletedPart,
    FileInfo, PutOutcome, StoreKind,
};

/// Errors of the artifact store and its HTTP routes. [`ArtifactError::error_code`] and
/// [`ArtifactError::status`] give MLflow's error code and the HTTP status for each.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The artifact path is not a safe relative path.
    #[error("invalid artifact path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given (decoded where it was decoded).
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// No artifact (or multipart upload) exists at this path.
    #[error("{what} {path:?} does not exist")]
    NotFound {
        /// What was looked for ("artifact", "multipart upload").
        what: &'static str,
        /// The artifact path.
        path: String,
    },
    /// A request parameter is missing or has a bad value.
    #[error("{0}")]
    InvalidParameter(String),
    /// A body or part is larger than the configured limit.
    #[error("{what} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The requested byte range lies outside the artifact.
    #[error("range not satisfiable: artifact {path:?} has {size} bytes")]
    RangeNotSatisfiable {
        /// The artifact path.
        path: String,
        /// The artifact's size in bytes.
        size: u64,
    },
    /// The artifact root location (URI or options) is not usable.
    #[error("invalid artifact location {location:?}: {reason}")]
    Location {
        /// The location as given.
        location: String,
        /// Why it is not usable.
        reason: String,
    },
    /// Reading the request body failed (e.g. the client went away).
    #[error("reading the request body failed: {0}")]
    Body(String),
    /// The storage backend failed.
    #[error("storage error while {action} {path:?}: {source}")]
    Storage {
        /// What was being done ("reading", "writing", ...).
        action: &'static str,
        /// The artifact path or key involved.
        path: String,
        /// The backend's error.
        #[source]
        source: object_store::Error,
    },
    /// Creating an Azure container failed.
    #[error("creating container {container:?} failed: {reason}")]
    Container {
        /// The container name.
        container: String,
        /// Why it failed.
        reason: String,
    },
}

impl ArtifactError {
    pub(crate) fn invalid_path(path: &str, reason: &'static str) -> Self {
        Self::InvalidPath {
            path: path.to_owned(),
            reason,
        }
    }

    /// Wraps an `object_store` error; `NotFound` becomes [`ArtifactError::NotFound`].
    pub(crate) fn storage(action: &'static str, path: &str, source: object_store::Error) -> Self {
        match source {
            object_store::Error::NotFound { .. } => Self::NotFound {
                what: "artifact",
                path: path.to_owned(),
            },
            source => Self::Storage {
                action,
                path: path.to_owned(),
                source,
            },
        }
    }

    /// MLflow's `error_code` for this error.
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "RESOURCE_DOES_NOT_EXIST",
            Self::InvalidPath { .. }
            | Self::InvalidParameter(_)
            | Self::TooLarge { .. }
            | Self::RangeNotSatisfiable { .. }
            | Self::Location { .. } => "INVALID_PARAMETER_VALUE",
            Self::Body(_) => "BAD_REQUEST",
            Self::Storage {
                source: object_store::Error::NotImplemented { .. },
                ..
            } => "NOT_IMPLEMENTED",
            Self::Storage { .. } | Self::Container { .. } => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> ::http::StatusCode {
        use ::http::StatusCode;
        match self {
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::InvalidPath { .. }
            | Self::InvalidParameter(_)
            | Self::Location { .. }
            | Self::Body(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::Storage {
                source: object_store::Error::NotImplemented { .. },
                ..
            } => StatusCode::NOT_IMPLEMENTED,
            Self::Storage { .. } | Self::Container { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message to send to clients: the full text for client errors; for storage failures the
    /// operation and path only (backend errors can carry URLs with SAS tokens; log the full error).
    pub fn public_message(&self) -> String {
        match self {
            Self::Storage { action, path, .. } => {
                format!(
                    "artifact storage failed while {action} {path:?} (details in the server log)"
                )
            }
            other => other.to_string(),
        }
    }
}
