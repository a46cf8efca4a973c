//! The dataset register: named datasets with numbered versions, each a URI in the lake, its
//! format, content digest, schema and row count. Registering a name again adds the next version,
//! unless the digest equals the latest version's (the data did not change): then the latest is
//! answered unchanged. The registry records what it is given; computing digests is the CLI's job.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest dataset format name (`parquet`, `csv`, ...).
pub const MAX_DATASET_FORMAT_LENGTH: usize = 64;
/// Longest dataset digest.
pub const MAX_DATASET_DIGEST_LENGTH: usize = 256;
/// Longest dataset description.
pub const MAX_DATASET_DESCRIPTION_LENGTH: usize = 5000;

/// One version of a registered dataset. Unset optional fields are left out of its JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    /// The dataset's name (the rules of registered model names).
    pub name: String,
    /// Its version: 1, 2, ...
    pub version: i64,
    /// Where the data is, e.g. `s3://bucket/digits/` or `file:///data/digits.parquet`.
    pub uri: String,
    /// Its format, e.g. `parquet`.
    pub format: String,
    /// The digest of its content.
    pub digest: String,
    /// Its schema (a JSON document as the lake describes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// How many rows it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_count: Option<i64>,
    /// Registered, ms since the epoch.
    pub created_at: i64,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `register_dataset`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegisterDataset {
    /// The dataset's name.
    pub name: String,
    /// Where the data is.
    pub uri: String,
    /// Its format.
    pub format: String,
    /// The digest of its content.
    pub digest: String,
    /// Its schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// How many rows it has.
    #[serde(
        deserialize_with = "crate::entities::json::deserialize_opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub row_count: Option<i64>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
