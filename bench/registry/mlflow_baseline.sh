#!/usr/bin/env bash
# Baseline of the registry benchmark: the real MLflow server (mlflow 3.17.2
# from PyPI) with a SQLite backend and its DEFAULT number of workers (4),
# driven by bench_registry.py with the same scenarios as Cerulean.
#
#   bash bench/registry/mlflow_baseline.sh [--json-out FILE] [any bench_registry.py flag]
#
# Environment: MLFLOW_BASELINE_PORT (default 5056), MLFLOW_BASELINE_WORKERS
# (default: unset, i.e. MLflow's default of 4), MLFLOW_BASELINE_DIR (default: a
# fresh temporary directory, removed at the end). The server is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PY="$(bash "$ROOT/.ci/setup-mlflow.sh")"
MLFLOW="$(dirname "$PY")/mlflow"
PORT="${MLFLOW_BASELINE_PORT:-5056}"
if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
    echo "mlflow_baseline: something already answers on port $PORT; set MLFLOW_BASELINE_PORT" >&2
    exit 1
fi

DIR="${MLFLOW_BASELINE_DIR:-}"
if [[ -z "$DIR" ]]; then
    DIR="$(mktemp -d /tmp/mlflow-baseline.XXXXXX)"
    CLEAN_DIR=1
else
    mkdir -p "$DIR"
    CLEAN_DIR=0
fi
WORKER_ARGS=()
if [[ -n "${MLFLOW_BASELINE_WORKERS:-}" ]]; then
    WORKER_ARGS=(--workers "$MLFLOW_BASELINE_WORKERS")
fi

echo "mlflow_baseline: starting mlflow server $("$PY" -c 'import mlflow; print(mlflow.__version__)') on 127.0.0.1:$PORT (sqlite, ${MLFLOW_BASELINE_WORKERS:-default 4} workers) in $DIR" >&2
"$MLFLOW" server \
    --backend-store-uri "sqlite:///$DIR/mlflow.db" \
    --artifacts-destination "$DIR/artifacts" --serve-artifacts \
    --host 127.0.0.1 --port "$PORT" "${WORKER_ARGS[@]}" >"$DIR/server.log" 2>&1 &
SERVER_PID=$!
cleanup() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    if [[ "$CLEAN_DIR" == 1 ]]; then rm -rf "$DIR"; fi
}
trap cleanup EXIT

# MLflow takes 10-60 s to create its tables and start its workers.
for _ in $(seq 1 240); do
    if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "mlflow_baseline: the server exited; its log:" >&2
        cat "$DIR/server.log" >&2
        exit 1
    fi
    sleep 0.5
done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { echo "mlflow_baseline: no /health after 2 minutes" >&2; exit 1; }
echo "mlflow_baseline: up" >&2

# The server's pid is uvicorn's parent: --server-pid counts it and its workers.
python3 "$ROOT/bench/registry/bench_registry.py" --tracking-uri "http://127.0.0.1:$PORT" \
    --server-pid "$SERVER_PID" --label "mlflow server 3.17.2, sqlite, ${MLFLOW_BASELINE_WORKERS:-4 (default)} workers" "$@"
