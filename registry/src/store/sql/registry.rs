//! Registered models, model versions, stages and aliases (with their history).

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::columns::ColumnRead;
use super::{Arg, Sql, SqlStore, cond, direct, is_unique_violation, now_ms};
use crate::entities::{
    AliasEvent, ModelVersion, ModelVersionStatus, RegisteredModel, RegisteredModelAlias, Tag,
    stages,
};
use crate::error::{RegistryError, Result};
use crate::store::search::{self, KeyKind, Op};
use crate::store::{
    CreateModelVersion, CreateRegisteredModel, Page, SearchQuery, SetAlias, StageTransition,
};
use crate::validation;

const RM_COLS: &str =
    "rm.id, rm.name, rm.creation_timestamp, rm.last_updated_timestamp, rm.user_id, rm.description";

const MV_COLS: &str = "mv.id, mv.rm_id, rm.name, mv.version, mv.creation_timestamp, \
                       mv.last_updated_timestamp, mv.user_id, mv.current_stage, mv.description, \
                       mv.source, mv.run_id, mv.run_link, mv.status, mv.status_message, mv.model_id";

const MV_FROM: &str = "model_versions mv JOIN registered_models rm ON rm.id = mv.rm_id";

/// A model version row with its keys.
struct MvRow {
    id: i64,
    rm_id: i64,
    version: i64,
    mv: ModelVersion,
}

fn mv_from_row(row: &impl ColumnRead) -> Result<MvRow> {
    let version: i64 = row.read("version")?;
    Ok(MvRow {
        id: row.read("id")?,
        rm_id: row.read("rm_id")?,
        version,
        mv: ModelVersion {
            name: row.read("name")?,
            version: version.to_string(),
            creation_timestamp: row.read("creation_timestamp")?,
            last_updated_timestamp: row.read("last_updated_timestamp")?,
            user_id: row.read("user_id")?,
            current_stage: row.read("current_stage")?,
            description: row.read("description")?,
            source: row.read("source")?,
            run_id: row.read("run_id")?,
            status: ModelVersionStatus::parse(&row.read::<String>("status")?),
            status_message: row.read("status_message")?,
            tags: Vec::new(),
            run_link: row.read("run_link")?,
            aliases: Vec::new(),
            model_id: row.read("model_id")?,
        },
    })
}

/// A tag of a version (`kind` 0, `owner` the version's id) or an alias of its model (`kind` 1,
/// `owner` the model's id), as [`version_extras_sql`] reads them.
struct VersionExtra {
    kind: i64,
    owner: i64,
    key: String,
    value: String,
    version: i64,
}

fn version_extra_from_row(row: &impl ColumnRead) -> Result<VersionExtra> {
    Ok(VersionExtra {
        kind: row.read("kind")?,
        owner: row.read("owner")?,
        key: row.read("key")?,
        value: row.read("value")?,
        version: row.read("version")?,
    })
}

/// The query of the tags and aliases of `rows` (one query).
fn version_extras_sql(rows: &[MvRow]) -> Sql {
    let mut sql = Sql::default();
    let mv_ids = sql.list(rows.iter().map(|r| r.id));
    let mut rm_ids: Vec<i64> = rows.iter().map(|r| r.rm_id).collect();
    rm_ids.sort_unstable();
    rm_ids.dedup();
    let rm_ph = sql.list(rm_ids);
    sql.text = format!(
        "SELECT 0 AS kind, mv_id AS owner, key, value, 0 AS version FROM model_version_tags \
         WHERE mv_id IN ({mv_ids}) UNION ALL SELECT 1, rm_id, alias, '', version FROM \
         registered_model_aliases WHERE rm_id IN ({rm_ph}) ORDER BY 1, 3"
    );
    sql
}

/// The versions of `rows` with their tags and aliases from `extras`.
fn attach_version_extras(rows: Vec<MvRow>, extras: Vec<VersionExtra>) -> Vec<ModelVersion> {
    let mut tags: HashMap<i64, Vec<Tag>> = HashMap::new();
    let mut aliases: HashMap<(i64, i64), Vec<String>> = HashMap::new();
    for e in extras {
        if e.kind == 0 {
            tags.entry(e.owner)
                .or_default()
                .push(Tag::new(e.key, e.value));
        } else {
            aliases.entry((e.owner, e.version)).or_default().push(e.key);
        }
    }
    rows.into_iter()
        .map(|mut r| {
            r.mv.tags = tags.remove(&r.id).unwrap_or_default();
            r.mv.aliases = aliases
                .get(&(r.rm_id, r.version))
                .cloned()
                .unwrap_or_default();
            r.mv
        })
        .collect()
}

/// Attaches tags and aliases to versions (one query).
async fn with_version_extras(
    conn: &mut AnyConnection,
    rows: Vec<MvRow>,
) -> Result<Vec<ModelVersion>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let extras = version_extras_sql(&rows)
        .query()
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(version_extra_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(attach_version_extras(rows, extras))
}

fn rm_from_row(row: &AnyRow) -> Result<(i64, RegisteredModel)> {
    Ok((
        row.try_get("id")?,
        RegisteredModel {
            name: row.try_get("name")?,
            creation_timestamp: row.try_get("creation_timestamp")?,
            last_updated_timestamp: row.try_get("last_updated_timestamp")?,
            user_id: row.try_get("user_id")?,
            description: row.try_get("description")?,
            latest_versions: Vec::new(),
            tags: Vec::new(),
            aliases: Vec::new(),
        },
    ))
}

