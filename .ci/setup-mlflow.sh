#!/usr/bin/env bash
# Creates (idempotently) the Python virtual environment holding the real
# `mlflow` 3.17.2 package and prints the path of its python. It serves two
# purposes:
#   - the client side of tests/python/mlflow_e2e.py (the stock `mlflow` client
#     driving Cerulean's MLflow-compatible registry), and
#   - the baseline of bench/registry/ (`mlflow server`, SQLite backend), which
#     is why the full `mlflow` package is installed and not `mlflow-skinny`.
#
#   bash .ci/setup-mlflow.sh            # venv at $HOME/.cache/cerulean/mlflow-venv
#   CERULEAN_MLFLOW_VENV=/some/dir bash .ci/setup-mlflow.sh
#
# The pinned requirements are hashed; when the venv already holds a stamp
# file with the same hash, nothing is reinstalled. Progress goes to stderr,
# so `PY=$(bash .ci/setup-mlflow.sh)` captures only the interpreter path, and
# `$(dirname "$PY")/mlflow server ...` starts the reference server.
set -euo pipefail

VENV="${CERULEAN_MLFLOW_VENV:-$HOME/.cache/cerulean/mlflow-venv}"
PYTHON="${PYTHON:-python3}"

# Pinned versions. `mlflow` pulls in mlflow-skinny and mlflow-tracing of the
# same version, plus pandas/numpy/cloudpickle that mlflow.pyfunc needs to log
# and load a PythonModel. No database driver is needed: the client speaks
# HTTP only, and the baseline server uses SQLite (in the standard library).
REQUIREMENTS="$(cat <<'EOF'
mlflow==3.17.2
mlflow-skinny==3.17.2
mlflow-tracing==3.17.2
EOF
)"

hash_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum | cut -d' ' -f1
    else
        "$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
    fi
}

REQ_HASH="$(printf '%s\n%s\n' "$("$PYTHON" -c 'import sys; print(sys.version_info[:2])')" "$REQUIREMENTS" | hash_of)"
STAMP="$VENV/.cerulean-requirements.sha256"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$REQ_HASH" ]]; then
    echo "setup-mlflow: $VENV is up to date" >&2
else
    echo "setup-mlflow: preparing $VENV (mlflow is large; this takes a few minutes)" >&2
    if [[ ! -x "$VENV/bin/python" ]]; then
        mkdir -p "$(dirname "$VENV")"
        "$PYTHON" -m venv "$VENV" >&2
    fi
    rm -f "$STAMP"
    REQ_FILE="$(mktemp)"
    trap 'rm -f "$REQ_FILE"' EXIT
    printf '%s\n' "$REQUIREMENTS" >"$REQ_FILE"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ_FILE" >&2
    # Fail early if the environment does not import, or is not the pinned version.
    "$VENV/bin/python" - >&2 <<'EOF'
import mlflow, mlflow.pyfunc, mlflow.server, pandas, numpy  # noqa: F401
assert mlflow.__version__ == "3.17.2", mlflow.__version__
EOF
    [[ -x "$VENV/bin/mlflow" ]] || { echo "setup-mlflow: $VENV/bin/mlflow missing" >&2; exit 1; }
    printf '%s\n' "$REQ_HASH" >"$STAMP"
    echo "setup-mlflow: installed into $VENV" >&2
fi

echo "$VENV/bin/python"
