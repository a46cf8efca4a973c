//! The SQL implementation of [`MetadataStore`]: one code base over `sqlx::Any`, with the
//! per-backend differences kept to the migrations (types, identity columns) and a few dialect
//! switches (`BEGIN IMMEDIATE`, `FOR UPDATE`, `ILIKE`, placeholders of multi-row statements, the
//! lock-free pre-check of the `latest_metrics` upsert on PostgreSQL).
//!
//! SQLite runs in WAL mode with `synchronous=NORMAL` (a committed transaction survives the
//! process being killed), foreign keys on, and a single writer connection, so writers queue in
//! the pool instead of failing with `SQLITE_BUSY`; reads go to a separate pool of readers, which
//! WAL lets run beside the writer. PostgreSQL uses one pool for both.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions, Executor};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::*;
use crate::datasets::{DatasetRecord, RegisterDataset};
use crate::entities::{
    AliasEvent, DatasetInput, Experiment, LoggedModel, LoggedModelParameter, LoggedModelStatus,
    LoggedModelTag, Metric, ModelInput, ModelOutput, ModelVersion, Param, RegisteredModel, Run,
    RunInfo, RunTag,
};
use crate::error::{RegistryError, Result};
use crate::jobs::{FinishJob, HeartbeatReply, Job, JobLogLine, LeaseRequest, ListJobs, SubmitJob};

mod checkpoint;
mod columns;
mod datasets;
mod direct;
mod group_commit;
mod history;
mod jobs;
mod logged;
mod registry;
mod staging;
mod tracking;

/// The database behind a [`SqlStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgresql`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }
}

/// How a [`SqlStore`] is set up.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The root under which experiments' artifact locations are made when a request names none:
    /// experiment `N` gets `<root>/N`. The default, `mlflow-artifacts:`, gives
    /// `mlflow-artifacts:/N`, which MLflow clients resolve through the artifact proxy.
    pub default_artifact_root: String,
    /// Most connections (PostgreSQL), or most reader connections (SQLite; writes use one).
    pub max_connections: u32,
    /// How long a request waits for a connection before `TEMPORARILY_UNAVAILABLE`.
    pub acquire_timeout: Duration,
    /// SQLite: how many new metric values may wait in `metrics_staging` before a merge into
    /// `metric_chunks` starts (see the `staging` module). Default 20,000.
    pub metric_merge_rows: u64,
    /// SQLite: how often staged metric values are merged into `metric_chunks` while fewer than
    /// [`metric_merge_rows`](Self::metric_merge_rows) wait. Default 200 ms.
    pub metric_merge_interval: Duration,
    /// SQLite: how often a background task checkpoints the WAL, off the writer's path (see the
    /// `checkpoint` module). Default 200 ms.
    pub checkpoint_interval: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            default_artifact_root: "mlflow-artifacts:".into(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(30),
            metric_merge_rows: 20_000,
            metric_merge_interval: Duration::from_millis(200),
            checkpoint_interval: Duration::from_millis(200),
        }
    }
}

/// One migration: its number, name and SQL.
struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sqlite: include_str!("migrations/sqlite/0001_init.sql"),
        postgres: include_str!("migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "latest_metrics_set_based",
        sqlite: include_str!("migrations/sqlite/0002_latest_metrics_set_based.sql"),
        postgres: include_str!("migrations/postgres/0002_latest_metrics_set_based.sql"),
    },
    Migration {
        version: 3,
        name: "metric_staging",
        sqlite: include_str!("migrations/sqlite/0003_metric_staging.sql"),
        postgres: include_str!("migrations/postgres/0003_metric_staging.sql"),
    },
    Migration {
        version: 4,
        name: "jobs",
        sqlite: include_str!("migrations/sqlite/0004_jobs.sql"),
        postgres: include_str!("migrations/postgres/0004_jobs.sql"),
    },
    Migration {
        version: 5,
        name: "metric_chunks",
        sqlite: include_str!("migrations/sqlite/0005_metric_chunks.sql"),
        postgres: include_str!("migrations/postgres/0005_metric_chunks.sql"),
    },
];

/// The metadata store on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlStore {
    backend: Backend,
    write: Writer,
    read: AnyPool,
    artifact_root: Arc<str>,
    /// `log_metric` and metrics-only `log_batch` calls waiting for SQLite's writer, committed
    /// together (see the `group_commit` module).
    metric_queue: Arc<parking_lot::Mutex<Vec<group_commit::PendingMetric>>>,
    /// SQLite's background merge of staged metric values (see the `staging` module); `None` on
    /// PostgreSQL, which stages nothing.
    staging: Option<Arc<staging::Staging>>,
    /// SQLite's read-only connections for the hottest reads, used on the calling thread (see
    /// the `direct` module); `None` on PostgreSQL.
    direct_read: Option<Arc<direct::DirectReaders>>,
}

/// Where writes go: the pool (PostgreSQL), or SQLite's one writer connection behind a fair
/// async mutex (cheaper than a one-connection pool, whose every release spawns a task).
#[derive(Debug, Clone)]
enum Writer {
    Pool(AnyPool),
    Single(Arc<Mutex<SingleWriter>>),
}

/// SQLite's writer connection; `dirty` when a transaction was abandoned (an error or a
/// cancelled request) and must be rolled back before the next use.
pub(crate) struct SingleWriter {
    conn: AnyConnection,
    dirty: bool,
    /// The same file through `rusqlite`, for the hottest writes (see the `direct` module).
    direct: direct::DirectWriter,
}

