//! [`TrainError`]: every failure of the trainer.

use cerulean_lake::LakeError;

/// An error of the trainer: a bad job file, a dataset that cannot be read or used, a device that
/// is not there, a computation that failed, or a checkpoint that does not fit the job.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A job-spec field is missing, unknown or out of range. `field` is the dotted key path, e.g.
    /// `train.learning_rate` or `train.learning_rate[1]` for one value of a swept list.
    #[error("{field}: {message}")]
    Spec {
        /// The dotted key path of the offending field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The job file is not valid TOML (or the job JSON is not an object).
    #[error("invalid job file: {0}")]
    Syntax(String),
    /// The dataset cannot be read from the lake.
    #[error("dataset: {0}")]
    Lake(#[from] LakeError),
    /// The dataset was read but cannot be used as the job asks (missing or non-numeric column,
    /// null values, too few rows, ...). `column` names the column when one is at fault.
    #[error("dataset{}: {message}", column.as_ref().map(|c| format!(" column '{c}'")).unwrap_or_default())]
    Data {
        /// The column at fault, when one is.
        column: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The requested training device cannot be used (`train.device`).
    #[error("train.device: {0}")]
    Device(String),
    /// candle failed while computing.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A checkpoint cannot be encoded or decoded, or does not belong to this job.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A pretrained network the job builds on is missing or unreadable.
    #[error("pretrained model: {0}")]
    Pretrained(String),
    /// The model files cannot be produced.
    #[error("export: {0}")]
    Export(String),
    /// The worker's [`TrainContext`](crate::TrainContext) failed (e.g. the metric or artifact
    /// store refused a write).
    #[error("{0}")]
    Context(String),
    /// A broken invariant inside the trainer (a bug, not a bad job).
    #[error("internal error: {0}")]
    Internal(String),
}

impl TrainError {
    /// A [`TrainError::Spec`] for `field`.
    pub fn spec(field: impl Into<String>, message: impl Into<String>) -> Self {
        TrainError::Spec {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A [`TrainError::Data`] about `column`.
    pub fn column(column: impl Into<String>, message: impl Into<String>) -> Self {
        TrainError::Data {
            column: Some(column.into()),
            message: message.into(),
        }
    }

    /// A [`TrainError::Data`] about the dataset as a whole.
    pub fn data(message: impl Into<String>) -> Self {
        TrainError::Data {
            column: None,
            message: message.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
