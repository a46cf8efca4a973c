#!/usr/bin/env python3
"""End-to-end checks of a KServe v2 / Triton-compatible server with stock tritonclient.

How it is run (the server must already be serving the repository written by
make_fixtures.py):

    PY=$(bash .ci/setup-python.sh)
    $PY tests/python/make_fixtures.py /tmp/cerulean-repo
    <start the server on /tmp/cerulean-repo, HTTP on 8000 and gRPC on 8001>
    $PY tests/python/triton_e2e.py --http localhost:8000 --grpc localhost:8001 \
        --repo /tmp/cerulean-repo [-k SUBSTRING] [--list] [--verbose]

Every check runs, one line each (PASS/FAIL/name/reason), then a summary line
"N passed, N failed". The exit status is 1 if any check failed, 0 otherwise.

The checks use tritonclient.http and tritonclient.grpc exactly as a user would,
plus raw urllib/http.client requests for what the clients hide (health bodies,
JSON error bodies, requests without a Content-Type, W3C traceparent), and run
onnxruntime on the same model files as the numerical reference. Expected
behaviour follows Triton: HTTP 400 bad request, 404 unknown model/version;
gRPC INVALID_ARGUMENT and NOT_FOUND.
"""

import argparse
import functools
import http.client
import json
import queue
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

import ml_dtypes
import numpy as np
import onnxruntime as ort
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import InferenceServerException

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import DTYPES, MLP_IN, MLP_MAX_BATCH, MLP_OUT, SIMPLE_WIDTH  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6
UNKNOWN_MODEL = "no_such_model"
TRANSPORTS = ("http-binary", "http-json", "grpc")
CONCURRENT_REQUESTS = 64
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

NUMPY_TYPES = {
    "bool": np.bool_, "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32,
    "uint64": np.uint64, "int8": np.int8, "int16": np.int16, "int32": np.int32,
    "int64": np.int64, "fp16": np.float16, "bf16": ml_dtypes.bfloat16,
    "fp32": np.float32, "fp64": np.float64, "bytes": np.object_,
}
# JSON numbers cannot carry these; tritonclient refuses BF16 in JSON outright.
BINARY_ONLY = {"fp16", "bf16"}

BYTES_SAMPLE = [
    b"",
    b"hello",
    "héllo wörld ✓".encode("utf-8"),
    "日本語のテキスト".encode("utf-8"),
    "emoji 🚀".encode("utf-8"),
    b"x" * 300,
]


class CheckFailed(AssertionError):
    """A check's expectation was not met."""


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


# --------------------------------------------------------------------------
# Check registry and runner
# --------------------------------------------------------------------------

CHECKS = []  # (name, function(ctx))


def check(name):
    def register(fn):
        CHECKS.append((name, fn))
        return fn

    return register


def run_checks(ctx, selected, verbose):
    passed = failed = 0
    for name, fn in selected:
        start = time.monotonic()
        try:
            fn(ctx)
        except CheckFailed as exc:
            failed += 1
            print(f"FAIL {name}: {exc}", flush=True)
        except Exception as exc:  # noqa: BLE001 - report and go on
            failed += 1
            print(f"FAIL {name}: unexpected {type(exc).__name__}: {exc}", flush=True)
            if verbose:
                traceback.print_exc()
        else:
            passed += 1
            print(f"PASS {name} ({time.monotonic() - start:.2f}s)", flush=True)
    print(f"{passed} passed, {failed} failed")
    return failed == 0


class Context:
    """Clients, the repository path and onnxruntime reference sessions."""

    def __init__(self, args):
        self.http_url = args.http
        self.grpc_url = args.grpc
        self.repo = Path(args.repo)
        self.http = httpclient.InferenceServerClient(args.http, network_timeout=120.0)
        self.grpc = grpcclient.InferenceServerClient(args.grpc)
        self.rng = np.random.default_rng(12345)
        self._sessions = {}

    def close(self):
        self.http.close()
        self.grpc.close()

    def ort_run(self, model, version, feeds):
        """Run `model` version `version` of the repository in onnxruntime."""
        key = (model, str(version))
        if key not in self._sessions:
            path = self.repo / model / str(version) / "model.onnx"
            self._sessions[key] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        session = self._sessions[key]
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, feeds)))

    def mlp_reference(self, version, x):
        return self.ort_run("mlp", version, {"INPUT0": x})["OUTPUT0"]

    def http_base(self):
        return f"http://{self.http_url}"

    def http_connection(self):
        host, _, port = self.http_url.rpartition(":")
        return http.client.HTTPConnection(host, int(port), timeout=60)


# --------------------------------------------------------------------------
# Inference helpers shared by the checks
# --------------------------------------------------------------------------


def triton_datatype(array):
    if array.dtype == ml_dtypes.bfloat16:
        return "BF16"
    if array.dtype == np.object_:
        return "BYTES"
    return {
        np.dtype(np.bool_): "BOOL", np.dtype(np.uint8): "UINT8", np.dtype(np.uint16): "UINT16",
        np.dtype(np.uint32): "UINT32", np.dtype(np.uint64): "UINT64", np.dtype(np.int8): "INT8",
        np.dtype(np.int16): "INT16", np.dtype(np.int32): "INT32", np.dtype(np.int64): "INT64",
        np.dtype(np.float16): "FP16", np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64",
    }[array.dtype]


def http_inputs(inputs, binary, datatypes=None):
    built = []
    for name, array in inputs.items():
        datatype = (datatypes or {}).get(name, triton_datatype(array))
        tensor = httpclient.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        built.append(tensor)
    return built