impl std::fmt::Debug for SingleWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleWriter")
            .field("dirty", &self.dirty)
            .finish()
    }
}

/// A connection to write with (outside a transaction).
pub(crate) enum WriteConn {
    Pool(PoolConnection<Any>),
    Single(OwnedMutexGuard<SingleWriter>),
}

impl Deref for WriteConn {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            WriteConn::Pool(c) => c,
            WriteConn::Single(g) => &g.conn,
        }
    }
}

impl DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            WriteConn::Pool(c) => c,
            WriteConn::Single(g) => &mut g.conn,
        }
    }
}

/// A write transaction; rolled back if dropped without [`WriteTx::commit`] (on SQLite, by the
/// next user of the writer connection; on PostgreSQL, by sqlx).
pub(crate) struct WriteTx(Option<TxInner>);

enum TxInner {
    Pool(sqlx::Transaction<'static, Any>),
    Single(OwnedMutexGuard<SingleWriter>),
}

impl WriteTx {
    /// Commits.
    pub async fn commit(mut self) -> Result<()> {
        match self.0.take() {
            Some(TxInner::Pool(tx)) => tx.commit().await?,
            Some(TxInner::Single(mut guard)) => {
                // `dirty` stays set until COMMIT has succeeded: a failed or cancelled commit is
                // rolled back by the next user of the connection.
                guard.conn.execute("COMMIT").await?;
                guard.dirty = false;
            }
            None => {}
        }
        Ok(())
    }

    fn inner(&self) -> &TxInner {
        self.0.as_ref().expect("a live transaction")
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self.inner() {
            TxInner::Pool(tx) => tx,
            TxInner::Single(guard) => &guard.conn,
        }
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self.0.as_mut().expect("a live transaction") {
            TxInner::Pool(tx) => tx,
            TxInner::Single(guard) => &mut guard.conn,
        }
    }
}

/// A value bound to a `$n` placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    I64(i64),
    F64(f64),
    Str(String),
    NullI64,
    NullStr,
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::I64(v)
    }
}
impl From<f64> for Arg {
    fn from(v: f64) -> Self {
        Arg::F64(v)
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Str(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Str(v.to_owned())
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Str(v.clone())
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        v.map_or(Arg::NullStr, Arg::Str)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Arg::NullStr, |s| Arg::Str(s.to_owned()))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Arg::NullI64, Arg::I64)
    }
}

/// SQL text with `$n` placeholders and the values bound to them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
}

impl Sql {
    /// Appends text.
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Adds a value and returns its placeholder (`$n`).
    pub fn arg(&mut self, a: impl Into<Arg>) -> String {
        self.args.push(a.into());
        format!("${}", self.args.len())
    }

    /// Binds one row of a multi-row `VALUES` list and appends its placeholders, `(?, ?, ...)`
    /// on SQLite and `($n, $n+1, ...)` on PostgreSQL, to `values` (after a comma if `values`
    /// already holds a row). SQLite gets anonymous `?`: sqlx looks the name of every `$n` of a
    /// SQLite statement up with `sqlite3_bind_parameter_name`, a linear search, which makes
    /// binding quadratic in the number of parameters. A statement must use one style
    /// throughout: rows from this, or placeholders from [`Sql::arg`], not both.
    pub fn row(
        &mut self,
        backend: Backend,
        values: &mut String,
        row: impl IntoIterator<Item = Arg>,
    ) {
        use std::fmt::Write;
        if !values.is_empty() {
            values.push_str(", ");
        }
        values.push('(');
        for (i, a) in row.into_iter().enumerate() {
            if i > 0 {
                values.push_str(", ");
            }
            self.args.push(a);
            match backend {
                Backend::Sqlite => values.push('?'),
                Backend::Postgres => {
                    let _ = write!(values, "${}", self.args.len());
                }
            }
        }
        values.push(')');
    }

    /// Adds values and returns their placeholders, comma-separated.
    pub fn list<A: Into<Arg>>(&mut self, items: impl IntoIterator<Item = A>) -> String {
        let ph: Vec<String> = items.into_iter().map(|a| self.arg(a)).collect();
        ph.join(", ")
    }

