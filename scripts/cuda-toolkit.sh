#!/usr/bin/env bash
# Assembles a CUDA 13.0 toolkit from NVIDIA's PyPI wheels (no root, no apt, no GPU needed), so that
# candle-core / candle-nn 0.11.1 with the `cuda` feature build on a machine without CUDA, and prints
# the environment to export for the build. Idempotent: a finished toolkit is reused.
#
#   exports="$(bash scripts/cuda-toolkit.sh)" && eval "$exports"   # (a failure is not hidden by eval)
#   cargo build --release --features cuda      # (in a crate that enables candle's "cuda")
#
# Why these pieces (candle-core 0.11.1 -> cudarc 0.19.10, candle-kernels 0.11.1 -> cudaforge 0.1.6):
#   * cudarc is built with "cuda-version-from-build-system" + "dynamic-linking": its build.rs runs
#     `nvcc --version` (13.0 -> cfg cuda-13000) and links -lcuda -lnvrtc -lcurand -lcublas -lcublasLt,
#     searching $CUDA_ROOT/{lib,lib/stubs,lib64,...}. So the link needs those .so files (real ones from
#     the wheels, plus a generated libcuda.so stub: the driver library exists only on GPU machines).
#   * candle-kernels compiles its .cu files with nvcc: PTX for the elementwise/reduce kernels
#     (JIT-compiled by the driver at run time) and a static libmoe.a for sm_$CUDA_COMPUTE_CAP, and links
#     -lcudart dynamically. It needs cuda_fp16/bf16/fp8.h, mma.h, cub/thrust (CCCL) and nvcc's cicc.
#   * CUDA 13.0 exactly, not newer: the H200 machines run driver 580 (CUDA 13.0), whose JIT rejects PTX
#     from a newer nvcc; and the binary then needs libcudart.so.13, libcublas(Lt).so.13, libnvrtc.so.13,
#     libcurand.so.10, which the GPU machine's PyTorch cu130 wheels provide.
#
# Notes: cudaforge turns CUDA_COMPUTE_CAP=90 into sm_90a (PTX and libmoe.a), so such a binary runs on
# H100/H200 only; candle-kernels' nvcc step alone takes ~10 min on 2 cores (the mmq_gguf instances).
#
# At run time on the GPU machine (PyTorch's wheels there hold the CUDA 13 libraries):
#   export LD_LIBRARY_PATH=$(ls -d /opt/torch/.venv/lib/python3*/site-packages/nvidia/cu13/lib):$LD_LIBRARY_PATH
# The driver's libcuda.so.1 comes from the system; never put this toolkit's lib/stubs on LD_LIBRARY_PATH.
#
# Overrides: CERULEAN_CUDA_ROOT (where the toolkit goes), CERULEAN_CUDA_WHEELS (wheel cache),
# CUDA_COMPUTE_CAP (default 90 = H100/H200).
set -euo pipefail

ROOT="${CERULEAN_CUDA_ROOT:-$HOME/.cache/cerulean/cuda-toolkit/13.0}"
WHEELS="${CERULEAN_CUDA_WHEELS:-$HOME/.cache/cerulean/cuda-wheels}"
CAP="${CUDA_COMPUTE_CAP:-90}"
PY="${PYTHON:-python3}"

# Pinned to the CUDA 13.0 generation (what PyTorch cu130 ships): nvcc/crt/nvvm/nvrtc 13.0.88,
# cudart 13.0.96, CCCL 13.0.85, cuBLAS 13.1.0.3, cuRAND 10.4.0.35 (~680 MB of wheels, ~1.2 GB unpacked).
# These are exactly the pins of the `cuda-toolkit==13.0.2` meta-package that torch 2.11.0 (cu130) requires.
PKGS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
  nvidia-cuda-nvrtc==13.0.88
  nvidia-cublas==13.1.0.3
  nvidia-curand==10.4.0.35
)

log() { printf 'cuda-toolkit: %s\n' "$*" >&2; }

if [ ! -f "$ROOT/.cerulean-complete" ]; then
  mkdir -p "$WHEELS"
  log "downloading ${#PKGS[@]} wheels into $WHEELS"
  "$PY" -m pip download -q --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
    -d "$WHEELS" "${PKGS[@]}" >&2

  mkdir -p "$(dirname "$ROOT")"
  tmp="$(mktemp -d "$ROOT.tmp.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  for p in "${PKGS[@]}"; do
    name="${p%%==*}"; ver="${p##*==}"
    whl=$(ls "$WHEELS/${name//-/_}-${ver}-"*.whl | head -1)
    log "unpacking $(basename "$whl")"
    "$PY" -m zipfile -e "$whl" "$tmp" >&2
  done
  t="$tmp/nvidia/cu13"
  # nvcc.profile looks for $(TOP)/targets/x86_64-linux/{include,lib}; cudaforge uses lib64.
  mkdir -p "$t/targets/x86_64-linux" "$t/lib/stubs"
  ln -sfn ../../include "$t/targets/x86_64-linux/include"
  ln -sfn ../../lib "$t/targets/x86_64-linux/lib"
  ln -sfn lib "$t/lib64"
  chmod +x "$t"/bin/* "$t"/nvvm/bin/* 2>/dev/null || true
  # Unversioned names for the linker (-lcublas etc.).
  for f in "$t"/lib/lib*.so.*; do
    b="$(basename "$f")"
    case "$b" in *.alt.*|libnvrtc-builtins*) continue ;; esac
    ln -sfn "$b" "$t/lib/${b%%.so.*}.so"
  done
  # Link-time stub of the driver library: every cu* entry point of CUDA 13.0's cuda.h (after its
  # _v2/_v3 renaming macros), plus any that cudarc's bindings name, with soname libcuda.so.1 so that the
  # real driver library is the one loaded at run time.
  {
    gcc -E -P -I"$t/include" -x c "$t/include/cuda.h" 2>/dev/null \
      | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | tr -d ' (\t' || true
    for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys; do
      # (an `if`, so that a registry without cudarc yet does not fail the pipeline under pipefail)
      if [ -f "$d/mod.rs" ]; then
        grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+' "$d/mod.rs" | awk '{print $4}'
      fi
    done
  } | sort -u | awk '{print "void " $1 "(void) {}"}' > "$tmp/libcuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$t/lib/stubs/libcuda.so" "$tmp/libcuda_stub.c"
  "$t/bin/nvcc" --version | grep -q 'release 13.0' || { log "nvcc does not report release 13.0"; exit 1; }
  touch "$t/.cerulean-complete"
  rm -rf "$ROOT"; mv "$t" "$ROOT"
  log "toolkit ready in $ROOT"
fi

cat <<EOF
export CUDA_ROOT="$ROOT"
export CUDA_HOME="$ROOT"
export CUDA_PATH="$ROOT"
export PATH="$ROOT/bin:\$PATH"
export CUDA_COMPUTE_CAP="$CAP"
export CUDARC_CUDA_VERSION=13000
EOF