def grpc_inputs(inputs, datatypes=None):
    built = []
    for name, array in inputs.items():
        datatype = (datatypes or {}).get(name, triton_datatype(array))
        tensor = grpcclient.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        built.append(tensor)
    return built


def decode_outputs(result, names, transport, model):
    """{name: result.as_numpy(name)}, turning decode errors into check failures."""
    decoded = {}
    for name in names:
        try:
            decoded[name] = result.as_numpy(name)
        except Exception as exc:  # noqa: BLE001 - a malformed response
            hint = " (gRPC outputs must be in raw_output_contents, one per output, in order)" if transport == "grpc" else ""
            raise CheckFailed(
                f"{model} over {transport}: tritonclient cannot decode {name}: {type(exc).__name__}: {exc}{hint}"
            ) from None
    return decoded


def infer(ctx, transport, model, inputs, outputs, version="", request_id=""):
    """Infer over `transport`; returns ({output name: array or None}, model_version).

    `inputs` maps input names to numpy arrays, `outputs` lists the output names
    to request. For "http-binary" with outputs=None nothing is requested, so
    tritonclient sets the request-level "binary_data_output" parameter.
    """
    if transport in ("http-binary", "http-json"):
        binary = transport == "http-binary"
        requested = None
        if outputs is not None:
            requested = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in outputs]
        elif not binary:
            raise ValueError("http-json needs explicit outputs")
        result = ctx.http.infer(
            model, http_inputs(inputs, binary), model_version=version,
            outputs=requested, request_id=request_id,
        )
        response = result.get_response()
        names = outputs or [o["name"] for o in response["outputs"]]
        return decode_outputs(result, names, transport, model), response.get("model_version")
    if transport == "grpc":
        requested = None
        if outputs is not None:
            requested = [grpcclient.InferRequestedOutput(n) for n in outputs]
        result = ctx.grpc.infer(
            model, grpc_inputs(inputs), model_version=version, outputs=requested,
            request_id=request_id, client_timeout=60,
        )
        response = result.get_response()
        names = outputs or [o.name for o in response.outputs]
        return decode_outputs(result, names, transport, model), response.model_version
    raise ValueError(f"unknown transport {transport}")


def expect_close(got, want, what):
    expect(got is not None, f"{what}: output missing from the response")
    expect(got.shape == want.shape, f"{what}: shape {list(got.shape)}, expected {list(want.shape)}")
    expect(got.dtype == want.dtype, f"{what}: dtype {got.dtype}, expected {want.dtype}")
    if not np.allclose(got, want, rtol=RTOL, atol=ATOL):
        worst = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
        raise CheckFailed(f"{what}: values differ from onnxruntime (max abs diff {worst:g})")


def expect_error(call, what, status, must_name=None):
    """Run `call`, which must raise InferenceServerException with `status`.

    HTTP statuses read like "400"; gRPC ones like "StatusCode.NOT_FOUND".
    """
    try:
        call()
    except InferenceServerException as exc:
        message = exc.message() or ""
        expect(
            exc.status() == status,
            f"{what}: expected status {status}, got {exc.status()} with message {message!r}",
        )
        if must_name is not None:
            expect(must_name in message, f"{what}: error message does not name {must_name}: {message!r}")
        return exc
    raise CheckFailed(f"{what}: the request succeeded, expected an error with status {status}")


def wait_for(predicate, timeout_s, interval_s=0.1):
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)


def raw_request(ctx, method, path, body=None, headers=None):
    """Send a raw HTTP request with http.client (which adds no Content-Type).

    Returns (status, headers, body bytes).
    """
    conn = ctx.http_connection()
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def raw_get_json(ctx, path):
    """GET with urllib; returns (status, parsed JSON body or None)."""
    try:
        with urllib.request.urlopen(ctx.http_base() + path, timeout=30) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        raise CheckFailed(f"GET {path}: body is not JSON: {body[:200]!r}") from None


# --------------------------------------------------------------------------
# Health, server metadata, readiness
# --------------------------------------------------------------------------


@check("health: is_server_live / is_server_ready (http, grpc)")
def check_health_clients(ctx):
    expect(ctx.http.is_server_live() is True, "http is_server_live is not True")
    expect(ctx.http.is_server_ready() is True, "http is_server_ready is not True")
    expect(ctx.grpc.is_server_live() is True, "grpc is_server_live is not True")
    expect(ctx.grpc.is_server_ready() is True, "grpc is_server_ready is not True")


@check("health: raw GET /v2/health/live and /v2/health/ready have JSON bodies")
def check_health_raw(ctx):
    status, body = raw_get_json(ctx, "/v2/health/live")
    expect(status == 200, f"/v2/health/live returned {status}")
    expect(isinstance(body, dict) and body.get("live") is True, f'/v2/health/live body {body!r}, expected {{"live": true}}')
    status, body = raw_get_json(ctx, "/v2/health/ready")
    expect(status == 200, f"/v2/health/ready returned {status}")
    expect(isinstance(body, dict) and body.get("ready") is True, f'/v2/health/ready body {body!r}, expected {{"ready": true}}')