    /// The query, with every value bound.
    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for a in &self.args {
            q = match a {
                Arg::I64(v) => q.bind(*v),
                Arg::F64(v) => q.bind(*v),
                Arg::Str(s) => q.bind(s.as_str()),
                Arg::NullI64 => q.bind(None::<i64>),
                Arg::NullStr => q.bind(None::<&str>),
            };
        }
        q
    }
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Joins URI path segments with single slashes (`mlflow-artifacts:` + `1` gives
/// `mlflow-artifacts:/1`).
pub(crate) fn join_uri(base: &str, parts: &[&str]) -> String {
    let mut out = base.trim_end_matches('/').to_owned();
    out.push('/');
    out.push_str(&parts.join("/"));
    out
}

/// A new 32-hex-digit id.
pub(crate) fn new_hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A readable random name such as `brave-otter-417`, as MLflow gives unnamed runs.
pub(crate) fn random_name() -> String {
    const ADJ: &[&str] = &[
        "brave", "calm", "clever", "bold", "bright", "gentle", "happy", "keen", "lucky", "merry",
        "nimble", "quiet", "rare", "shy", "swift", "tidy", "vivid", "wise", "zesty", "amber",
    ];
    const NOUN: &[&str] = &[
        "otter", "falcon", "heron", "lynx", "panda", "robin", "seal", "tiger", "whale", "wolf",
        "fox", "owl", "moth", "crab", "finch", "yak", "koala", "mole", "newt", "wren",
    ];
    let b = uuid::Uuid::new_v4().into_bytes();
    format!(
        "{}-{}-{}",
        ADJ[b[0] as usize % ADJ.len()],
        NOUN[b[1] as usize % NOUN.len()],
        u16::from_le_bytes([b[2], b[3]]) % 1000
    )
}

/// Whether a database error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Parses an experiment id: a decimal integer.
pub(crate) fn parse_experiment_id(id: &str) -> Result<i64> {
    id.trim().parse::<i64>().map_err(|_| {
        RegistryError::invalid(format!(
            "Invalid experiment ID '{id}'. Experiment ID must be a valid integer."
        ))
    })
}

/// Turns an `sqlite:` or `postgres(ql):` URI into the URL sqlx connects with (and, for SQLite,
/// the file's path).
fn database_url(uri: &str) -> Result<(Backend, String, Option<std::path::PathBuf>)> {
    if let Some(rest) = uri.strip_prefix("sqlite:") {
        // `sqlite:///abs/path.db` (absolute), `sqlite://rel.db` (relative to the working
        // directory), `sqlite:path.db`; `sqlite:////abs` (SQLAlchemy's absolute form) too.
        let path = rest.strip_prefix("//").unwrap_or(rest);
        let path = if path.starts_with("//") {
            path.trim_start_matches('/').to_owned()
        } else {
            path.to_owned()
        };
        let path = if rest.starts_with("////") {
            format!("/{path}")
        } else {
            path
        };
        let path = path.as_str();
        if path.is_empty() || path == ":memory:" {
            return Err(RegistryError::invalid(
                "An in-memory SQLite store is not supported; name a file, e.g. \
                 sqlite:///var/lib/cerulean/registry.db",
            ));
        }
        if let Some(parent) = std::path::Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                RegistryError::Internal(format!(
                    "cannot create the directory of the SQLite store {path}: {e}"
                ))
            })?;
        }
        let encoded: String = path
            .chars()
            .map(|c| match c {
                '%' => "%25".to_owned(),
                '?' => "%3F".to_owned(),
                '#' => "%23".to_owned(),
                c => c.to_string(),
            })
            .collect();
        Ok((
            Backend::Sqlite,
            format!("sqlite://{encoded}?mode=rwc"),
            Some(path.into()),
        ))
    } else if uri.starts_with("postgresql://") || uri.starts_with("postgres://") {
        Ok((Backend::Postgres, uri.to_owned(), None))
    } else if let Some(rest) = uri.strip_prefix("postgresql+psycopg2://") {
        Ok((Backend::Postgres, format!("postgresql://{rest}"), None))
    } else {
        Err(RegistryError::invalid(format!(
            "Unsupported backend store URI '{uri}': use sqlite:///path/to/file.db or \
             postgresql://user@host/db"
        )))
    }
}

impl SqlStore {
    /// Connects to `uri` (see [`open`](super::open)), applies the migrations not yet applied
    /// (in order, in one transaction each, tracked in `cerulean_migrations`) and makes sure the
    /// default experiment `"0"` exists.
    pub async fn connect(uri: &str, options: StoreOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (backend, url, sqlite_path) = database_url(uri)?;
        let base = AnyPoolOptions::new()
            .test_before_acquire(false)
            .acquire_timeout(options.acquire_timeout)
            .idle_timeout(None)
            .max_lifetime(None);
        let store = match backend {
            Backend::Sqlite => {
                direct::disable_memory_statistics();
                const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                     PRAGMA case_sensitive_like = ON; PRAGMA temp_store = MEMORY; \
                     PRAGMA cache_size = -16000; PRAGMA wal_autocheckpoint = 8000;";
                let opts: AnyConnectOptions = url.parse()?;
                let mut conn = opts.connect().await?;
                conn.execute(PRAGMAS).await?;
                // Background checkpoints copy the WAL (see `checkpoint`); the writer's own only
                // catches a WAL they cannot keep up with.
                conn.execute(
                    format!(
                        "PRAGMA wal_autocheckpoint = {};",
                        checkpoint::WRITER_AUTOCHECKPOINT_PAGES
                    )
                    .as_str(),
                )
                .await?;
                let read = base
                    .max_connections(options.max_connections.max(1))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute(PRAGMAS).await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?;
                let sqlite_path = sqlite_path.ok_or_else(|| {
                    RegistryError::Internal("a SQLite store without a file".into())
                })?;
                SqlStore {
                    backend,
                    write: Writer::Single(Arc::new(Mutex::new(SingleWriter {
                        conn,
                        dirty: false,
                        direct: direct::DirectWriter::new(
                            &sqlite_path,
                            format!(
                                "{PRAGMAS} PRAGMA wal_autocheckpoint = {};",
                                checkpoint::WRITER_AUTOCHECKPOINT_PAGES
                            ),
                        ),
                    }))),
                    direct_read: Some(Arc::new(direct::DirectReaders::new(
                        &sqlite_path,
                        "PRAGMA busy_timeout = 10000; PRAGMA case_sensitive_like = ON; \
                         PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16000;"
                            .into(),
                    ))),
                    read,
                    artifact_root: options.default_artifact_root.as_str().into(),
                    metric_queue: Arc::default(),
                    staging: Some(staging::Staging::new(
                        options.metric_merge_rows,
                        options.metric_merge_interval,
                    )),
                }
            }
            Backend::Postgres => {
                let pool = base
                    .max_connections(options.max_connections.max(2))
                    .connect(&url)
                    .await?;
                SqlStore {
                    backend,
                    write: Writer::Pool(pool.clone()),
                    read: pool,
                    artifact_root: options.default_artifact_root.as_str().into(),
                    metric_queue: Arc::default(),
                    staging: None,
                    direct_read: None,
                }
            }
        };
        store.migrate().await?;
        if let (Some(staging), Writer::Single(writer)) = (&store.staging, &store.write) {
            // Values staged before a crash are merged now, not left staged for ever.
            staging::merge(writer).await?;
            staging.spawn(Arc::downgrade(writer));
            checkpoint::spawn(
                store.read.clone(),
                Arc::downgrade(writer),
                options.checkpoint_interval,
            );
        }
        Ok(store)
    }

