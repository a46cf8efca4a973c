//! Staging of new metric values on SQLite, and their merge into the chunks of metric history.
//!
//! New values are appended to `metrics_staging` (migrations 3 and 5): an `AUTOINCREMENT` rowid
//! (`id`, in logging order, never reused) and no other index, so a commit of a batch of values
//! dirties a few pages at the table's end.
//! They go in the same transaction (and the same group commit) as the `latest_metrics` upsert,
//! in the same database file: an acknowledged value is durable as soon as it is answered.
//!
//! A merge then packs the staged values into `metric_chunks` (migration 5), one row per series
//! (a run's key) and merge, in one transaction on the writer's direct connection (see the
//! `direct` module): it reads every staged value in logging order, packs each series' values
//! into a JSON array (see the `history` module for the format), appends one
//! `(run_uuid, key, first_id, data)` row per series of a run that exists, and empties the
//! staging table.
//!
//! One row appended and one small index entry per series, instead of a table row and an
//! identity-index entry per value: with the index (migrations 1-4), merging 20,000 values of
//! 1,600 series held the writer for 90-270 ms, more than half of the writer's time under a
//! `log-batch` load; packed, about 20-50 ms. A background task
//! merges when [`StoreOptions::metric_merge_rows`] values have been staged since the last merge,
//! or every [`StoreOptions::metric_merge_interval`] while any are staged; the store merges at
//! open (so values staged before a crash do not stay staged) and at [`SqlStore::close`]. The task
//! holds the writer connection only weakly and ends when the store is dropped or closed.
//!
//! Readers see both tables: metric history (see the `history` module) reads the series' chunks
//! and its staged rows, and drops exact duplicates there (MLflow's semantics: identical entries
//! are one; the first logged is kept), so history reads the same before and after a merge
//! (pages and offsets included). Staged rows are found by a scan of `metrics_staging` (no
//! index), which holds at most about one merge's worth of rows. Searches and `runs/get` read
//! `latest_metrics` only and are not affected. Runs are never removed from the database
//! (deletion is a lifecycle stage), so staged rows outlive nothing; the merge packs only values
//! of runs that exist and drops any other.
//!
//! PostgreSQL has no staging: values go to `metrics` directly, one row per value.
//!
//! [`StoreOptions::metric_merge_rows`]: super::StoreOptions::metric_merge_rows
//! [`StoreOptions::metric_merge_interval`]: super::StoreOptions::metric_merge_interval
//! [`SqlStore::close`]: super::SqlStore::close

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rusqlite::TransactionBehavior;
use sqlx::Executor;
use tokio::sync::{Mutex, Notify};

use super::SingleWriter;
use super::direct::db_error;
use super::history::{PackedValue, finish_chunk, push_chunk_entry};
use crate::error::Result;

/// The background merge's state: how many values were staged since the last merge, and its
/// triggers.
#[derive(Debug)]
pub(crate) struct Staging {
    staged: AtomicU64,
    threshold: u64,
    interval: Duration,
    wake: Notify,
    closed: AtomicBool,
}

impl Staging {
    /// Merges after `threshold` staged values, or every `interval` while any are staged.
    pub fn new(threshold: u64, interval: Duration) -> Arc<Self> {
        Arc::new(Staging {
            staged: AtomicU64::new(0),
            threshold: threshold.max(1),
            interval: interval.max(Duration::from_millis(1)),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
        })
    }

    /// Counts `rows` values committed to `metrics_staging`; wakes the merge at the threshold.
    pub fn note_staged(&self, rows: usize) {
        if rows == 0 {
            return;
        }
        let total = self.staged.fetch_add(rows as u64, Ordering::Relaxed) + rows as u64;
        if total >= self.threshold {
            self.wake.notify_one();
        }
    }