@check("server metadata: extensions (http, grpc)")
def check_server_metadata(ctx):
    wanted = {"binary_tensor_data", "model_repository", "statistics"}
    http_md = ctx.http.get_server_metadata()
    missing = wanted - set(http_md.get("extensions", []))
    expect(not missing, f"http server metadata lacks extensions {sorted(missing)}: {http_md!r}")
    expect(http_md.get("name"), f"http server metadata has no name: {http_md!r}")
    grpc_md = ctx.grpc.get_server_metadata()
    missing = wanted - set(grpc_md.extensions)
    expect(not missing, f"grpc server metadata lacks extensions {sorted(missing)}")
    expect(grpc_md.name, "grpc server metadata has no name")


def _expect_mlp_tensors(inputs, outputs, where):
    expect(inputs == [("INPUT0", "FP32", [-1, MLP_IN])], f"{where}: inputs {inputs}, expected INPUT0 FP32 [-1, {MLP_IN}]")
    expect(outputs == [("OUTPUT0", "FP32", [-1, MLP_OUT])], f"{where}: outputs {outputs}, expected OUTPUT0 FP32 [-1, {MLP_OUT}]")


@check("model metadata: mlp with and without version (http, grpc)")
def check_model_metadata(ctx):
    for version in ("", "1", "2"):
        where = f"http mlp version {version or '<none>'}"
        md = ctx.http.get_model_metadata("mlp", model_version=version)
        expect(md.get("name") == "mlp", f"{where}: name {md.get('name')!r}")
        expect({"1", "2"} <= set(md.get("versions", [])), f"{where}: versions {md.get('versions')!r} lack 1 and 2")
        expect(md.get("platform") == "onnxruntime_onnx", f"{where}: platform {md.get('platform')!r}")
        _expect_mlp_tensors(
            [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in md.get("inputs", [])],
            [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in md.get("outputs", [])],
            where,
        )

        where = f"grpc mlp version {version or '<none>'}"
        md = ctx.grpc.get_model_metadata("mlp", model_version=version)
        expect(md.name == "mlp", f"{where}: name {md.name!r}")
        expect({"1", "2"} <= set(md.versions), f"{where}: versions {list(md.versions)} lack 1 and 2")
        expect(md.platform == "onnxruntime_onnx", f"{where}: platform {md.platform!r}")
        _expect_mlp_tensors(
            [(t.name, t.datatype, list(t.shape)) for t in md.inputs],
            [(t.name, t.datatype, list(t.shape)) for t in md.outputs],
            where,
        )


@check("model metadata: auto-completed identity models (http, grpc)")
def check_identity_metadata(ctx):
    for suffix, (_, datatype, _) in DTYPES.items():
        model = f"identity_{suffix}"
        want = [("INPUT0", datatype, [-1, -1])]
        md = ctx.http.get_model_metadata(model)
        got = [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in md.get("inputs", [])]
        expect(got == want, f"http {model}: inputs {got}, expected {want}")
        got = [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in md.get("outputs", [])]
        expect(got == [("OUTPUT0", datatype, [-1, -1])], f"http {model}: outputs {got}")
        md = ctx.grpc.get_model_metadata(model)
        got = [(t.name, t.datatype, list(t.shape)) for t in md.inputs]
        expect(got == want, f"grpc {model}: inputs {got}, expected {want}")


@check("model ready: mlp true; broken and unknown false (http, grpc)")
def check_model_ready(ctx):
    for version in ("", "1", "2"):
        expect(ctx.http.is_model_ready("mlp", version) is True, f"http is_model_ready(mlp, {version!r}) is not True")
        expect(ctx.grpc.is_model_ready("mlp", version) is True, f"grpc is_model_ready(mlp, {version!r}) is not True")
    for model in ("broken", UNKNOWN_MODEL):
        expect(ctx.http.is_model_ready(model) is False, f"http is_model_ready({model}) is not False")
        try:
            ready = ctx.grpc.is_model_ready(model)
        except InferenceServerException as exc:
            raise CheckFailed(f"grpc is_model_ready({model}) raised {exc} instead of returning False") from None
        expect(ready is False, f"grpc is_model_ready({model}) returned {ready!r}, expected False")


# --------------------------------------------------------------------------
# Identity models: every datatype, every transport
# --------------------------------------------------------------------------


def identity_input(suffix, transport, rng):
    """Deterministic test data for identity_<suffix>; specials only where binary."""
    if suffix == "bytes":
        return np.array(BYTES_SAMPLE, dtype=np.object_).reshape(2, 3)
    shape = (2, 5)
    size = shape[0] * shape[1]
    np_type = NUMPY_TYPES[suffix]
    if suffix == "bool":
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(np_type, np.integer):
        info = np.iinfo(np_type)
        values = rng.integers(info.min, info.max, size=size, dtype=np_type, endpoint=True)
        values[0], values[1] = info.min, info.max
        return values.reshape(shape)
    values = (rng.standard_normal(size) * 100).astype(np_type)
    if transport != "http-json":
        specials = [np.nan, np.inf, -np.inf, -0.0, float(ml_dtypes.finfo(np_type).max)]
        values[: len(specials)] = np.array(specials).astype(np_type)
    return values.reshape(shape)


def check_identity(ctx, suffix, transport):
    model = f"identity_{suffix}"
    sent = identity_input(suffix, transport, ctx.rng)
    outputs, _ = infer(ctx, transport, model, {"INPUT0": sent}, ["OUTPUT0"])
    got = outputs["OUTPUT0"]
    expect(got is not None, f"{model}: OUTPUT0 missing from the response")
    expect(got.shape == sent.shape, f"{model}: shape {list(got.shape)}, sent {list(sent.shape)}")
    if suffix == "bytes":
        want = sent.tolist()
        if transport == "http-json":
            # JSON carries BYTES as strings; tritonclient hands back str objects.
            want = [[b.decode("utf-8") for b in row] for row in want]
        expect(got.tolist() == want, f"{model}: got {got.tolist()!r}, sent {want!r}")
        return
    expect(got.dtype == sent.dtype, f"{model}: dtype {got.dtype}, sent {sent.dtype}")
    expect(
        got.tobytes() == sent.tobytes(),
        f"{model}: output differs from input bit for bit: got {got.tolist()}, sent {sent.tolist()}",
    )


