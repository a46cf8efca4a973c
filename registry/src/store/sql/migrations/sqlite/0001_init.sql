-- Cerulean registry metadata, SQLite. Applied once, inside a transaction, tracked in
-- cerulean_migrations. Integers are INTEGER (64-bit), doubles REAL, text TEXT; flags are 0/1.

CREATE TABLE experiments (
    experiment_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT    NOT NULL UNIQUE,
    artifact_location TEXT    NOT NULL,
    lifecycle_stage   TEXT    NOT NULL DEFAULT 'active',
    creation_time     INTEGER,
    last_update_time  INTEGER,
    deleted_time      INTEGER
);

CREATE TABLE experiment_tags (
    experiment_id INTEGER NOT NULL REFERENCES experiments (experiment_id) ON DELETE CASCADE,
    key           TEXT    NOT NULL,
    value         TEXT    NOT NULL,
    PRIMARY KEY (experiment_id, key)
);

CREATE TABLE runs (
    run_uuid        TEXT    NOT NULL PRIMARY KEY,
    experiment_id   INTEGER NOT NULL REFERENCES experiments (experiment_id),
    name            TEXT    NOT NULL DEFAULT '',
    user_id         TEXT    NOT NULL DEFAULT '',
    status          TEXT    NOT NULL,
    start_time      INTEGER,
    end_time        INTEGER,
    deleted_time    INTEGER,
    artifact_uri    TEXT    NOT NULL,
    lifecycle_stage TEXT    NOT NULL DEFAULT 'active'
);
CREATE INDEX runs_experiment_start ON runs (experiment_id, start_time DESC, run_uuid);

-- Every metric value ever logged; an exact duplicate (same key, timestamp, step, value) is
-- dropped. NaN cannot be stored in a REAL (SQLite turns it into NULL): it is value 0, is_nan 1.
CREATE TABLE metrics (
    id             INTEGER PRIMARY KEY,
    run_uuid       TEXT    NOT NULL REFERENCES runs (run_uuid) ON DELETE CASCADE,
    key            TEXT    NOT NULL,
    value          REAL    NOT NULL,
    is_nan         INTEGER NOT NULL DEFAULT 0,
    timestamp      INTEGER NOT NULL,
    step           INTEGER NOT NULL DEFAULT 0,
    model_id       TEXT,
    dataset_name   TEXT,
    dataset_digest TEXT
);
CREATE UNIQUE INDEX metrics_identity ON metrics (run_uuid, key, timestamp, step, value, is_nan);

-- The latest value per (run, key): the greatest (step, timestamp, value), as MLflow keeps it.
CREATE TABLE latest_metrics (
    run_uuid  TEXT    NOT NULL REFERENCES runs (run_uuid) ON DELETE CASCADE,
    key       TEXT    NOT NULL,
    value     REAL    NOT NULL,
    is_nan    INTEGER NOT NULL DEFAULT 0,
    timestamp INTEGER NOT NULL,
    step      INTEGER NOT NULL,
    PRIMARY KEY (run_uuid, key)
);
CREATE INDEX latest_metrics_key_value ON latest_metrics (key, value);

-- Kept by the database itself, so one INSERT into metrics is one atomic statement.
CREATE TRIGGER metrics_latest AFTER INSERT ON metrics
BEGIN
    INSERT INTO latest_metrics (run_uuid, key, value, is_nan, timestamp, step)
    VALUES (NEW.run_uuid, NEW.key, NEW.value, NEW.is_nan, NEW.timestamp, NEW.step)
    ON CONFLICT (run_uuid, key) DO UPDATE SET
        value = excluded.value,
        is_nan = excluded.is_nan,
        timestamp = excluded.timestamp,
        step = excluded.step
    WHERE excluded.step > latest_metrics.step
       OR (excluded.step = latest_metrics.step AND excluded.timestamp > latest_metrics.timestamp)
       OR (excluded.step = latest_metrics.step AND excluded.timestamp = latest_metrics.timestamp
           AND excluded.value > latest_metrics.value);
END;

CREATE TABLE params (
    run_uuid TEXT NOT NULL REFERENCES runs (run_uuid) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);
CREATE INDEX params_key_value ON params (key, value);

CREATE TABLE tags (
    run_uuid TEXT NOT NULL REFERENCES runs (run_uuid) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);
CREATE INDEX tags_key_value ON tags (key, value);

CREATE TABLE datasets (
    dataset_uuid  TEXT    NOT NULL PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments (experiment_id),
    name          TEXT    NOT NULL,
    digest        TEXT    NOT NULL,
    source_type   TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    schema        TEXT,
    profile       TEXT,
    UNIQUE (experiment_id, name, digest)
);

