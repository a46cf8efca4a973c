//! Direct (synchronous) SQLite access for the store's hottest paths: the group commit of metric
//! values, the merge of staged values into chunks, and the most frequent reads (a version by
//! alias, the run search).
//!
//! sqlx runs each SQLite connection on its own thread and sends every statement there and its
//! result back, two thread wake-ups per statement. A group commit is five statements or more, so
//! under a `log-batch` load the writer spent most of its wall time in hand-offs, not in SQLite,
//! and those hand-offs serialise every writer behind them. Here the whole transaction runs in
//! one closure on a blocking thread, on a `rusqlite` connection to the same file, with cached
//! single-row prepared statements: one hand-off per group. The connection lives beside sqlx's
//! writer connection in [`SingleWriter`](super::SingleWriter) and is used only while its lock is
//! held, so the two never compete for SQLite's write lock.
//!
//! Reads ([`DirectReaders`]) run on the calling (async) thread itself, on a pooled read-only
//! connection: they read pages SQLite mostly has cached, in tens to hundreds of microseconds, which
//! is less than the two thread hand-offs per statement they replace.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::{Arg, Sql};
use crate::error::{RegistryError, Result};

/// The direct connection of SQLite's single writer, opened on first use (and again after a
/// use that did not give it back, e.g. a panic in the closure).
pub(super) struct DirectWriter {
    path: PathBuf,
    conn: Option<Connection>,
    pragmas: String,
}

impl DirectWriter {
    /// A writer for the SQLite file at `path`; `pragmas` are run on each new connection.
    pub fn new(path: impl Into<PathBuf>, pragmas: String) -> Self {
        DirectWriter {
            path: path.into(),
            conn: None,
            pragmas,
        }
    }

    /// Runs `f` on the connection on a blocking thread, and keeps the connection for the next
    /// call. `f` owns its transaction: it commits, or the transaction rolls back when dropped.
    pub async fn run<R, F>(&mut self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => open(&self.path, &self.pragmas, OpenFlags::SQLITE_OPEN_READ_WRITE)?,
        };
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let mut conn = conn;
            let result = f(&mut conn);
            (conn, result)
        })
        .await
        .map_err(|e| RegistryError::Internal(format!("a SQLite write task failed: {e}")))?;
        self.conn = Some(conn);
        result
    }
}

/// Turns off SQLite's memory statistics for the whole process, once, before SQLite is first
/// used: with them on (SQLite's default), every allocation and free inside SQLite takes one
/// global mutex, which the store's reader and writer threads then contend for (about a tenth of
/// a run search's time). Nothing here reads the statistics. A no-op when SQLite was already
/// initialised in this process (SQLite then refuses the setting, and it stays on).
pub(super) fn disable_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `sqlite3_config` is called with an option that takes one int argument, before
        // any connection of this process is opened by the store; if SQLite is already
        // initialised it returns SQLITE_MISUSE and changes nothing.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            )
        };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite was initialised already; its memory statistics stay on"
            );
        }
    });
}

/// Most idle read connections kept for reuse.
const MAX_IDLE_READERS: usize = 8;

/// Read-only connections to SQLite's file, used on the calling thread.
pub(crate) struct DirectReaders {
    path: PathBuf,
    pragmas: String,
    idle: parking_lot::Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for DirectReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectReaders")
            .field("path", &self.path)
            .finish()
    }
}

impl DirectReaders {
    /// Readers of the SQLite file at `path`; `pragmas` are run on each new connection.
    pub fn new(path: impl Into<PathBuf>, pragmas: String) -> Self {
        DirectReaders {
            path: path.into(),
            pragmas,
            idle: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on an idle read connection (a new one when none is idle), on this thread.
    pub fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let idle = self.idle.lock().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open(&self.path, &self.pragmas, OpenFlags::SQLITE_OPEN_READ_ONLY)?,
        };
        let result = f(&conn);
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

/// Runs `sql` (placeholders from [`Sql::arg`] or [`Sql::row`]) on `conn` and maps each row.
pub(super) fn fetch<T>(
    conn: &Connection,
    sql: &Sql,
    mut map: impl FnMut(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(&sql.text).map_err(db_error)?;
    for (i, arg) in sql.args.iter().enumerate() {
        // `$n` from `Sql::arg` is a named parameter to SQLite; `?` from `Sql::row` is the n-th.
        let index = stmt
            .parameter_index(&format!("${}", i + 1))
            .map_err(db_error)?
            .unwrap_or(i + 1);
        let bound = match arg {
            Arg::I64(v) => stmt.raw_bind_parameter(index, v),
            Arg::F64(v) => stmt.raw_bind_parameter(index, v),
            Arg::Str(v) => stmt.raw_bind_parameter(index, v.as_str()),
            Arg::NullI64 | Arg::NullStr => stmt.raw_bind_parameter(index, rusqlite::types::Null),
        };
        bound.map_err(db_error)?;
    }
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        out.push(map(row)?);
    }
    Ok(out)
}

fn open(path: &Path, pragmas: &str, mode: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, mode | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(db_error)?;
    conn.execute_batch(pragmas).map_err(db_error)?;
    Ok(conn)
}

/// A `rusqlite` error as the registry's: a busy or locked database is
/// `TEMPORARILY_UNAVAILABLE`, anything else an internal error.
pub(super) fn db_error(e: rusqlite::Error) -> RegistryError {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => {
            RegistryError::Unavailable(format!("the database is busy: {e}"))
        }
        _ => RegistryError::Internal(format!("database error: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn run_keeps_the_connection_and_reports_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        std::fs::File::create(&path).unwrap();
        let mut w = DirectWriter::new(&path, "PRAGMA journal_mode = WAL;".into());
        w.run(|c| {
            c.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7);")
                .map_err(db_error)
        })
        .await
        .unwrap();
        let x: i64 = w
            .run(|c| {
                c.query_row("SELECT x FROM t", [], |r| r.get(0))
                    .map_err(db_error)
            })
            .await
            .unwrap();
        assert_eq!(x, 7);
        let err = w
            .run(|c| c.execute_batch("SELECT * FROM missing").map_err(db_error))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no such table"), "{err}");
        // The connection survived the error.
        assert!(w.conn.is_some());
    }
}