for _suffix in DTYPES:
    for _transport in TRANSPORTS:
        if _transport == "http-json" and _suffix in BINARY_ONLY:
            continue
        check(f"identity: {_suffix} [{_transport}]")(
            functools.partial(check_identity, suffix=_suffix, transport=_transport)
        )


# --------------------------------------------------------------------------
# mlp and simple against onnxruntime
# --------------------------------------------------------------------------


def check_mlp(ctx, transport):
    for batch in (1, 5):
        x = ctx.rng.standard_normal((batch, MLP_IN)).astype(np.float32)
        for version, served in (("1", "1"), ("2", "2"), ("", "2")):
            what = f"mlp batch {batch} version {version or '<none>'}"
            outputs, model_version = infer(ctx, transport, "mlp", {"INPUT0": x}, ["OUTPUT0"], version)
            expect(
                str(model_version) == served,
                f"{what}: response model_version {model_version!r}, expected {served!r}",
            )
            expect_close(outputs["OUTPUT0"], ctx.mlp_reference(served, x), what)


for _transport in TRANSPORTS:
    check(f"mlp: batch 1 and 5, versions 1, 2, unversioned [{_transport}]")(
        functools.partial(check_mlp, transport=_transport)
    )


@check("mlp: no outputs requested gives all outputs in binary [http-binary]")
def check_mlp_default_outputs(ctx):
    x = ctx.rng.standard_normal((2, MLP_IN)).astype(np.float32)
    outputs, _ = infer(ctx, "http-binary", "mlp", {"INPUT0": x}, None)
    expect(list(outputs) == ["OUTPUT0"], f"outputs {list(outputs)}, expected ['OUTPUT0']")
    expect_close(outputs["OUTPUT0"], ctx.mlp_reference("2", x), "mlp default outputs")


def check_simple(ctx, transport):
    a = ctx.rng.integers(-10000, 10000, (3, SIMPLE_WIDTH), dtype=np.int32)
    b = ctx.rng.integers(-10000, 10000, (3, SIMPLE_WIDTH), dtype=np.int32)
    inputs = {"INPUT0": a, "INPUT1": b}
    outputs, _ = infer(ctx, transport, "simple", inputs, ["OUTPUT0", "OUTPUT1"])
    expect(np.array_equal(outputs["OUTPUT0"], a + b), "simple OUTPUT0 != INPUT0 + INPUT1")
    expect(np.array_equal(outputs["OUTPUT1"], a - b), "simple OUTPUT1 != INPUT0 - INPUT1")

    outputs, _ = infer(ctx, transport, "simple", inputs, ["OUTPUT1"])
    got = outputs["OUTPUT1"]
    expect(got is not None, "simple (only OUTPUT1 requested): OUTPUT1 missing")
    expect(got.dtype == np.int32, f"simple OUTPUT1 dtype {got.dtype}, expected int32")
    expect(np.array_equal(got, a - b), "simple (only OUTPUT1 requested): OUTPUT1 != INPUT0 - INPUT1")
    if transport == "grpc":
        names = [o.name for o in ctx.grpc.infer(
            "simple", grpc_inputs(inputs), outputs=[grpcclient.InferRequestedOutput("OUTPUT1")]
        ).get_response().outputs]
    else:
        names = [o["name"] for o in ctx.http.infer(
            "simple", http_inputs(inputs, transport == "http-binary"),
            outputs=[httpclient.InferRequestedOutput("OUTPUT1", binary_data=transport == "http-binary")],
        ).get_response()["outputs"]]
    expect(names == ["OUTPUT1"], f"only OUTPUT1 was requested but the response has {names}")


for _transport in TRANSPORTS:
    check(f"simple: two inputs, all outputs and OUTPUT1 only [{_transport}]")(
        functools.partial(check_simple, transport=_transport)
    )


# --------------------------------------------------------------------------
# Dynamic batching under concurrency, statistics, streaming
# --------------------------------------------------------------------------


def http_mlp_counts(ctx):
    """(inference_count, execution_count) of mlp summed over versions, via HTTP."""
    stats = ctx.http.get_inference_statistics("mlp")
    entries = [s for s in stats.get("model_stats", []) if s.get("name") == "mlp"]
    expect(entries, f"http statistics have no entry for mlp: {stats!r}")
    return (
        sum(int(s.get("inference_count", 0)) for s in entries),
        sum(int(s.get("execution_count", 0)) for s in entries),
    )


def grpc_mlp_counts(ctx):
    """(inference_count, execution_count) of mlp summed over versions, via gRPC."""
    stats = ctx.grpc.get_inference_statistics("mlp")
    entries = [s for s in stats.model_stats if s.name == "mlp"]
    expect(entries, "grpc statistics have no entry for mlp")
    return (
        sum(s.inference_count for s in entries),
        sum(s.execution_count for s in entries),
    )


