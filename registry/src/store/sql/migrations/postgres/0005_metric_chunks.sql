-- Nothing on PostgreSQL: metric history stays one row per value in `metrics` there. (SQLite packs
-- merged values into `metric_chunks`; the version is recorded on both backends so they count
-- migrations alike.)
SELECT 1;
