-- The training-job queue, its logs, and the dataset register (Cerulean's own tables, beside
-- MLflow's). JSON documents (spec, result, progress, schema) are TEXT; flags are 0/1.

-- `id` orders the queue (oldest first for leasing, newest first for listing); `job_id` is the
-- public id. `lease_token` changes with every lease: a worker whose token is no longer the
-- current one has lost the job. `log_seq` is the number of the job's last log line.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id           TEXT    NOT NULL UNIQUE,
    name             TEXT    NOT NULL,
    experiment       TEXT,
    status           TEXT    NOT NULL,
    spec             TEXT    NOT NULL,
    spec_text        TEXT,
    run_id           TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_token      TEXT,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    ended_at         INTEGER,
    error            TEXT,
    error_context    TEXT,
    checkpoint_uri   TEXT,
    result           TEXT,
    requires_gpu     INTEGER NOT NULL DEFAULT 0,
    progress         TEXT,
    log_seq          INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX jobs_status ON jobs (status, id);

CREATE TABLE job_logs (
    job_id    TEXT    NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    line      TEXT    NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- MLflow's `datasets` table holds the datasets runs logged as inputs; this is Cerulean's register
-- of named, versioned datasets in the lake.
CREATE TABLE registered_datasets (
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    uri         TEXT    NOT NULL,
    format      TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    schema_json TEXT,
    row_count   INTEGER,
    created_at  INTEGER NOT NULL,
    description TEXT,
    PRIMARY KEY (name, version)
);
