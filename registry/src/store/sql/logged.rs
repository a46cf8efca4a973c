//! MLflow 3 logged models.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Sql, SqlStore, cond, join_uri, new_hex_id, now_ms, parse_experiment_id, random_name};
use crate::entities::{
    LIFECYCLE_ACTIVE, LoggedModel, LoggedModelData, LoggedModelInfo, LoggedModelParameter,
    LoggedModelStatus, LoggedModelTag, Metric, Param, Tag,
};
use crate::error::{RegistryError, Result};
use crate::store::search::{self, KeyKind, Op};
use crate::store::{CreateLoggedModel, Page, SearchLoggedModels};
use crate::validation;

const LM_COLS: &str = "lm.model_id, lm.experiment_id, lm.name, lm.artifact_location, \
                       lm.creation_timestamp_ms, lm.last_updated_timestamp_ms, lm.status, \
                       lm.status_message, lm.model_type, lm.source_run_id";

fn info_from_row(row: &AnyRow) -> Result<LoggedModelInfo> {
    Ok(LoggedModelInfo {
        model_id: row.try_get("model_id")?,
        experiment_id: row.try_get::<i64, _>("experiment_id")?.to_string(),
        name: row.try_get("name")?,
        creation_timestamp_ms: row.try_get("creation_timestamp_ms")?,
        last_updated_timestamp_ms: row.try_get("last_updated_timestamp_ms")?,
        artifact_uri: row.try_get("artifact_location")?,
        status: LoggedModelStatus::from_i64(row.try_get("status")?),
        model_type: row.try_get("model_type")?,
        source_run_id: row.try_get("source_run_id")?,
        status_message: row.try_get("status_message")?,
        tags: Vec::new(),
    })
}

/// Attaches tags, params and metrics to logged models (two queries).
async fn with_data(
    conn: &mut AnyConnection,
    infos: Vec<LoggedModelInfo>,
) -> Result<Vec<LoggedModel>> {
    if infos.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::default();
    let ids = sql.list(infos.iter().map(|i| i.model_id.as_str()));
    sql.text = format!(
        "SELECT 0 AS kind, model_id, key, value FROM logged_model_tags WHERE model_id IN ({ids}) \
         UNION ALL SELECT 1, model_id, key, value FROM logged_model_params WHERE model_id IN \
         ({ids}) ORDER BY 1, 3"
    );
    let mut tags: HashMap<String, Vec<Tag>> = HashMap::new();
    let mut params: HashMap<String, Vec<Param>> = HashMap::new();
    for r in sql.query().fetch_all(&mut *conn).await? {
        let id: String = r.try_get("model_id")?;
        let (k, v): (String, String) = (r.try_get("key")?, r.try_get("value")?);
        if r.try_get::<i64, _>("kind")? == 0 {
            tags.entry(id).or_default().push(Tag::new(k, v));
        } else {
            params.entry(id).or_default().push(Param::new(k, v));
        }
    }
    sql.text = format!(
        "SELECT model_id, key, value, is_nan, timestamp, step, run_id, dataset_name, \
         dataset_digest FROM logged_model_metrics WHERE model_id IN ({ids}) ORDER BY id"
    );
    let mut metrics: HashMap<String, Vec<Metric>> = HashMap::new();
    for r in sql.query().fetch_all(&mut *conn).await? {
        let id: String = r.try_get("model_id")?;
        let value: f64 = r.try_get("value")?;
        let is_nan: i64 = r.try_get("is_nan")?;
        metrics.entry(id.clone()).or_default().push(Metric {
            key: r.try_get("key")?,
            value: if is_nan != 0 { f64::NAN } else { value },
            timestamp: r.try_get("timestamp")?,
            step: r.try_get("step")?,
            dataset_name: r.try_get("dataset_name")?,
            dataset_digest: r.try_get("dataset_digest")?,
            model_id: Some(id),
            run_id: r.try_get("run_id")?,
        });
    }
    Ok(infos
        .into_iter()
        .map(|mut info| {
            info.tags = tags.remove(&info.model_id).unwrap_or_default();
            LoggedModel {
                data: LoggedModelData {
                    params: params.remove(&info.model_id).unwrap_or_default(),
                    metrics: metrics.remove(&info.model_id).unwrap_or_default(),
                },
                info,
            }
        })
        .collect())
}

