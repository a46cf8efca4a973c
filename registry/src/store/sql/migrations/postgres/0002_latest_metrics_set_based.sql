-- latest_metrics is kept by the store's own writes from here on: one set-based upsert per batch
-- of metrics (INSERT ... ON CONFLICT DO UPDATE ... WHERE the value is newer, with MLflow's rule:
-- the greatest (step, timestamp, value)), in the statement or transaction that appends the
-- values, instead of this trigger's upsert per inserted row.
DROP TRIGGER IF EXISTS metrics_latest ON metrics;
DROP FUNCTION IF EXISTS cerulean_metrics_latest();