    /// Moves the metric values staged on SQLite into `metric_chunks` now (see the `staging`
    /// module; a background task does this on its own); returns how many staged rows it took.
    /// Nothing to do on PostgreSQL.
    pub async fn merge_staged_metrics(&self) -> Result<u64> {
        match &self.write {
            Writer::Single(writer) => staging::merge(writer).await,
            Writer::Pool(_) => Ok(0),
        }
    }

    /// Counts metric values committed to SQLite's staging table (nothing on PostgreSQL).
    pub(crate) fn note_staged(&self, rows: usize) {
        if let Some(staging) = &self.staging {
            staging.note_staged(rows);
        }
    }

    /// The database behind the store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection (a SQLite store first merges its staged metric values, and
    /// checkpoints its WAL on the last close).
    pub async fn close(&self) {
        if let (Some(staging), Writer::Single(w)) = (&self.staging, &self.write) {
            staging.close();
            if let Err(e) = staging::merge(w).await {
                tracing::warn!(error = %e, "merging staged metric values at close failed");
            }
        }
        self.read.close().await;
        match &self.write {
            Writer::Pool(p) => p.close().await,
            Writer::Single(w) => {
                let mut w = w.lock().await;
                if w.dirty {
                    let _ = w.conn.execute("ROLLBACK").await;
                    w.dirty = false;
                }
                let _ = w.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").await;
            }
        }
    }

    /// A connection to write with, outside a transaction.
    pub(crate) async fn writer(&self) -> Result<WriteConn> {
        match &self.write {
            Writer::Pool(p) => Ok(WriteConn::Pool(p.acquire().await?)),
            Writer::Single(w) => {
                let mut guard = w.clone().lock_owned().await;
                if guard.dirty {
                    // An abandoned transaction: undo it before anyone writes again.
                    let _ = guard.conn.execute("ROLLBACK").await;
                    guard.dirty = false;
                }
                Ok(WriteConn::Single(guard))
            }
        }
    }

    /// Starts a write transaction: `BEGIN IMMEDIATE` on SQLite (the write lock up front, so a
    /// second process writing the same file waits instead of failing), `BEGIN` on PostgreSQL.
    pub(crate) async fn begin(&self) -> Result<WriteTx> {
        match self.writer().await? {
            WriteConn::Pool(conn) => Ok(WriteTx(Some(TxInner::Pool(
                sqlx::Transaction::begin(conn, None).await?,
            )))),
            WriteConn::Single(mut guard) => {
                // Marked dirty before BEGIN and until COMMIT succeeds, so a transaction
                // abandoned anywhere (an error, or a request cancelled mid-await) is rolled back
                // before the connection is used again.
                guard.dirty = true;
                guard.conn.execute("BEGIN IMMEDIATE").await?;
                Ok(WriteTx(Some(TxInner::Single(guard))))
            }
        }
    }

