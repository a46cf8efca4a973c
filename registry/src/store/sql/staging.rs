//! Staging of new metric values on SQLite.
//!
//! `metrics` keeps every value ever logged, with a unique index on (run, key, timestamp, step,
//! value, is_nan) that drops exact duplicates (MLflow's semantics: identical entries are one) and
//! serves metric history. Values of one series (a run's key) sit together in that index, so once
//! a series has some history, every commit that appends to it dirties that series' own index
//! page: a `log-batch` of 100 keys dirtied ~450 KiB of pages, almost all of it index, and
//! writing those pages to the WAL was the largest cost of a batch.
//!
//! So on SQLite new values are appended to `metrics_staging` instead (migration 3): the columns
//! of `metrics`, a rowid (`id`, in logging order) and no other index, so a batch's rows land on a
//! few pages at the table's end. They go in the same transaction (and the same group commit) as
//! before, beside the unchanged `latest_metrics` upsert, in the same database file: an
//! acknowledged value is exactly as durable as it was. A merge then moves staged rows into
//! `metrics` in one transaction on the writer connection:
//!
//! ```sql
//! INSERT OR IGNORE INTO metrics (...) SELECT ... FROM metrics_staging WHERE id <= :max
//!     ORDER BY run_uuid, key, timestamp, step, value, is_nan, id;
//! DELETE FROM metrics_staging WHERE id <= :max;
//! ```
//!
//! so each series' index page is dirtied once per merge instead of once per commit. In `id`
//! order within a series, the first of exact duplicates is the one kept, as the unique index kept
//! the first one logged. A background task merges when [`StoreOptions::metric_merge_rows`]
//! values have been staged since the last merge, or every
//! [`StoreOptions::metric_merge_interval`] while any are staged; the store merges at open (so
//! values staged before a crash do not stay staged) and at [`SqlStore::close`]. The task holds
//! the writer connection only weakly and ends when the store is dropped or closed.
//!
//! Readers see both tables: metric history reads the rows of `metrics` for the series plus its
//! staged rows that are not exact duplicates of one in `metrics`, the first staged one of equal
//! staged rows only, which is precisely what `metrics` holds after the merge; so history reads
//! the same before and after a merge (pages and offsets included). Staged rows are found by a
//! scan of `metrics_staging` (no index), which holds at most about one merge's worth of rows.
//! Searches and `runs/get` read `latest_metrics` only and are not affected. Runs are never
//! removed from the database (deletion is a lifecycle stage), so staged rows outlive nothing;
//! the merge moves only rows of runs that exist and drops any other.
//!
//! PostgreSQL has no staging: values go to `metrics` directly, as before.
//!
//! [`StoreOptions::metric_merge_rows`]: super::StoreOptions::metric_merge_rows
//! [`StoreOptions::metric_merge_interval`]: super::StoreOptions::metric_merge_interval
//! [`SqlStore::close`]: super::SqlStore::close

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::Executor;
use tokio::sync::{Mutex, Notify};

use super::SingleWriter;
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

/// Moves every staged metric value into `metrics` (exact duplicates dropped) in one
/// transaction on SQLite's writer connection; returns how many staged rows it took.
pub(super) async fn merge(writer: &Mutex<SingleWriter>) -> Result<u64> {
    let mut w = writer.lock().await;
    if w.dirty {
        let _ = w.conn.execute("ROLLBACK").await;
        w.dirty = false;
    }
    // Dirty from BEGIN until COMMIT succeeds, as every write on this connection (see `begin`).
    w.dirty = true;
    w.conn.execute("BEGIN IMMEDIATE").await?;
    let max: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM metrics_staging")
        .fetch_one(&mut w.conn)
        .await?;
    let mut moved = 0;
    if let Some(max) = max {
        sqlx::query(
            "INSERT OR IGNORE INTO metrics (run_uuid, key, value, is_nan, timestamp, step, \
             model_id, dataset_name, dataset_digest) \
             SELECT s.run_uuid, s.key, s.value, s.is_nan, s.timestamp, s.step, s.model_id, \
             s.dataset_name, s.dataset_digest FROM metrics_staging s \
             WHERE s.id <= $1 AND EXISTS (SELECT 1 FROM runs r WHERE r.run_uuid = s.run_uuid) \
             ORDER BY s.run_uuid, s.key, s.timestamp, s.step, s.value, s.is_nan, s.id",
        )
        .bind(max)
        .execute(&mut w.conn)
        .await?;
        moved = sqlx::query("DELETE FROM metrics_staging WHERE id <= $1")
            .bind(max)
            .execute(&mut w.conn)
            .await?
            .rows_affected();
    }
    w.conn.execute("COMMIT").await?;
    w.dirty = false;
    Ok(moved)
}
