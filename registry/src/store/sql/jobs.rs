//! The training-job queue and its logs.
//!
//! Leasing is race-free on both backends: on PostgreSQL the candidate row is picked with
//! `FOR UPDATE SKIP LOCKED` (concurrent workers lock different jobs), on SQLite the single writer
//! connection and `BEGIN IMMEDIATE` serialise the leasers; on both the update that takes the job
//! is conditional on the status and lease token read, and retried when it changed. Every write of
//! a worker (heartbeat, run, logs, finish) names its lease token and fails with `LEASE_LOST`
//! when the token is no longer the job's (another worker took the job over, or it ended).

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Arg, Backend, Sql, SqlStore, now_ms};
use crate::error::{RegistryError, Result};
use crate::jobs::{
    FinishJob, HeartbeatReply, Job, JobLogLine, JobStatus, LeaseRequest, ListJobs,
    MAX_JOB_DOCUMENT_BYTES, MAX_JOB_FIELD_LENGTH, MAX_JOB_STATUS_BYTES, MAX_JOBS_PER_PAGE,
    MAX_LEASE_MS, MAX_LOG_LINE_LENGTH, MAX_LOG_LINES_PER_APPEND, MAX_LOG_LINES_PER_READ, SubmitJob,
    check_spec,
};
use crate::store::{Page, search};
use crate::validation::check_length;

const JOB_COLS: &str = "id, job_id, name, experiment, status, spec, spec_text, run_id, attempts, \
                        lease_owner, lease_token, lease_expires_at, cancel_requested, created_at, \
                        started_at, ended_at, error, error_context, checkpoint_uri, result, \
                        requires_gpu, progress";

/// How often a lease is retried when another worker changed the picked job in between.
const LEASE_RETRIES: usize = 16;

/// A job as stored: the entity, its row id and its current lease token.
struct JobRow {
    id: i64,
    lease_token: Option<String>,
    job: Job,
}

fn json_column(row: &AnyRow, column: &str) -> Result<Option<Value>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| {
            RegistryError::InvalidState(format!("the stored job {column} is not JSON: {e}"))
        })
    })
    .transpose()
}

fn job_from_row(row: &AnyRow) -> Result<JobRow> {
    let status: String = row.try_get("status")?;
    let job = Job {
        job_id: row.try_get("job_id")?,
        name: row.try_get("name")?,
        experiment: row.try_get("experiment")?,
        status: JobStatus::parse(&status)
            .map_err(|_| RegistryError::InvalidState(format!("unknown job status {status:?}")))?,
        spec: json_column(row, "spec")?.unwrap_or(Value::Null),
        spec_text: row.try_get("spec_text")?,
        run_id: row.try_get("run_id")?,
        attempts: row.try_get("attempts")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires_at: row.try_get("lease_expires_at")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        error: row.try_get("error")?,
        error_context: row.try_get("error_context")?,
        checkpoint_uri: row.try_get("checkpoint_uri")?,
        result: json_column(row, "result")?,
        requires_gpu: row.try_get::<i64, _>("requires_gpu")? != 0,
        progress: json_column(row, "progress")?,
    };
    Ok(JobRow {
        id: row.try_get("id")?,
        lease_token: row.try_get("lease_token")?,
        job,
    })
}

/// ` FOR UPDATE SKIP LOCKED` on PostgreSQL, nothing on SQLite (one writer at a time).
fn skip_locked(s: &SqlStore) -> &'static str {
    match s.backend {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
    }
}

/// The job `job_id`, locked for update on PostgreSQL when `lock`.
async fn fetch(s: &SqlStore, conn: &mut AnyConnection, job_id: &str, lock: bool) -> Result<JobRow> {
    let lock = if lock { s.for_update() } else { "" };
    let row = sqlx::query(&format!(
        "SELECT {JOB_COLS} FROM jobs WHERE job_id = $1{lock}"
    ))
    .bind(job_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| RegistryError::job_not_found(job_id))?;
    job_from_row(&row)
}

/// Fails with `LEASE_LOST` unless `token` is the running job's current lease token.
fn check_lease(row: &JobRow, token: &str) -> Result<()> {
    let job = &row.job;
    if job.status != JobStatus::Running {
        return Err(RegistryError::LeaseLost(format!(
            "The lease on job {} is no longer held: the job is {}.",
            job.job_id, job.status
        )));
    }
    if row.lease_token.as_deref() != Some(token) {
        return Err(RegistryError::LeaseLost(format!(
            "The lease on job {} is no longer held: another worker ({}) took the job over \
             (attempt {}).",
            job.job_id,
            job.lease_owner.as_deref().unwrap_or("unknown"),
            job.attempts
        )));
    }
    Ok(())
}