/// Attaches tags, aliases and the latest version per stage to registered models (three queries).
async fn with_model_extras(
    conn: &mut AnyConnection,
    models: Vec<(i64, RegisteredModel)>,
) -> Result<Vec<RegisteredModel>> {
    if models.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::default();
    let ids = sql.list(models.iter().map(|(id, _)| *id));
    sql.text = format!(
        "SELECT 0 AS kind, rm_id, key, value, 0 AS version FROM registered_model_tags WHERE \
         rm_id IN ({ids}) UNION ALL SELECT 1, rm_id, alias, '', version FROM \
         registered_model_aliases WHERE rm_id IN ({ids}) ORDER BY 1, 3"
    );
    let mut tags: HashMap<i64, Vec<Tag>> = HashMap::new();
    let mut aliases: HashMap<i64, Vec<RegisteredModelAlias>> = HashMap::new();
    for r in sql.query().fetch_all(&mut *conn).await? {
        let rm_id: i64 = r.try_get("rm_id")?;
        let key: String = r.try_get("key")?;
        if r.try_get::<i64, _>("kind")? == 0 {
            tags.entry(rm_id)
                .or_default()
                .push(Tag::new(key, r.try_get::<String, _>("value")?));
        } else {
            aliases
                .entry(rm_id)
                .or_default()
                .push(RegisteredModelAlias {
                    alias: key,
                    version: r.try_get::<i64, _>("version")?.to_string(),
                });
        }
    }
    sql.text = format!(
        "SELECT {MV_COLS} FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY rm_id, current_stage \
         ORDER BY version DESC) AS rn FROM model_versions WHERE rm_id IN ({ids})) t JOIN \
         model_versions mv ON mv.id = t.id JOIN registered_models rm ON rm.id = mv.rm_id \
         WHERE t.rn = 1 ORDER BY mv.rm_id, mv.version"
    );
    let rows = sql
        .query()
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(mv_from_row)
        .collect::<Result<Vec<_>>>()?;
    let rm_of: Vec<i64> = rows.iter().map(|r| r.rm_id).collect();
    let versions = with_version_extras(conn, rows).await?;
    let mut latest: HashMap<i64, Vec<ModelVersion>> = HashMap::new();
    for (rm_id, mv) in rm_of.into_iter().zip(versions) {
        latest.entry(rm_id).or_default().push(mv);
    }
    Ok(models
        .into_iter()
        .map(|(id, mut m)| {
            m.tags = tags.remove(&id).unwrap_or_default();
            m.aliases = aliases.remove(&id).unwrap_or_default();
            m.latest_versions = latest.remove(&id).unwrap_or_default();
            m
        })
        .collect())
}

/// The registered model's id, or `RESOURCE_DOES_NOT_EXIST` (locks the row on PostgreSQL when
/// `lock`).
async fn model_id(s: &SqlStore, conn: &mut AnyConnection, name: &str, lock: bool) -> Result<i64> {
    let lock = if lock { s.for_update() } else { "" };
    sqlx::query_scalar(&format!(
        "SELECT id FROM registered_models WHERE name = $1{lock}"
    ))
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| RegistryError::model_not_found(name))
}

async fn fetch_model(conn: &mut AnyConnection, name: &str) -> Result<RegisteredModel> {
    let row = sqlx::query(&format!(
        "SELECT {RM_COLS} FROM registered_models rm WHERE rm.name = $1"
    ))
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| RegistryError::model_not_found(name))?;
    let m = rm_from_row(&row)?;
    Ok(with_model_extras(conn, vec![m])
        .await?
        .pop()
        .expect("one model"))
}

fn validate_tags(tags: &[Tag]) -> Result<()> {
    for t in tags {
        validation::validate_registry_tag(&t.key, &t.value)?;
    }
    Ok(())
}

