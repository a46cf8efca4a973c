//! WAL checkpoints on SQLite, off the writer's path.
//!
//! By default SQLite checkpoints in the connection whose commit takes the WAL past
//! `wal_autocheckpoint` pages: that commit copies the WAL's pages into the database file and, with
//! `synchronous=NORMAL`, waits for two `fsync`s, while every other writer waits for it. Under a
//! `log-batch` load that was a third of the writer's time and its 170 ms stalls. Instead a
//! background task checkpoints every [`StoreOptions::checkpoint_interval`], in two steps:
//!
//! 1. a `PASSIVE` checkpoint on a reader connection copies and syncs the WAL beside the writer
//!    (a passive checkpoint never blocks writers or readers);
//! 2. when the WAL has grown past [`RESTART_PAGES`], the pages committed during step 1 are
//!    copied by a second checkpoint on the writer's own connection, under its lock: no commit
//!    can come between, so the WAL ends fully copied and the next commit starts it again from
//!    the beginning (otherwise a WAL under constant writes is never fully copied and grows
//!    without end). Step 2 holds the writer only for what step 1 left.
//!
//! The writer connection keeps an automatic checkpoint only as a safety net, at
//! [`WRITER_AUTOCHECKPOINT_PAGES`]. Durability is unchanged: a commit is acknowledged once it is
//! in the WAL, as before.
//!
//! [`StoreOptions::checkpoint_interval`]: super::StoreOptions::checkpoint_interval

use std::sync::Weak;
use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::Mutex;

use super::SingleWriter;
use super::direct::db_error;

/// The writer's own automatic checkpoint threshold, in pages (about 400 MiB of WAL with 4 KiB
/// pages): reached only when the background checkpoints fall behind.
pub(super) const WRITER_AUTOCHECKPOINT_PAGES: u32 = 100_000;

/// The WAL size, in pages (32 MiB with 4 KiB pages), past which a checkpoint finishes on the
/// writer's connection so that the WAL starts again.
pub(super) const RESTART_PAGES: i64 = 8_000;

/// Starts the background checkpoints on `readers`; the task ends when the writer connection is
/// dropped or the pool closed.
pub(super) fn spawn(readers: AnyPool, writer: Weak<Mutex<SingleWriter>>, interval: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            if writer.strong_count() == 0 || readers.is_closed() {
                return;
            }
            let Ok(mut conn) = readers.acquire().await else {
                continue;
            };
            let result: Result<(i64, i64, i64), sqlx::Error> =
                sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(&mut *conn)
                    .await;
            drop(conn);
            let wal_pages = match result {
                Ok((_, wal_pages, _)) => wal_pages,
                Err(e) => {
                    tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                    continue;
                }
            };
            if wal_pages < RESTART_PAGES {
                continue;
            }
            let Some(writer) = writer.upgrade() else {
                return;
            };
            let mut w = writer.lock().await;
            let finished = w
                .direct
                .run(|c| {
                    c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
                    })
                    .map_err(db_error)
                })
                .await;
            drop(w);
            match finished {
                Ok((wal_pages, copied)) if copied < wal_pages => tracing::debug!(
                    wal_pages,
                    copied,
                    "readers kept part of the WAL from being checkpointed"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; will retry"),
            }
        }
    });
}
