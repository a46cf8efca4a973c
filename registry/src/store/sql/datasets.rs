//! The dataset register (`registered_datasets`): numbered versions per name, a new version only
//! when the digest changes.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{SqlStore, now_ms};
use crate::datasets::{
    DatasetRecord, MAX_DATASET_DESCRIPTION_LENGTH, MAX_DATASET_DIGEST_LENGTH,
    MAX_DATASET_FORMAT_LENGTH, RegisterDataset,
};
use crate::error::{RegistryError, Result};
use crate::validation::{self, MAX_DATASET_SCHEMA_SIZE, MAX_DATASET_SOURCE_SIZE, check_length};

const COLS: &str =
    "name, version, uri, format, digest, schema_json, row_count, created_at, description";

/// How often a registration is retried when a concurrent one took the same version number.
const REGISTER_RETRIES: usize = 8;

fn record_from_row(row: &AnyRow) -> Result<DatasetRecord> {
    let schema: Option<String> = row.try_get("schema_json")?;
    Ok(DatasetRecord {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        uri: row.try_get("uri")?,
        format: row.try_get("format")?,
        digest: row.try_get("digest")?,
        schema: schema
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| {
                RegistryError::InvalidState(format!("the stored dataset schema is not JSON: {e}"))
            })?,
        row_count: row.try_get("row_count")?,
        created_at: row.try_get("created_at")?,
        description: row.try_get("description")?,
    })
}

fn not_found(name: &str, version: Option<i64>) -> RegistryError {
    match version {
        Some(v) => RegistryError::not_found(format!("Dataset '{name}' has no version {v}")),
        None => RegistryError::not_found(format!("Dataset '{name}' not found")),
    }
}

fn required(value: &str, field: &str, limit: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(RegistryError::invalid(format!(
            "Missing value for required parameter '{field}'."
        )));
    }
    check_length(field, limit, value)
}

async fn latest(conn: &mut AnyConnection, name: &str) -> Result<Option<DatasetRecord>> {
    sqlx::query(&format!(
        "SELECT {COLS} FROM registered_datasets WHERE name = $1 ORDER BY version DESC LIMIT 1"
    ))
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(record_from_row)
    .transpose()
}

/// A dataset name: the rules of registered model names.
fn validate_name(name: &str) -> Result<()> {
    validation::validate_model_name(name)
        .map_err(|e| RegistryError::invalid(e.to_string().replace("model name", "dataset name")))
}

pub(super) async fn register_dataset(s: &SqlStore, req: RegisterDataset) -> Result<DatasetRecord> {
    validate_name(&req.name)?;
    required(&req.uri, "uri", MAX_DATASET_SOURCE_SIZE)?;
    required(&req.format, "format", MAX_DATASET_FORMAT_LENGTH)?;
    required(&req.digest, "digest", MAX_DATASET_DIGEST_LENGTH)?;
    if let Some(d) = &req.description {
        check_length("description", MAX_DATASET_DESCRIPTION_LENGTH, d)?;
    }
    if req.row_count.is_some_and(|n| n < 0) {
        return Err(RegistryError::invalid(
            "Invalid value for parameter 'row_count': it must not be negative.",
        ));
    }
    let schema = req
        .schema
        .as_ref()
        .filter(|v| !v.is_null())
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| RegistryError::invalid(format!("'schema' cannot be encoded: {e}")))?;
    if let Some(schema) = &schema {
        check_length("schema", MAX_DATASET_SCHEMA_SIZE, schema)?;
    }
    for _ in 0..REGISTER_RETRIES {
        match register_once(s, &req, schema.as_deref()).await {
            Err(e) if e.is_unique_violation() => continue,
            other => return other,
        }
    }
    Err(RegistryError::Unavailable(format!(
        "Too many concurrent registrations of dataset '{}'; retry.",
        req.name
    )))
}

async fn register_once(
    s: &SqlStore,
    req: &RegisterDataset,
    schema: Option<&str>,
) -> Result<DatasetRecord> {
    let mut tx = s.begin().await?;
    let current = latest(&mut tx, &req.name).await?;
    if let Some(current) = current.as_ref().filter(|c| c.digest == req.digest) {
        tx.commit().await?;
        return Ok(current.clone());
    }
    let record = DatasetRecord {
        name: req.name.clone(),
        version: current.map_or(1, |c| c.version + 1),
        uri: req.uri.clone(),
        format: req.format.clone(),
        digest: req.digest.clone(),
        schema: req.schema.clone().filter(|v| !v.is_null()),
        row_count: req.row_count,
        created_at: now_ms(),
        description: req.description.clone(),
    };
    sqlx::query(&format!(
        "INSERT INTO registered_datasets ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(record.name.as_str())
    .bind(record.version)
    .bind(record.uri.as_str())
    .bind(record.format.as_str())
    .bind(record.digest.as_str())
    .bind(schema)
    .bind(record.row_count)
    .bind(record.created_at)
    .bind(record.description.as_deref())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(record)
}

pub(super) async fn get_dataset(
    s: &SqlStore,
    name: &str,
    version: Option<i64>,
) -> Result<DatasetRecord> {
    let mut conn = s.read.acquire().await?;
    let found = match version {
        None => latest(&mut conn, name).await?,
        Some(v) => sqlx::query(&format!(
            "SELECT {COLS} FROM registered_datasets WHERE name = $1 AND version = $2"
        ))
        .bind(name)
        .bind(v)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(record_from_row)
        .transpose()?,
    };
    found.ok_or_else(|| not_found(name, version))
}

pub(super) async fn list_datasets(s: &SqlStore, name: Option<&str>) -> Result<Vec<DatasetRecord>> {
    let rows = match name {
        Some(name) => {
            sqlx::query(&format!(
                "SELECT {COLS} FROM registered_datasets WHERE name = $1 ORDER BY version DESC"
            ))
            .bind(name)
            .fetch_all(&s.read)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {COLS} FROM registered_datasets d WHERE version = (SELECT MAX(version) \
                 FROM registered_datasets l WHERE l.name = d.name) ORDER BY name"
            ))
            .fetch_all(&s.read)
            .await?
        }
    };
    rows.iter().map(record_from_row).collect()
}