def expect_batched(ctx, counts, before, what):
    """Wait briefly for the statistics to settle, then check batching happened."""
    target = before[0] + CONCURRENT_REQUESTS
    wait_for(lambda: counts(ctx)[0] >= target, timeout_s=5)
    after = counts(ctx)
    inferences, executions = after[0] - before[0], after[1] - before[1]
    expect(
        inferences == CONCURRENT_REQUESTS,
        f"{what}: inference_count grew by {inferences}, expected {CONCURRENT_REQUESTS}",
    )
    expect(
        0 < executions < inferences,
        f"{what}: execution_count grew by {executions} for {inferences} inferences; "
        "dynamic batching did not combine requests",
    )


@check(f"batching: {CONCURRENT_REQUESTS} concurrent batch-1 mlp requests, statistics [http]")
def check_batching_http(ctx):
    before = http_mlp_counts(ctx)
    xs = [ctx.rng.standard_normal((1, MLP_IN)).astype(np.float32) for _ in range(CONCURRENT_REQUESTS)]
    client = httpclient.InferenceServerClient(ctx.http_url, concurrency=CONCURRENT_REQUESTS, network_timeout=120.0)
    try:
        pending = [
            client.async_infer(
                "mlp", http_inputs({"INPUT0": x}, True),
                outputs=[httpclient.InferRequestedOutput("OUTPUT0")], request_id=str(i),
            )
            for i, x in enumerate(xs)
        ]
        results = [p.get_result(timeout=120) for p in pending]
    finally:
        client.close()
    for i, (x, result) in enumerate(zip(xs, results)):
        expect(result.get_response().get("id") == str(i), f"request {i}: response id {result.get_response().get('id')!r}")
        expect_close(result.as_numpy("OUTPUT0"), ctx.mlp_reference("2", x), f"concurrent request {i}")
    expect_batched(ctx, http_mlp_counts, before, "http")


@check(f"batching: {CONCURRENT_REQUESTS} concurrent batch-1 mlp requests, statistics [grpc]")
def check_batching_grpc(ctx):
    before = grpc_mlp_counts(ctx)
    xs = [ctx.rng.standard_normal((1, MLP_IN)).astype(np.float32) for _ in range(CONCURRENT_REQUESTS)]
    results = [None] * CONCURRENT_REQUESTS
    errors = []
    remaining = [CONCURRENT_REQUESTS]
    lock = threading.Lock()
    all_done = threading.Event()

    def on_done(index, result, error):
        with lock:
            if error is not None:
                errors.append(f"request {index}: {error}")
            results[index] = result
            remaining[0] -= 1
            if remaining[0] == 0:
                all_done.set()

    for i, x in enumerate(xs):
        ctx.grpc.async_infer(
            "mlp", grpc_inputs({"INPUT0": x}), functools.partial(on_done, i),
            outputs=[grpcclient.InferRequestedOutput("OUTPUT0")], request_id=str(i), client_timeout=120,
        )
    expect(all_done.wait(timeout=130), f"{remaining[0]} of {CONCURRENT_REQUESTS} async requests never completed")
    expect(not errors, f"{len(errors)} requests failed, first: {errors[:1]}")
    for i, (x, result) in enumerate(zip(xs, results)):
        expect(result.get_response().id == str(i), f"request {i}: response id {result.get_response().id!r}")
        expect_close(result.as_numpy("OUTPUT0"), ctx.mlp_reference("2", x), f"concurrent request {i}")
    expect_batched(ctx, grpc_mlp_counts, before, "grpc")


@check("streaming: grpc stream_infer, responses matched by request id")
def check_stream_infer(ctx):
    responses = queue.Queue()
    client = grpcclient.InferenceServerClient(ctx.grpc_url)
    sent = {}
    try:
        client.start_stream(callback=lambda result, error: responses.put((result, error)))
        for i in range(8):
            batch = 1 + i % 3
            x = ctx.rng.standard_normal((batch, MLP_IN)).astype(np.float32)
            version = ("1", "2", "")[i % 3]
            request_id = f"stream-{i}"
            sent[request_id] = (x, version or "2")
            client.async_stream_infer(
                "mlp", grpc_inputs({"INPUT0": x}), model_version=version,
                outputs=[grpcclient.InferRequestedOutput("OUTPUT0")], request_id=request_id,
            )
        received = {}
        for _ in sent:
            try:
                result, error = responses.get(timeout=60)
            except queue.Empty:
                raise CheckFailed(f"only {len(received)} of {len(sent)} stream responses arrived") from None
            expect(error is None, f"stream response carried an error: {error}")
            request_id = result.get_response().id
            expect(request_id in sent, f"stream response has unknown id {request_id!r}")
            expect(request_id not in received, f"two stream responses for id {request_id!r}")
            received[request_id] = result
    finally:
        client.stop_stream()
        client.close()
    for request_id, (x, version) in sent.items():
        result = received[request_id]
        expect(
            result.get_response().model_version == version,
            f"{request_id}: model_version {result.get_response().model_version!r}, expected {version!r}",
        )
        expect_close(result.as_numpy("OUTPUT0"), ctx.mlp_reference(version, x), request_id)


@check("statistics: per-version entries for mlp (http, grpc)")
def check_statistics_shape(ctx):
    x = np.zeros((1, MLP_IN), dtype=np.float32)
    infer(ctx, "grpc", "mlp", {"INPUT0": x}, ["OUTPUT0"], version="1")
    stats = ctx.http.get_inference_statistics("mlp", "1")
    entries = stats.get("model_stats", [])
    expect(
        [(s.get("name"), str(s.get("version"))) for s in entries] == [("mlp", "1")],
        f"http stats for mlp version 1: {[(s.get('name'), s.get('version')) for s in entries]}",
    )
    expect(int(entries[0].get("inference_count", 0)) > 0, "http stats: mlp version 1 has inference_count 0")
    grpc_stats = ctx.grpc.get_inference_statistics("mlp")
    versions = {s.version for s in grpc_stats.model_stats if s.name == "mlp"}
    expect({"1", "2"} <= versions, f"grpc stats for mlp cover versions {sorted(versions)}, expected 1 and 2")