/// Why a token-checked update matched no row: the job is unknown, or the lease was lost.
async fn lease_failure(
    s: &SqlStore,
    conn: &mut AnyConnection,
    job_id: &str,
    token: &str,
) -> RegistryError {
    match fetch(s, conn, job_id, false).await {
        Ok(row) => match check_lease(&row, token) {
            Err(e) => e,
            // The token matched on a second look: the job changed between the two reads.
            Ok(()) => RegistryError::LeaseLost(format!(
                "The lease on job {job_id} changed while it was being updated; retry."
            )),
        },
        Err(e) => e,
    }
}

fn required<'a>(value: &'a str, field: &str) -> Result<&'a str> {
    let value = value.trim();
    if value.is_empty() {
        return Err(RegistryError::invalid(format!(
            "Missing value for required parameter '{field}'."
        )));
    }
    check_length(field, MAX_JOB_FIELD_LENGTH, value)?;
    Ok(value)
}

/// A JSON document as text, refused (naming the field and the limit) when over `limit` bytes.
fn document(value: &Value, field: &str, limit: usize) -> Result<String> {
    let text = serde_json::to_string(value)
        .map_err(|e| RegistryError::invalid(format!("'{field}' cannot be encoded: {e}")))?;
    check_bytes(&text, field, limit)?;
    Ok(text)
}

fn check_bytes(text: &str, field: &str, limit: usize) -> Result<()> {
    if text.len() > limit {
        return Err(RegistryError::invalid(format!(
            "'{field}' exceeds the maximum size of {limit} bytes"
        )));
    }
    Ok(())
}

fn check_lease_ms(lease_ms: i64) -> Result<()> {
    if !(1..=MAX_LEASE_MS).contains(&lease_ms) {
        return Err(RegistryError::invalid(format!(
            "Invalid value {lease_ms} for parameter 'lease_ms': it must be between 1 and \
             {MAX_LEASE_MS} ms."
        )));
    }
    Ok(())
}

fn opt_field(value: Option<String>, field: &str) -> Result<Option<String>> {
    match value.filter(|v| !v.trim().is_empty()) {
        Some(v) => {
            check_length(field, MAX_JOB_FIELD_LENGTH, &v)?;
            Ok(Some(v))
        }
        None => Ok(None),
    }
}

pub(super) async fn submit_job(s: &SqlStore, req: SubmitJob) -> Result<Job> {
    let name = required(&req.name, "name")?.to_owned();
    let experiment = opt_field(req.experiment, "experiment")?;
    check_spec(&req.spec)?;
    let spec = document(&req.spec, "spec", MAX_JOB_DOCUMENT_BYTES)?;
    if let Some(text) = &req.spec_text {
        check_bytes(text, "spec_text", MAX_JOB_DOCUMENT_BYTES)?;
    }
    let job = Job {
        job_id: uuid::Uuid::new_v4().to_string(),
        name,
        experiment,
        status: JobStatus::Queued,
        spec: req.spec,
        spec_text: req.spec_text,
        run_id: None,
        attempts: 0,
        lease_owner: None,
        lease_expires_at: None,
        cancel_requested: false,
        created_at: now_ms(),
        started_at: None,
        ended_at: None,
        error: None,
        error_context: None,
        checkpoint_uri: None,
        result: None,
        requires_gpu: req.requires_gpu,
        progress: None,
    };
    let mut conn = s.writer().await?;
    sqlx::query(
        "INSERT INTO jobs (job_id, name, experiment, status, spec, spec_text, created_at, \
         requires_gpu) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(job.job_id.as_str())
    .bind(job.name.as_str())
    .bind(job.experiment.as_deref())
    .bind(job.status.as_str())
    .bind(spec.as_str())
    .bind(job.spec_text.as_deref())
    .bind(job.created_at)
    .bind(i64::from(job.requires_gpu))
    .execute(&mut *conn)
    .await?;
    Ok(job)
}

pub(super) async fn get_job(s: &SqlStore, job_id: &str) -> Result<Job> {
    let mut conn = s.read.acquire().await?;
    Ok(fetch(s, &mut conn, job_id, false).await?.job)
}

pub(super) async fn list_jobs(s: &SqlStore, req: ListJobs) -> Result<Page<Job>> {
    let limit = search::page_size(req.max_results, 100, MAX_JOBS_PER_PAGE)?;
    // The token holds the row id to continue below (newest first, stable while jobs arrive).
    let before = search::parse_page_token(req.page_token.as_deref())?;
    let mut sql = Sql::default();
    let mut conds: Vec<String> = Vec::new();
    if let Some(statuses) = req.status.filter(|s| !s.is_empty()) {
        let ph = sql.list(statuses.iter().map(|st| st.as_str()));
        conds.push(format!("status IN ({ph})"));
    }
    if before > 0 {
        let p = sql.arg(before);
        conds.push(format!("id < {p}"));
    }
    let where_ = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    let lim = sql.arg(limit + 1);
    sql.text = format!("SELECT {JOB_COLS} FROM jobs{where_} ORDER BY id DESC LIMIT {lim}");
    let mut rows = sql
        .query()
        .fetch_all(&s.read)
        .await?
        .iter()
        .map(job_from_row)
        .collect::<Result<Vec<_>>>()?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| search::page_token(r.id))
    } else {
        None
    };
    Ok(Page {
        items: rows.into_iter().map(|r| r.job).collect(),
        next_page_token: next,
    })
}

