//! Experiments, runs, metrics, params, tags, inputs and outputs.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::columns::ColumnRead;
use super::{Arg, Backend, Sql, SqlStore, cond, is_unique_violation, join_uri, new_hex_id, now_ms};
use super::{parse_experiment_id, random_name};
use crate::entities::{
    Dataset, DatasetInput, Experiment, LIFECYCLE_ACTIVE, LIFECYCLE_DELETED, Metric, ModelInput,
    ModelOutput, Param, Run, RunData, RunInfo, RunInputs, RunOutputs, RunStatus, RunTag,
    TAG_DATASET_CONTEXT, TAG_RUN_NAME, TAG_USER, Tag,
};
use crate::error::{RegistryError, Result};
use crate::store::ViewType;
use crate::store::search::{self, KeyKind, Op};
use crate::store::{CreateExperiment, CreateRun, Page, SearchExperiments, SearchRuns, UpdateRun};
use crate::validation;

const EXP_COLS: &str =
    "experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time";

fn experiment_from_row(row: &AnyRow) -> Result<Experiment> {
    Ok(Experiment {
        experiment_id: row.try_get::<i64, _>("experiment_id")?.to_string(),
        name: row.try_get("name")?,
        artifact_location: row.try_get("artifact_location")?,
        lifecycle_stage: row.try_get("lifecycle_stage")?,
        creation_time: row.try_get("creation_time")?,
        last_update_time: row.try_get("last_update_time")?,
        tags: Vec::new(),
    })
}

/// Attaches their tags to experiments (one query).
async fn with_experiment_tags(
    conn: &mut AnyConnection,
    mut exps: Vec<Experiment>,
) -> Result<Vec<Experiment>> {
    if exps.is_empty() {
        return Ok(exps);
    }
    let mut sql = Sql::default();
    let ids = sql.list(
        exps.iter()
            .map(|e| e.experiment_id.parse::<i64>().unwrap_or(-1)),
    );
    sql.push(&format!(
        "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN ({ids}) \
         ORDER BY key"
    ));
    let rows = sql.query().fetch_all(&mut *conn).await?;
    let mut by_id: HashMap<String, Vec<Tag>> = HashMap::new();
    for r in rows {
        by_id
            .entry(r.try_get::<i64, _>("experiment_id")?.to_string())
            .or_default()
            .push(Tag::new(
                r.try_get::<String, _>("key")?,
                r.try_get::<String, _>("value")?,
            ));
    }
    for e in &mut exps {
        e.tags = by_id.remove(&e.experiment_id).unwrap_or_default();
    }
    Ok(exps)
}