# --------------------------------------------------------------------------
# Model configuration and repository
# --------------------------------------------------------------------------


@check("model config: mlp max_batch_size and dynamic_batching (http, grpc)")
def check_model_config_mlp(ctx):
    cfg = ctx.http.get_model_config("mlp")
    expect(cfg.get("name") == "mlp", f"http config name {cfg.get('name')!r}")
    expect(int(cfg.get("max_batch_size", 0)) == MLP_MAX_BATCH, f"http config max_batch_size {cfg.get('max_batch_size')!r}")
    expect("dynamic_batching" in cfg, f"http config has no dynamic_batching: {sorted(cfg)}")
    delay = int(cfg["dynamic_batching"].get("max_queue_delay_microseconds", 0))
    expect(delay == 20000, f"http config max_queue_delay_microseconds {delay}, expected 20000")
    inputs = [(i.get("name"), i.get("data_type"), [int(d) for d in i.get("dims", [])]) for i in cfg.get("input", [])]
    expect(inputs == [("INPUT0", "TYPE_FP32", [MLP_IN])], f"http config inputs {inputs}")

    cfg = ctx.grpc.get_model_config("mlp").config
    expect(cfg.name == "mlp", f"grpc config name {cfg.name!r}")
    expect(cfg.max_batch_size == MLP_MAX_BATCH, f"grpc config max_batch_size {cfg.max_batch_size}")
    expect(cfg.HasField("dynamic_batching"), "grpc config has no dynamic_batching")
    expect(
        cfg.dynamic_batching.max_queue_delay_microseconds == 20000,
        f"grpc config max_queue_delay_microseconds {cfg.dynamic_batching.max_queue_delay_microseconds}",
    )
    inputs = [(i.name, model_config_pb2.DataType.Name(i.data_type), list(i.dims)) for i in cfg.input]
    expect(inputs == [("INPUT0", "TYPE_FP32", [MLP_IN])], f"grpc config inputs {inputs}")


def _expect_autocompleted(model, config_type, max_batch_size, tensors, kind, where):
    # With batching the batch dimension moves into max_batch_size: dims [-1];
    # without it the ONNX shape is kept whole: dims [-1, -1].
    want_dims = [-1] if max_batch_size > 0 else [-1, -1]
    want = [(("INPUT0" if kind == "input" else "OUTPUT0"), config_type, want_dims)]
    expect(tensors == want, f"{where} {model}: config {kind} {tensors}, expected {want} (max_batch_size {max_batch_size})")


@check("model config: auto-completed from the ONNX file for identity models (http, grpc)")
def check_model_config_autocomplete(ctx):
    for suffix in ("fp32", "bytes", "int64"):
        model = f"identity_{suffix}"
        config_type = DTYPES[suffix][2]
        cfg = ctx.http.get_model_config(model)
        mbs = int(cfg.get("max_batch_size", 0))
        for kind in ("input", "output"):
            tensors = [(t.get("name"), t.get("data_type"), [int(d) for d in t.get("dims", [])]) for t in cfg.get(kind, [])]
            _expect_autocompleted(model, config_type, mbs, tensors, kind, "http")
        cfg = ctx.grpc.get_model_config(model).config
        for kind, tensors in (("input", cfg.input), ("output", cfg.output)):
            got = [(t.name, model_config_pb2.DataType.Name(t.data_type), list(t.dims)) for t in tensors]
            _expect_autocompleted(model, config_type, cfg.max_batch_size, got, kind, "grpc")


def _check_index(entries, where):
    """entries: [(name, version, state, reason)]."""
    mlp = [e for e in entries if e[0] == "mlp"]
    expect(mlp, f"{where}: repository index has no mlp entry")
    expect(all(e[2] == "READY" for e in mlp), f"{where}: mlp entries not all READY: {mlp}")
    expect({"1", "2"} <= {e[1] for e in mlp}, f"{where}: mlp entries {mlp} do not list versions 1 and 2")
    broken = [e for e in entries if e[0] == "broken"]
    expect(broken, f"{where}: repository index has no broken entry")
    expect(all(e[2] == "UNAVAILABLE" for e in broken), f"{where}: broken entries not UNAVAILABLE: {broken}")
    expect(all(e[3] for e in broken), f"{where}: broken entries give no reason: {broken}")
    for suffix in DTYPES:
        expect(any(e[0] == f"identity_{suffix}" and e[2] == "READY" for e in entries),
               f"{where}: identity_{suffix} is not READY in the index")


@check("repository index: mlp READY, broken UNAVAILABLE with a reason (http, grpc)")
def check_repository_index(ctx):
    index = ctx.http.get_model_repository_index()
    expect(isinstance(index, list), f"http repository index is not a list: {index!r}")
    _check_index(
        [(e.get("name"), str(e.get("version", "")), e.get("state"), e.get("reason", "")) for e in index], "http"
    )
    index = ctx.grpc.get_model_repository_index()
    _check_index([(m.name, m.version, m.state, m.reason) for m in index.models], "grpc")