/// Ends as `CANCELLED` the running jobs whose lease expired while a cancel was pending (their
/// worker is gone); returns them.
async fn reap(s: &SqlStore, conn: &mut AnyConnection, now: i64) -> Result<Vec<Job>> {
    let rows = sqlx::query(&format!(
        "SELECT {JOB_COLS} FROM jobs WHERE status = 'RUNNING' AND cancel_requested = 1 AND \
         lease_expires_at < $1 ORDER BY id{}",
        skip_locked(s)
    ))
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let mut reaped = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut row = job_from_row(row)?;
        let done = sqlx::query(
            "UPDATE jobs SET status = 'CANCELLED', ended_at = $1, lease_token = NULL, \
             lease_expires_at = NULL WHERE id = $2 AND status = 'RUNNING'",
        )
        .bind(now)
        .bind(row.id)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 1 {
            row.job.status = JobStatus::Cancelled;
            row.job.ended_at = Some(now);
            row.job.lease_expires_at = None;
            reaped.push(row.job);
        }
    }
    Ok(reaped)
}

pub(super) async fn reap_cancelled_jobs(s: &SqlStore) -> Result<Vec<Job>> {
    let mut tx = s.begin().await?;
    let reaped = reap(s, &mut tx, now_ms()).await?;
    tx.commit().await?;
    Ok(reaped)
}

pub(super) async fn lease_job(s: &SqlStore, req: LeaseRequest) -> Result<Option<(Job, String)>> {
    let worker = required(&req.worker_id, "worker_id")?.to_owned();
    check_lease_ms(req.lease_ms)?;
    let gpu = match (req.gpu, req.gpu_grace_ms) {
        (true, _) => "",
        (false, Some(_)) => " AND (requires_gpu = 0 OR created_at < $2)",
        (false, None) => " AND requires_gpu = 0",
    };
    let pick = format!(
        "SELECT {JOB_COLS} FROM jobs WHERE cancel_requested = 0 AND (status = 'QUEUED' OR \
         (status = 'RUNNING' AND lease_expires_at < $1)){gpu} ORDER BY id LIMIT 1{}",
        skip_locked(s)
    );
    for _ in 0..LEASE_RETRIES {
        let mut tx = s.begin().await?;
        let now = now_ms();
        reap(s, &mut tx, now).await?;
        let mut query = sqlx::query(&pick).bind(now);
        if let (false, Some(grace)) = (req.gpu, req.gpu_grace_ms) {
            query = query.bind(now.saturating_sub(grace.max(0)));
        }
        let Some(row) = query.fetch_optional(&mut *tx).await? else {
            tx.commit().await?;
            return Ok(None);
        };
        let JobRow {
            id,
            lease_token: old_token,
            mut job,
        } = job_from_row(&row)?;
        let token = uuid::Uuid::new_v4().to_string();
        let expires = now.saturating_add(req.lease_ms);
        let taken = sqlx::query(
            "UPDATE jobs SET status = 'RUNNING', lease_owner = $1, lease_token = $2, \
             lease_expires_at = $3, attempts = attempts + 1, started_at = COALESCE(started_at, \
             $4) WHERE id = $5 AND status = $6 AND COALESCE(lease_token, '') = $7 AND \
             cancel_requested = 0",
        )
        .bind(worker.as_str())
        .bind(token.as_str())
        .bind(expires)
        .bind(now)
        .bind(id)
        .bind(job.status.as_str())
        .bind(old_token.as_deref().unwrap_or(""))
        .execute(&mut *tx)
        .await?;
        if taken.rows_affected() != 1 {
            // Another leaser changed the job between the read and the update: pick again.
            drop(tx);
            continue;
        }
        tx.commit().await?;
        job.status = JobStatus::Running;
        job.lease_owner = Some(worker);
        job.lease_expires_at = Some(expires);
        job.attempts += 1;
        job.started_at = job.started_at.or(Some(now));
        return Ok(Some((job, token)));
    }
    Err(RegistryError::Unavailable(
        "Too many workers are leasing jobs at once; retry.".into(),
    ))
}