pub(super) async fn create_experiment(s: &SqlStore, req: CreateExperiment) -> Result<String> {
    validation::validate_experiment_name(&req.name)?;
    for t in &req.tags {
        validation::validate_experiment_tag(&t.key, &t.value)?;
    }
    if let Some(loc) = &req.artifact_location
        && loc.starts_with("runs:")
    {
        return Err(RegistryError::invalid(format!(
            "Artifact location cannot be a runs:/ URI. Given: '{loc}'"
        )));
    }
    let now = now_ms();
    let mut tx = s.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, \
         last_update_time) VALUES ($1, $2, 'active', $3, $3) RETURNING experiment_id",
    )
    .bind(req.name.as_str())
    .bind(req.artifact_location.as_deref().unwrap_or(""))
    .bind(now)
    .fetch_one(&mut *tx)
    .await;
    let id: i64 = match inserted {
        Ok(row) => row.try_get("experiment_id")?,
        Err(e) if is_unique_violation(&e) => {
            return Err(RegistryError::experiment_exists(&req.name));
        }
        Err(e) => return Err(e.into()),
    };
    if req.artifact_location.as_deref().unwrap_or("").is_empty() {
        sqlx::query("UPDATE experiments SET artifact_location = $1 WHERE experiment_id = $2")
            .bind(join_uri(s.artifact_root(), &[&id.to_string()]))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    let mut tags: HashMap<&str, &str> = HashMap::new();
    for t in &req.tags {
        tags.insert(&t.key, &t.value);
    }
    for (k, v) in tags {
        sqlx::query("INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(id.to_string())
}

async fn fetch_experiment(conn: &mut AnyConnection, id: i64) -> Result<Option<Experiment>> {
    let row = sqlx::query(&format!(
        "SELECT {EXP_COLS} FROM experiments WHERE experiment_id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let exp = experiment_from_row(&row)?;
    Ok(with_experiment_tags(conn, vec![exp]).await?.pop())
}

pub(super) async fn get_experiment(s: &SqlStore, experiment_id: &str) -> Result<Experiment> {
    let id = parse_experiment_id(experiment_id)?;
    let mut conn = s.read.acquire().await?;
    fetch_experiment(&mut conn, id)
        .await?
        .ok_or_else(|| RegistryError::experiment_not_found(experiment_id))
}

pub(super) async fn get_experiment_by_name(s: &SqlStore, name: &str) -> Result<Experiment> {
    let mut conn = s.read.acquire().await?;
    let row = sqlx::query(&format!(
        "SELECT {EXP_COLS} FROM experiments WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Err(RegistryError::experiment_name_not_found(name));
    };
    let exp = experiment_from_row(&row)?;
    Ok(with_experiment_tags(&mut conn, vec![exp])
        .await?
        .pop()
        .expect("one experiment"))
}

fn lifecycle_condition(view: ViewType, col: &str) -> String {
    match view {
        ViewType::ActiveOnly => format!("{col} = 'active'"),
        ViewType::DeletedOnly => format!("{col} = 'deleted'"),
        ViewType::All => "1 = 1".into(),
    }
}

pub(super) async fn search_experiments(
    s: &SqlStore,
    req: SearchExperiments,
) -> Result<Page<Experiment>> {
    let limit = search::page_size(req.max_results, 1000, validation::MAX_EXPERIMENTS_PER_PAGE)?;
    let offset = search::parse_page_token(req.page_token.as_deref())?;
    let filters = search::parse_filter(req.filter.as_deref())?;
    let order = search::parse_order_by_list(&req.order_by)?;
    let mut sql = Sql::default();
    let mut conds = vec![lifecycle_condition(
        req.view_type.unwrap_or_default(),
        "e.lifecycle_stage",
    )];
    for f in &filters {
        conds.push(match (f.kind, f.key.as_str()) {
            (KeyKind::Attribute, "name") => {
                cond::string(&mut sql, s.backend, "e.name", &f.key, f.op, &f.value)?
            }
            (KeyKind::Attribute, "experiment_id") => match (&f.op, &f.value) {
                (Op::In | Op::NotIn, search::Value::List(items)) => {
                    let ids: Vec<i64> = items
                        .iter()
                        .map(|i| parse_experiment_id(i))
                        .collect::<Result<_>>()?;
                    if ids.is_empty() {
                        if f.op == Op::In {
                            "1 = 0".into()
                        } else {
                            "1 = 1".into()
                        }
                    } else {
                        let ph = sql.list(ids);
                        format!("e.experiment_id {} ({ph})", f.op.sql())
                    }
                }
                (Op::Eq | Op::Ne, v) => {
                    let id = match v {
                        search::Value::Str(x) => parse_experiment_id(x)?,
                        other => other.as_num("experiment_id")? as i64,
                    };
                    let p = sql.arg(id);
                    format!("e.experiment_id {} {p}", f.op.sql())
                }
                _ => {
                    return Err(RegistryError::invalid(
                        "Invalid comparator for 'experiment_id'; use =, !=, IN, NOT IN",
                    ));
                }
            },
            (KeyKind::Attribute, "creation_time" | "last_update_time") => {
                cond::number(&mut sql, &format!("e.{}", f.key), &f.key, f.op, &f.value)?
            }
            (KeyKind::Tag, key) => cond::key_value(
                &mut sql,
                s.backend,
                "experiment_tags",
                "experiment_id",
                "e.experiment_id",
                key,
                f.op,
                &f.value,
            )?,
            (kind, key) => {
                return Err(RegistryError::invalid(format!(
                    "Invalid attribute key '{key}' ({kind:?}) for experiment search. Valid keys \
                     are name, experiment_id, creation_time, last_update_time, tags.<key>"
                )));
            }
        });
    }
    let mut order_sql = Vec::new();
    let mut has_id = false;
    for o in &order {
        let col = match (o.kind, o.key.as_str()) {
            (KeyKind::Attribute, "name") => "e.name",
            (KeyKind::Attribute, "experiment_id") => {
                has_id = true;
                "e.experiment_id"
            }
            (KeyKind::Attribute, "creation_time") => "e.creation_time",
            (KeyKind::Attribute, "last_update_time") => "e.last_update_time",
            _ => {
                return Err(RegistryError::invalid(format!(
                    "Invalid order_by key '{}'. Valid keys are name, experiment_id, \
                     creation_time, last_update_time",
                    o.key
                )));
            }
        };
        order_sql.push(format!(
            "{col} {}",
            if o.ascending { "ASC" } else { "DESC" }
        ));
    }
    if order.is_empty() {
        order_sql.push("e.creation_time DESC".into());
    }
    if !has_id {
        order_sql.push("e.experiment_id ASC".into());
    }
    let lim = sql.arg(limit + 1);
    let off = sql.arg(offset);
    let text = format!(
        "SELECT {} FROM experiments e WHERE {} ORDER BY {} LIMIT {lim} OFFSET {off}",
        EXP_COLS
            .split(", ")
            .map(|c| format!("e.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
        conds.join(" AND "),
        order_sql.join(", ")
    );
    sql.text = text;
    let mut conn = s.read.acquire().await?;
    let rows = sql.query().fetch_all(&mut *conn).await?;
    let mut exps = rows
        .iter()
        .map(experiment_from_row)
        .collect::<Result<Vec<_>>>()?;
    let next = if exps.len() as i64 > limit {
        exps.truncate(limit as usize);
        Some(search::page_token(offset + limit))
    } else {
        None
    };
    Ok(Page {
        items: with_experiment_tags(&mut conn, exps).await?,
        next_page_token: next,
    })
}

/// The lifecycle stage of an experiment, or `RESOURCE_DOES_NOT_EXIST`.
async fn experiment_stage(conn: &mut AnyConnection, id: i64, raw: &str) -> Result<String> {
    sqlx::query_scalar("SELECT lifecycle_stage FROM experiments WHERE experiment_id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| RegistryError::experiment_not_found(raw))
}

pub(super) async fn rename_experiment(
    s: &SqlStore,
    experiment_id: &str,
    new_name: &str,
) -> Result<()> {
    let id = parse_experiment_id(experiment_id)?;
    validation::validate_experiment_name(new_name)?;
    let mut tx = s.begin().await?;
    let stage = experiment_stage(&mut tx, id, experiment_id).await?;
    if stage != LIFECYCLE_ACTIVE {
        return Err(RegistryError::invalid(
            "Cannot rename a non-active experiment.",
        ));
    }
    let res = sqlx::query(
        "UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3",
    )
    .bind(new_name)
    .bind(now_ms())
    .bind(id)
    .execute(&mut *tx)
    .await;
    match res {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(RegistryError::experiment_exists(new_name));
        }
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn set_experiment_lifecycle(
    s: &SqlStore,
    experiment_id: &str,
    delete: bool,
) -> Result<()> {
    let id = parse_experiment_id(experiment_id)?;
    let mut tx = s.begin().await?;
    let stage = experiment_stage(&mut tx, id, experiment_id).await?;
    let now = now_ms();
    let (from, to, deleted_time) = if delete {
        (LIFECYCLE_ACTIVE, LIFECYCLE_DELETED, Some(now))
    } else {
        (LIFECYCLE_DELETED, LIFECYCLE_ACTIVE, None)
    };
    if stage != from {
        return Err(RegistryError::invalid(format!(
            "Cannot {} experiment {experiment_id}: it is {stage}.",
            if delete { "delete" } else { "restore" }
        )));
    }
    sqlx::query(
        "UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2, deleted_time = $3 \
         WHERE experiment_id = $4",
    )
    .bind(to)
    .bind(now)
    .bind(deleted_time)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE experiment_id = $3 AND \
         lifecycle_stage = $4",
    )
    .bind(to)
    .bind(deleted_time)
    .bind(id)
    .bind(from)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn set_experiment_tag(
    s: &SqlStore,
    experiment_id: &str,
    key: &str,
    value: &str,
) -> Result<()> {
    let id = parse_experiment_id(experiment_id)?;
    validation::validate_experiment_tag(key, value)?;
    let mut tx = s.begin().await?;
    let stage = experiment_stage(&mut tx, id, experiment_id).await?;
    if stage != LIFECYCLE_ACTIVE {
        return Err(RegistryError::invalid(format!(
            "The experiment {experiment_id} must be in the 'active' state. Current state is \
             {stage}."
        )));
    }
    sqlx::query(
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
         ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
    )
    .bind(id)
    .bind(key)
    .bind(value)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete_experiment_tag(
    s: &SqlStore,
    experiment_id: &str,
    key: &str,
) -> Result<()> {
    let id = parse_experiment_id(experiment_id)?;
    let mut tx = s.begin().await?;
    experiment_stage(&mut tx, id, experiment_id).await?;
    let n = sqlx::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
        .bind(id)
        .bind(key)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(RegistryError::not_found(format!(
            "No tag with name: {key} in experiment with id {experiment_id}"
        )));
    }
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------- runs

const RUN_COLS: &str = "r.run_uuid, r.experiment_id, r.name, r.user_id, r.status, r.start_time, \
                        r.end_time, r.artifact_uri, r.lifecycle_stage";

fn run_info_from_row(row: &impl ColumnRead) -> Result<RunInfo> {
    let id: String = row.read("run_uuid")?;
    Ok(RunInfo {
        run_uuid: id.clone(),
        run_id: id,
        run_name: row.read("name")?,
        experiment_id: row.read::<i64>("experiment_id")?.to_string(),
        user_id: row.read("user_id")?,
        status: RunStatus::parse(&row.read::<String>("status")?)?,
        start_time: row.read("start_time")?,
        end_time: row.read("end_time")?,
        artifact_uri: row.read("artifact_uri")?,
        lifecycle_stage: row.read("lifecycle_stage")?,
    })
}

/// Reads a stored metric value back (NaN is stored as 0 with `is_nan` = 1).
pub(super) fn stored_value(value: f64, is_nan: i64) -> f64 {
    if is_nan != 0 { f64::NAN } else { value }
}

/// Splits a value for storage: (value, is_nan).
pub(super) fn storable(value: f64) -> (f64, i64) {
    if value.is_nan() { (0.0, 1) } else { (value, 0) }
}

/// Runs by id, with their latest metrics, params, tags, inputs and outputs, in `ids` order
/// (unknown ids are skipped). Four queries whatever the number of runs.
pub(super) async fn load_runs(conn: &mut AnyConnection, ids: &[String]) -> Result<Vec<Run>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::default();
    let ph = sql.list(ids.iter().map(String::as_str));
    sql.push(&format!(
        "SELECT {RUN_COLS} FROM runs r WHERE r.run_uuid IN ({ph})"
    ));
    let rows = sql.query().fetch_all(&mut *conn).await?;
    let mut runs: HashMap<String, Run> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let info = run_info_from_row(row)?;
        runs.insert(
            info.run_id.clone(),
            Run {
                info,
                data: RunData::default(),
                inputs: RunInputs::default(),
                outputs: Some(RunOutputs::default()),
            },
        );
    }
    if runs.is_empty() {
        return Ok(Vec::new());
    }

    // Latest metrics, params and tags in one query.
    sql.text = run_data_query(&ph);
    for row in sql.query().fetch_all(&mut *conn).await? {
        push_run_data(&mut runs, &row)?;
    }

    // Dataset inputs.
    sql.text = format!(
        "SELECT i.run_uuid, d.dataset_uuid, d.name, d.digest, d.source_type, d.source, d.schema, \
         d.profile FROM run_dataset_inputs i JOIN datasets d ON d.dataset_uuid = i.dataset_uuid \
         WHERE i.run_uuid IN ({ph}) ORDER BY i.run_uuid, i.seq"
    );
    let mut dataset_pos: HashMap<(String, String), usize> = HashMap::new();
    for row in sql.query().fetch_all(&mut *conn).await? {
        let id: String = row.try_get("run_uuid")?;
        let Some(run) = runs.get_mut(&id) else {
            continue;
        };
        let duuid: String = row.try_get("dataset_uuid")?;
        dataset_pos.insert((id, duuid), run.inputs.dataset_inputs.len());
        run.inputs.dataset_inputs.push(DatasetInput {
            tags: Vec::new(),
            dataset: Dataset {
                name: row.try_get("name")?,
                digest: row.try_get("digest")?,
                source_type: row.try_get("source_type")?,
                source: row.try_get("source")?,
                schema: row.try_get("schema")?,
                profile: row.try_get("profile")?,
            },
        });
    }

    // Input tags and logged-model inputs/outputs.
    sql.text = format!(
        "SELECT run_uuid, 'tag' AS kind, dataset_uuid AS a, key AS b, value AS c, 0 AS step \
         FROM input_tags WHERE run_uuid IN ({ph}) \
         UNION ALL SELECT run_uuid, direction, model_id, '', '', step FROM run_models \
         WHERE run_uuid IN ({ph})"
    );
    for row in sql.query().fetch_all(&mut *conn).await? {
        let id: String = row.try_get("run_uuid")?;
        let kind: String = row.try_get("kind")?;
        let a: String = row.try_get("a")?;
        let Some(run) = runs.get_mut(&id) else {
            continue;
        };
        match kind.as_str() {
            "tag" => {
                if let Some(&pos) = dataset_pos.get(&(id.clone(), a)) {
                    run.inputs.dataset_inputs[pos].tags.push(Tag::new(
                        row.try_get::<String, _>("b")?,
                        row.try_get::<String, _>("c")?,
                    ));
                }
            }
            "input" => run.inputs.model_inputs.push(ModelInput { model_id: a }),
            _ => {
                let step: i64 = row.try_get("step")?;
                if let Some(out) = run.outputs.as_mut() {
                    out.model_outputs.push(ModelOutput { model_id: a, step });
                }
            }
        }
    }

    let mut out = Vec::with_capacity(runs.len());
    for id in ids {
        if let Some(mut run) = runs.remove(id) {
            sort_run_data(&mut run.data);
            out.push(run);
        }
    }
    Ok(out)
}

/// The query of the latest metrics, params and tags of the runs whose ids are bound at the
/// placeholders `ph` (one row each, read by [`push_run_data`]).
fn run_data_query(ph: &str) -> String {
    format!(
        "SELECT run_uuid, 0 AS kind, key, '' AS svalue, value AS fvalue, is_nan, timestamp, step \
         FROM latest_metrics WHERE run_uuid IN ({ph}) \
         UNION ALL SELECT run_uuid, 1, key, value, CAST(0 AS DOUBLE PRECISION), 0, 0, 0 \
         FROM params WHERE run_uuid IN ({ph}) \
         UNION ALL SELECT run_uuid, 2, key, value, CAST(0 AS DOUBLE PRECISION), 0, 0, 0 \
         FROM tags WHERE run_uuid IN ({ph})"
    )
}

/// Adds a row of [`run_data_query`] to its run in `runs` (rows of other runs are skipped).
fn push_run_data(runs: &mut HashMap<String, Run>, row: &impl ColumnRead) -> Result<()> {
    let id: String = row.read("run_uuid")?;
    let Some(run) = runs.get_mut(&id) else {
        return Ok(());
    };
    let key: String = row.read("key")?;
    match row.read::<i64>("kind")? {
        0 => run.data.metrics.push(Metric::new(
            key,
            stored_value(row.read("fvalue")?, row.read("is_nan")?),
            row.read("timestamp")?,
            row.read("step")?,
        )),
        1 => run
            .data
            .params
            .push(Param::new(key, row.read::<String>("svalue")?)),
        _ => run
            .data
            .tags
            .push(Tag::new(key, row.read::<String>("svalue")?)),
    }
    Ok(())
}

/// Metrics, params and tags in key order, as MLflow answers them.
fn sort_run_data(data: &mut RunData) {
    data.metrics.sort_by(|a, b| a.key.cmp(&b.key));
    data.params.sort_by(|a, b| a.key.cmp(&b.key));
    data.tags.sort_by(|a, b| a.key.cmp(&b.key));
}

pub(super) async fn create_run(s: &SqlStore, req: CreateRun) -> Result<Run> {
    let experiment_id = req.experiment_id.clone().unwrap_or_else(|| "0".into());
    let exp_id = parse_experiment_id(&experiment_id)?;
    for (i, t) in req.tags.iter().enumerate() {
        validation::validate_run_tag(t, &format!("tags[{i}]"))?;
    }
    let tag_name = req
        .tags
        .iter()
        .rev()
        .find(|t| t.key == TAG_RUN_NAME)
        .map(|t| t.value.clone());
    let run_name = match (
        req.run_name.as_deref().filter(|n| !n.is_empty()),
        tag_name.as_deref(),
    ) {
        (Some(a), Some(b)) if a != b => {
            return Err(RegistryError::invalid(format!(
                "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with \
                 different values (run_name='{a}', mlflow.runName='{b}')."
            )));
        }
        (Some(a), _) => a.to_owned(),
        (None, Some(b)) if !b.is_empty() => b.to_owned(),
        _ => random_name(),
    };
    let user_id = req
        .user_id
        .clone()
        .or_else(|| {
            req.tags
                .iter()
                .rev()
                .find(|t| t.key == TAG_USER)
                .map(|t| t.value.clone())
        })
        .unwrap_or_default();
    // Tags, last value per key wins; the run name tag is always there.
    let mut tags: Vec<RunTag> = Vec::new();
    for t in &req.tags {
        if let Some(existing) = tags.iter_mut().find(|e| e.key == t.key) {
            existing.value = t.value.clone();
        } else {
            tags.push(t.clone());
        }
    }
    match tags.iter_mut().find(|t| t.key == TAG_RUN_NAME) {
        Some(t) => t.value = run_name.clone(),
        None => tags.push(Tag::new(TAG_RUN_NAME, run_name.clone())),
    }
    let run_id = new_hex_id();
    let start_time = req.start_time.unwrap_or_else(now_ms);

    let mut tx = s.begin().await?;
    let exp = sqlx::query(
        "SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = $1",
    )
    .bind(exp_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| RegistryError::experiment_not_found(&experiment_id))?;
    let stage: String = exp.try_get("lifecycle_stage")?;
    if stage != LIFECYCLE_ACTIVE {
        return Err(RegistryError::invalid(format!(
            "The experiment {experiment_id} must be in the 'active' state. Current state is \
             {stage}."
        )));
    }
    let artifact_uri = join_uri(
        &exp.try_get::<String, _>("artifact_location")?,
        &[&run_id, "artifacts"],
    );
    sqlx::query(
        "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, end_time, \
         artifact_uri, lifecycle_stage) VALUES ($1, $2, $3, $4, 'RUNNING', $5, NULL, $6, 'active')",
    )
    .bind(run_id.as_str())
    .bind(exp_id)
    .bind(run_name.as_str())
    .bind(user_id.as_str())
    .bind(start_time)
    .bind(artifact_uri.as_str())
    .execute(&mut *tx)
    .await?;
    insert_tags(&mut tx, s.backend, &run_id, &tags).await?;
    tx.commit().await?;
    tags.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Run {
        info: RunInfo {
            run_uuid: run_id.clone(),
            run_id,
            run_name,
            experiment_id,
            user_id,
            status: RunStatus::Running,
            start_time: Some(start_time),
            end_time: None,
            artifact_uri,
            lifecycle_stage: LIFECYCLE_ACTIVE.into(),
        },
        data: RunData {
            tags,
            ..Default::default()
        },
        inputs: RunInputs::default(),
        outputs: None,
    })
}

/// Upserts run tags (keys must be distinct), [`ROWS_PER_STATEMENT`] rows per statement.
async fn insert_tags(
    conn: &mut AnyConnection,
    backend: Backend,
    run_id: &str,
    tags: &[RunTag],
) -> Result<()> {
    for chunk in tags.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::default();
        let mut values = String::with_capacity(chunk.len() * 16);
        for t in chunk {
            sql.row(
                backend,
                &mut values,
                [
                    Arg::from(run_id),
                    Arg::from(t.key.as_str()),
                    Arg::from(t.value.as_str()),
                ],
            );
        }
        sql.text = format!(
            "INSERT INTO tags (run_uuid, key, value) VALUES {values} ON CONFLICT (run_uuid, key) \
             DO UPDATE SET value = excluded.value"
        );
        sql.query().execute(&mut *conn).await?;
    }
    Ok(())
}

pub(super) async fn get_run(s: &SqlStore, run_id: &str) -> Result<Run> {
    let mut conn = s.read.acquire().await?;
    load_runs(&mut conn, &[run_id.to_owned()])
        .await?
        .pop()
        .ok_or_else(|| RegistryError::run_not_found(run_id))
}

/// The run's lifecycle stage and experiment, or `RESOURCE_DOES_NOT_EXIST`.
async fn run_state(conn: &mut AnyConnection, run_id: &str) -> Result<(String, i64)> {
    let row = sqlx::query("SELECT lifecycle_stage, experiment_id FROM runs WHERE run_uuid = $1")
        .bind(run_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| RegistryError::run_not_found(run_id))?;
    Ok((
        row.try_get("lifecycle_stage")?,
        row.try_get("experiment_id")?,
    ))
}

/// Fails unless the run exists and is active; answers its experiment id.
async fn require_active_run(conn: &mut AnyConnection, run_id: &str) -> Result<i64> {
    let (stage, exp) = run_state(conn, run_id).await?;
    if stage != LIFECYCLE_ACTIVE {
        return Err(RegistryError::invalid(format!(
            "The run {run_id} must be in the 'active' state. Current state is {stage}."
        )));
    }
    Ok(exp)
}

pub(super) async fn update_run(s: &SqlStore, req: UpdateRun) -> Result<RunInfo> {
    let mut tx = s.begin().await?;
    require_active_run(&mut tx, &req.run_id).await?;
    let name = req.run_name.as_deref().filter(|n| !n.is_empty());
    sqlx::query(
        "UPDATE runs SET status = COALESCE($1, status), end_time = COALESCE($2, end_time), \
         name = COALESCE($3, name) WHERE run_uuid = $4",
    )
    .bind(req.status.map(|st| st.as_str()))
    .bind(req.end_time)
    .bind(name)
    .bind(req.run_id.as_str())
    .execute(&mut *tx)
    .await?;
    if let Some(name) = name {
        insert_tags(
            &mut tx,
            s.backend,
            &req.run_id,
            &[Tag::new(TAG_RUN_NAME, name)],
        )
        .await?;
    }
    let row = sqlx::query(&format!(
        "SELECT {RUN_COLS} FROM runs r WHERE r.run_uuid = $1"
    ))
    .bind(req.run_id.as_str())
    .fetch_one(&mut *tx)
    .await?;
    let info = run_info_from_row(&row)?;
    tx.commit().await?;
    Ok(info)
}

pub(super) async fn set_run_lifecycle(s: &SqlStore, run_id: &str, delete: bool) -> Result<()> {
    let mut tx = s.begin().await?;
    run_state(&mut tx, run_id).await?;
    let (stage, deleted_time) = if delete {
        (LIFECYCLE_DELETED, Some(now_ms()))
    } else {
        (LIFECYCLE_ACTIVE, None)
    };
    sqlx::query("UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE run_uuid = $3")
        .bind(stage)
        .bind(deleted_time)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Rows of a multi-row statement: 100 a statement keeps every statement's parameters well
/// under both backends' limits (SQLite 32766, PostgreSQL 65535) and its text one of few (sqlx
/// caches prepared statements by text).
const ROWS_PER_STATEMENT: usize = 100;

/// Whether the stored metric value `a` = (step, timestamp, value) is newer than `b`, by
/// MLflow's rule for the latest value of a key (`_update_latest_metrics_if_necessary`): the
/// greatest step, then timestamp, then value (a NaN compares as its stored 0).
fn newer_metric(a: (i64, i64, f64), b: (i64, i64, f64)) -> bool {
    (a.0, a.1) > (b.0, b.1) || ((a.0, a.1) == (b.0, b.1) && a.2 > b.2)
}

/// A series: (run id, metric key).
pub(super) type SeriesKey<'a> = (&'a str, &'a str);

/// A series' latest value as stored: (step, timestamp, value, is_nan).
pub(super) type LatestValue = (i64, i64, f64, i64);

/// The newest of `rows` (see [`newer_metric`]) for each (run, key), as (step, timestamp,
/// stored value, is_nan), in (run, key) order; the first of equal ones is kept, as row-by-row
/// upserts kept it.
pub(super) fn newest_per_series<'a>(
    rows: impl IntoIterator<Item = (&'a str, &'a Metric)>,
) -> Vec<(SeriesKey<'a>, LatestValue)> {
    use std::collections::hash_map::Entry;
    let mut newest: HashMap<SeriesKey<'a>, LatestValue> = HashMap::new();
    for (run_id, m) in rows {
        let (v, nan) = storable(m.value);
        let candidate = (m.step, m.timestamp, v, nan);
        match newest.entry((run_id, m.key.as_str())) {
            Entry::Vacant(e) => {
                e.insert(candidate);
            }
            Entry::Occupied(mut e) => {
                let current = *e.get();
                if newer_metric(
                    (candidate.0, candidate.1, candidate.2),
                    (current.0, current.1, current.2),
                ) {
                    e.insert(candidate);
                }
            }
        }
    }
    let mut newest: Vec<_> = newest.into_iter().collect();
    newest.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    newest
}

/// The conflict clause of every `latest_metrics` upsert: MLflow's rule for the latest value (see
/// [`newer_metric`]), the greatest (step, timestamp, value); the WHERE moves a row only to a
/// strictly newer value.
pub(super) const MOVE_LATEST: &str = "ON CONFLICT (run_uuid, key) DO UPDATE SET \
     value = excluded.value, is_nan = excluded.is_nan, timestamp = excluded.timestamp, \
     step = excluded.step WHERE (excluded.step, excluded.timestamp, excluded.value) > \
     (latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)";

/// Moves `latest_metrics` to the newest of `rows` (see [`newer_metric`]) for each (run, key)
/// whose stored latest value is older: one set-based upsert per batch, instead of a trigger
/// per inserted row. The batch is first reduced to its newest value per (run, key) (the first
/// of equal ones kept, as row-by-row upserts kept it), then written by multi-row
/// `INSERT ... ON CONFLICT DO UPDATE ... WHERE` statements whose WHERE moves a row only to a
/// strictly newer value. Rows go in (run, key) order, so concurrent writers lock rows in one
/// order. On PostgreSQL, values that are not newer than the visible latest one (which only ever
/// grows) are filtered out before the upsert so that they take no row lock and concurrent
/// writers of one key do not queue on it; the upsert's WHERE decides under the lock.
///
/// A value that was an exact duplicate of a stored one (one entry of its history) may be among
/// `rows`: the latest value is at least that stored one already, so it changes nothing.
async fn upsert_latest_metrics<'a>(
    conn: &mut AnyConnection,
    backend: Backend,
    rows: impl IntoIterator<Item = (&'a str, &'a Metric)>,
) -> Result<()> {
    let newest = newest_per_series(rows);
    for chunk in newest.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::default();
        let mut values = String::with_capacity(chunk.len() * 24);
        for ((run_id, key), (step, timestamp, value, is_nan)) in chunk {
            sql.row(
                backend,
                &mut values,
                [
                    Arg::from(*run_id),
                    Arg::from(*key),
                    Arg::from(*value),
                    Arg::from(*is_nan),
                    Arg::from(*timestamp),
                    Arg::from(*step),
                ],
            );
        }
        sql.text = match backend {
            Backend::Sqlite => format!(
                "INSERT INTO latest_metrics (run_uuid, key, value, is_nan, timestamp, step) \
                 VALUES {values} {MOVE_LATEST}"
            ),
            Backend::Postgres => format!(
                "INSERT INTO latest_metrics (run_uuid, key, value, is_nan, timestamp, step) \
                 SELECT v.run_uuid, v.key, v.value, v.is_nan, v.timestamp, v.step \
                 FROM (VALUES {values}) AS v (run_uuid, key, value, is_nan, timestamp, step) \
                 WHERE NOT EXISTS (SELECT 1 FROM latest_metrics l WHERE l.run_uuid = v.run_uuid \
                 AND l.key = v.key AND (l.step, l.timestamp, l.value) >= \
                 (v.step, v.timestamp, v.value)) ORDER BY v.run_uuid, v.key {MOVE_LATEST}"
            ),
        };
        sql.query().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Appends metric rows of runs already checked to be active (exact duplicates dropped at once on
/// PostgreSQL, when history is read on SQLite, see the `history` module), and moves their latest values
/// ([`upsert_latest_metrics`]). Metrics with a `model_id` are also recorded on the logged model.
/// The caller counts the values it staged ([`SqlStore::note_staged`]) once it has committed.
async fn insert_metrics(
    conn: &mut AnyConnection,
    backend: Backend,
    run_id: &str,
    metrics: &[Metric],
) -> Result<()> {
    for chunk in metrics.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::default();
        let mut values = String::with_capacity(chunk.len() * 32);
        for m in chunk {
            let (v, nan) = storable(m.value);
            sql.row(
                backend,
                &mut values,
                [
                    Arg::from(run_id),
                    Arg::from(m.key.as_str()),
                    Arg::from(v),
                    Arg::from(nan),
                    Arg::from(m.timestamp),
                    Arg::from(m.step),
                    Arg::from(m.model_id.as_deref()),
                    Arg::from(m.dataset_name.as_deref()),
                    Arg::from(m.dataset_digest.as_deref()),
                ],
            );
        }
        let (table, on_conflict) = match backend {
            Backend::Sqlite => ("metrics_staging", ""),
            Backend::Postgres => ("metrics", " ON CONFLICT DO NOTHING"),
        };
        sql.text = format!(
            "INSERT INTO {table} (run_uuid, key, value, is_nan, timestamp, step, model_id, \
             dataset_name, dataset_digest) VALUES {values}{on_conflict}"
        );
        sql.query().execute(&mut *conn).await?;
    }
    upsert_latest_metrics(conn, backend, metrics.iter().map(|m| (run_id, m))).await?;
    let with_model: Vec<&Metric> = metrics.iter().filter(|m| m.model_id.is_some()).collect();
    for chunk in with_model.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::default();
        let mut values = String::with_capacity(chunk.len() * 32);
        for m in chunk {
            let (v, nan) = storable(m.value);
            sql.row(
                backend,
                &mut values,
                [
                    Arg::from(m.model_id.as_deref()),
                    Arg::from(m.key.as_str()),
                    Arg::from(v),
                    Arg::from(nan),
                    Arg::from(m.timestamp),
                    Arg::from(m.step),
                    Arg::from(run_id),
                    Arg::from(m.dataset_name.as_deref()),
                    Arg::from(m.dataset_digest.as_deref()),
                ],
            );
        }
        sql.text = format!(
            "INSERT INTO logged_model_metrics (model_id, key, value, is_nan, timestamp, step, \
             run_id, dataset_name, dataset_digest) VALUES {values}"
        );
        sql.query().execute(&mut *conn).await?;
    }
    Ok(())
}

pub(super) async fn log_metric(s: &SqlStore, run_id: &str, metric: Metric) -> Result<()> {
    validation::validate_metric(&metric, "")?;
    if metric.model_id.is_some() || s.backend != Backend::Postgres {
        // (SQLite logs metrics without a model through `group_commit`.)
        let mut tx = s.begin().await?;
        require_active_run(&mut tx, run_id).await?;
        insert_metrics(&mut tx, s.backend, run_id, std::slice::from_ref(&metric)).await?;
        tx.commit().await?;
        s.note_staged(1);
        return Ok(());
    }
    // The hot path on PostgreSQL: one statement, which checks the run, appends the value and
    // moves the latest value (as `upsert_latest_metrics` does: a value not newer than the
    // visible latest one takes no row lock), atomically and in one round trip.
    let (v, nan) = storable(metric.value);
    let mut conn = s.writer().await?;
    let inserted: i64 = sqlx::query_scalar(
        "WITH ins AS (INSERT INTO metrics (run_uuid, key, value, is_nan, timestamp, step, \
         model_id, dataset_name, dataset_digest) SELECT $1, $2, $3, $4, $5, $6, NULL, $7, $8 \
         WHERE EXISTS (SELECT 1 FROM runs WHERE run_uuid = $1 AND lifecycle_stage = 'active') \
         ON CONFLICT DO NOTHING RETURNING run_uuid, key, value, is_nan, timestamp, step), \
         latest AS (INSERT INTO latest_metrics (run_uuid, key, value, is_nan, timestamp, step) \
         SELECT i.run_uuid, i.key, i.value, i.is_nan, i.timestamp, i.step FROM ins i \
         WHERE NOT EXISTS (SELECT 1 FROM latest_metrics l WHERE l.run_uuid = i.run_uuid \
         AND l.key = i.key AND (l.step, l.timestamp, l.value) >= (i.step, i.timestamp, i.value)) \
         ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value, \
         is_nan = excluded.is_nan, timestamp = excluded.timestamp, step = excluded.step \
         WHERE (excluded.step, excluded.timestamp, excluded.value) > \
         (latest_metrics.step, latest_metrics.timestamp, latest_metrics.value) RETURNING 1) \
         SELECT COUNT(*) FROM ins",
    )
    .bind(run_id)
    .bind(metric.key.as_str())
    .bind(v)
    .bind(nan)
    .bind(metric.timestamp)
    .bind(metric.step)
    .bind(metric.dataset_name.as_deref())
    .bind(metric.dataset_digest.as_deref())
    .fetch_one(&mut *conn)
    .await?;
    if inserted == 0 {
        // A missing or deleted run, or an exact duplicate (which is fine).
        require_active_run(&mut conn, run_id).await?;
    }
    Ok(())
}

fn param_conflict(run_id: &str, key: &str, old: &str, new: &str) -> RegistryError {
    RegistryError::invalid(format!(
        "Changing param values is not allowed. Param with key='{key}' was already logged with \
         value='{old}' for run ID='{run_id}'. Attempted logging new value '{new}'."
    ))
}

pub(super) async fn log_param(s: &SqlStore, run_id: &str, param: Param) -> Result<()> {
    validation::validate_param(&param, "")?;
    let mut conn = s.writer().await?;
    let inserted = sqlx::query(
        "INSERT INTO params (run_uuid, key, value) SELECT $1, $2, $3 WHERE EXISTS \
         (SELECT 1 FROM runs WHERE run_uuid = $1 AND lifecycle_stage = 'active') \
         ON CONFLICT DO NOTHING",
    )
    .bind(run_id)
    .bind(param.key.as_str())
    .bind(param.value.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        require_active_run(&mut conn, run_id).await?;
        let old: Option<String> =
            sqlx::query_scalar("SELECT value FROM params WHERE run_uuid = $1 AND key = $2")
                .bind(run_id)
                .bind(param.key.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        match old {
            Some(old) if old != param.value => {
                return Err(param_conflict(run_id, &param.key, &old, &param.value));
            }
            Some(_) => {}
            None => {
                return Err(RegistryError::Internal(format!(
                    "param {} of run {run_id} was neither written nor found",
                    param.key
                )));
            }
        }
    }
    Ok(())
}

pub(super) async fn set_tag(s: &SqlStore, run_id: &str, tag: RunTag) -> Result<()> {
    validation::validate_run_tag(&tag, "")?;
    let mut tx = s.begin().await?;
    require_active_run(&mut tx, run_id).await?;
    insert_tags(&mut tx, s.backend, run_id, std::slice::from_ref(&tag)).await?;
    if tag.key == TAG_RUN_NAME {
        sqlx::query("UPDATE runs SET name = $1 WHERE run_uuid = $2")
            .bind(tag.value.as_str())
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete_tag(s: &SqlStore, run_id: &str, key: &str) -> Result<()> {
    let mut tx = s.begin().await?;
    require_active_run(&mut tx, run_id).await?;
    let n = sqlx::query("DELETE FROM tags WHERE run_uuid = $1 AND key = $2")
        .bind(run_id)
        .bind(key)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(RegistryError::not_found(format!(
            "No tag with name: {key} in run with id {run_id}"
        )));
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn log_batch(
    s: &SqlStore,
    run_id: &str,
    metrics: Vec<Metric>,
    params: Vec<Param>,
    tags: Vec<RunTag>,
) -> Result<()> {
    validation::validate_batch(&metrics, &params, &tags)?;
    let mut tx = s.begin().await?;
    require_active_run(&mut tx, run_id).await?;
    if !params.is_empty() {
        let mut sql = Sql::default();
        let r = sql.arg(run_id);
        let keys = sql.list(params.iter().map(|p| p.key.as_str()));
        sql.text =
            format!("SELECT key, value FROM params WHERE run_uuid = {r} AND key IN ({keys})");
        let existing: HashMap<String, String> = sql
            .query()
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("key")?, row.try_get("value")?)))
            .collect::<Result<_>>()?;
        let mut conflicts = Vec::new();
        let mut new = Vec::new();
        for p in &params {
            match existing.get(&p.key) {
                Some(old) if *old != p.value => conflicts.push(format!(
                    "{{'key': '{}', 'old_value': '{old}', 'new_value': '{}'}}",
                    p.key, p.value
                )),
                Some(_) => {}
                None => new.push(p),
            }
        }
        if !conflicts.is_empty() {
            return Err(RegistryError::invalid(format!(
                "Changing param values is not allowed. Params were already logged='[{}]' for run \
                 ID='{run_id}'.",
                conflicts.join(", ")
            )));
        }
        for chunk in new.chunks(ROWS_PER_STATEMENT) {
            let mut sql = Sql::default();
            let mut values = String::with_capacity(chunk.len() * 16);
            for p in chunk {
                sql.row(
                    s.backend,
                    &mut values,
                    [
                        Arg::from(run_id),
                        Arg::from(p.key.as_str()),
                        Arg::from(p.value.as_str()),
                    ],
                );
            }
            sql.text = format!("INSERT INTO params (run_uuid, key, value) VALUES {values}");
            sql.query().execute(&mut *tx).await?;
        }
    }
    insert_metrics(&mut tx, s.backend, run_id, &metrics).await?;
    if !tags.is_empty() {
        let mut dedup: Vec<RunTag> = Vec::with_capacity(tags.len());
        for t in tags {
            if let Some(e) = dedup.iter_mut().find(|e| e.key == t.key) {
                e.value = t.value;
            } else {
                dedup.push(t);
            }
        }
        insert_tags(&mut tx, s.backend, run_id, &dedup).await?;
        if let Some(t) = dedup.iter().find(|t| t.key == TAG_RUN_NAME) {
            sqlx::query("UPDATE runs SET name = $1 WHERE run_uuid = $2")
                .bind(t.value.as_str())
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    s.note_staged(metrics.len());
    Ok(())
}

pub(super) async fn log_inputs(
    s: &SqlStore,
    run_id: &str,
    datasets: Vec<DatasetInput>,
    models: Vec<ModelInput>,
) -> Result<()> {
    for d in &datasets {
        validation::validate_dataset_input(d)?;
    }
    let mut tx = s.begin().await?;
    let exp_id = require_active_run(&mut tx, run_id).await?;
    for input in &datasets {
        let d = &input.dataset;
        sqlx::query(
            "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, source, \
             schema, profile) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (experiment_id, name, digest) DO NOTHING",
        )
        .bind(new_hex_id())
        .bind(exp_id)
        .bind(d.name.as_str())
        .bind(d.digest.as_str())
        .bind(d.source_type.as_str())
        .bind(d.source.as_str())
        .bind(d.schema.as_deref())
        .bind(d.profile.as_deref())
        .execute(&mut *tx)
        .await?;
        let duuid: String = sqlx::query_scalar(
            "SELECT dataset_uuid FROM datasets WHERE experiment_id = $1 AND name = $2 AND \
             digest = $3",
        )
        .bind(exp_id)
        .bind(d.name.as_str())
        .bind(d.digest.as_str())
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO run_dataset_inputs (run_uuid, dataset_uuid, seq) VALUES ($1, $2, \
             (SELECT COALESCE(MAX(seq), 0) + 1 FROM run_dataset_inputs WHERE run_uuid = $1)) \
             ON CONFLICT DO NOTHING",
        )
        .bind(run_id)
        .bind(duuid.as_str())
        .execute(&mut *tx)
        .await?;
        for t in &input.tags {
            sqlx::query(
                "INSERT INTO input_tags (run_uuid, dataset_uuid, key, value) VALUES ($1, $2, $3, \
                 $4) ON CONFLICT (run_uuid, dataset_uuid, key) DO UPDATE SET value = \
                 excluded.value",
            )
            .bind(run_id)
            .bind(duuid.as_str())
            .bind(t.key.as_str())
            .bind(t.value.as_str())
            .execute(&mut *tx)
            .await?;
        }
    }
    for m in &models {
        sqlx::query(
            "INSERT INTO run_models (run_uuid, direction, model_id, step) VALUES ($1, 'input', \
             $2, 0) ON CONFLICT DO NOTHING",
        )
        .bind(run_id)
        .bind(m.model_id.as_str())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn log_outputs(
    s: &SqlStore,
    run_id: &str,
    models: Vec<ModelOutput>,
) -> Result<()> {
    let mut tx = s.begin().await?;
    require_active_run(&mut tx, run_id).await?;
    for m in &models {
        sqlx::query(
            "INSERT INTO run_models (run_uuid, direction, model_id, step) VALUES ($1, 'output', \
             $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(run_id)
        .bind(m.model_id.as_str())
        .bind(m.step)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A series' history on PostgreSQL: its rows of `metrics`.
const HISTORY_POSTGRES: &str = "SELECT key, value, is_nan, timestamp, step, model_id, \
     dataset_name, dataset_digest FROM metrics WHERE run_uuid = $1 AND key = $2 \
     ORDER BY timestamp, step, value LIMIT $3 OFFSET $4";

pub(super) async fn get_metric_history(
    s: &SqlStore,
    run_id: &str,
    key: &str,
    max_results: Option<i64>,
    page_token: Option<&str>,
) -> Result<Page<Metric>> {
    let offset = search::parse_page_token(page_token)?;
    let limit = match max_results {
        Some(n) if n < 1 => {
            return Err(RegistryError::invalid(format!(
                "Invalid value for max_results. It must be a positive integer, but got {n}"
            )));
        }
        Some(n) => Some(n),
        None => None,
    };
    let mut conn = s.read.acquire().await?;
    run_state(&mut conn, run_id).await?;
    if s.backend == Backend::Sqlite {
        let series = super::history::sqlite_series(&mut conn, run_id, key).await?;
        return Ok(page_of(series, offset, limit));
    }
    let rows = sqlx::query(HISTORY_POSTGRES)
        .bind(run_id)
        .bind(key)
        .bind(limit.map_or(i64::MAX, |n| n + 1))
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
    let mut items = rows
        .iter()
        .map(|r| {
            Ok(Metric {
                key: r.try_get("key")?,
                value: stored_value(r.try_get("value")?, r.try_get("is_nan")?),
                timestamp: r.try_get("timestamp")?,
                step: r.try_get("step")?,
                dataset_name: r.try_get("dataset_name")?,
                dataset_digest: r.try_get("dataset_digest")?,
                model_id: r.try_get("model_id")?,
                run_id: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let next = match limit {
        Some(n) if items.len() as i64 > n => {
            items.truncate(n as usize);
            Some(search::page_token(offset + n))
        }
        _ => None,
    };
    Ok(Page {
        items,
        next_page_token: next,
    })
}

/// The page of `items` at `offset`, of `limit` items (all when `None`), with the token of the
/// next page when more follow.
fn page_of<T>(items: Vec<T>, offset: i64, limit: Option<i64>) -> Page<T> {
    let rest = items
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX));
    match limit {
        Some(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            let mut page: Vec<T> = rest.take(n.saturating_add(1)).collect();
            let next = (page.len() > n).then(|| {
                page.truncate(n);
                search::page_token(offset + n as i64)
            });
            Page {
                items: page,
                next_page_token: next,
            }
        }
        None => Page {
            items: rest.collect(),
            next_page_token: None,
        },
    }
}

/// The column of a run attribute usable in filters and ordering, and whether it is numeric.
fn run_attribute(key: &str) -> Option<(&'static str, bool)> {
    Some(match key {
        "run_id" | "run_uuid" => ("r.run_uuid", false),
        "run_name" | "run name" | "Run name" | "Run Name" => ("r.name", false),
        "status" => ("r.status", false),
        "user_id" => ("r.user_id", false),
        "artifact_uri" => ("r.artifact_uri", false),
        "lifecycle_stage" => ("r.lifecycle_stage", false),
        "start_time" | "created" | "Created" => ("r.start_time", true),
        "end_time" => ("r.end_time", true),
        "experiment_id" => ("r.experiment_id", true),
        _ => return None,
    })
}

fn run_condition(sql: &mut Sql, backend: Backend, f: &search::Comparison) -> Result<String> {
    let key = f.key.as_str();
    match f.kind {
        KeyKind::Metric => {
            if matches!(f.value, search::Value::Str(_) | search::Value::List(_)) {
                return Err(RegistryError::invalid(format!(
                    "Expected numeric value type for metric '{key}'"
                )));
            }
            let k = sql.arg(key);
            let c = cond::number(sql, "m.value", key, f.op, &f.value)?;
            Ok(format!(
                "EXISTS (SELECT 1 FROM latest_metrics m WHERE m.run_uuid = r.run_uuid AND \
                 m.key = {k} AND m.is_nan = 0 AND {c})"
            ))
        }
        KeyKind::Param | KeyKind::Tag => {
            // MLflow 3.17 refuses `params.x IN (...)` (VALID_PARAM_COMPARATORS).
            if f.kind == KeyKind::Param && matches!(f.op, Op::In | Op::NotIn) {
                return Err(RegistryError::invalid(format!(
                    "Invalid comparator '{}' not one of '{{'!=', '=', 'LIKE', 'ILIKE', 'IS NULL', \
                     'IS NOT NULL'}}'",
                    f.op.sql()
                )));
            }
            if matches!(f.value, search::Value::Num(_)) {
                return Err(RegistryError::invalid(format!(
                    "Parameter or tag value for '{key}' must be a quoted string"
                )));
            }
            let table = if f.kind == KeyKind::Param {
                "params"
            } else {
                "tags"
            };
            cond::key_value(
                sql,
                backend,
                table,
                "run_uuid",
                "r.run_uuid",
                key,
                f.op,
                &f.value,
            )
        }
        KeyKind::Attribute => {
            let Some((col, numeric)) = run_attribute(key) else {
                return Err(RegistryError::invalid(format!(
                    "Invalid attribute key '{key}' specified. Valid keys are run_id, run_name, \
                     status, user_id, artifact_uri, start_time, end_time, created"
                )));
            };
            if numeric {
                cond::number(sql, col, key, f.op, &f.value)
            } else {
                cond::string(sql, backend, col, key, f.op, &f.value)
            }
        }
        KeyKind::Dataset => {
            let inner = match key {
                "name" | "digest" => {
                    let c = cond::string(sql, backend, &format!("d.{key}"), key, f.op, &f.value)?;
                    format!(
                        "SELECT 1 FROM run_dataset_inputs i JOIN datasets d ON d.dataset_uuid = \
                         i.dataset_uuid WHERE i.run_uuid = r.run_uuid AND {c}"
                    )
                }
                "context" => {
                    let k = sql.arg(TAG_DATASET_CONTEXT);
                    let c = cond::string(sql, backend, "t.value", key, f.op, &f.value)?;
                    format!(
                        "SELECT 1 FROM input_tags t WHERE t.run_uuid = r.run_uuid AND t.key = \
                         {k} AND {c}"
                    )
                }
                _ => {
                    return Err(RegistryError::invalid(format!(
                        "Invalid dataset key '{key}' specified. Valid keys are name, digest, \
                         context"
                    )));
                }
            };
            Ok(format!("EXISTS ({inner})"))
        }
    }
}

/// Whether a run has dataset or model inputs or outputs (a column of the SQLite run search).
const HAS_IO: &str = "(EXISTS (SELECT 1 FROM run_dataset_inputs i WHERE i.run_uuid = r.run_uuid) \
     OR EXISTS (SELECT 1 FROM run_models x WHERE x.run_uuid = r.run_uuid)) AS has_io";

/// The SQLite search, on a direct reader (see the `direct` module): the page of runs (with
/// [`HAS_IO`]), then their latest metrics, params and tags in one more query; runs with inputs
/// or outputs are completed by [`load_runs`].
async fn search_runs_sqlite(
    s: &SqlStore,
    readers: &super::direct::DirectReaders,
    sql: &Sql,
    limit: i64,
    offset: i64,
) -> Result<Page<Run>> {
    let (runs, more) = readers.read(|conn| {
        let mut found = super::direct::fetch(conn, sql, |row| {
            Ok((run_info_from_row(row)?, row.read::<i64>("has_io")? != 0))
        })?;
        let more = found.len() as i64 > limit;
        found.truncate(limit as usize);
        let mut data = Sql::default();
        let ph = data.list(found.iter().map(|(info, _)| info.run_id.as_str()));
        let mut runs: HashMap<String, Run> = HashMap::with_capacity(found.len());
        for (info, _) in &found {
            runs.insert(
                info.run_id.clone(),
                Run {
                    info: info.clone(),
                    data: RunData::default(),
                    inputs: RunInputs::default(),
                    outputs: Some(RunOutputs::default()),
                },
            );
        }
        if !found.is_empty() {
            data.text = run_data_query(&ph);
            super::direct::fetch(conn, &data, |row| push_run_data(&mut runs, row))?;
        }
        let ordered: Vec<(Run, bool)> = found
            .into_iter()
            .filter_map(|(info, has_io)| {
                let mut run = runs.remove(&info.run_id)?;
                sort_run_data(&mut run.data);
                Some((run, has_io))
            })
            .collect();
        Ok((ordered, more))
    })?;
    let with_io: Vec<String> = runs
        .iter()
        .filter(|(_, has_io)| *has_io)
        .map(|(run, _)| run.info.run_id.clone())
        .collect();
    let mut runs: Vec<Run> = runs.into_iter().map(|(run, _)| run).collect();
    if !with_io.is_empty() {
        let mut conn = s.read.acquire().await?;
        for full in load_runs(&mut conn, &with_io).await? {
            if let Some(run) = runs.iter_mut().find(|r| r.info.run_id == full.info.run_id) {
                *run = full;
            }
        }
    }
    Ok(Page {
        items: runs,
        next_page_token: more.then(|| search::page_token(offset + limit)),
    })
}

/// A filter on a metric, or an `=`, `!=`, `LIKE`, `ILIKE` filter on a param or tag, as an inner
/// join `f<i>` (see [`search_runs`]); `None` for the filters that stay in the WHERE clause.
fn run_filter_join(
    sql: &mut Sql,
    backend: Backend,
    f: &search::Comparison,
    i: usize,
) -> Result<Option<String>> {
    let key = f.key.as_str();
    match f.kind {
        KeyKind::Metric => {
            if matches!(f.value, search::Value::Str(_) | search::Value::List(_)) {
                return Err(RegistryError::invalid(format!(
                    "Expected numeric value type for metric '{key}'"
                )));
            }
            let k = sql.arg(key);
            let c = cond::number(sql, &format!("f{i}.value"), key, f.op, &f.value)?;
            Ok(Some(format!(
                " JOIN latest_metrics f{i} ON f{i}.run_uuid = r.run_uuid AND f{i}.key = {k} AND \
                 f{i}.is_nan = 0 AND {c}"
            )))
        }
        KeyKind::Param | KeyKind::Tag
            if matches!(f.op, Op::Eq | Op::Ne | Op::Like | Op::ILike)
                && matches!(f.value, search::Value::Str(_)) =>
        {
            let table = if f.kind == KeyKind::Param {
                "params"
            } else {
                "tags"
            };
            let k = sql.arg(key);
            let c = cond::string(sql, backend, &format!("f{i}.value"), key, f.op, &f.value)?;
            Ok(Some(format!(
                " JOIN {table} f{i} ON f{i}.run_uuid = r.run_uuid AND f{i}.key = {k} AND {c}"
            )))
        }
        _ => Ok(None),
    }
}

pub(super) async fn search_runs(s: &SqlStore, req: SearchRuns) -> Result<Page<Run>> {
    let limit = search::page_size(req.max_results, 1000, validation::MAX_RUNS_PER_PAGE)?;
    let offset = search::parse_page_token(req.page_token.as_deref())?;
    let filters = search::parse_filter(req.filter.as_deref())?;
    let order = search::parse_order_by_list(&req.order_by)?;
    if req.experiment_ids.is_empty() {
        return Ok(Page {
            items: Vec::new(),
            next_page_token: None,
        });
    }
    let exp_ids: Vec<i64> = req
        .experiment_ids
        .iter()
        .map(|e| parse_experiment_id(e))
        .collect::<Result<_>>()?;

    let mut sql = Sql::default();
    // Ordering joins come first in the text, so their placeholders are numbered first.
    let mut joins = String::new();
    let mut order_sql = Vec::new();
    let mut by_start_time = false;
    for (i, o) in order.iter().enumerate() {
        let dir = if o.ascending { "ASC" } else { "DESC" };
        match o.kind {
            KeyKind::Metric => {
                // A filter on the same metric joins its latest value already (an inner join
                // that keeps only non-NaN values, see `run_filter_join`): order by that, without
                // a second join of the same row.
                if let Some(f) = filters
                    .iter()
                    .position(|f| f.kind == KeyKind::Metric && f.key == o.key)
                {
                    order_sql.push(format!("f{f}.value {dir}"));
                    continue;
                }
                let k = sql.arg(o.key.as_str());
                joins.push_str(&format!(
                    " LEFT JOIN latest_metrics o{i} ON o{i}.run_uuid = r.run_uuid AND o{i}.key = {k}"
                ));
                order_sql.push(format!(
                    "CASE WHEN o{i}.is_nan = 1 THEN 1 WHEN o{i}.value IS NULL THEN 2 ELSE 0 END"
                ));
                order_sql.push(format!("o{i}.value {dir}"));
            }
            KeyKind::Param | KeyKind::Tag => {
                let table = if o.kind == KeyKind::Param {
                    "params"
                } else {
                    "tags"
                };
                let k = sql.arg(o.key.as_str());
                joins.push_str(&format!(
                    " LEFT JOIN {table} o{i} ON o{i}.run_uuid = r.run_uuid AND o{i}.key = {k}"
                ));
                order_sql.push(format!("CASE WHEN o{i}.value IS NULL THEN 1 ELSE 0 END"));
                order_sql.push(format!("o{i}.value {dir}"));
            }
            KeyKind::Attribute => {
                let Some((col, _)) = run_attribute(&o.key) else {
                    return Err(RegistryError::invalid(format!(
                        "Invalid order_by key '{}'",
                        o.key
                    )));
                };
                if col == "r.start_time" {
                    by_start_time = true;
                }
                order_sql.push(format!("CASE WHEN {col} IS NULL THEN 1 ELSE 0 END"));
                order_sql.push(format!("{col} {dir}"));
            }
            KeyKind::Dataset => {
                return Err(RegistryError::invalid(format!(
                    "Invalid order_by key 'datasets.{}'",
                    o.key
                )));
            }
        }
    }
    if !by_start_time {
        order_sql.push("r.start_time DESC".into());
    }
    order_sql.push("r.run_uuid ASC".into());

    // Filters on metrics, params and tags are inner joins on their (run, key) primary keys (at
    // most one row each, so no duplicates), placed after the ordering joins in the text and in
    // the placeholders. Unlike correlated EXISTS subqueries, joins let the planner start from
    // the most selective filter (e.g. `latest_metrics (key, value)` for a metric range) instead
    // of probing every run of the experiments.
    let mut where_filters = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        match run_filter_join(&mut sql, s.backend, f, i)? {
            Some(join) => joins.push_str(&join),
            None => where_filters.push(f),
        }
    }
    let exps = sql.list(exp_ids);
    let mut conds = vec![
        format!("r.experiment_id IN ({exps})"),
        lifecycle_condition(req.run_view_type.unwrap_or_default(), "r.lifecycle_stage"),
    ];
    for f in where_filters {
        conds.push(run_condition(&mut sql, s.backend, f)?);
    }
    let lim = sql.arg(limit + 1);
    let off = sql.arg(offset);
    if let Some(readers) = &s.direct_read {
        sql.text = format!(
            "SELECT {RUN_COLS}, {HAS_IO} FROM runs r{joins} WHERE {} ORDER BY {} LIMIT {lim} \
             OFFSET {off}",
            conds.join(" AND "),
            order_sql.join(", ")
        );
        return search_runs_sqlite(s, readers, &sql, limit, offset).await;
    }
    sql.text = format!(
        "SELECT r.run_uuid FROM runs r{joins} WHERE {} ORDER BY {} LIMIT {lim} OFFSET {off}",
        conds.join(" AND "),
        order_sql.join(", ")
    );
    let mut conn = s.read.acquire().await?;
    let mut ids: Vec<String> = sql
        .query()
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("run_uuid"))
        .collect::<std::result::Result<_, _>>()?;
    let next = if ids.len() as i64 > limit {
        ids.truncate(limit as usize);
        Some(search::page_token(offset + limit))
    } else {
        None
    };
    Ok(Page {
        items: load_runs(&mut conn, &ids).await?,
        next_page_token: next,
    })
}