def _simple_infer_works(ctx, transport):
    a = np.arange(SIMPLE_WIDTH, dtype=np.int32).reshape(1, SIMPLE_WIDTH)
    b = np.ones((1, SIMPLE_WIDTH), dtype=np.int32)
    outputs, _ = infer(ctx, transport, "simple", {"INPUT0": a, "INPUT1": b}, ["OUTPUT0", "OUTPUT1"])
    return np.array_equal(outputs["OUTPUT0"], a + b) and np.array_equal(outputs["OUTPUT1"], a - b)


def check_unload_load(ctx, admin_name):
    admin = ctx.http if admin_name == "http" else ctx.grpc
    try:
        admin.unload_model("simple")
        expect(
            wait_for(lambda: not ctx.http.is_model_ready("simple"), timeout_s=10),
            "simple still ready over http 10 s after unload_model",
        )
        expect(ctx.grpc.is_model_ready("simple") is False, "simple still ready over grpc after unload_model")
        for transport in ("http-binary", "grpc"):
            try:
                _simple_infer_works(ctx, transport)
            except InferenceServerException:
                pass
            else:
                raise CheckFailed(f"infer on unloaded simple succeeded over {transport}")
        index = ctx.http.get_model_repository_index()
        states = [e.get("state") for e in index if e.get("name") == "simple"]
        expect("READY" not in states, f"repository index still shows unloaded simple as READY: {states}")

        admin.load_model("simple")
        expect(
            wait_for(lambda: ctx.http.is_model_ready("simple"), timeout_s=30),
            "simple not ready over http 30 s after load_model",
        )
        expect(ctx.grpc.is_model_ready("simple") is True, "simple not ready over grpc after load_model")
        for transport in ("http-binary", "grpc"):
            expect(_simple_infer_works(ctx, transport), f"simple gives wrong results over {transport} after reload")
    finally:
        # Leave the server as found, whatever failed above.
        try:
            if not ctx.http.is_model_ready("simple"):
                ctx.http.load_model("simple")
        except Exception:  # noqa: BLE001 - the check's own failure matters more
            pass


for _admin in ("http", "grpc"):
    check(f"repository: unload_model / load_model simple [{_admin}]")(
        functools.partial(check_unload_load, admin_name=_admin)
    )


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

HTTP_STATUS = {"bad": "400", "not_found": "404"}
GRPC_STATUS = {"bad": "StatusCode.INVALID_ARGUMENT", "not_found": "StatusCode.NOT_FOUND"}


def _raw_infer_call(ctx, client_name, model, inputs, version="", datatypes=None):
    """A zero-argument callable sending one request with tritonclient."""
    if client_name == "http":
        return lambda: ctx.http.infer(model, http_inputs(inputs, True, datatypes), model_version=version)
    return lambda: ctx.grpc.infer(model, grpc_inputs(inputs, datatypes), model_version=version, client_timeout=60)


def check_errors(ctx, client_name):
    status = HTTP_STATUS if client_name == "http" else GRPC_STATUS
    client = ctx.http if client_name == "http" else ctx.grpc
    good = {"INPUT0": np.zeros((1, MLP_IN), dtype=np.float32)}

    expect_error(_raw_infer_call(ctx, client_name, UNKNOWN_MODEL, good), "infer on an unknown model", status["not_found"])
    expect_error(lambda: client.get_model_metadata(UNKNOWN_MODEL), "metadata of an unknown model", status["not_found"])
    expect_error(_raw_infer_call(ctx, client_name, "mlp", good, version="7"), "infer on mlp version 7", status["not_found"])
    expect_error(lambda: client.get_model_metadata("mlp", "7"), "metadata of mlp version 7", status["not_found"])
    expect_error(
        _raw_infer_call(ctx, client_name, "mlp", {"INPUT0": np.zeros((1, MLP_IN), dtype=np.int32)}),
        "INT32 data sent to FP32 INPUT0", status["bad"], must_name="INPUT0",
    )
    expect_error(
        _raw_infer_call(ctx, client_name, "mlp", {"INPUT0": np.zeros((1, MLP_IN - 1), dtype=np.float32)}),
        f"INPUT0 with shape [1, {MLP_IN - 1}]", status["bad"], must_name="INPUT0",
    )
    expect_error(_raw_infer_call(ctx, client_name, "mlp", {}), "mlp request without INPUT0", status["bad"], must_name="INPUT0")
    expect_error(
        _raw_infer_call(ctx, client_name, "simple", {"INPUT0": np.zeros((1, SIMPLE_WIDTH), dtype=np.int32)}),
        "simple request without INPUT1", status["bad"], must_name="INPUT1",
    )
    expect_error(
        _raw_infer_call(ctx, client_name, "mlp", {"INPUT0": np.zeros((MLP_MAX_BATCH + 1, MLP_IN), dtype=np.float32)}),
        f"mlp batch of {MLP_MAX_BATCH + 1} (> max_batch_size {MLP_MAX_BATCH})", status["bad"],
    )
    expect_error(lambda: client.get_model_config(UNKNOWN_MODEL), "config of an unknown model", status["not_found"])


for _client in ("http", "grpc"):
    check(f"errors: unknown model/version, wrong datatype/shape, missing input, batch too large [{_client}]")(
        functools.partial(check_errors, client_name=_client)
    )


# --------------------------------------------------------------------------
# Raw HTTP
# --------------------------------------------------------------------------


def _mlp_json_request(x, request_id):
    return {
        "id": request_id,
        "inputs": [{"name": "INPUT0", "shape": list(x.shape), "datatype": "FP32", "data": x.flatten().tolist()}],
        "outputs": [{"name": "OUTPUT0"}],
    }


