-- New metric values are appended here first (see the store's `staging` module): a plain rowid
-- table, no secondary index, so a commit of a batch of values dirties a few pages at its end
-- instead of one page of `metrics_identity` per (run, key). A background merge moves them into
-- `metrics` (exact duplicates dropped, as the identity index drops them) in one transaction,
-- and every read of metric history reads `metrics` and these rows together. The columns are
-- those of `metrics`; `id` is the rowid, which orders the values as they were logged. No
-- foreign key: the merge moves only values of runs that exist.
CREATE TABLE metrics_staging (
    id             INTEGER PRIMARY KEY,
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