    /// Runs a write so that a caller that goes away (a client hanging up, a timeout) cannot
    /// cancel it half-way. On PostgreSQL the write runs in its own task and commits or rolls
    /// back as a whole: a future dropped while awaiting `BEGIN` would otherwise leave a pooled
    /// connection inside a transaction that sqlx does not know about, and the next statement on
    /// it would be "acknowledged" without ever committing. On SQLite the write runs inline (no
    /// task to spawn on the hot path): its writer connection is marked dirty from `BEGIN` until
    /// `COMMIT` succeeds, and an abandoned transaction is rolled back before the next write.
    async fn shielded<T, Fut>(&self, f: impl FnOnce(SqlStore) -> Fut) -> Result<T>
    where
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        match self.backend {
            Backend::Sqlite => f(self.clone()).await,
            Backend::Postgres => match tokio::spawn(f(self.clone())).await {
                Ok(r) => r,
                Err(e) => Err(RegistryError::Internal(format!("a write task failed: {e}"))),
            },
        }
    }

    /// ` FOR UPDATE` on PostgreSQL (row locks), nothing on SQLite (one writer at a time).
    pub(crate) fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// The default artifact root.
    pub(crate) fn artifact_root(&self) -> &str {
        &self.artifact_root
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = self.writer().await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS cerulean_migrations (version BIGINT PRIMARY KEY, \
             name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        drop(conn);
        let mut tx = self.begin().await?;
        if self.backend == Backend::Postgres {
            // Several servers starting at once on one database migrate one after the other.
            sqlx::raw_sql("DO $$ BEGIN PERFORM pg_advisory_xact_lock(7270417); END $$;")
                .execute(&mut *tx)
                .await?;
        }
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM cerulean_migrations")
            .fetch_all(&mut *tx)
            .await?;
        for m in MIGRATIONS {
            if applied.contains(&m.version) {
                continue;
            }
            let sql = match self.backend {
                Backend::Sqlite => m.sqlite,
                Backend::Postgres => m.postgres,
            };
            sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(|e| {
                RegistryError::Internal(format!("migration {} ({}) failed: {e}", m.version, m.name))
            })?;
            sqlx::query(
                "INSERT INTO cerulean_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            tracing::info!(
                version = m.version,
                name = m.name,
                backend = self.backend.as_str(),
                "applied migration"
            );
        }
        let now = now_ms();
        sqlx::query(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, \
             creation_time, last_update_time) VALUES (0, 'Default', $1, 'active', $2, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(join_uri(&self.artifact_root, &["0"]))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The versions of the migrations applied, in order.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>> {
        Ok(
            sqlx::query_scalar("SELECT version FROM cerulean_migrations ORDER BY version")
                .fetch_all(&self.read)
                .await?,
        )
    }
}

#[async_trait]
impl MetadataStore for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn create_experiment(&self, req: CreateExperiment) -> Result<String> {
        self.shielded(|s| async move { tracking::create_experiment(&s, req).await })
            .await
    }
    async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        tracking::get_experiment(self, experiment_id).await
    }
    async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        tracking::get_experiment_by_name(self, name).await
    }
    async fn search_experiments(&self, req: SearchExperiments) -> Result<Page<Experiment>> {
        tracking::search_experiments(self, req).await
    }
    async fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()> {
        let experiment_id = experiment_id.to_owned();
        let new_name = new_name.to_owned();
        self.shielded(|s| async move {
            tracking::rename_experiment(&s, &experiment_id, &new_name).await
        })
        .await
    }
    async fn delete_experiment(&self, experiment_id: &str) -> Result<()> {
        let experiment_id = experiment_id.to_owned();
        self.shielded(|s| async move {
            tracking::set_experiment_lifecycle(&s, &experiment_id, true).await
        })
        .await
    }
    async fn restore_experiment(&self, experiment_id: &str) -> Result<()> {
        let experiment_id = experiment_id.to_owned();
        self.shielded(|s| async move {
            tracking::set_experiment_lifecycle(&s, &experiment_id, false).await
        })
        .await
    }
    async fn set_experiment_tag(&self, experiment_id: &str, key: &str, value: &str) -> Result<()> {
        let experiment_id = experiment_id.to_owned();
        let key = key.to_owned();
        let value = value.to_owned();
        self.shielded(|s| async move {
            tracking::set_experiment_tag(&s, &experiment_id, &key, &value).await
        })
        .await
    }
    async fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()> {
        let experiment_id = experiment_id.to_owned();
        let key = key.to_owned();
        self.shielded(
            |s| async move { tracking::delete_experiment_tag(&s, &experiment_id, &key).await },
        )
        .await
    }

    async fn create_run(&self, req: CreateRun) -> Result<Run> {
        self.shielded(|s| async move { tracking::create_run(&s, req).await })
            .await
    }
    async fn get_run(&self, run_id: &str) -> Result<Run> {
        tracking::get_run(self, run_id).await
    }
    async fn update_run(&self, req: UpdateRun) -> Result<RunInfo> {
        self.shielded(|s| async move { tracking::update_run(&s, req).await })
            .await
    }
    async fn delete_run(&self, run_id: &str) -> Result<()> {
        let run_id = run_id.to_owned();
        self.shielded(|s| async move { tracking::set_run_lifecycle(&s, &run_id, true).await })
            .await
    }
    async fn restore_run(&self, run_id: &str) -> Result<()> {
        let run_id = run_id.to_owned();
        self.shielded(|s| async move { tracking::set_run_lifecycle(&s, &run_id, false).await })
            .await
    }
    async fn search_runs(&self, req: SearchRuns) -> Result<Page<Run>> {
        tracking::search_runs(self, req).await
    }
    async fn log_metric(&self, run_id: &str, metric: Metric) -> Result<()> {
        if self.backend == Backend::Sqlite && metric.model_id.is_none() {
            crate::validation::validate_metric(&metric, "")?;
            return group_commit::log_metrics(self, run_id, vec![metric]).await;
        }
        let run_id = run_id.to_owned();
        self.shielded(|s| async move { tracking::log_metric(&s, &run_id, metric).await })
            .await
    }
    async fn log_param(&self, run_id: &str, param: Param) -> Result<()> {
        let run_id = run_id.to_owned();
        self.shielded(|s| async move { tracking::log_param(&s, &run_id, param).await })
            .await
    }
    async fn set_tag(&self, run_id: &str, tag: RunTag) -> Result<()> {
        let run_id = run_id.to_owned();
        self.shielded(|s| async move { tracking::set_tag(&s, &run_id, tag).await })
            .await
    }
    async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        let run_id = run_id.to_owned();
        let key = key.to_owned();
        self.shielded(|s| async move { tracking::delete_tag(&s, &run_id, &key).await })
            .await
    }
    async fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<RunTag>,
    ) -> Result<()> {
        if self.backend == Backend::Sqlite
            && params.is_empty()
            && tags.is_empty()
            && !metrics.is_empty()
            && metrics.iter().all(|m| m.model_id.is_none())
        {
            crate::validation::validate_batch(&metrics, &[], &[])?;
            return group_commit::log_metrics(self, run_id, metrics).await;
        }
        let run_id = run_id.to_owned();
        self.shielded(
            |s| async move { tracking::log_batch(&s, &run_id, metrics, params, tags).await },
        )
        .await
    }
    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()> {
        let run_id = run_id.to_owned();
        self.shielded(|s| async move { tracking::log_inputs(&s, &run_id, datasets, models).await })
            .await
    }
    async fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> Result<()> {
        let run_id = run_id.to_owned();
        self.shielded(|s| async move { tracking::log_outputs(&s, &run_id, models).await })
            .await
    }
    async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>> {
        tracking::get_metric_history(self, run_id, key, max_results, page_token).await
    }

    async fn create_registered_model(&self, req: CreateRegisteredModel) -> Result<RegisteredModel> {
        self.shielded(|s| async move { registry::create_registered_model(&s, req).await })
            .await
    }
    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        registry::get_registered_model(self, name).await
    }
    async fn rename_registered_model(&self, name: &str, new_name: &str) -> Result<RegisteredModel> {
        let name = name.to_owned();
        let new_name = new_name.to_owned();
        self.shielded(
            |s| async move { registry::rename_registered_model(&s, &name, &new_name).await },
        )
        .await
    }
    async fn update_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<RegisteredModel> {
        let name = name.to_owned();
        let description = description.map(str::to_owned);
        self.shielded(|s| async move {
            registry::update_registered_model(&s, &name, description.as_deref()).await
        })
        .await
    }
    async fn delete_registered_model(&self, name: &str, actor: &str) -> Result<Vec<AliasEvent>> {
        let name = name.to_owned();
        let actor = actor.to_owned();
        self.shielded(|s| async move { registry::delete_registered_model(&s, &name, &actor).await })
            .await
    }
    async fn search_registered_models(&self, req: SearchQuery) -> Result<Page<RegisteredModel>> {
        registry::search_registered_models(self, req).await
    }
    async fn set_registered_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()> {
        let name = name.to_owned();
        let key = key.to_owned();
        let value = value.to_owned();
        self.shielded(|s| async move {
            registry::set_registered_model_tag(&s, &name, &key, &value).await
        })
        .await
    }
    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        let name = name.to_owned();
        let key = key.to_owned();
        self.shielded(
            |s| async move { registry::delete_registered_model_tag(&s, &name, &key).await },
        )
        .await
    }
    async fn get_latest_versions(
        &self,
        name: &str,
        stages: &[String],
    ) -> Result<Vec<ModelVersion>> {
        registry::get_latest_versions(self, name, stages).await
    }

    async fn create_model_version(&self, req: CreateModelVersion) -> Result<ModelVersion> {
        self.shielded(|s| async move { registry::create_model_version(&s, req).await })
            .await
    }
    async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        registry::get_model_version(self, name, version).await
    }
    async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: Option<&str>,
    ) -> Result<ModelVersion> {
        let name = name.to_owned();
        let version = version.to_owned();
        let description = description.map(str::to_owned);
        self.shielded(|s| async move {
            registry::update_model_version(&s, &name, &version, description.as_deref()).await
        })
        .await
    }
    async fn delete_model_version(
        &self,
        name: &str,
        version: &str,
        actor: &str,
    ) -> Result<Vec<AliasEvent>> {
        let name = name.to_owned();
        let version = version.to_owned();
        let actor = actor.to_owned();
        self.shielded(|s| async move {
            registry::delete_model_version(&s, &name, &version, &actor).await
        })
        .await
    }
    async fn search_model_versions(&self, req: SearchQuery) -> Result<Page<ModelVersion>> {
        registry::search_model_versions(self, req).await
    }
    async fn get_model_version_download_uri(&self, name: &str, version: &str) -> Result<String> {
        registry::get_model_version_download_uri(self, name, version).await
    }
    async fn set_model_version_tag(
        &self,
        name: &str,
        version: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        let name = name.to_owned();
        let version = version.to_owned();
        let key = key.to_owned();
        let value = value.to_owned();
        self.shielded(|s| async move {
            registry::set_model_version_tag(&s, &name, &version, &key, &value).await
        })
        .await
    }
    async fn delete_model_version_tag(&self, name: &str, version: &str, key: &str) -> Result<()> {
        let name = name.to_owned();
        let version = version.to_owned();
        let key = key.to_owned();
        self.shielded(|s| async move {
            registry::delete_model_version_tag(&s, &name, &version, &key).await
        })
        .await
    }
    async fn transition_model_version_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing_versions: bool,
    ) -> Result<StageTransition> {
        let name = name.to_owned();
        let version = version.to_owned();
        let stage = stage.to_owned();
        self.shielded(|s| async move {
            registry::transition_model_version_stage(
                &s,
                &name,
                &version,
                &stage,
                archive_existing_versions,
            )
            .await
        })
        .await
    }

    async fn set_registered_model_alias(&self, req: SetAlias) -> Result<AliasEvent> {
        self.shielded(|s| async move { registry::set_alias(&s, req).await })
            .await
    }
    async fn delete_registered_model_alias(
        &self,
        name: &str,
        alias: &str,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<AliasEvent> {
        let name = name.to_owned();
        let alias = alias.to_owned();
        let actor = actor.to_owned();
        let reason = reason.map(str::to_owned);
        self.shielded(|s| async move {
            registry::delete_alias(&s, &name, &alias, &actor, reason.as_deref()).await
        })
        .await
    }
    async fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        registry::get_model_version_by_alias(self, name, alias).await
    }
    async fn list_alias_history(
        &self,
        name: &str,
        alias: Option<&str>,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<AliasEvent>> {
        registry::list_alias_history(self, name, alias, max_results, page_token).await
    }
    async fn alias_events_since(&self, after_id: i64, limit: i64) -> Result<Vec<AliasEvent>> {
        registry::alias_events_since(self, after_id, limit).await
    }

    async fn create_logged_model(&self, req: CreateLoggedModel) -> Result<LoggedModel> {
        self.shielded(|s| async move { logged::create_logged_model(&s, req).await })
            .await
    }
    async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        logged::get_logged_model(self, model_id).await
    }
    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        let model_id = model_id.to_owned();
        self.shielded(|s| async move { logged::finalize_logged_model(&s, &model_id, status).await })
            .await
    }
    async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        let model_id = model_id.to_owned();
        self.shielded(|s| async move { logged::delete_logged_model(&s, &model_id).await })
            .await
    }
    async fn search_logged_models(&self, req: SearchLoggedModels) -> Result<Page<LoggedModel>> {
        logged::search_logged_models(self, req).await
    }
    async fn set_logged_model_tags(
        &self,
        model_id: &str,
        tags: Vec<LoggedModelTag>,
    ) -> Result<LoggedModel> {
        let model_id = model_id.to_owned();
        self.shielded(|s| async move { logged::set_logged_model_tags(&s, &model_id, tags).await })
            .await
    }
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        let model_id = model_id.to_owned();
        let key = key.to_owned();
        self.shielded(|s| async move { logged::delete_logged_model_tag(&s, &model_id, &key).await })
            .await
    }
    async fn log_logged_model_params(
        &self,
        model_id: &str,
        params: Vec<LoggedModelParameter>,
    ) -> Result<()> {
        let model_id = model_id.to_owned();
        self.shielded(
            |s| async move { logged::log_logged_model_params(&s, &model_id, params).await },
        )
        .await
    }

    async fn submit_job(&self, req: SubmitJob) -> Result<Job> {
        self.shielded(|s| async move { jobs::submit_job(&s, req).await })
            .await
    }
    async fn get_job(&self, job_id: &str) -> Result<Job> {
        jobs::get_job(self, job_id).await
    }
    async fn list_jobs(&self, req: ListJobs) -> Result<Page<Job>> {
        jobs::list_jobs(self, req).await
    }
    async fn lease_job(&self, req: LeaseRequest) -> Result<Option<(Job, String)>> {
        self.shielded(|s| async move { jobs::lease_job(&s, req).await })
            .await
    }
    async fn reap_cancelled_jobs(&self) -> Result<Vec<Job>> {
        self.shielded(|s| async move { jobs::reap_cancelled_jobs(&s).await })
            .await
    }
    async fn heartbeat_job(
        &self,
        job_id: &str,
        lease_token: &str,
        lease_ms: i64,
        progress: Option<serde_json::Value>,
        checkpoint_uri: Option<String>,
    ) -> Result<HeartbeatReply> {
        let job_id = job_id.to_owned();
        let lease_token = lease_token.to_owned();
        self.shielded(|s| async move {
            jobs::heartbeat_job(
                &s,
                &job_id,
                &lease_token,
                lease_ms,
                progress,
                checkpoint_uri,
            )
            .await
        })
        .await
    }
    async fn set_job_run(&self, job_id: &str, lease_token: &str, run_id: &str) -> Result<Job> {
        let job_id = job_id.to_owned();
        let lease_token = lease_token.to_owned();
        let run_id = run_id.to_owned();
        self.shielded(
            |s| async move { jobs::set_job_run(&s, &job_id, &lease_token, &run_id).await },
        )
        .await
    }
    async fn finish_job(&self, job_id: &str, lease_token: &str, req: FinishJob) -> Result<Job> {
        let job_id = job_id.to_owned();
        let lease_token = lease_token.to_owned();
        self.shielded(|s| async move { jobs::finish_job(&s, &job_id, &lease_token, req).await })
            .await
    }
    async fn cancel_job(&self, job_id: &str) -> Result<Job> {
        let job_id = job_id.to_owned();
        self.shielded(|s| async move { jobs::cancel_job(&s, &job_id).await })
            .await
    }
    async fn append_job_logs(
        &self,
        job_id: &str,
        lease_token: &str,
        lines: Vec<String>,
    ) -> Result<i64> {
        let job_id = job_id.to_owned();
        let lease_token = lease_token.to_owned();
        self.shielded(
            |s| async move { jobs::append_job_logs(&s, &job_id, &lease_token, lines).await },
        )
        .await
    }
    async fn job_logs(&self, job_id: &str, after_seq: i64, max: i64) -> Result<Vec<JobLogLine>> {
        jobs::job_logs(self, job_id, after_seq, max).await
    }

    async fn register_dataset(&self, req: RegisterDataset) -> Result<DatasetRecord> {
        self.shielded(|s| async move { datasets::register_dataset(&s, req).await })
            .await
    }
    async fn get_dataset(&self, name: &str, version: Option<i64>) -> Result<DatasetRecord> {
        datasets::get_dataset(self, name, version).await
    }
    async fn list_datasets(&self, name: Option<&str>) -> Result<Vec<DatasetRecord>> {
        datasets::list_datasets(self, name).await
    }
}