    /// Stops the background merge (the store merges once more as it closes).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Starts the background merge on `writer`, SQLite's writer connection; it ends when the
    /// connection is dropped or the staging closed.
    pub fn spawn(self: &Arc<Self>, writer: Weak<Mutex<SingleWriter>>) {
        let staging = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = staging.wake.notified() => {}
                    _ = tokio::time::sleep(staging.interval) => {}
                }
                if staging.closed.load(Ordering::Acquire) {
                    return;
                }
                if staging.staged.load(Ordering::Relaxed) == 0 {
                    if writer.strong_count() == 0 {
                        return;
                    }
                    continue;
                }
                let Some(writer) = writer.upgrade() else {
                    return;
                };
                staging.staged.store(0, Ordering::Relaxed);
                if let Err(e) = merge(&writer).await {
                    tracing::warn!(error = %e, "merging staged metric values failed; will retry");
                    staging.staged.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

/// Packs every staged metric value into `metric_chunks` in one transaction on SQLite's writer
/// connection; returns how many staged rows it took.
pub(super) async fn merge(writer: &Mutex<SingleWriter>) -> Result<u64> {
    let mut w = writer.lock().await;
    if w.dirty {
        let _ = w.conn.execute("ROLLBACK").await;
        w.dirty = false;
    }
    w.direct.run(merge_now).await
}

/// The merge's transaction, on the writer's direct connection (see the `direct` module): the
/// staged values are read in logging order and packed per series in one pass (no sort), and
/// each series of a run that exists becomes one chunk.
fn merge_now(conn: &mut rusqlite::Connection) -> Result<u64> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    let max: Option<i64> = tx
        .query_row("SELECT MAX(id) FROM metrics_staging", [], |row| row.get(0))
        .map_err(db_error)?;
    let Some(max) = max else {
        return Ok(0);
    };
    // run → key → (first id, chunk being built)
    let mut series: HashMap<String, HashMap<String, (i64, String)>> = HashMap::new();
    {
        let mut staged = tx
            .prepare_cached(
                "SELECT id, run_uuid, key, value, is_nan, timestamp, step, model_id, \
                 dataset_name, dataset_digest FROM metrics_staging WHERE id <= ?1 ORDER BY id",
            )
            .map_err(db_error)?;
        let mut rows = staged.query([max]).map_err(db_error)?;
        while let Some(row) = rows.next().map_err(db_error)? {
            let text = |i: usize| -> Result<Option<&str>> {
                row.get_ref(i)
                    .and_then(|v| v.as_str_or_null().map_err(Into::into))
                    .map_err(db_error)
            };
            let id: i64 = row.get(0).map_err(db_error)?;
            let (Some(run), Some(key)) = (text(1)?, text(2)?) else {
                continue;
            };
            let value = PackedValue {
                id,
                value: row.get(3).map_err(db_error)?,
                is_nan: row.get(4).map_err(db_error)?,
                timestamp: row.get(5).map_err(db_error)?,
                step: row.get(6).map_err(db_error)?,
                model_id: text(7)?,
                dataset_name: text(8)?,
                dataset_digest: text(9)?,
            };
            let keys = match series.get_mut(run) {
                Some(keys) => keys,
                None => series.entry(run.to_owned()).or_default(),
            };
            let chunk = match keys.get_mut(key) {
                Some(chunk) => chunk,
                None => keys.entry(key.to_owned()).or_insert((id, String::new())),
            };
            push_chunk_entry(&mut chunk.1, &value);
        }
    }
    {
        let mut run_exists = tx
            .prepare_cached("SELECT 1 FROM runs WHERE run_uuid = ?1")
            .map_err(db_error)?;
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO metric_chunks (run_uuid, key, first_id, data) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(db_error)?;
        for (run, keys) in series {
            if !run_exists.exists([&run]).map_err(db_error)? {
                continue;
            }
            for (key, (first_id, mut data)) in keys {
                finish_chunk(&mut data);
                insert
                    .execute(rusqlite::params![run, key, first_id, data])
                    .map_err(db_error)?;
            }
        }
    }
    // Every staged row was read: nothing is staged while the merge holds the writer. A DELETE
    // without WHERE frees the table's pages without visiting its rows.
    let moved = tx
        .execute("DELETE FROM metrics_staging", [])
        .map_err(db_error)?;
    tx.commit().map_err(db_error)?;
    Ok(moved as u64)
}
