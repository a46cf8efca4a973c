//! [`LakeError`]: every failure of the lake crate.

use arrow::error::ArrowError;
use parquet::errors::ParquetError;

/// An error of the lake: a bad URI, a store that cannot be configured or answers with an error,
/// a file that cannot be decoded, or a bad argument.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The URI cannot be parsed or uses an unsupported scheme.
    #[error("invalid lake URI {uri:?}: {reason}")]
    InvalidUri {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The object store for a URI cannot be built (missing credentials, bad configuration).
    #[error("cannot configure the object store for {uri}: {source}")]
    StoreConfig {
        /// The URI whose store was being built.
        uri: String,
        /// The object store's error.
        #[source]
        source: object_store::Error,
    },
    /// An object-store operation failed.
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// A Parquet file cannot be read.
    #[error("parquet: {0}")]
    Parquet(#[from] ParquetError),
    /// A CSV or JSON-lines file cannot be decoded, or a schema cannot be inferred.
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    /// The URI names neither an object nor a prefix holding objects of the format.
    #[error("no {what} found at {uri}")]
    Empty {
        /// The dataset URI.
        uri: String,
        /// What was looked for (e.g. `parquet files (.parquet, .pq)`).
        what: String,
    },
    /// A file of a multi-file dataset has a schema other than the first file's.
    #[error(
        "the schema of {path} differs from the first file's: expected {expected}, found {found}"
    )]
    SchemaMismatch {
        /// The offending object.
        path: String,
        /// The first file's schema (JSON).
        expected: String,
        /// This file's schema (JSON).
        found: String,
    },
    /// An unknown table format name.
    #[error("unknown table format {0:?}; use parquet, csv or jsonl")]
    UnknownFormat(String),
    /// A bad argument (batch size 0, a validation fraction outside 0..=1, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}