def _post_mlp_json(ctx, body, headers=None):
    status, response_headers, raw = raw_request(
        ctx, "POST", "/v2/models/mlp/infer", body=json.dumps(body).encode(), headers=headers
    )
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        raise CheckFailed(f"POST /v2/models/mlp/infer returned {status} with a non-JSON body {raw[:200]!r}") from None
    return status, response_headers, parsed


def _expect_mlp_json_response(ctx, x, status, body, request_id):
    expect(status == 200, f"raw JSON infer returned {status}: {body!r}")
    expect(body.get("model_name") == "mlp", f"model_name {body.get('model_name')!r}")
    expect(str(body.get("model_version")) == "2", f"model_version {body.get('model_version')!r}, expected '2'")
    expect(body.get("id") == request_id, f"id {body.get('id')!r}, expected {request_id!r}")
    outputs = body.get("outputs") or []
    expect([o.get("name") for o in outputs] == ["OUTPUT0"], f"outputs {outputs!r}")
    out = outputs[0]
    expect(out.get("datatype") == "FP32", f"OUTPUT0 datatype {out.get('datatype')!r}")
    expect([int(d) for d in out.get("shape", [])] == [x.shape[0], MLP_OUT], f"OUTPUT0 shape {out.get('shape')!r}")
    expect("data" in out, f"OUTPUT0 has no JSON data (binary output was not asked for): {out!r}")
    got = np.array(out["data"], dtype=np.float32).reshape(x.shape[0], MLP_OUT)
    expect_close(got, ctx.mlp_reference("2", x), "raw JSON OUTPUT0")


@check("raw http: JSON infer without Content-Type returns JSON outputs")
def check_raw_json_infer(ctx):
    x = ctx.rng.standard_normal((3, MLP_IN)).astype(np.float32)
    status, _, body = _post_mlp_json(ctx, _mlp_json_request(x, "raw-1"))
    _expect_mlp_json_response(ctx, x, status, body, "raw-1")


@check("raw http: W3C traceparent header is accepted")
def check_raw_traceparent(ctx):
    x = ctx.rng.standard_normal((1, MLP_IN)).astype(np.float32)
    status, _, body = _post_mlp_json(ctx, _mlp_json_request(x, "traced"), headers={"traceparent": TRACEPARENT})
    _expect_mlp_json_response(ctx, x, status, body, "traced")
    # The same header through tritonclient.
    result = ctx.http.infer("mlp", http_inputs({"INPUT0": x}, True), headers={"traceparent": TRACEPARENT})
    expect_close(result.as_numpy("OUTPUT0"), ctx.mlp_reference("2", x), "tritonclient infer with traceparent")


@check("raw http: element count not matching the shape is 400 with a JSON error naming INPUT0")
def check_raw_count_mismatch(ctx):
    request = {
        "inputs": [{"name": "INPUT0", "shape": [1, MLP_IN], "datatype": "FP32", "data": [0.5] * (MLP_IN - 1)}],
    }
    status, _, body = _post_mlp_json(ctx, request)
    expect(status == 400, f"returned {status}, expected 400: {body!r}")
    expect(isinstance(body, dict) and isinstance(body.get("error"), str), f'body {body!r} is not {{"error": "..."}}')
    expect("INPUT0" in body["error"], f"error message does not name INPUT0: {body['error']!r}")


@check("raw http: unknown model is 404 with a JSON error body")
def check_raw_unknown_model(ctx):
    status, _, raw = raw_request(ctx, "POST", f"/v2/models/{UNKNOWN_MODEL}/infer", body=b'{"inputs": []}')
    expect(status == 404, f"returned {status}, expected 404")
    try:
        body = json.loads(raw)
    except ValueError:
        raise CheckFailed(f"body is not JSON: {raw[:200]!r}") from None
    expect(isinstance(body, dict) and isinstance(body.get("error"), str), f'body {body!r} is not {{"error": "..."}}')


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


def wait_until_live(ctx, timeout_s):
    def live():
        try:
            with urllib.request.urlopen(ctx.http_base() + "/v2/health/live", timeout=5) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    return wait_for(live, timeout_s, interval_s=0.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http", required=True, metavar="HOST:PORT", help="HTTP endpoint, e.g. localhost:8000")
    parser.add_argument("--grpc", required=True, metavar="HOST:PORT", help="gRPC endpoint, e.g. localhost:8001")
    parser.add_argument("--repo", required=True, help="model repository written by make_fixtures.py")
    parser.add_argument("-k", dest="filter", default="", help="run only checks whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the server to be live")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of unexpected exceptions")
    args = parser.parse_args()

    selected = [(n, f) for n, f in CHECKS if args.filter in n]
    if args.list:
        for name, _ in selected:
            print(name)
        return 0
    if not selected:
        print(f"no check matches {args.filter!r}")
        return 1
    for model_file in ("mlp/1/model.onnx", "mlp/2/model.onnx", "simple/1/model.onnx"):
        if not (Path(args.repo) / model_file).is_file():
            print(f"--repo {args.repo} lacks {model_file}; write it with make_fixtures.py")
            return 1

    ctx = Context(args)
    try:
        if not wait_until_live(ctx, args.wait):
            print(f"server at {args.http} not live after {args.wait:g} s")
            print(f"0 passed, {len(selected)} failed")
            return 1
        return 0 if run_checks(ctx, selected, args.verbose) else 1
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
