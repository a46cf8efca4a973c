#!/usr/bin/env python3
"""Write the Triton-layout model repository used by Cerulean's end-to-end tests.

Usage (with the venv made by .ci/setup-python.sh):

    PY=$(bash .ci/setup-python.sh)
    $PY tests/python/make_fixtures.py OUTDIR           # write the repository
    $PY tests/python/make_fixtures.py OUTDIR --check   # write, then run every
                                                       # model in onnxruntime

Everything is built with the `onnx` helper API (opset 17, IR version 8) from a
fixed seed, so the same files come out on every run. Layout:

    OUTDIR/identity_<dt>/1/model.onnx   INPUT0 [-1,-1] -> Identity -> OUTPUT0,
                                        for every dt in DTYPES; no config.pbtxt
                                        (the server must auto-complete it)
    OUTDIR/mlp/{1,2}/model.onnx         FP32 [-1,16] -> MatMul+Add -> Relu ->
    OUTDIR/mlp/config.pbtxt             MatMul+Add -> FP32 [-1,4]; versions 1
                                        and 2 differ in weights; dynamic
                                        batching, 2 CPU instances, all versions
    OUTDIR/simple/1/model.onnx          INT32 INPUT0, INPUT1 [-1,16] ->
    OUTDIR/simple/config.pbtxt          OUTPUT0 = a + b, OUTPUT1 = a - b
    OUTDIR/broken/1/model.onnx          garbage bytes: must load as UNAVAILABLE

Note on bf16: onnxruntime's CPU provider has an Identity kernel for bfloat16,
but its Python numpy bridge cannot convert bfloat16 arrays, so --check feeds
and reads that model through OrtValue raw buffers.
"""

import argparse
import ctypes
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
SEED = 20240611

# Fixture name suffix -> (ONNX element type, KServe/Triton datatype, config type).
DTYPES = {
    "bool": (TensorProto.BOOL, "BOOL", "TYPE_BOOL"),
    "uint8": (TensorProto.UINT8, "UINT8", "TYPE_UINT8"),
    "uint16": (TensorProto.UINT16, "UINT16", "TYPE_UINT16"),
    "uint32": (TensorProto.UINT32, "UINT32", "TYPE_UINT32"),
    "uint64": (TensorProto.UINT64, "UINT64", "TYPE_UINT64"),
    "int8": (TensorProto.INT8, "INT8", "TYPE_INT8"),
    "int16": (TensorProto.INT16, "INT16", "TYPE_INT16"),
    "int32": (TensorProto.INT32, "INT32", "TYPE_INT32"),
    "int64": (TensorProto.INT64, "INT64", "TYPE_INT64"),
    "fp16": (TensorProto.FLOAT16, "FP16", "TYPE_FP16"),
    "bf16": (TensorProto.BFLOAT16, "BF16", "TYPE_BF16"),
    "fp32": (TensorProto.FLOAT, "FP32", "TYPE_FP32"),
    "fp64": (TensorProto.DOUBLE, "FP64", "TYPE_FP64"),
    "bytes": (TensorProto.STRING, "BYTES", "TYPE_STRING"),
}

MLP_IN, MLP_HIDDEN, MLP_OUT = 16, 32, 4
MLP_MAX_BATCH = 8
SIMPLE_WIDTH = 16

MLP_CONFIG = """\
name: "mlp"
platform: "onnxruntime_onnx"
max_batch_size: 8
version_policy: { all { } }
input [
  {
    name: "INPUT0"
    data_type: TYPE_FP32
    dims: [ 16 ]
  }
]
output [
  {
    name: "OUTPUT0"
    data_type: TYPE_FP32
    dims: [ 4 ]
  }
]
dynamic_batching {
  max_queue_delay_microseconds: 20000
}
instance_group [
  {
    count: 2
    kind: KIND_CPU
  }
]
"""

SIMPLE_CONFIG = """\
name: "simple"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [
  {
    name: "INPUT0"
    data_type: TYPE_INT32
    dims: [ 16 ]
  },
  {
    name: "INPUT1"
    data_type: TYPE_INT32
    dims: [ 16 ]
  }
]
output [
  {
    name: "OUTPUT0"
    data_type: TYPE_INT32
    dims: [ 16 ]
  },
  {
    name: "OUTPUT1"
    data_type: TYPE_INT32
    dims: [ 16 ]
  }
]
"""