/// Filter conditions shared by the searches: SQL for one comparison of a string column, a
/// numeric column, or a key/value child table (tags, params).
pub(crate) mod cond {
    use super::{Backend, Sql};
    use crate::error::{RegistryError, Result};
    use crate::store::search::{Op, Value};

    /// `col <op> value` for a text column (`=`, `!=`, `LIKE`, `ILIKE`, `IN`, `NOT IN`).
    pub fn string(
        sql: &mut Sql,
        backend: Backend,
        col: &str,
        key: &str,
        op: Op,
        value: &Value,
    ) -> Result<String> {
        Ok(match op {
            Op::Eq | Op::Ne => {
                let p = sql.arg(value.as_str(key)?);
                format!("{col} {} {p}", op.sql())
            }
            Op::Like => {
                let p = sql.arg(value.as_str(key)?);
                format!("{col} LIKE {p}")
            }
            Op::ILike => {
                let p = sql.arg(value.as_str(key)?);
                match backend {
                    Backend::Postgres => format!("{col} ILIKE {p}"),
                    Backend::Sqlite => format!("LOWER({col}) LIKE LOWER({p})"),
                }
            }
            Op::In | Op::NotIn => {
                let Value::List(items) = value else {
                    return Err(RegistryError::invalid(format!(
                        "Expected a list of values for '{key}'"
                    )));
                };
                if items.is_empty() {
                    return Ok(if op == Op::In { "1 = 0" } else { "1 = 1" }.into());
                }
                let ph = sql.list(items.iter().map(String::as_str));
                format!("{col} {} ({ph})", op.sql())
            }
            _ => {
                return Err(RegistryError::invalid(format!(
                    "Invalid comparator '{}' for '{key}'; use one of =, !=, LIKE, ILIKE, IN, \
                     NOT IN",
                    op.sql()
                )));
            }
        })
    }

