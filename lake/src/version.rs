//! [`DatasetVersion`]: a dataset's identity by content hash over its object list and schema.

use arrow::datatypes::Schema;
use futures::TryStreamExt;
use object_store::ObjectMeta;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::table::{TableFormat, open_table_in, parquet_builder};
use crate::{LakeUri, Result, open_store};

/// One object of a dataset version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionedObject {
    /// The object's path inside its store.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// The store's entity tag, where it gives one.
    pub e_tag: Option<String>,
    /// Last modification time (RFC 3339).
    pub last_modified: String,
}

impl From<&ObjectMeta> for VersionedObject {
    fn from(meta: &ObjectMeta) -> Self {
        Self {
            path: meta.location.to_string(),
            size: meta.size,
            e_tag: meta.e_tag.clone(),
            last_modified: meta.last_modified.to_rfc3339(),
        }
    }
}

/// A version of a dataset: what it contained when it was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetVersion {
    /// `sha256:<hex>` over the objects sorted by path (each: path, size, and the entity tag or,
    /// without one, the last-modified time) followed by the schema JSON. It changes when any object
    /// is added, removed or rewritten, or the schema changes, and only then.
    pub content_hash: String,
    /// The schema as JSON (see [`schema_json`]).
    pub schema: String,
    /// Rows in the dataset.
    pub row_count: u64,
    /// The objects, sorted by path.
    pub objects: Vec<VersionedObject>,
}

impl DatasetVersion {
    /// Builds the version of a dataset whose objects, schema and row count are already known
    /// (e.g. counted while the dataset was streamed for training), without reading any data.
    pub fn from_parts(objects: &[ObjectMeta], schema: &Schema, row_count: u64) -> Self {
        let mut objects: Vec<VersionedObject> = objects.iter().map(VersionedObject::from).collect();
        objects.sort_by(|a, b| a.path.cmp(&b.path));
        let schema = schema_json(schema);
        let mut hasher = Sha256::new();
        for object in &objects {
            let tag = object.e_tag.as_deref().unwrap_or(&object.last_modified);
            for field in [
                object.path.as_bytes(),
                object.size.to_string().as_bytes(),
                tag.as_bytes(),
            ] {
                hasher.update((field.len() as u64).to_le_bytes());
                hasher.update(field);
            }
        }
        hasher.update(b"schema");
        hasher.update(schema.as_bytes());
        Self {
            content_hash: format!("sha256:{}", hex::encode(hasher.finalize())),
            schema,
            row_count,
            objects,
        }
    }
}

/// The schema as a JSON string: `{"fields":[{"name":..,"data_type":..,"nullable":..},..]}` with
/// Arrow's display form of each data type.
pub fn schema_json(schema: &Schema) -> String {
    let fields: Vec<serde_json::Value> = schema
        .fields()
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": f.name(),
                "data_type": f.data_type().to_string(),
                "nullable": f.is_nullable(),
            })
        })
        .collect();
    serde_json::json!({ "fields": fields }).to_string()
}

/// Records the version of the tabular dataset at `uri`. The data is read at most once: Parquet row
/// counts come from the file footers; CSV and JSON lines are streamed once to count their rows.
pub async fn dataset_version(uri: &LakeUri, format: TableFormat) -> Result<DatasetVersion> {
    let (store, location) = open_store(uri)?;
    let table = open_table_in(store.clone(), &location, &uri.to_string(), format, 8192).await?;
    let row_count = match format {
        TableFormat::Parquet => {
            let mut rows = 0u64;
            for meta in &table.objects {
                let builder = parquet_builder(&store, meta).await?;
                rows += builder.metadata().file_metadata().num_rows() as u64;
            }
            rows
        }
        TableFormat::Csv | TableFormat::JsonLines => {
            table
                .batches
                .try_fold(
                    0u64,
                    |n, batch| async move { Ok(n + batch.num_rows() as u64) },
                )
                .await?
        }
    };
    Ok(DatasetVersion::from_parts(
        &table.objects,
        &table.schema,
        row_count,
    ))
}
