#!/usr/bin/env bash
# Creates (idempotently) the Python virtual environment that runs the KServe Python model server
# used as the comparison point by `cerulean-bench` (bench/python/kserve_server.py), and prints the
# path of its python.
#
#   bash bench/setup-kserve.sh            # venv at $HOME/.cache/cerulean/kserve-venv
#   KSERVE_VENV=/some/dir bash bench/setup-kserve.sh
#
# It is a separate venv from .ci/setup-python.sh's because kserve pins its own fastapi, grpcio,
# protobuf and numpy ranges. Progress goes to stderr, so `PY=$(bash bench/setup-kserve.sh)` captures
# only the interpreter path.
set -euo pipefail

VENV="${KSERVE_VENV:-$HOME/.cache/cerulean/kserve-venv}"
PYTHON="${PYTHON:-python3}"

# Pinned versions: kserve's server (FastAPI + uvicorn for REST, grpcio for gRPC), and the same
# onnxruntime as the Rust server loads, so both sides run the same kernels.
REQUIREMENTS="$(cat <<'EOF'
kserve==0.21.0
onnxruntime==1.31.1
numpy==2.3.5
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
    echo "setup-kserve: $VENV is up to date" >&2
else
    echo "setup-kserve: creating $VENV" >&2
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
    printf '%s\n' "$REQUIREMENTS" > "$VENV/requirements.txt"
    "$VENV/bin/python" -m pip install --quiet -r "$VENV/requirements.txt" >&2
    echo "$REQ_HASH" > "$STAMP"
fi
echo "$VENV/bin/python"
