-- Metric history on SQLite moves from one indexed row per value (`metrics`, with its unique
-- identity index) to chunks: the background merge (see the store's `staging` module) now packs
-- the staged values of each series (a run's key) into one row per merge, whose `data` is a JSON
-- array of `[id, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest]`
-- entries (`id` is the staged row's id, which orders values as they were logged; `value` is
-- the value's exact text). One b-tree insert per series and merge instead of two
-- per value: with the identity index, merging 20,000 values held the writer for 90-270 ms.
-- Exact duplicates (MLflow's "identical entries are one") are dropped when history is read, the
-- first logged kept, as the identity index kept it. No foreign key: runs are never removed, and
-- the merge packs only values of runs that exist.
CREATE TABLE metric_chunks (
    id       INTEGER PRIMARY KEY,
    run_uuid TEXT    NOT NULL,
    key      TEXT    NOT NULL,
    first_id INTEGER NOT NULL,
    data     TEXT    NOT NULL
);
-- A series' chunks, found by the index (small entries); the chunks themselves are appended at the
-- table's end.
CREATE INDEX metric_chunks_series ON metric_chunks (run_uuid, key);

-- Staging ids now outlive the staged rows (they order values across chunks), so they must never
-- be reused once the merge empties the table: AUTOINCREMENT. The values already merged go back
-- to staging, ahead of those still staged (so the logging order, and with it which of exact
-- duplicates is kept, stays as it was); the merge at start-up packs them.
CREATE TABLE metrics_staging_new (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_uuid       TEXT    NOT NULL,
    key            TEXT    NOT NULL,
    value          REAL    NOT NULL,
    is_nan         INTEGER NOT NULL DEFAULT 0,
    timestamp      INTEGER NOT NULL,
    step           INTEGER NOT NULL DEFAULT 0,
    model_id       TEXT,
    dataset_name   TEXT,
    dataset_digest TEXT
);
INSERT INTO metrics_staging_new (run_uuid, key, value, is_nan, timestamp, step, model_id,
    dataset_name, dataset_digest)
SELECT run_uuid, key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest
FROM metrics ORDER BY id;
INSERT INTO metrics_staging_new (run_uuid, key, value, is_nan, timestamp, step, model_id,
    dataset_name, dataset_digest)
SELECT run_uuid, key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest
FROM metrics_staging ORDER BY id;
DROP TABLE metrics_staging;
ALTER TABLE metrics_staging_new RENAME TO metrics_staging;
DROP TABLE metrics;

-- `latest_metrics` without a rowid: its primary key is the table, so moving a latest value
-- updates one b-tree (and the (key, value) index) instead of the key's index and the rowid table.
CREATE TABLE latest_metrics_new (
    run_uuid  TEXT    NOT NULL REFERENCES runs (run_uuid) ON DELETE CASCADE,
    key       TEXT    NOT NULL,
    value     REAL    NOT NULL,
    is_nan    INTEGER NOT NULL DEFAULT 0,
    timestamp INTEGER NOT NULL,
    step      INTEGER NOT NULL,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;
INSERT INTO latest_metrics_new (run_uuid, key, value, is_nan, timestamp, step)
SELECT run_uuid, key, value, is_nan, timestamp, step FROM latest_metrics;
DROP TABLE latest_metrics;
ALTER TABLE latest_metrics_new RENAME TO latest_metrics;
CREATE INDEX latest_metrics_key_value ON latest_metrics (key, value);