    /// `col <op> value` for a numeric column (`=`, `!=`, `<`, `<=`, `>`, `>=`).
    pub fn number(sql: &mut Sql, col: &str, key: &str, op: Op, value: &Value) -> Result<String> {
        match op {
            Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                let n = value.as_num(key)?;
                let p = if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    sql.arg(n as i64)
                } else {
                    sql.arg(n)
                };
                Ok(format!("{col} {} {p}", op.sql()))
            }
            _ => Err(RegistryError::invalid(format!(
                "Invalid comparator '{}' for '{key}'; use one of =, !=, <, <=, >, >=",
                op.sql()
            ))),
        }
    }

    /// A condition on a key/value child table (`tags`, `params`, ...) of the outer row:
    /// `EXISTS (... key = k AND value <op> v)`, or `NOT EXISTS` for `IS NULL`.
    #[allow(clippy::too_many_arguments)]
    pub fn key_value(
        sql: &mut Sql,
        backend: Backend,
        table: &str,
        fk: &str,
        outer: &str,
        key: &str,
        op: Op,
        value: &Value,
    ) -> Result<String> {
        let k = sql.arg(key);
        let head = format!("SELECT 1 FROM {table} kv WHERE kv.{fk} = {outer} AND kv.key = {k}");
        Ok(match op {
            Op::IsNull => format!("NOT EXISTS ({head})"),
            Op::IsNotNull => format!("EXISTS ({head})"),
            _ => {
                let c = string(sql, backend, "kv.value", key, op, value)?;
                format!("EXISTS ({head} AND {c})")
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        let (b, u, p) = database_url("sqlite:///var/lib/c/r.db").unwrap();
        assert_eq!(
            (b, u.as_str()),
            (Backend::Sqlite, "sqlite:///var/lib/c/r.db?mode=rwc")
        );
        assert_eq!(p.as_deref(), Some(std::path::Path::new("/var/lib/c/r.db")));
        let (_, u, _) = database_url("sqlite:////var/lib/c/r.db").unwrap();
        assert_eq!(u, "sqlite:///var/lib/c/r.db?mode=rwc");
        let (_, u, _) = database_url("sqlite://rel.db").unwrap();
        assert_eq!(u, "sqlite://rel.db?mode=rwc");
        let (_, u, _) = database_url("sqlite:///tmp/a b?#.db").unwrap();
        assert_eq!(u, "sqlite:///tmp/a b%3F%23.db?mode=rwc");
        let (b, u, _) = database_url("postgresql://u@h/db").unwrap();
        assert_eq!((b, u.as_str()), (Backend::Postgres, "postgresql://u@h/db"));
        assert_eq!(
            database_url("postgres://u@h/db").unwrap().0,
            Backend::Postgres
        );
        assert!(database_url("mysql://x").is_err());
        assert!(database_url("sqlite::memory:").is_err());
    }

    #[test]
    fn artifact_uris() {
        assert_eq!(join_uri("mlflow-artifacts:", &["1"]), "mlflow-artifacts:/1");
        assert_eq!(
            join_uri("mlflow-artifacts:/", &["1", "abc", "artifacts"]),
            "mlflow-artifacts:/1/abc/artifacts"
        );
        assert_eq!(
            join_uri("s3://bucket/prefix/", &["2"]),
            "s3://bucket/prefix/2"
        );
        assert_eq!(join_uri("file:///data", &["0"]), "file:///data/0");
    }
}
