#!/usr/bin/env bash
# Prepares and runs the training issue's GPU check: a digits MLP job with `device = "cuda:0"`
# through a registry and a worker built with the `cuda` feature.
#
#   bash scripts/gpu-check.sh prepare   # here (no GPU needed): CUDA 13.0 toolkit from PyPI wheels,
#                                       # `cerulean` built with --features cuda (~25 min on 2 cores),
#                                       # the binary and scikit-learn's digits (CSV) under .gpu/
#   bash scripts/gpu-check.sh run       # on the GPU machine, from the repository root with .gpu/
#                                       # carried: registry + CUDA worker + the job; prints the run
#
# `.gpu/` is git-ignored (add `/.gpu/` to .git/info/exclude); what travels is the binary and the data.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=.gpu

prepare() {
    eval "$(bash scripts/cuda-toolkit.sh)"
    export CARGO_TARGET_DIR="${CERULEAN_CUDA_TARGET:-$HOME/.cache/cerulean-cuda-target}"
    cargo build --release -p cerulean --features cuda
    mkdir -p "$OUT_DIR"
    cp "$CARGO_TARGET_DIR/release/cerulean" "$OUT_DIR/cerulean"
    strip "$OUT_DIR/cerulean" || true
    PY="$(bash .ci/setup-python.sh)"
    # scikit-learn's digits as CSV (the venv has no pyarrow; the lake reads CSV as well).
    "$PY" - "$OUT_DIR/digits.csv" <<'PYEOF'
import sys
from sklearn.datasets import load_digits
import numpy as np
d = load_digits()
path = sys.argv[1]
header = ",".join([f"pixel_{j}" for j in range(64)] + ["target"])
np.savetxt(path, np.column_stack([d.data, d.target]), delimiter=",", header=header, comments="", fmt="%g")
print(path)
PYEOF
    ls -la "$OUT_DIR"
}

run() {
    export LD_LIBRARY_PATH="$(ls -d /opt/torch/.venv/lib/python3*/site-packages/nvidia/cu13/lib 2>/dev/null | head -1):${LD_LIBRARY_PATH:-}"
    nvidia-smi -L || true
    local bin="$PWD/$OUT_DIR/cerulean" data="$PWD/$OUT_DIR/digits.csv" work
    work="$(mktemp -d)"
    export CERULEAN_HOME="$work/home" RUST_LOG=info
    "$bin" registry --http-addr 127.0.0.1:18080 \
        --backend-store-uri "sqlite://$work/registry.db" --artifacts-destination "$work/artifacts" \
        >"$work/registry.log" 2>&1 &
    REGISTRY_PID=$!
    "$bin" worker --registry http://127.0.0.1:18080 >"$work/worker.log" 2>&1 &
    WORKER_PID=$!
    trap 'kill "$REGISTRY_PID" "$WORKER_PID" 2>/dev/null || true' EXIT
    sleep 2
    cat >"$work/job.toml" <<TOML
name = "digits-mlp-gpu"
experiment = "digits"
register_as = "digits-gpu"
[dataset]
uri = "file://$data"
format = "csv"
label = "target"
validation_split = 0.2
[model]
family = "mlp"
hidden = [64, 32]
[train]
epochs = 30
batch_size = 64
learning_rate = 0.001
device = "cuda:0"
seed = 42
TOML
    local status=0
    timeout 300 "$bin" train submit "$work/job.toml" --wait --registry http://127.0.0.1:18080 || status=$?
    echo "--- worker log"; tail -40 "$work/worker.log"
    [ -n "${OUT:-}" ] && cp "$work"/*.log "$OUT/" 2>/dev/null || true
    return "$status"
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: bash scripts/gpu-check.sh prepare|run" >&2; exit 2 ;;
esac