CREATE TABLE run_dataset_inputs (
    run_uuid     TEXT    NOT NULL REFERENCES runs (run_uuid) ON DELETE CASCADE,
    dataset_uuid TEXT    NOT NULL REFERENCES datasets (dataset_uuid),
    seq          INTEGER NOT NULL,
    PRIMARY KEY (run_uuid, dataset_uuid)
);
CREATE INDEX run_dataset_inputs_dataset ON run_dataset_inputs (dataset_uuid);

CREATE TABLE input_tags (
    run_uuid     TEXT NOT NULL,
    dataset_uuid TEXT NOT NULL,
    key          TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (run_uuid, dataset_uuid, key),
    FOREIGN KEY (run_uuid, dataset_uuid) REFERENCES run_dataset_inputs (run_uuid, dataset_uuid)
        ON DELETE CASCADE
);

-- Logged models a run used (direction 'input') or produced ('output').
CREATE TABLE run_models (
    run_uuid  TEXT    NOT NULL REFERENCES runs (run_uuid) ON DELETE CASCADE,
    direction TEXT    NOT NULL,
    model_id  TEXT    NOT NULL,
    step      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_uuid, direction, model_id, step)
);

CREATE TABLE registered_models (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    name                   TEXT    NOT NULL UNIQUE,
    creation_timestamp     INTEGER NOT NULL,
    last_updated_timestamp INTEGER NOT NULL,
    user_id                TEXT,
    description            TEXT,
    -- The next version number to hand out; only ever increases, so numbers are never reused.
    next_version           INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE registered_model_tags (
    rm_id INTEGER NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    key   TEXT    NOT NULL,
    value TEXT    NOT NULL,
    PRIMARY KEY (rm_id, key)
);

CREATE TABLE model_versions (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    rm_id                  INTEGER NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    version                INTEGER NOT NULL,
    creation_timestamp     INTEGER NOT NULL,
    last_updated_timestamp INTEGER NOT NULL,
    user_id                TEXT,
    current_stage          TEXT    NOT NULL DEFAULT 'None',
    description            TEXT,
    source                 TEXT    NOT NULL,
    run_id                 TEXT,
    run_link               TEXT    NOT NULL DEFAULT '',
    status                 TEXT    NOT NULL DEFAULT 'READY',
    status_message         TEXT,
    model_id               TEXT,
    UNIQUE (rm_id, version)
);
CREATE INDEX model_versions_run ON model_versions (run_id);

CREATE TABLE model_version_tags (
    mv_id INTEGER NOT NULL REFERENCES model_versions (id) ON DELETE CASCADE,
    key   TEXT    NOT NULL,
    value TEXT    NOT NULL,
    PRIMARY KEY (mv_id, key)
);

CREATE TABLE registered_model_aliases (
    rm_id   INTEGER NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    alias   TEXT    NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (rm_id, alias)
);

-- Every alias move (Cerulean extension). Not tied by a foreign key: history outlives deletes.
CREATE TABLE alias_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    rm_id        INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    alias        TEXT    NOT NULL,
    from_version INTEGER,
    to_version   INTEGER,
    actor        TEXT    NOT NULL,
    reason       TEXT    NOT NULL DEFAULT '',
    timestamp    INTEGER NOT NULL,
    implicit     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alias_events_model ON alias_events (rm_id, alias, id);

CREATE TABLE logged_models (
    model_id                  TEXT    NOT NULL PRIMARY KEY,
    experiment_id             INTEGER NOT NULL REFERENCES experiments (experiment_id),
    name                      TEXT    NOT NULL,
    artifact_location         TEXT    NOT NULL,
    creation_timestamp_ms     INTEGER NOT NULL,
    last_updated_timestamp_ms INTEGER NOT NULL,
    status                    INTEGER NOT NULL,
    status_message            TEXT,
    model_type                TEXT,
    source_run_id             TEXT,
    lifecycle_stage           TEXT    NOT NULL DEFAULT 'active'
);
CREATE INDEX logged_models_experiment ON logged_models (experiment_id, creation_timestamp_ms);

CREATE TABLE logged_model_tags (
    model_id TEXT NOT NULL REFERENCES logged_models (model_id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

CREATE TABLE logged_model_params (
    model_id TEXT NOT NULL REFERENCES logged_models (model_id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

CREATE TABLE logged_model_metrics (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id       TEXT    NOT NULL,
    key            TEXT    NOT NULL,
    value          REAL    NOT NULL,
    is_nan         INTEGER NOT NULL DEFAULT 0,
    timestamp      INTEGER NOT NULL,
    step           INTEGER NOT NULL,
    run_id         TEXT,
    dataset_name   TEXT,
    dataset_digest TEXT
);
CREATE INDEX logged_model_metrics_model ON logged_model_metrics (model_id, key);
