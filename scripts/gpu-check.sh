#!/usr/bin/env bash
# Prepares and runs the training issue's GPU check: a digits MLP job with `device = "cuda:0"`
# through a registry and a worker built with the `cuda` feature, the registered model served by
# `cerulean serve --candle-device cuda:0`, and (when its weights fit in .gpu/) an EfficientNet-Lite0
# transfer-learning job on digits rendered as PNG files.
#
#   bash scripts/gpu-check.sh prepare   # here (no GPU needed): CUDA 13.0 toolkit from PyPI wheels,
#                                       # `cerulean` built with --features cuda (~25 min on 2 cores),
#                                       # the binary and scikit-learn's digits (CSV) under .gpu/
#   bash scripts/gpu-check.sh run       # on the GPU machine, from the repository root with .gpu/
#                                       # carried: registry + CUDA worker + the job; prints the run
#
# `.gpu/` is git-ignored (add `/.gpu/` to .git/info/exclude); what travels is the binary, the data
# and the EfficientNet-Lite0 weights (18 MB; the device tool carries at most 64 MiB in all).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=.gpu

prepare() {
    # cudarc's sources first: the toolkit's libcuda stub also lists the entry points cudarc names.
    cargo fetch --locked
    # Two steps, so that a failing toolkit script stops here (`eval "$(...)"` would hide it).
    local exports
    exports="$(bash scripts/cuda-toolkit.sh)"
    eval "$exports"
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
    # The same digits as 8x8 grayscale PNG files in class folders (a pure-Python PNG writer).
    "$PY" - "$OUT_DIR/digit-images" <<'PYEOF'
import os, struct, sys, zlib
from sklearn.datasets import load_digits
def png(path, rows):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + bytes(int(v * 255 / 16) for v in row) for row in rows)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
d = load_digits()
for n, (image, label) in enumerate(zip(d.images, d.target)):
    folder = os.path.join(sys.argv[1], str(label))
    os.makedirs(folder, exist_ok=True)
    png(os.path.join(folder, f"{n:04d}.png"), image)
PYEOF
    local weights="${CERULEAN_HOME:-$HOME/.cache/cerulean/home}/models/efficientnet-lite0"
    if [ -f "$weights/efficientnet-lite0-57934424.pth" ]; then
        mkdir -p "$OUT_DIR/home/models/efficientnet-lite0"
        cp "$weights/efficientnet-lite0-57934424.pth" "$OUT_DIR/home/models/efficientnet-lite0/"
    fi
    du -sh "$OUT_DIR"; ls -la "$OUT_DIR"
}

run() {
    export LD_LIBRARY_PATH="$(ls -d /opt/torch/.venv/lib/python3*/site-packages/nvidia/cu13/lib 2>/dev/null | head -1):${LD_LIBRARY_PATH:-}"
    nvidia-smi -L || true
    local bin="$PWD/$OUT_DIR/cerulean" data="$PWD/$OUT_DIR/digits.csv" work
    work="$(mktemp -d)"
    export CERULEAN_HOME="$work/home" RUST_LOG=info
    if [ -d "$OUT_DIR/home/models" ]; then
        mkdir -p "$CERULEAN_HOME" && cp -r "$OUT_DIR/home/models" "$CERULEAN_HOME/"
    fi
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

    # The registered model served on the GPU by the candle backend.
    "$bin" serve --registry http://127.0.0.1:18080 --candle-device cuda:0 \
        --http-addr 127.0.0.1:18090 --grpc-addr 127.0.0.1:18091 >"$work/serve.log" 2>&1 &
    SERVE_PID=$!
    trap 'kill "$REGISTRY_PID" "$WORKER_PID" "$SERVE_PID" 2>/dev/null || true' EXIT
    local row ready=""
    row="$(sed -n 2p "$data" | cut -d, -f1-64)"
    for _ in $(seq 60); do
        if curl -sf http://127.0.0.1:18090/v2/models/digits-gpu/ready >/dev/null; then ready=1; break; fi
        sleep 1
    done
    echo "--- inference on the GPU (expected label: $(sed -n 2p "$data" | cut -d, -f65))"
    if [ -n "$ready" ]; then
        curl -s http://127.0.0.1:18090/v2/models/digits-gpu/infer -H 'Content-Type: application/json' \
            -d "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[1,64],\"data\":[$row]}],\"outputs\":[{\"name\":\"label\"}]}" \
            || status=1
        echo
    else
        echo "digits-gpu was not served within 60 s"; status=1
    fi

    # EfficientNet-Lite0 transfer learning on the GPU, when the weights came along.
    if [ -f "$CERULEAN_HOME/models/efficientnet-lite0/efficientnet-lite0-57934424.pth" ]; then
        cat >"$work/lite0.toml" <<TOML
name = "digits-lite0-gpu"
register_as = "digits-lite0-gpu"
[dataset]
uri = "file://$PWD/$OUT_DIR/digit-images"
format = "image-folder"
validation_split = 0.2
[model]
family = "image-classifier"
architecture = "efficientnet-lite0"
image_size = 64
[train]
epochs = 30
batch_size = 64
learning_rate = 0.003
device = "cuda:0"
seed = 42
TOML
        timeout 300 "$bin" train submit "$work/lite0.toml" --wait --registry http://127.0.0.1:18080 || status=$?
    fi
    echo "--- worker log"; tail -60 "$work/worker.log"
    echo "--- serve log"; tail -20 "$work/serve.log"
    [ -n "${OUT:-}" ] && cp "$work"/*.log "$OUT/" 2>/dev/null || true
    return "$status"
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: bash scripts/gpu-check.sh prepare|run" >&2; exit 2 ;;
esac