pub(super) async fn create_registered_model(
    s: &SqlStore,
    req: CreateRegisteredModel,
) -> Result<RegisteredModel> {
    validation::validate_model_name(&req.name)?;
    validate_tags(&req.tags)?;
    let now = now_ms();
    let mut tx = s.begin().await?;
    let res = sqlx::query(
        "INSERT INTO registered_models (name, creation_timestamp, last_updated_timestamp, \
         user_id, description, next_version) VALUES ($1, $2, $2, $3, $4, 1) RETURNING id",
    )
    .bind(req.name.as_str())
    .bind(now)
    .bind(req.user_id.as_deref())
    .bind(req.description.as_deref())
    .fetch_one(&mut *tx)
    .await;
    let id: i64 = match res {
        Ok(row) => row.try_get("id")?,
        Err(e) if is_unique_violation(&e) => return Err(RegistryError::model_exists(&req.name)),
        Err(e) => return Err(e.into()),
    };
    let mut tags: Vec<Tag> = Vec::new();
    for t in req.tags {
        match tags.iter_mut().find(|e| e.key == t.key) {
            Some(e) => e.value = t.value,
            None => tags.push(t),
        }
    }
    for t in &tags {
        sqlx::query("INSERT INTO registered_model_tags (rm_id, key, value) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(t.key.as_str())
            .bind(t.value.as_str())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    tags.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(RegisteredModel {
        name: req.name,
        creation_timestamp: now,
        last_updated_timestamp: now,
        user_id: req.user_id,
        description: req.description,
        latest_versions: Vec::new(),
        tags,
        aliases: Vec::new(),
    })
}

pub(super) async fn get_registered_model(s: &SqlStore, name: &str) -> Result<RegisteredModel> {
    let mut conn = s.read.acquire().await?;
    fetch_model(&mut conn, name).await
}

pub(super) async fn rename_registered_model(
    s: &SqlStore,
    name: &str,
    new_name: &str,
) -> Result<RegisteredModel> {
    validation::validate_model_name(new_name)?;
    let mut tx = s.begin().await?;
    let id = model_id(s, &mut tx, name, true).await?;
    let res = sqlx::query(
        "UPDATE registered_models SET name = $1, last_updated_timestamp = $2 WHERE id = $3",
    )
    .bind(new_name)
    .bind(now_ms())
    .bind(id)
    .execute(&mut *tx)
    .await;
    match res {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => return Err(RegistryError::model_exists(new_name)),
        Err(e) => return Err(e.into()),
    }
    let m = fetch_model(&mut tx, new_name).await?;
    tx.commit().await?;
    Ok(m)
}

pub(super) async fn update_registered_model(
    s: &SqlStore,
    name: &str,
    description: Option<&str>,
) -> Result<RegisteredModel> {
    let mut tx = s.begin().await?;
    let n = sqlx::query(
        "UPDATE registered_models SET description = $1, last_updated_timestamp = $2 WHERE name = $3",
    )
    .bind(description)
    .bind(now_ms())
    .bind(name)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(RegistryError::model_not_found(name));
    }
    let m = fetch_model(&mut tx, name).await?;
    tx.commit().await?;
    Ok(m)
}

/// Records an alias move and returns it.
#[allow(clippy::too_many_arguments)]
async fn record_alias_event(
    conn: &mut AnyConnection,
    rm_id: i64,
    name: &str,
    alias: &str,
    from: Option<i64>,
    to: Option<i64>,
    actor: &str,
    reason: &str,
    implicit: bool,
) -> Result<AliasEvent> {
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO alias_events (rm_id, name, alias, from_version, to_version, actor, reason, \
         timestamp, implicit) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(rm_id)
    .bind(name)
    .bind(alias)
    .bind(from)
    .bind(to)
    .bind(actor)
    .bind(reason)
    .bind(now)
    .bind(implicit as i64)
    .fetch_one(&mut *conn)
    .await?;
    Ok(AliasEvent {
        id,
        name: name.to_owned(),
        alias: alias.to_owned(),
        from_version: from.map(|v| v.to_string()),
        to_version: to.map(|v| v.to_string()),
        actor: actor.to_owned(),
        reason: reason.to_owned(),
        timestamp: now,
        implicit,
    })
}

pub(super) async fn delete_registered_model(
    s: &SqlStore,
    name: &str,
    actor: &str,
) -> Result<Vec<AliasEvent>> {
    let mut tx = s.begin().await?;
    let id = model_id(s, &mut tx, name, true).await?;
    let aliases = sqlx::query(
        "SELECT alias, version FROM registered_model_aliases WHERE rm_id = $1 ORDER BY alias",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let mut events = Vec::with_capacity(aliases.len());
    for a in aliases {
        let alias: String = a.try_get("alias")?;
        let version: i64 = a.try_get("version")?;
        events.push(
            record_alias_event(
                &mut tx,
                id,
                name,
                &alias,
                Some(version),
                None,
                actor,
                "registered model deleted",
                true,
            )
            .await?,
        );
    }
    sqlx::query("DELETE FROM registered_models WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(events)
}

/// The tag that marks MLflow prompts (stored as registered models).
const IS_PROMPT_TAG: &str = "mlflow.prompt.is_prompt";

/// MLflow's prompt rule for registry searches (`_update_query_to_exclude_prompts`): unless a
/// filter asks for prompts (`tags.`mlflow.prompt.is_prompt` = 'true'` or `!= 'false'`), its
/// comparisons on the prompt tag are dropped and prompts are left out, so models without the tag
/// match `tags.`mlflow.prompt.is_prompt` != 'true'`, which MLflow 3's client adds to every
/// `search_registered_models`. Returns the filters to apply and whether prompts are excluded.
fn apply_prompt_rule(filters: Vec<search::Comparison>) -> (Vec<search::Comparison>, bool) {
    let querying_prompts = filters
        .iter()
        .find(|f| f.kind == KeyKind::Tag && f.key == IS_PROMPT_TAG)
        .is_some_and(|f| match (&f.op, &f.value) {
            (Op::Eq, search::Value::Str(v)) => v.eq_ignore_ascii_case("true"),
            (Op::Ne, search::Value::Str(v)) => v.eq_ignore_ascii_case("false"),
            _ => false,
        });
    if querying_prompts {
        return (filters, false);
    }
    let rest = filters
        .into_iter()
        .filter(|f| !(f.kind == KeyKind::Tag && f.key == IS_PROMPT_TAG))
        .collect();
    (rest, true)
}

pub(super) async fn search_registered_models(
    s: &SqlStore,
    req: SearchQuery,
) -> Result<Page<RegisteredModel>> {
    let limit = search::page_size(
        req.max_results,
        100,
        validation::MAX_REGISTERED_MODELS_PER_PAGE,
    )?;
    let offset = search::parse_page_token(req.page_token.as_deref())?;
    let (filters, exclude_prompts) =
        apply_prompt_rule(search::parse_filter(req.filter.as_deref())?);
    let order = search::parse_order_by_list(&req.order_by)?;
    let mut sql = Sql::default();
    let mut conds = vec!["1 = 1".to_owned()];
    if exclude_prompts {
        let k = sql.arg(IS_PROMPT_TAG);
        conds.push(format!(
            "NOT EXISTS (SELECT 1 FROM registered_model_tags pt WHERE pt.rm_id = rm.id AND \
             pt.key = {k} AND pt.value = 'true')"
        ));
    }
    for f in &filters {
        conds.push(match (f.kind, f.key.as_str()) {
            (KeyKind::Attribute, "name") => {
                cond::string(&mut sql, s.backend, "rm.name", &f.key, f.op, &f.value)?
            }
            (KeyKind::Tag, key) => cond::key_value(
                &mut sql,
                s.backend,
                "registered_model_tags",
                "rm_id",
                "rm.id",
                key,
                f.op,
                &f.value,
            )?,
            (_, key) => {
                return Err(RegistryError::invalid(format!(
                    "Invalid attribute key '{key}' specified. Valid keys are name, tags.<key>"
                )));
            }
        });
    }
    let mut order_sql = Vec::new();
    let mut by_name = false;
    for o in &order {
        let col = match (o.kind, o.key.as_str()) {
            (KeyKind::Attribute, "name") => {
                by_name = true;
                "rm.name"
            }
            (KeyKind::Attribute, "timestamp" | "creation_timestamp") => "rm.creation_timestamp",
            (KeyKind::Attribute, "last_updated_timestamp") => "rm.last_updated_timestamp",
            _ => {
                return Err(RegistryError::invalid(format!(
                    "Invalid order by key '{}' specified. Valid keys are name, timestamp, \
                     creation_timestamp, last_updated_timestamp",
                    o.key
                )));
            }
        };
        order_sql.push(format!(
            "{col} {}",
            if o.ascending { "ASC" } else { "DESC" }
        ));
    }
    if !by_name {
        order_sql.push("rm.name ASC".into());
    }
    let lim = sql.arg(limit + 1);
    let off = sql.arg(offset);
    sql.text = format!(
        "SELECT {RM_COLS} FROM registered_models rm WHERE {} ORDER BY {} LIMIT {lim} OFFSET {off}",
        conds.join(" AND "),
        order_sql.join(", ")
    );
    let mut conn = s.read.acquire().await?;
    let mut models = sql
        .query()
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(rm_from_row)
        .collect::<Result<Vec<_>>>()?;
    let next = if models.len() as i64 > limit {
        models.truncate(limit as usize);
        Some(search::page_token(offset + limit))
    } else {
        None
    };
    Ok(Page {
        items: with_model_extras(&mut conn, models).await?,
        next_page_token: next,
    })
}

pub(super) async fn set_registered_model_tag(
    s: &SqlStore,
    name: &str,
    key: &str,
    value: &str,
) -> Result<()> {
    validation::validate_registry_tag(key, value)?;
    let mut tx = s.begin().await?;
    let id = model_id(s, &mut tx, name, false).await?;
    sqlx::query(
        "INSERT INTO registered_model_tags (rm_id, key, value) VALUES ($1, $2, $3) ON CONFLICT \
         (rm_id, key) DO UPDATE SET value = excluded.value",
    )
    .bind(id)
    .bind(key)
    .bind(value)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete_registered_model_tag(s: &SqlStore, name: &str, key: &str) -> Result<()> {
    let mut tx = s.begin().await?;
    let id = model_id(s, &mut tx, name, false).await?;
    sqlx::query("DELETE FROM registered_model_tags WHERE rm_id = $1 AND key = $2")
        .bind(id)
        .bind(key)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

fn canonical_stage(stage: &str) -> Result<&'static str> {
    stages::canonical(stage).ok_or_else(|| {
        RegistryError::invalid(format!(
            "Invalid Model Version stage: {stage}. Value must be one of None, Staging, \
             Production, Archived."
        ))
    })
}

pub(super) async fn get_latest_versions(
    s: &SqlStore,
    name: &str,
    wanted: &[String],
) -> Result<Vec<ModelVersion>> {
    let wanted: Vec<&str> = wanted
        .iter()
        .filter(|w| !w.trim().is_empty())
        .map(|w| canonical_stage(w))
        .collect::<Result<_>>()?;
    let m = get_registered_model(s, name).await?;
    Ok(m.latest_versions
        .into_iter()
        .filter(|v| wanted.is_empty() || wanted.contains(&v.current_stage.as_str()))
        .collect())
}

pub(super) async fn create_model_version(
    s: &SqlStore,
    req: CreateModelVersion,
) -> Result<ModelVersion> {
    validation::validate_model_name(&req.name)?;
    validate_tags(&req.tags)?;
    if req.source.is_empty() {
        return Err(RegistryError::invalid(
            "Missing value for required parameter 'source'.",
        ));
    }
    let now = now_ms();
    let mut tx = s.begin().await?;
    // The counter row is locked until commit (PostgreSQL) or the writer is exclusive (SQLite):
    // concurrent creates get consecutive numbers, and a number is never handed out twice.
    let row = sqlx::query(
        "UPDATE registered_models SET next_version = next_version + 1, last_updated_timestamp = \
         $1 WHERE name = $2 RETURNING id, next_version - 1 AS version",
    )
    .bind(now)
    .bind(req.name.as_str())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| RegistryError::model_not_found(&req.name))?;
    let rm_id: i64 = row.try_get("id")?;
    let version: i64 = row.try_get("version")?;
    let run_link = req.run_link.clone().unwrap_or_default();
    let mv_id: i64 = sqlx::query_scalar(
        "INSERT INTO model_versions (rm_id, version, creation_timestamp, last_updated_timestamp, \
         user_id, current_stage, description, source, run_id, run_link, status, status_message, \
         model_id) VALUES ($1, $2, $3, $3, $4, 'None', $5, $6, $7, $8, 'READY', NULL, $9) \
         RETURNING id",
    )
    .bind(rm_id)
    .bind(version)
    .bind(now)
    .bind(req.user_id.as_deref())
    .bind(req.description.as_deref())
    .bind(req.source.as_str())
    .bind(req.run_id.as_deref().filter(|r| !r.is_empty()))
    .bind(run_link.as_str())
    .bind(req.model_id.as_deref().filter(|m| !m.is_empty()))
    .fetch_one(&mut *tx)
    .await?;
    let mut tags: Vec<Tag> = Vec::new();
    for t in req.tags {
        match tags.iter_mut().find(|e| e.key == t.key) {
            Some(e) => e.value = t.value,
            None => tags.push(t),
        }
    }
    for t in &tags {
        sqlx::query("INSERT INTO model_version_tags (mv_id, key, value) VALUES ($1, $2, $3)")
            .bind(mv_id)
            .bind(t.key.as_str())
            .bind(t.value.as_str())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    tags.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(ModelVersion {
        name: req.name,
        version: version.to_string(),
        creation_timestamp: now,
        last_updated_timestamp: now,
        user_id: req.user_id,
        current_stage: stages::NONE.into(),
        description: req.description,
        source: req.source,
        run_id: req.run_id.filter(|r| !r.is_empty()),
        status: ModelVersionStatus::Ready,
        status_message: None,
        tags,
        run_link,
        aliases: Vec::new(),
        model_id: req.model_id.filter(|m| !m.is_empty()),
    })
}

async fn fetch_version(
    conn: &mut AnyConnection,
    name: &str,
    version: i64,
) -> Result<Option<MvRow>> {
    let row = sqlx::query(&format!(
        "SELECT {MV_COLS} FROM {MV_FROM} WHERE rm.name = $1 AND mv.version = $2"
    ))
    .bind(name)
    .bind(version)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(mv_from_row).transpose()
}

async fn require_version(conn: &mut AnyConnection, name: &str, version: i64) -> Result<MvRow> {
    fetch_version(conn, name, version)
        .await?
        .ok_or_else(|| RegistryError::version_not_found(name, version))
}

pub(super) async fn get_model_version(
    s: &SqlStore,
    name: &str,
    version: &str,
) -> Result<ModelVersion> {
    let v = validation::parse_version(version)?;
    let mut conn = s.read.acquire().await?;
    let row = require_version(&mut conn, name, v).await?;
    Ok(with_version_extras(&mut conn, vec![row])
        .await?
        .pop()
        .expect("one version"))
}

pub(super) async fn update_model_version(
    s: &SqlStore,
    name: &str,
    version: &str,
    description: Option<&str>,
) -> Result<ModelVersion> {
    let v = validation::parse_version(version)?;
    let mut tx = s.begin().await?;
    let row = require_version(&mut tx, name, v).await?;
    let now = now_ms();
    sqlx::query(
        "UPDATE model_versions SET description = $1, last_updated_timestamp = $2 WHERE id = $3",
    )
    .bind(description)
    .bind(now)
    .bind(row.id)
    .execute(&mut *tx)
    .await?;
    let row = require_version(&mut tx, name, v).await?;
    let mv = with_version_extras(&mut tx, vec![row])
        .await?
        .pop()
        .expect("one version");
    tx.commit().await?;
    Ok(mv)
}

pub(super) async fn delete_model_version(
    s: &SqlStore,
    name: &str,
    version: &str,
    actor: &str,
) -> Result<Vec<AliasEvent>> {
    let v = validation::parse_version(version)?;
    let mut tx = s.begin().await?;
    let rm_id = model_id(s, &mut tx, name, true).await?;
    let row = require_version(&mut tx, name, v).await?;
    let aliases: Vec<String> = sqlx::query_scalar(
        "SELECT alias FROM registered_model_aliases WHERE rm_id = $1 AND version = $2 ORDER BY alias",
    )
    .bind(rm_id)
    .bind(v)
    .fetch_all(&mut *tx)
    .await?;
    let mut events = Vec::with_capacity(aliases.len());
    for alias in &aliases {
        events.push(
            record_alias_event(
                &mut tx,
                rm_id,
                name,
                alias,
                Some(v),
                None,
                actor,
                "model version deleted",
                true,
            )
            .await?,
        );
    }
    sqlx::query("DELETE FROM registered_model_aliases WHERE rm_id = $1 AND version = $2")
        .bind(rm_id)
        .bind(v)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM model_versions WHERE id = $1")
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE registered_models SET last_updated_timestamp = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(rm_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(events)
}

pub(super) async fn search_model_versions(
    s: &SqlStore,
    req: SearchQuery,
) -> Result<Page<ModelVersion>> {
    let limit = search::page_size(
        req.max_results,
        validation::MAX_MODEL_VERSIONS_PER_PAGE,
        validation::MAX_MODEL_VERSIONS_PER_PAGE,
    )?;
    let offset = search::parse_page_token(req.page_token.as_deref())?;
    let (filters, exclude_prompts) =
        apply_prompt_rule(search::parse_filter(req.filter.as_deref())?);
    let order = if req.order_by.iter().all(|o| o.trim().is_empty()) {
        search::parse_order_by_list(&[
            "last_updated_timestamp DESC".into(),
            "name ASC".into(),
            "version_number DESC".into(),
        ])?
    } else {
        search::parse_order_by_list(&req.order_by)?
    };
    let mut sql = Sql::default();
    let mut conds = vec!["1 = 1".to_owned()];
    if exclude_prompts {
        let k = sql.arg(IS_PROMPT_TAG);
        conds.push(format!(
            "NOT EXISTS (SELECT 1 FROM model_version_tags pt JOIN model_versions pv ON pv.id = \
             pt.mv_id WHERE pv.rm_id = mv.rm_id AND pt.key = {k} AND pt.value = 'true')"
        ));
    }
    for f in &filters {
        let key = f.key.as_str();
        conds.push(match (f.kind, key) {
            (KeyKind::Attribute, "name") => {
                cond::string(&mut sql, s.backend, "rm.name", key, f.op, &f.value)?
            }
            (KeyKind::Attribute, "run_id") => {
                cond::string(&mut sql, s.backend, "mv.run_id", key, f.op, &f.value)?
            }
            (KeyKind::Attribute, "source_path" | "source") => {
                cond::string(&mut sql, s.backend, "mv.source", key, f.op, &f.value)?
            }
            (KeyKind::Attribute, "model_id") => {
                cond::string(&mut sql, s.backend, "mv.model_id", key, f.op, &f.value)?
            }
            (KeyKind::Attribute, "current_stage") => {
                cond::string(&mut sql, s.backend, "mv.current_stage", key, f.op, &f.value)?
            }
            (KeyKind::Attribute, "version_number" | "version") => match (&f.op, &f.value) {
                (Op::In | Op::NotIn, search::Value::List(items)) => {
                    let nums: Vec<i64> = items
                        .iter()
                        .map(|i| validation::parse_version(i))
                        .collect::<Result<_>>()?;
                    if nums.is_empty() {
                        if f.op == Op::In {
                            "1 = 0".into()
                        } else {
                            "1 = 1".into()
                        }
                    } else {
                        let ph = sql.list(nums);
                        format!("mv.version {} ({ph})", f.op.sql())
                    }
                }
                _ => cond::number(&mut sql, "mv.version", key, f.op, &f.value)?,
            },
            (KeyKind::Tag, key) => cond::key_value(
                &mut sql,
                s.backend,
                "model_version_tags",
                "mv_id",
                "mv.id",
                key,
                f.op,
                &f.value,
            )?,
            (_, key) => {
                return Err(RegistryError::invalid(format!(
                    "Invalid attribute key '{key}' specified. Valid keys are name, run_id, \
                     source_path, version_number, model_id, tags.<key>"
                )));
            }
        });
    }
    let mut order_sql = Vec::new();
    let (mut by_name, mut by_version) = (false, false);
    for o in &order {
        let col = match (o.kind, o.key.as_str()) {
            (KeyKind::Attribute, "name") => {
                by_name = true;
                "rm.name"
            }
            (KeyKind::Attribute, "version_number" | "version") => {
                by_version = true;
                "mv.version"
            }
            (KeyKind::Attribute, "creation_timestamp" | "timestamp") => "mv.creation_timestamp",
            (KeyKind::Attribute, "last_updated_timestamp") => "mv.last_updated_timestamp",
            (KeyKind::Attribute, "run_id") => "mv.run_id",
            (KeyKind::Attribute, "source_path") => "mv.source",
            _ => {
                return Err(RegistryError::invalid(format!(
                    "Invalid order by key '{}' specified. Valid keys are name, version_number, \
                     creation_timestamp, last_updated_timestamp, run_id, source_path",
                    o.key
                )));
            }
        };
        order_sql.push(format!(
            "{col} {}",
            if o.ascending { "ASC" } else { "DESC" }
        ));
    }
    if !by_name {
        order_sql.push("rm.name ASC".into());
    }
    if !by_version {
        order_sql.push("mv.version DESC".into());
    }
    let lim = sql.arg(limit.saturating_add(1));
    let off = sql.arg(offset);
    sql.text = format!(
        "SELECT {MV_COLS} FROM {MV_FROM} WHERE {} ORDER BY {} LIMIT {lim} OFFSET {off}",
        conds.join(" AND "),
        order_sql.join(", ")
    );
    let mut conn = s.read.acquire().await?;
    let mut rows = sql
        .query()
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(mv_from_row)
        .collect::<Result<Vec<_>>>()?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        Some(search::page_token(offset + limit))
    } else {
        None
    };
    Ok(Page {
        items: with_version_extras(&mut conn, rows).await?,
        next_page_token: next,
    })
}

pub(super) async fn get_model_version_download_uri(
    s: &SqlStore,
    name: &str,
    version: &str,
) -> Result<String> {
    let v = validation::parse_version(version)?;
    sqlx::query_scalar(&format!(
        "SELECT mv.source FROM {MV_FROM} WHERE rm.name = $1 AND mv.version = $2"
    ))
    .bind(name)
    .bind(v)
    .fetch_optional(&s.read)
    .await?
    .ok_or_else(|| RegistryError::version_not_found(name, v))
}

pub(super) async fn set_model_version_tag(
    s: &SqlStore,
    name: &str,
    version: &str,
    key: &str,
    value: &str,
) -> Result<()> {
    let v = validation::parse_version(version)?;
    validation::validate_registry_tag(key, value)?;
    let mut tx = s.begin().await?;
    let row = require_version(&mut tx, name, v).await?;
    sqlx::query(
        "INSERT INTO model_version_tags (mv_id, key, value) VALUES ($1, $2, $3) ON CONFLICT \
         (mv_id, key) DO UPDATE SET value = excluded.value",
    )
    .bind(row.id)
    .bind(key)
    .bind(value)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete_model_version_tag(
    s: &SqlStore,
    name: &str,
    version: &str,
    key: &str,
) -> Result<()> {
    let v = validation::parse_version(version)?;
    let mut tx = s.begin().await?;
    let row = require_version(&mut tx, name, v).await?;
    sqlx::query("DELETE FROM model_version_tags WHERE mv_id = $1 AND key = $2")
        .bind(row.id)
        .bind(key)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn transition_model_version_stage(
    s: &SqlStore,
    name: &str,
    version: &str,
    stage: &str,
    archive_existing_versions: bool,
) -> Result<StageTransition> {
    let v = validation::parse_version(version)?;
    let stage = canonical_stage(stage)?;
    if archive_existing_versions && !matches!(stage, stages::STAGING | stages::PRODUCTION) {
        return Err(RegistryError::invalid(format!(
            "Model version transition cannot archive existing model versions because '{stage}' \
             is not an Active stage. Valid stages are ['Staging', 'Production']"
        )));
    }
    let now = now_ms();
    let mut tx = s.begin().await?;
    let rm_id = model_id(s, &mut tx, name, true).await?;
    let row = require_version(&mut tx, name, v).await?;
    let previous_stage = row.mv.current_stage.clone();
    let mut archived = Vec::new();
    if archive_existing_versions {
        let others = sqlx::query(
            "SELECT version, current_stage FROM model_versions WHERE rm_id = $1 AND version != $2 \
             AND current_stage = $3 ORDER BY version",
        )
        .bind(rm_id)
        .bind(v)
        .bind(stage)
        .fetch_all(&mut *tx)
        .await?;
        for o in others {
            archived.push((
                o.try_get::<i64, _>("version")?.to_string(),
                o.try_get::<String, _>("current_stage")?,
            ));
        }
        sqlx::query(
            "UPDATE model_versions SET current_stage = 'Archived', last_updated_timestamp = $1 \
             WHERE rm_id = $2 AND version != $3 AND current_stage = $4",
        )
        .bind(now)
        .bind(rm_id)
        .bind(v)
        .bind(stage)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE model_versions SET current_stage = $1, last_updated_timestamp = $2 WHERE id = $3",
    )
    .bind(stage)
    .bind(now)
    .bind(row.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE registered_models SET last_updated_timestamp = $1 WHERE id = $2")
        .bind(now)
        .bind(rm_id)
        .execute(&mut *tx)
        .await?;
    let row = require_version(&mut tx, name, v).await?;
    let model_version = with_version_extras(&mut tx, vec![row])
        .await?
        .pop()
        .expect("one version");
    tx.commit().await?;
    Ok(StageTransition {
        model_version,
        previous_stage,
        archived,
    })
}

pub(super) async fn set_alias(s: &SqlStore, req: SetAlias) -> Result<AliasEvent> {
    validation::validate_alias(&req.alias)?;
    let v = validation::parse_version(&req.version)?;
    let mut tx = s.begin().await?;
    let rm_id = model_id(s, &mut tx, &req.name, true).await?;
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT id FROM model_versions WHERE rm_id = $1 AND version = $2")
            .bind(rm_id)
            .bind(v)
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_none() {
        return Err(RegistryError::version_not_found(&req.name, v));
    }
    let from: Option<i64> = sqlx::query_scalar(
        "SELECT version FROM registered_model_aliases WHERE rm_id = $1 AND alias = $2",
    )
    .bind(rm_id)
    .bind(req.alias.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO registered_model_aliases (rm_id, alias, version) VALUES ($1, $2, $3) \
         ON CONFLICT (rm_id, alias) DO UPDATE SET version = excluded.version",
    )
    .bind(rm_id)
    .bind(req.alias.as_str())
    .bind(v)
    .execute(&mut *tx)
    .await?;
    let event = record_alias_event(
        &mut tx,
        rm_id,
        &req.name,
        &req.alias,
        from,
        Some(v),
        req.actor.as_deref().unwrap_or("anonymous"),
        req.reason.as_deref().unwrap_or(""),
        false,
    )
    .await?;
    tx.commit().await?;
    Ok(event)
}

pub(super) async fn delete_alias(
    s: &SqlStore,
    name: &str,
    alias: &str,
    actor: &str,
    reason: Option<&str>,
) -> Result<AliasEvent> {
    let mut tx = s.begin().await?;
    let rm_id = model_id(s, &mut tx, name, true).await?;
    let from: Option<i64> = sqlx::query_scalar(
        "SELECT version FROM registered_model_aliases WHERE rm_id = $1 AND alias = $2",
    )
    .bind(rm_id)
    .bind(alias)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(from) = from else {
        return Err(RegistryError::alias_not_found(alias));
    };
    sqlx::query("DELETE FROM registered_model_aliases WHERE rm_id = $1 AND alias = $2")
        .bind(rm_id)
        .bind(alias)
        .execute(&mut *tx)
        .await?;
    let event = record_alias_event(
        &mut tx,
        rm_id,
        name,
        alias,
        Some(from),
        None,
        actor,
        reason.unwrap_or(""),
        false,
    )
    .await?;
    tx.commit().await?;
    Ok(event)
}

/// The version that `alias` of model `name` points at.
const VERSION_BY_ALIAS: &str = "FROM registered_models rm JOIN registered_model_aliases a ON \
     a.rm_id = rm.id JOIN model_versions mv ON mv.rm_id = rm.id AND mv.version = a.version \
     WHERE rm.name = $1 AND a.alias = $2";

pub(super) async fn get_model_version_by_alias(
    s: &SqlStore,
    name: &str,
    alias: &str,
) -> Result<ModelVersion> {
    if let Some(readers) = &s.direct_read {
        return readers.read(|conn| {
            let mut sql = Sql {
                text: format!("SELECT {MV_COLS} {VERSION_BY_ALIAS}"),
                args: vec![Arg::from(name), Arg::from(alias)],
            };
            let Some(row) = direct::fetch(conn, &sql, |r| mv_from_row(r))?.pop() else {
                sql.args.truncate(1);
                sql.text = "SELECT id FROM registered_models WHERE name = $1".into();
                let exists = !direct::fetch(conn, &sql, |_| Ok(()))?.is_empty();
                return Err(missing_alias(exists, name, alias));
            };
            let extras =
                direct::fetch(conn, &version_extras_sql(std::slice::from_ref(&row)), |r| {
                    version_extra_from_row(r)
                })?;
            Ok(attach_version_extras(vec![row], extras)
                .pop()
                .expect("one version"))
        });
    }
    let mut conn = s.read.acquire().await?;
    let row = sqlx::query(&format!("SELECT {MV_COLS} {VERSION_BY_ALIAS}"))
        .bind(name)
        .bind(alias)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => {
            let row = mv_from_row(&row)?;
            Ok(with_version_extras(&mut conn, vec![row])
                .await?
                .pop()
                .expect("one version"))
        }
        None => {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT id FROM registered_models WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *conn)
                    .await?;
            Err(missing_alias(exists.is_some(), name, alias))
        }
    }
}

/// The error for an alias that points nowhere: the model is missing, or only its alias.
fn missing_alias(model_exists: bool, name: &str, alias: &str) -> RegistryError {
    if model_exists {
        RegistryError::alias_not_found(alias)
    } else {
        RegistryError::model_not_found(name)
    }
}

fn event_from_row(row: &AnyRow) -> Result<AliasEvent> {
    Ok(AliasEvent {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        alias: row.try_get("alias")?,
        from_version: row
            .try_get::<Option<i64>, _>("from_version")?
            .map(|v| v.to_string()),
        to_version: row
            .try_get::<Option<i64>, _>("to_version")?
            .map(|v| v.to_string()),
        actor: row.try_get("actor")?,
        reason: row.try_get("reason")?,
        timestamp: row.try_get("timestamp")?,
        implicit: row.try_get::<i64, _>("implicit")? != 0,
    })
}

const EVENT_COLS: &str =
    "id, name, alias, from_version, to_version, actor, reason, timestamp, implicit";

pub(super) async fn list_alias_history(
    s: &SqlStore,
    name: &str,
    alias: Option<&str>,
    max_results: Option<i64>,
    page_token: Option<&str>,
) -> Result<Page<AliasEvent>> {
    let limit = search::page_size(max_results, 100, 1000)?;
    let offset = search::parse_page_token(page_token)?;
    let mut conn = s.read.acquire().await?;
    let rm_id = model_id(s, &mut conn, name, false).await?;
    let mut sql = Sql::default();
    let r = sql.arg(rm_id);
    let mut where_ = format!("rm_id = {r}");
    if let Some(a) = alias {
        let p = sql.arg(a);
        where_.push_str(&format!(" AND alias = {p}"));
    }
    let lim = sql.arg(limit + 1);
    let off = sql.arg(offset);
    sql.text = format!(
        "SELECT {EVENT_COLS} FROM alias_events WHERE {where_} ORDER BY id DESC LIMIT {lim} \
         OFFSET {off}"
    );
    let mut items = sql
        .query()
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(event_from_row)
        .collect::<Result<Vec<_>>>()?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        Some(search::page_token(offset + limit))
    } else {
        None
    };
    Ok(Page {
        items,
        next_page_token: next,
    })
}

pub(super) async fn alias_events_since(
    s: &SqlStore,
    after_id: i64,
    limit: i64,
) -> Result<Vec<AliasEvent>> {
    sqlx::query(&format!(
        "SELECT {EVENT_COLS} FROM alias_events WHERE id > $1 ORDER BY id LIMIT $2"
    ))
    .bind(after_id)
    .bind(limit.clamp(1, 10_000))
    .fetch_all(&s.read)
    .await?
    .iter()
    .map(event_from_row)
    .collect()
}
