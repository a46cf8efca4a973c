//! Group commit of metric values on SQLite: `log_metric`, and `log_batch` with metrics only.
//!
//! A call queues its metrics, and whichever call gets the single writer connection takes
//! everything queued and commits it in one transaction, then answers each caller with its own
//! result (a missing or deleted run fails only its own call; each call's metrics are all
//! written or none). Under concurrent load the per-commit costs (the writer hand-off, the WAL
//! frames of the pages the inserts touch: `metrics_staging`, `latest_metrics` and its index) are
//! paid once per group instead of once per call. The transaction runs in one closure on the
//! writer's direct connection (see the `direct` module) with cached single-row statements. A
//! caller is answered only after the commit that holds its metrics, so an acknowledged metric
//! survives a crash; the group runs in its own task, so a caller that goes away cannot abort the
//! others' commit.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::direct::db_error;
use super::tracking::{MOVE_LATEST, newest_per_series, storable};
use super::{SqlStore, WriteConn};
use crate::entities::{LIFECYCLE_ACTIVE, Metric};
use crate::error::{ErrorCode, RegistryError, Result};

/// Metrics of one call waiting for SQLite's writer.
#[derive(Debug)]
pub(crate) struct PendingMetric {
    run_id: String,
    metrics: Vec<Metric>,
    done: tokio::sync::oneshot::Sender<Result<()>>,
}

/// Logs `metrics` (validated by the caller, none with a `model_id`) to `run_id` in the next
/// group commit; returns once that commit is durable.
pub(super) async fn log_metrics(s: &SqlStore, run_id: &str, metrics: Vec<Metric>) -> Result<()> {
    let (done, mut answer) = tokio::sync::oneshot::channel();
    s.metric_queue.lock().push(PendingMetric {
        run_id: run_id.to_owned(),
        metrics,
        done,
    });
    let dropped = || RegistryError::Internal("the metric write was abandoned".into());
    loop {
        let conn = tokio::select! {
            biased;
            result = &mut answer => return result.unwrap_or_else(|_| Err(dropped())),
            conn = s.writer() => conn?,
        };
        let group = std::mem::take(&mut *s.metric_queue.lock());
        if group.is_empty() {
            // An earlier group took this call's metrics; its answer is on the way.
            drop(conn);
            continue;
        }
        let store = s.clone();
        let task = tokio::spawn(async move { write_group(&store, conn, group).await });
        if task.await.is_err() {
            return Err(RegistryError::Internal("a metric write task failed".into()));
        }
    }
}

/// Commits `group` and answers each of its callers.
async fn write_group(s: &SqlStore, conn: WriteConn, group: Vec<PendingMetric>) {
    let (calls, answers): (Vec<(String, Vec<Metric>)>, Vec<_>) = group
        .into_iter()
        .map(|p| ((p.run_id, p.metrics), p.done))
        .unzip();
    match commit_on_writer(conn, calls).await {
        Ok((outcomes, staged)) => {
            s.note_staged(staged);
            for (done, outcome) in answers.into_iter().zip(outcomes) {
                let _ = done.send(outcome);
            }
        }
        Err(e) => {
            for done in answers {
                let _ = done.send(Err(replicate(&e)));
            }
        }
    }
}

/// Runs [`commit`] on the writer's direct connection.
async fn commit_on_writer(
    conn: WriteConn,
    calls: Vec<(String, Vec<Metric>)>,
) -> Result<(Vec<Result<()>>, usize)> {
    let WriteConn::Single(mut writer) = conn else {
        return Err(RegistryError::Internal(
            "group commit of metrics is SQLite's".into(),
        ));
    };
    // (`SqlStore::writer` rolled back any transaction abandoned on the sqlx connection.)
    writer.direct.run(move |c| commit(c, &calls)).await
}

/// Stages the metrics of the calls whose run is active and moves their latest values, in one
/// transaction; returns each call's outcome and how many values were staged.
fn commit(
    conn: &mut rusqlite::Connection,
    calls: &[(String, Vec<Metric>)],
) -> Result<(Vec<Result<()>>, usize)> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    let mut states: HashMap<&str, Option<String>> = HashMap::new();
    {
        let mut stage = tx
            .prepare_cached("SELECT lifecycle_stage FROM runs WHERE run_uuid = ?1")
            .map_err(db_error)?;
        for (run_id, _) in calls {
            if !states.contains_key(run_id.as_str()) {
                let found: Option<String> = stage
                    .query_row([run_id], |row| row.get(0))
                    .optional()
                    .map_err(db_error)?;
                states.insert(run_id, found);
            }
        }
    }
    let outcomes: Vec<Result<()>> = calls
        .iter()
        .map(|(run_id, _)| match states.get(run_id.as_str()) {
            Some(Some(stage)) if stage == LIFECYCLE_ACTIVE => Ok(()),
            Some(Some(stage)) => Err(RegistryError::invalid(format!(
                "The run {run_id} must be in the 'active' state. Current state is {stage}."
            ))),
            _ => Err(RegistryError::run_not_found(run_id)),
        })
        .collect();
    let accepted: Vec<(&str, &Metric)> = calls
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| o.is_ok())
        .flat_map(|((run_id, metrics), _)| metrics.iter().map(|m| (run_id.as_str(), m)))
        .collect();
    {
        let mut stage_value = tx
            .prepare_cached(
                "INSERT INTO metrics_staging (run_uuid, key, value, is_nan, timestamp, step, \
                 dataset_name, dataset_digest) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(db_error)?;
        for (run_id, m) in &accepted {
            let (value, is_nan) = storable(m.value);
            stage_value
                .execute(params![
                    run_id,
                    m.key,
                    value,
                    is_nan,
                    m.timestamp,
                    m.step,
                    m.dataset_name,
                    m.dataset_digest
                ])
                .map_err(db_error)?;
        }
        let mut move_latest = tx
            .prepare_cached(&format!(
                "INSERT INTO latest_metrics (run_uuid, key, value, is_nan, timestamp, step) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) {MOVE_LATEST}"
            ))
            .map_err(db_error)?;
        for ((run_id, key), (step, timestamp, value, is_nan)) in
            newest_per_series(accepted.iter().copied())
        {
            move_latest
                .execute(params![run_id, key, value, is_nan, timestamp, step])
                .map_err(db_error)?;
        }
    }
    tx.commit().map_err(db_error)?;
    Ok((outcomes, accepted.len()))
}

/// The same error again (for each caller of a group that failed as a whole).
fn replicate(e: &RegistryError) -> RegistryError {
    let message = e.to_string();
    match e.code() {
        ErrorCode::TemporarilyUnavailable => RegistryError::Unavailable(message),
        ErrorCode::InvalidParameterValue => RegistryError::InvalidParameter(message),
        ErrorCode::ResourceDoesNotExist => RegistryError::NotFound(message),
        _ => RegistryError::Internal(message),
    }
}
