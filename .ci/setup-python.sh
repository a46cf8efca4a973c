#!/usr/bin/env bash
# Creates (idempotently) the Python virtual environment used by Cerulean's
# end-to-end tests (tests/python/) and prints the path of its python.
#
#   bash .ci/setup-python.sh            # venv at $HOME/.cache/cerulean/venv
#   CERULEAN_VENV=/some/dir bash .ci/setup-python.sh
#
# The pinned requirements are hashed; when the venv already holds a stamp
# file with the same hash, nothing is reinstalled. Progress goes to stderr,
# so `PY=$(bash .ci/setup-python.sh)` captures only the interpreter path.
set -euo pipefail

VENV="${CERULEAN_VENV:-$HOME/.cache/cerulean/venv}"
PYTHON="${PYTHON:-python3}"

# Pinned versions. numpy 2.x is supported by onnx 1.23, onnxruntime 1.31 and
# tritonclient 2.73; ml_dtypes supplies the bfloat16 numpy dtype.
# azure-ai-textanalytics 5.4.0 (the latest 5.x) is the Azure AI Language client that
# tests/python/language_e2e.py drives against the /language and /text/analytics routes.
# scikit-learn ships the real datasets (digits, breast cancer) the training tests learn from.
REQUIREMENTS="$(cat <<'EOF'
tritonclient[http,grpc]==2.73.0
onnx==1.23.2
onnxruntime==1.31.1
numpy==2.3.5
ml_dtypes==0.5.4
azure-ai-textanalytics==5.4.0
scikit-learn==1.9.1
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
    echo "setup-python: $VENV is up to date" >&2
else
    echo "setup-python: preparing $VENV" >&2
    if [[ ! -x "$VENV/bin/python" ]]; then
        mkdir -p "$(dirname "$VENV")"
        "$PYTHON" -m venv "$VENV" >&2
    fi
    rm -f "$STAMP"
    REQ_FILE="$(mktemp)"
    trap 'rm -f "$REQ_FILE"' EXIT
    printf '%s\n' "$REQUIREMENTS" >"$REQ_FILE"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ_FILE" >&2
    # Fail early if the environment does not import.
    "$VENV/bin/python" -c 'import tritonclient.http, tritonclient.grpc, onnx, onnxruntime, numpy, ml_dtypes, azure.ai.textanalytics' >&2
    printf '%s\n' "$REQ_HASH" >"$STAMP"
    echo "setup-python: installed into $VENV" >&2
fi

echo "$VENV/bin/python"