# Not an ONNX protobuf: a truncated varint field, then text.
BROKEN_BYTES = b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xffthis is not an onnx model\n"


def _model(graph):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="cerulean-fixtures",
        producer_version="1",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def identity_model(elem_type):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])],
        "identity",
        [helper.make_tensor_value_info("INPUT0", elem_type, ["batch", "n"])],
        [helper.make_tensor_value_info("OUTPUT0", elem_type, ["batch", "n"])],
    )
    return _model(graph)


def mlp_weights(version):
    """The (w1, b1, w2, b2) float32 weights of mlp version `version`."""
    rng = np.random.default_rng(SEED + version)
    w1 = (rng.standard_normal((MLP_IN, MLP_HIDDEN)) / np.sqrt(MLP_IN)).astype(np.float32)
    b1 = (0.1 * rng.standard_normal(MLP_HIDDEN)).astype(np.float32)
    w2 = (rng.standard_normal((MLP_HIDDEN, MLP_OUT)) / np.sqrt(MLP_HIDDEN)).astype(np.float32)
    b2 = (0.1 * rng.standard_normal(MLP_OUT)).astype(np.float32)
    return w1, b1, w2, b2


def mlp_model(version):
    w1, b1, w2, b2 = mlp_weights(version)
    initializers = [
        numpy_helper.from_array(w1, "W1"),
        numpy_helper.from_array(b1, "B1"),
        numpy_helper.from_array(w2, "W2"),
        numpy_helper.from_array(b2, "B2"),
    ]
    nodes = [
        helper.make_node("MatMul", ["INPUT0", "W1"], ["h0"]),
        helper.make_node("Add", ["h0", "B1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "W2"], ["h3"]),
        helper.make_node("Add", ["h3", "B2"], ["OUTPUT0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, ["batch", MLP_IN])],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, ["batch", MLP_OUT])],
        initializer=initializers,
    )
    return _model(graph)


def simple_model():
    int32 = TensorProto.INT32
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
            helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"]),
        ],
        "simple",
        [
            helper.make_tensor_value_info("INPUT0", int32, ["batch", SIMPLE_WIDTH]),
            helper.make_tensor_value_info("INPUT1", int32, ["batch", SIMPLE_WIDTH]),
        ],
        [
            helper.make_tensor_value_info("OUTPUT0", int32, ["batch", SIMPLE_WIDTH]),
            helper.make_tensor_value_info("OUTPUT1", int32, ["batch", SIMPLE_WIDTH]),
        ],
    )
    return _model(graph)


def _write_model(model_dir, version, model):
    version_dir = model_dir / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    (version_dir / "model.onnx").write_bytes(model.SerializeToString())


def write_repository(outdir):
    """Write every fixture model under `outdir`, replacing earlier copies."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)

    def fresh(name):
        path = outdir / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir()
        return path

    for suffix, (elem_type, _, _) in DTYPES.items():
        _write_model(fresh(f"identity_{suffix}"), 1, identity_model(elem_type))

    mlp_dir = fresh("mlp")
    for version in (1, 2):
        _write_model(mlp_dir, version, mlp_model(version))
    (mlp_dir / "config.pbtxt").write_text(MLP_CONFIG)

    simple_dir = fresh("simple")
    _write_model(simple_dir, 1, simple_model())
    (simple_dir / "config.pbtxt").write_text(SIMPLE_CONFIG)

    broken_dir = fresh("broken")
    (broken_dir / "1").mkdir()
    (broken_dir / "1" / "model.onnx").write_bytes(BROKEN_BYTES)


# --------------------------------------------------------------------------
# Self-check: run every model in onnxruntime.
# --------------------------------------------------------------------------


def run_bf16_identity(session, array):
    """Run a bfloat16 Identity session; numpy<->bf16 is not bridged by ORT."""
    import ml_dtypes
    import onnxruntime as ort

    value = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(
        np.ascontiguousarray(array.view(np.uint16)), onnx_element_type=TensorProto.BFLOAT16
    )
    (out,) = session.run_with_ort_values(["OUTPUT0"], {"INPUT0": value})
    size = out.tensor_size_in_bytes()
    raw = bytes((ctypes.c_uint8 * size).from_address(out.data_ptr()))
    return np.frombuffer(raw, dtype=ml_dtypes.bfloat16).reshape(out.shape())


def check_repository(outdir):
    """Load and run every fixture in onnxruntime; return a list of failures."""
    import ml_dtypes
    import onnxruntime as ort

    outdir = Path(outdir)
    failures = []

    def session(path):
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    rng = np.random.default_rng(SEED)
    numpy_types = {
        "bool": np.bool_, "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32,
        "uint64": np.uint64, "int8": np.int8, "int16": np.int16, "int32": np.int32,
        "int64": np.int64, "fp16": np.float16, "fp32": np.float32, "fp64": np.float64,
    }
    for suffix in DTYPES:
        path = outdir / f"identity_{suffix}" / "1" / "model.onnx"
        try:
            sess = session(path)
            if suffix == "bytes":
                # ORT's Python binding wants str objects for string tensors.
                x = np.array([["", "héllo wörld ✓"], ["abc", "日本語"]], dtype=object)
                y = sess.run(None, {"INPUT0": x})[0]
                ok = y.tolist() == x.tolist()
            elif suffix == "bf16":
                x = rng.standard_normal((2, 3)).astype(ml_dtypes.bfloat16)
                y = run_bf16_identity(sess, x)
                ok = y.tobytes() == x.tobytes()
            else:
                x = (rng.standard_normal((2, 3)) * 10).astype(numpy_types[suffix])
                y = sess.run(None, {"INPUT0": x})[0]
                ok = y.dtype == x.dtype and y.tobytes() == x.tobytes()
            if not ok:
                failures.append(f"identity_{suffix}: output differs from input")
        except Exception as exc:  # noqa: BLE001 - report every model
            failures.append(f"identity_{suffix}: {exc}")

    x = rng.standard_normal((5, MLP_IN)).astype(np.float32)
    for version in (1, 2):
        try:
            y = session(outdir / "mlp" / str(version) / "model.onnx").run(None, {"INPUT0": x})[0]
            w1, b1, w2, b2 = mlp_weights(version)
            expected = np.maximum(x @ w1 + b1, 0) @ w2 + b2
            if y.shape != (5, MLP_OUT) or not np.allclose(y, expected, rtol=1e-5, atol=1e-5):
                failures.append(f"mlp v{version}: output differs from numpy")
        except Exception as exc:  # noqa: BLE001
            failures.append(f"mlp v{version}: {exc}")

    try:
        a = rng.integers(-1000, 1000, (3, SIMPLE_WIDTH), dtype=np.int32)
        b = rng.integers(-1000, 1000, (3, SIMPLE_WIDTH), dtype=np.int32)
        out0, out1 = session(outdir / "simple" / "1" / "model.onnx").run(
            ["OUTPUT0", "OUTPUT1"], {"INPUT0": a, "INPUT1": b}
        )
        if not (np.array_equal(out0, a + b) and np.array_equal(out1, a - b)):
            failures.append("simple: outputs differ from a+b / a-b")
    except Exception as exc:  # noqa: BLE001
        failures.append(f"simple: {exc}")

    try:
        session(outdir / "broken" / "1" / "model.onnx")
        failures.append("broken: onnxruntime loaded it, but it must fail to load")
    except Exception:  # noqa: BLE001 - failing to load is the point
        pass

    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", help="model repository directory to write")
    parser.add_argument(
        "--check", action="store_true", help="afterwards load and run every model in onnxruntime"
    )
    args = parser.parse_args()

    write_repository(args.outdir)
    print(f"wrote model repository to {args.outdir}")
    if args.check:
        failures = check_repository(args.outdir)
        for failure in failures:
            print(f"FAIL {failure}")
        if failures:
            return 1
        print("all fixtures load and run in onnxruntime (broken fails to load, as it must)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
