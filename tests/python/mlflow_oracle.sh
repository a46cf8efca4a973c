#!/usr/bin/env bash
# Runs tests/python/mlflow_e2e.py against the REAL MLflow server (3.17.2 from
# PyPI, SQLite backend, proxied local artifacts), to confirm that every check
# is a faithful description of MLflow's behaviour. Extra arguments go to
# mlflow_e2e.py (e.g. -k SUBSTRING, --verbose).
#
#   bash tests/python/mlflow_oracle.sh
#
# Environment: MLFLOW_ORACLE_PORT (default 5055). The server runs with
# --workers 1 in a fresh temporary directory and is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PY="$(bash "$ROOT/.ci/setup-mlflow.sh")"
MLFLOW="$(dirname "$PY")/mlflow"
PORT="${MLFLOW_ORACLE_PORT:-5055}"

if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
    echo "mlflow_oracle: something already answers on port $PORT; set MLFLOW_ORACLE_PORT" >&2
    exit 1
fi
DIR="$(mktemp -d /tmp/mlflow-oracle.XXXXXX)"
"$MLFLOW" server --backend-store-uri "sqlite:///$DIR/mlf.db" \
    --artifacts-destination "$DIR/artifacts" --serve-artifacts \
    --host 127.0.0.1 --port "$PORT" --workers 1 >"$DIR/server.log" 2>&1 &
SERVER_PID=$!
cleanup() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

for _ in $(seq 1 240); do  # up to 2 minutes
    if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$DIR/server.log" >&2; exit 1; fi
    sleep 0.5
done

"$PY" "$ROOT/tests/python/mlflow_e2e.py" --tracking-uri "http://127.0.0.1:$PORT" \
    --artifact-check-dir "$DIR/artifacts" "$@"