async fn fetch(conn: &mut AnyConnection, model_id: &str) -> Result<LoggedModel> {
    let row = sqlx::query(&format!(
        "SELECT {LM_COLS} FROM logged_models lm WHERE lm.model_id = $1 AND lm.lifecycle_stage = \
         'active'"
    ))
    .bind(model_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| RegistryError::logged_model_not_found(model_id))?;
    let info = info_from_row(&row)?;
    Ok(with_data(conn, vec![info]).await?.pop().expect("one model"))
}

/// Fails unless the logged model exists and is not deleted.
async fn require(conn: &mut AnyConnection, model_id: &str) -> Result<()> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT model_id FROM logged_models WHERE model_id = $1 AND lifecycle_stage = 'active'",
    )
    .bind(model_id)
    .fetch_optional(&mut *conn)
    .await?;
    found
        .map(|_| ())
        .ok_or_else(|| RegistryError::logged_model_not_found(model_id))
}

fn dedup<T: Clone>(items: &[T], key: impl Fn(&T) -> &str) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for it in items {
        if let Some(pos) = out.iter().position(|o| key(o) == key(it)) {
            out[pos] = it.clone();
        } else {
            out.push(it.clone());
        }
    }
    out
}

async fn upsert_kv(
    conn: &mut AnyConnection,
    table: &str,
    model_id: &str,
    items: &[(String, String)],
) -> Result<()> {
    for (k, v) in items {
        sqlx::query(&format!(
            "INSERT INTO {table} (model_id, key, value) VALUES ($1, $2, $3) ON CONFLICT \
             (model_id, key) DO UPDATE SET value = excluded.value"
        ))
        .bind(model_id)
        .bind(k.as_str())
        .bind(v.as_str())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub(super) async fn create_logged_model(
    s: &SqlStore,
    req: CreateLoggedModel,
) -> Result<LoggedModel> {
    if let Some(name) = &req.name {
        validation::validate_logged_model_name(name)?;
    }
    let exp_id = parse_experiment_id(&req.experiment_id)?;
    let mut tx = s.begin().await?;
    let exp = sqlx::query(
        "SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = $1",
    )
    .bind(exp_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| RegistryError::experiment_not_found(&req.experiment_id))?;
    let stage: String = exp.try_get("lifecycle_stage")?;
    if stage != LIFECYCLE_ACTIVE {
        return Err(RegistryError::invalid(format!(
            "The experiment {} must be in the 'active' state. Current state is {stage}.",
            req.experiment_id
        )));
    }
    let model_id = format!("m-{}", new_hex_id());
    let artifact = join_uri(
        &exp.try_get::<String, _>("artifact_location")?,
        &["models", &model_id, "artifacts"],
    );
    let name = req.name.clone().unwrap_or_else(random_name);
    let now = now_ms();
    sqlx::query(
        "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, \
         creation_timestamp_ms, last_updated_timestamp_ms, status, status_message, model_type, \
         source_run_id, lifecycle_stage) VALUES ($1, $2, $3, $4, $5, $5, $6, NULL, $7, $8, \
         'active')",
    )
    .bind(model_id.as_str())
    .bind(exp_id)
    .bind(name.as_str())
    .bind(artifact.as_str())
    .bind(now)
    .bind(LoggedModelStatus::Pending.to_i64())
    .bind(req.model_type.as_deref())
    .bind(req.source_run_id.as_deref().filter(|r| !r.is_empty()))
    .execute(&mut *tx)
    .await?;
    let params = dedup(&req.params, |p| &p.key);
    let tags = dedup(&req.tags, |t| &t.key);
    let params: Vec<(String, String)> = params.into_iter().map(|p| (p.key, p.value)).collect();
    let tags: Vec<(String, String)> = tags.into_iter().map(|t| (t.key, t.value)).collect();
    upsert_kv(&mut tx, "logged_model_params", &model_id, &params).await?;
    upsert_kv(&mut tx, "logged_model_tags", &model_id, &tags).await?;
    let model = fetch(&mut tx, &model_id).await?;
    tx.commit().await?;
    Ok(model)
}

pub(super) async fn get_logged_model(s: &SqlStore, model_id: &str) -> Result<LoggedModel> {
    let mut conn = s.read.acquire().await?;
    fetch(&mut conn, model_id).await
}

pub(super) async fn finalize_logged_model(
    s: &SqlStore,
    model_id: &str,
    status: LoggedModelStatus,
) -> Result<LoggedModel> {
    if status == LoggedModelStatus::Unspecified {
        return Err(RegistryError::invalid(
            "A logged model's status must be specified.",
        ));
    }
    let mut tx = s.begin().await?;
    require(&mut tx, model_id).await?;
    sqlx::query(
        "UPDATE logged_models SET status = $1, last_updated_timestamp_ms = $2 WHERE model_id = $3",
    )
    .bind(status.to_i64())
    .bind(now_ms())
    .bind(model_id)
    .execute(&mut *tx)
    .await?;
    let model = fetch(&mut tx, model_id).await?;
    tx.commit().await?;
    Ok(model)
}

pub(super) async fn delete_logged_model(s: &SqlStore, model_id: &str) -> Result<()> {
    let mut tx = s.begin().await?;
    require(&mut tx, model_id).await?;
    sqlx::query(
        "UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp_ms = $1 \
         WHERE model_id = $2",
    )
    .bind(now_ms())
    .bind(model_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

fn attribute_column(key: &str) -> Option<(&'static str, bool)> {
    Some(match key {
        "name" => ("lm.name", false),
        "model_id" => ("lm.model_id", false),
        "model_type" => ("lm.model_type", false),
        "source_run_id" => ("lm.source_run_id", false),
        "status" => ("lm.status", true),
        "creation_timestamp" | "creation_time" | "creation_timestamp_ms" => {
            ("lm.creation_timestamp_ms", true)
        }
        "last_updated_timestamp" | "last_updated_timestamp_ms" => {
            ("lm.last_updated_timestamp_ms", true)
        }
        _ => return None,
    })
}

pub(super) async fn search_logged_models(
    s: &SqlStore,
    req: SearchLoggedModels,
) -> Result<Page<LoggedModel>> {
    let limit = search::page_size(req.max_results, 100, 1000)?;
    let offset = search::parse_page_token(req.page_token.as_deref())?;
    let filters = search::parse_filter(req.filter.as_deref())?;
    if req.experiment_ids.is_empty() {
        return Err(RegistryError::invalid(
            "Missing value for required parameter 'experiment_ids'.",
        ));
    }
    let exp_ids: Vec<i64> = req
        .experiment_ids
        .iter()
        .map(|e| parse_experiment_id(e))
        .collect::<Result<_>>()?;
    let mut sql = Sql::default();
    let exps = sql.list(exp_ids);
    let mut conds = vec![
        format!("lm.experiment_id IN ({exps})"),
        "lm.lifecycle_stage = 'active'".to_owned(),
    ];
    for f in &filters {
        let key = f.key.as_str();
        conds.push(match f.kind {
            KeyKind::Attribute => match attribute_column(key) {
                Some(("lm.status", _)) => {
                    let statuses: Vec<i64> = match &f.value {
                        search::Value::List(items) => items
                            .iter()
                            .map(|i| LoggedModelStatus::parse(i).map(|s| s.to_i64()))
                            .collect::<Result<_>>()?,
                        v => vec![LoggedModelStatus::parse(v.as_str(key)?)?.to_i64()],
                    };
                    let op = match f.op {
                        Op::Eq | Op::In => "IN",
                        Op::Ne | Op::NotIn => "NOT IN",
                        _ => {
                            return Err(RegistryError::invalid(
                                "Invalid comparator for 'status'; use =, !=, IN, NOT IN",
                            ));
                        }
                    };
                    let ph = sql.list(statuses);
                    format!("lm.status {op} ({ph})")
                }
                Some((col, true)) => cond::number(&mut sql, col, key, f.op, &f.value)?,
                Some((col, false)) => cond::string(&mut sql, s.backend, col, key, f.op, &f.value)?,
                None => {
                    return Err(RegistryError::invalid(format!(
                        "Invalid attribute key '{key}' for logged model search"
                    )));
                }
            },
            KeyKind::Tag => cond::key_value(
                &mut sql,
                s.backend,
                "logged_model_tags",
                "model_id",
                "lm.model_id",
                key,
                f.op,
                &f.value,
            )?,
            KeyKind::Param => cond::key_value(
                &mut sql,
                s.backend,
                "logged_model_params",
                "model_id",
                "lm.model_id",
                key,
                f.op,
                &f.value,
            )?,
            KeyKind::Metric | KeyKind::Dataset => {
                return Err(RegistryError::invalid(format!(
                    "Filtering logged models on '{key}' ({:?}) is not supported",
                    f.kind
                )));
            }
        });
    }
    let mut order_sql = Vec::new();
    for o in &req.order_by {
        let Some((col, _)) = attribute_column(&o.field_name) else {
            return Err(RegistryError::invalid(format!(
                "Invalid order by field '{}' for logged model search",
                o.field_name
            )));
        };
        let dir = if o.ascending.unwrap_or(true) {
            "ASC"
        } else {
            "DESC"
        };
        order_sql.push(format!("{col} {dir}"));
    }
    if order_sql.is_empty() {
        order_sql.push("lm.creation_timestamp_ms DESC".into());
    }
    order_sql.push("lm.model_id ASC".into());
    let lim = sql.arg(limit + 1);
    let off = sql.arg(offset);
    sql.text = format!(
        "SELECT {LM_COLS} FROM logged_models lm WHERE {} ORDER BY {} LIMIT {lim} OFFSET {off}",
        conds.join(" AND "),
        order_sql.join(", ")
    );
    let mut conn = s.read.acquire().await?;
    let mut infos = sql
        .query()
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(info_from_row)
        .collect::<Result<Vec<_>>>()?;
    let next = if infos.len() as i64 > limit {
        infos.truncate(limit as usize);
        Some(search::page_token(offset + limit))
    } else {
        None
    };
    Ok(Page {
        items: with_data(&mut conn, infos).await?,
        next_page_token: next,
    })
}

pub(super) async fn set_logged_model_tags(
    s: &SqlStore,
    model_id: &str,
    tags: Vec<LoggedModelTag>,
) -> Result<LoggedModel> {
    for t in &tags {
        validation::validate_key("Tag", "key", &t.key)?;
        validation::check_length("Tag value", validation::MAX_TAG_VAL_LENGTH, &t.value)?;
    }
    let mut tx = s.begin().await?;
    require(&mut tx, model_id).await?;
    let kv: Vec<(String, String)> = dedup(&tags, |t| &t.key)
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect();
    upsert_kv(&mut tx, "logged_model_tags", model_id, &kv).await?;
    sqlx::query("UPDATE logged_models SET last_updated_timestamp_ms = $1 WHERE model_id = $2")
        .bind(now_ms())
        .bind(model_id)
        .execute(&mut *tx)
        .await?;
    let model = fetch(&mut tx, model_id).await?;
    tx.commit().await?;
    Ok(model)
}

pub(super) async fn delete_logged_model_tag(s: &SqlStore, model_id: &str, key: &str) -> Result<()> {
    let mut tx = s.begin().await?;
    require(&mut tx, model_id).await?;
    let n = sqlx::query("DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2")
        .bind(model_id)
        .bind(key)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(RegistryError::not_found(format!(
            "No tag with key '{key}' found for model with ID '{model_id}'."
        )));
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn log_logged_model_params(
    s: &SqlStore,
    model_id: &str,
    params: Vec<LoggedModelParameter>,
) -> Result<()> {
    for (i, p) in params.iter().enumerate() {
        validation::validate_param(p, &format!("params[{i}]"))?;
    }
    let mut tx = s.begin().await?;
    require(&mut tx, model_id).await?;
    let kv: Vec<(String, String)> = dedup(&params, |p| &p.key)
        .into_iter()
        .map(|p| (p.key, p.value))
        .collect();
    upsert_kv(&mut tx, "logged_model_params", model_id, &kv).await?;
    tx.commit().await?;
    Ok(())
}