pub(super) async fn heartbeat_job(
    s: &SqlStore,
    job_id: &str,
    lease_token: &str,
    lease_ms: i64,
    progress: Option<Value>,
    checkpoint_uri: Option<String>,
) -> Result<HeartbeatReply> {
    check_lease_ms(lease_ms)?;
    let progress = progress
        .map(|p| document(&p, "progress", MAX_JOB_STATUS_BYTES))
        .transpose()?;
    let checkpoint_uri = opt_field(checkpoint_uri, "checkpoint_uri")?;
    let mut conn = s.writer().await?;
    let cancel: Option<i64> = sqlx::query_scalar(
        "UPDATE jobs SET lease_expires_at = $1, progress = COALESCE($2, progress), \
         checkpoint_uri = COALESCE($3, checkpoint_uri) WHERE job_id = $4 AND lease_token = $5 \
         AND status = 'RUNNING' RETURNING cancel_requested",
    )
    .bind(now_ms().saturating_add(lease_ms))
    .bind(progress.as_deref())
    .bind(checkpoint_uri.as_deref())
    .bind(job_id)
    .bind(lease_token)
    .fetch_optional(&mut *conn)
    .await?;
    match cancel {
        Some(c) => Ok(HeartbeatReply {
            cancel_requested: c != 0,
        }),
        None => Err(lease_failure(s, &mut conn, job_id, lease_token).await),
    }
}

pub(super) async fn set_job_run(
    s: &SqlStore,
    job_id: &str,
    lease_token: &str,
    run_id: &str,
) -> Result<Job> {
    let run_id = required(run_id, "run_id")?;
    let mut tx = s.begin().await?;
    let mut row = fetch(s, &mut tx, job_id, true).await?;
    check_lease(&row, lease_token)?;
    if row.job.run_id.is_none() {
        sqlx::query("UPDATE jobs SET run_id = $1 WHERE id = $2")
            .bind(run_id)
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
        row.job.run_id = Some(run_id.to_owned());
    }
    tx.commit().await?;
    Ok(row.job)
}

