//! The cognitive error type.

use cerulean_serving::ServingError;

/// Everything that can go wrong while loading or running a language pipeline.
#[derive(Debug, thiserror::Error)]
pub enum CognitiveError {
    /// A model file is missing or malformed.
    #[error("model {model}: {message}")]
    Model {
        /// The model the file belongs to.
        model: String,
        /// What is wrong.
        message: String,
    },
    /// The input cannot be processed (e.g. not UTF-8).
    #[error("{0}")]
    BadInput(String),
    /// ONNX Runtime failed.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The serving layer refused or failed.
    #[error(transparent)]
    Serving(#[from] ServingError),
}

impl CognitiveError {
    /// Shorthand for a [`CognitiveError::Model`] error.
    pub fn model(model: impl Into<String>, message: impl std::fmt::Display) -> CognitiveError {
        CognitiveError::Model {
            model: model.into(),
            message: message.to_string(),
        }
    }

    /// Shorthand for an [`CognitiveError::Io`] error.
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> CognitiveError {
        CognitiveError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<ort::Error> for CognitiveError {
    fn from(e: ort::Error) -> Self {
        CognitiveError::Runtime(e.to_string())
    }
}

impl From<CognitiveError> for ServingError {
    fn from(e: CognitiveError) -> Self {
        match e {
            CognitiveError::Serving(e) => e,
            CognitiveError::BadInput(m) => ServingError::BadRequest(m),
            CognitiveError::Model { .. } | CognitiveError::Io { .. } => {
                ServingError::Unavailable(e.to_string())
            }
            CognitiveError::Runtime(m) => ServingError::Internal(m),
        }
    }
}

/// The cognitive result type.
pub type Result<T, E = CognitiveError> = std::result::Result<T, E>;
