-- Nothing on PostgreSQL: metric values go straight into `metrics` there. (SQLite stages them in
-- `metrics_staging`; the version is recorded on both backends so they count migrations alike.)
SELECT 1;