pub(super) async fn finish_job(
    s: &SqlStore,
    job_id: &str,
    lease_token: &str,
    req: FinishJob,
) -> Result<Job> {
    if !req.status.is_terminal() {
        return Err(RegistryError::invalid(format!(
            "Invalid value '{}' for parameter 'status': a job finishes as SUCCEEDED, FAILED or \
             CANCELLED.",
            req.status
        )));
    }
    let error = opt_field(req.error, "error")?;
    if let Some(context) = &req.error_context {
        check_bytes(context, "error_context", MAX_JOB_DOCUMENT_BYTES)?;
    }
    let result = req
        .result
        .as_ref()
        .map(|r| document(r, "result", MAX_JOB_STATUS_BYTES))
        .transpose()?;
    let checkpoint_uri = opt_field(req.checkpoint_uri, "checkpoint_uri")?;
    let now = now_ms();
    let mut tx = s.begin().await?;
    let mut row = fetch(s, &mut tx, job_id, true).await?;
    check_lease(&row, lease_token)?;
    sqlx::query(
        "UPDATE jobs SET status = $1, ended_at = $2, error = $3, error_context = $4, result = \
         $5, checkpoint_uri = COALESCE($6, checkpoint_uri), lease_token = NULL, \
         lease_expires_at = NULL WHERE id = $7",
    )
    .bind(req.status.as_str())
    .bind(now)
    .bind(error.as_deref())
    .bind(req.error_context.as_deref())
    .bind(result.as_deref())
    .bind(checkpoint_uri.as_deref())
    .bind(row.id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let job = &mut row.job;
    job.status = req.status;
    job.ended_at = Some(now);
    job.error = error;
    job.error_context = req.error_context;
    job.result = req.result;
    if checkpoint_uri.is_some() {
        job.checkpoint_uri = checkpoint_uri;
    }
    job.lease_expires_at = None;
    Ok(row.job)
}

pub(super) async fn cancel_job(s: &SqlStore, job_id: &str) -> Result<Job> {
    let now = now_ms();
    let mut tx = s.begin().await?;
    let mut row = fetch(s, &mut tx, job_id, true).await?;
    let job = &mut row.job;
    let lease_expired = job.lease_expires_at.is_none_or(|t| t < now);
    match job.status {
        JobStatus::Queued => end_cancelled(&mut tx, row.id, now, job).await?,
        // Nobody holds an expired lease: the job ends at once.
        JobStatus::Running if lease_expired => end_cancelled(&mut tx, row.id, now, job).await?,
        JobStatus::Running => {
            sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = $1")
                .bind(row.id)
                .execute(&mut *tx)
                .await?;
            job.cancel_requested = true;
        }
        _ => {}
    }
    tx.commit().await?;
    Ok(row.job)
}

async fn end_cancelled(conn: &mut AnyConnection, id: i64, now: i64, job: &mut Job) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET status = 'CANCELLED', cancel_requested = 1, ended_at = $1, \
         lease_token = NULL, lease_expires_at = NULL WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    job.status = JobStatus::Cancelled;
    job.cancel_requested = true;
    job.ended_at = Some(now);
    job.lease_expires_at = None;
    Ok(())
}

pub(super) async fn append_job_logs(
    s: &SqlStore,
    job_id: &str,
    lease_token: &str,
    lines: Vec<String>,
) -> Result<i64> {
    if lines.len() > MAX_LOG_LINES_PER_APPEND {
        return Err(RegistryError::invalid(format!(
            "'lines' has {} lines; at most {MAX_LOG_LINES_PER_APPEND} may be appended at once",
            lines.len()
        )));
    }
    for line in &lines {
        check_length("lines", MAX_LOG_LINE_LENGTH, line)?;
    }
    let now = now_ms();
    let mut tx = s.begin().await?;
    let last: Option<i64> = sqlx::query_scalar(
        "UPDATE jobs SET log_seq = log_seq + $1 WHERE job_id = $2 AND lease_token = $3 AND \
         status = 'RUNNING' RETURNING log_seq",
    )
    .bind(lines.len() as i64)
    .bind(job_id)
    .bind(lease_token)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(last) = last else {
        return Err(lease_failure(s, &mut tx, job_id, lease_token).await);
    };
    let first = last - lines.len() as i64 + 1;
    // Rows in chunks, under both backends' limits on bound parameters.
    for (chunk_index, chunk) in lines.chunks(250).enumerate() {
        let mut sql = Sql::default();
        let mut values = String::new();
        for (i, line) in chunk.iter().enumerate() {
            let seq = first + (chunk_index * 250 + i) as i64;
            sql.row(
                s.backend,
                &mut values,
                [
                    Arg::from(job_id),
                    Arg::I64(seq),
                    Arg::I64(now),
                    Arg::from(line.as_str()),
                ],
            );
        }
        sql.text = format!("INSERT INTO job_logs (job_id, seq, timestamp, line) VALUES {values}");
        sql.query().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(last)
}

pub(super) async fn job_logs(
    s: &SqlStore,
    job_id: &str,
    after_seq: i64,
    max: i64,
) -> Result<Vec<JobLogLine>> {
    let max = if max <= 0 {
        1000
    } else {
        max.min(MAX_LOG_LINES_PER_READ)
    };
    let mut conn = s.read.acquire().await?;
    fetch(s, &mut conn, job_id, false).await?;
    sqlx::query(
        "SELECT seq, timestamp, line FROM job_logs WHERE job_id = $1 AND seq > $2 ORDER BY seq \
         LIMIT $3",
    )
    .bind(job_id)
    .bind(after_seq)
    .bind(max)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(JobLogLine {
            seq: r.try_get("seq")?,
            timestamp: r.try_get("timestamp")?,
            line: r.try_get("line")?,
        })
    })
    .collect()
}
