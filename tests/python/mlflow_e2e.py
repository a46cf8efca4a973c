#!/usr/bin/env python3
"""End-to-end checks of an MLflow-compatible tracking server with the stock `mlflow` 3.17 client.

How it is run (the server must already be listening):

    PY=$(bash .ci/setup-mlflow.sh)
    <start the server, e.g. cerulean registry, on 127.0.0.1:8080>
    $PY tests/python/mlflow_e2e.py --tracking-uri http://127.0.0.1:8080 \
        [--artifact-check-dir DIR] [-k SUBSTRING] [--list] [--verbose]

Every check runs, one line each (PASS/FAIL name: reason), then a summary line
"N passed, N failed". The exit status is 1 if any check failed, 0 otherwise.
Names are unique per invocation (a random suffix), so the script can run
again and again against the same server.

The checks drive the server through the public `mlflow` API exactly as a data
scientist would (mlflow.set_experiment, start_run, log_*, search_runs,
register_model, MlflowClient registry calls, mlflow.artifacts.
download_artifacts, mlflow.pyfunc.log_model / load_model, which uses the
MLflow 3 LoggedModel endpoints), plus a few raw urllib requests for what the
client hides (the HTTP status of an error, the /ajax-api mirror). Artifacts
must go through the server's artifact proxy (`mlflow-artifacts:/` URIs);
--artifact-check-dir DIR additionally checks that the uploaded bytes landed
in the server's local artifact store under DIR (a file whose path holds the
run id and ends with the artifact's path).

Oracle: every check PASSES against the real MLflow server 3.17.2 (mlflow
3.17.2 from PyPI, Python 3.11), started as

    mlflow server --backend-store-uri sqlite:///$TMP/mlf.db \
        --artifacts-destination $TMP/mlf-artifacts --serve-artifacts \
        --host 127.0.0.1 --port 5055 --workers 1

and run with --artifact-check-dir $TMP/mlf-artifacts (and run twice in a row
against the same server). Where an expectation below looks arbitrary (the
error code after an alias is deleted, null-last ordering of a missing metric),
it is what MLflow 3.17.2 does.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
from pathlib import Path

# Before mlflow is imported: no telemetry (the machines are offline), and no
# minutes of retries with back-off when a server under test answers 5xx.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # no "View run ... at" lines
if "--verbose" not in sys.argv:
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
warnings.filterwarnings("ignore")  # stage APIs are deprecated in 3.x; we call them on purpose

import mlflow  # noqa: E402
import mlflow.artifacts  # noqa: E402
import mlflow.pyfunc  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag, ViewType  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

warnings.filterwarnings("ignore")  # again: importing mlflow installs its own warning filters


API = "/api/2.0/mlflow"
# How long the client polls a new model version for status READY (its default is 300 s, which
# would make a broken server's run crawl); MLflow answers READY at once.
AWAIT_S = 10


class CheckFailed(AssertionError):
    """A check's expectation was not met."""


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def expect_eq(got, want, what):
    if got != want:
        raise CheckFailed(f"{what}: got {got!r}, expected {want!r}")


# --------------------------------------------------------------------------
# Check registry and runner (same style as triton_e2e.py)
# --------------------------------------------------------------------------

CHECKS = []  # (name, function(ctx), needs_artifact_dir)


def check(name, needs_artifact_dir=False):
    def register(fn):
        CHECKS.append((name, fn, needs_artifact_dir))
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
            print(f"FAIL {name}: unexpected {type(exc).__name__}: {str(exc)[:500]}", flush=True)
            if verbose:
                traceback.print_exc()
        else:
            passed += 1
            print(f"PASS {name} ({time.monotonic() - start:.2f}s)", flush=True)
        finally:
            # A failing check must not leave a run active for the next one.
            while mlflow.active_run() is not None:
                mlflow.end_run()
    print(f"{passed} passed, {failed} failed")
    return failed == 0


# --------------------------------------------------------------------------
# Context: the client, unique names and lazily built fixtures
# --------------------------------------------------------------------------


class Context:
    def __init__(self, args):
        self.uri = args.tracking_uri.rstrip("/")
        self.artifact_dir = Path(args.artifact_check_dir) if args.artifact_check_dir else None
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self.sfx = uuid.uuid4().hex[:10]
        self.tmp = Path(tempfile.mkdtemp(prefix="mlflow-e2e-"))
        self._cache = {}

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def name(self, what):
        return f"e2e-{what}-{self.sfx}"

    def fresh_dir(self, what):
        path = self.tmp / f"{what}-{uuid.uuid4().hex[:6]}"
        path.mkdir(parents=True)
        return path

    def once(self, key, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    # -- fixtures --------------------------------------------------------

    def experiment_id(self):
        """An experiment of our own for runs that need no special setup."""
        return self.once("exp", lambda: self.client.create_experiment(self.name("main")))

    def artifact_run(self):
        """A finished run holding a known artifact tree; returns (run_id, {relpath: bytes})."""
        return self.once("artifact_run", self._build_artifact_run)

    def _build_artifact_run(self):
        src = self.fresh_dir("artifacts")
        files = {
            "hello.txt": b"hello, cerulean\n",
            "sub/data.bin": os.urandom(4096) + bytes(range(256)),
            "tree/a.txt": b"a" * 1000,
            "tree/with space.txt": "sp\u00e4ce \u2713\n".encode(),
            "tree/nested/b.json": json.dumps({"b": [1, 2, 3]}).encode(),
            "tree/nested/deeper/c.bin": os.urandom(70_000),
            "tree/empty.txt": b"",
        }
        (src / "hello.txt").write_bytes(files["hello.txt"])
        (src / "data.bin").write_bytes(files["sub/data.bin"])
        tree = src / "tree"
        for rel, data in files.items():
            if rel.startswith("tree/"):
                path = src / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        with mlflow.start_run(experiment_id=self.experiment_id(), run_name="artifacts") as run:
            mlflow.log_artifact(str(src / "hello.txt"))
            mlflow.log_artifact(str(src / "data.bin"), artifact_path="sub")
            mlflow.log_artifacts(str(tree), artifact_path="tree")
        return run.info.run_id, files

    def model_dir_run(self):
        """A run with a `model/` directory holding an MLmodel file (what register_model wants)."""
        return self.once("model_dir_run", self._build_model_dir_run)

    def _build_model_dir_run(self):
        src = self.fresh_dir("model")
        (src / "MLmodel").write_text("artifact_path: model\nflavors: {}\nmodel_uuid: 0\n")
        (src / "weights.bin").write_bytes(os.urandom(10_000))
        (src / "cfg").mkdir()
        (src / "cfg" / "config.json").write_text('{"layers": 3}')
        with mlflow.start_run(experiment_id=self.experiment_id(), run_name="model-dir") as run:
            mlflow.log_artifacts(str(src), artifact_path="model")
        return run.info.run_id, src

    def search_fixture(self):
        """Seven runs with known metrics/params/tags/start times in their own experiment."""
        return self.once("search", self._build_search_fixture)

    def _build_search_fixture(self):
        name = self.name("search")
        exp_id = self.client.create_experiment(name)
        base = int(time.time() * 1000) - 100_000
        runs = []
        for i in range(7):
            run = self.client.create_run(
                exp_id, start_time=base + i * 1000, run_name=f"r{i}", tags={"team": "abc"[i % 3]}
            )
            rid = run.info.run_id
            metrics = [Metric("acc", i / 10, base + i * 1000, 0)]
            if i < 4:
                metrics.append(Metric("loss", 10.0 - i, base + i * 1000, 0))
            self.client.log_batch(
                rid,
                metrics=metrics,
                params=[Param("lr", ["0.01", "0.1"][i % 2]), Param("idx", str(i))],
                tags=[RunTag("parity", "odd" if i % 2 else "even")],
            )
            self.client.set_terminated(rid, status="FAILED" if i == 5 else "FINISHED", end_time=base + i * 1000 + 500)
            runs.append(rid)
        return {"exp_id": exp_id, "name": name, "runs": runs, "base": base}


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def expect_mlflow_error(call, code, what):
    """Run `call`, which must raise MlflowException with error_code `code`."""
    try:
        call()
    except MlflowException as exc:
        expect(exc.error_code == code, f"{what}: raised {exc.error_code}, expected {code}: {exc.message[:300]}")
        return exc
    raise CheckFailed(f"{what}: succeeded, expected MlflowException {code}")


def raw(ctx, method, path, body=None, query=None):
    """A raw HTTP request; returns (status, parsed JSON or raw bytes)."""
    url = ctx.uri + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, payload = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, payload = err.code, err.read()
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload


def expect_raw_error(ctx, method, path, body, query, status, code, what):
    got_status, payload = raw(ctx, method, path, body, query)
    expect(got_status == status, f"{what}: HTTP {got_status}, expected {status}: {payload!r:.300}")
    expect(isinstance(payload, dict), f"{what}: error body is not a JSON object: {payload!r:.300}")
    expect(payload.get("error_code") == code, f"{what}: error_code {payload.get('error_code')!r}, expected {code}")
    expect(isinstance(payload.get("message"), str), f"{what}: error body has no string message: {payload!r:.300}")


def tree_bytes(root):
    """{relative posix path: bytes} of every file under root."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def expect_same_tree(got_root, want, what):
    got = tree_bytes(got_root)
    # The client itself writes this file next to a registered model it downloaded.
    got.pop("registered_model_meta", None)
    expect_eq(sorted(got), sorted(want), f"{what}: file list")
    for rel, data in want.items():
        if got[rel] != data:
            raise CheckFailed(f"{what}: {rel} differs ({len(got[rel])} bytes, expected {len(data)})")


def tags_of(run):
    return dict(run.data.tags)


# --------------------------------------------------------------------------
# Framing and experiments
# --------------------------------------------------------------------------


@check("rest: default experiment '0' exists and /ajax-api/2.0 mirrors /api/2.0")
def check_default_experiment(ctx):
    exp = ctx.client.get_experiment("0")
    expect_eq(exp.experiment_id, "0", "experiment id")
    expect_eq(exp.name, "Default", "default experiment name")
    expect_eq(exp.lifecycle_stage, "active", "lifecycle stage")
    status, body = raw(ctx, "GET", "/ajax-api/2.0/mlflow/experiments/get", query={"experiment_id": "0"})
    expect(status == 200, f"/ajax-api experiments/get: HTTP {status}")
    expect_eq(body["experiment"]["name"], "Default", "/ajax-api experiment name")


@check("experiments: set_experiment creates a new experiment (get-by-name miss, then create)")
def check_set_experiment_new(ctx):
    name = ctx.name("setexp")
    expect(ctx.client.get_experiment_by_name(name) is None, "get_experiment_by_name of a new name is not None")
    exp = mlflow.set_experiment(name)
    expect_eq(exp.name, name, "name")
    expect_eq(exp.lifecycle_stage, "active", "lifecycle stage")
    expect(exp.experiment_id not in ("", "0", None), f"experiment id {exp.experiment_id!r}")
    expect(exp.artifact_location, "no artifact_location")
    again = ctx.client.get_experiment_by_name(name)
    expect(again is not None, "get_experiment_by_name after set_experiment returned None")
    expect_eq(again.experiment_id, exp.experiment_id, "id from get_experiment_by_name")
    with mlflow.start_run() as run:
        pass
    expect_eq(run.info.experiment_id, exp.experiment_id, "start_run used the active experiment")
    ctx._cache["set_experiment"] = (name, exp.experiment_id)


@check("experiments: set_experiment on an existing name (and by id) returns the same experiment")
def check_set_experiment_existing(ctx):
    name, exp_id = ctx.once("set_experiment", lambda: (ctx.name("setexp2"), None))
    if exp_id is None:
        exp_id = mlflow.set_experiment(name).experiment_id
    exp = mlflow.set_experiment(name)
    expect_eq(exp.experiment_id, exp_id, "id on the second set_experiment")
    exp = mlflow.set_experiment(experiment_id=exp_id)
    expect_eq(exp.name, name, "name from set_experiment(experiment_id=)")


@check("experiments: create with tags, get, search, rename, set tag, delete/restore")
def check_experiment_lifecycle(ctx):
    c = ctx.client
    name = ctx.name("explife")
    exp_id = c.create_experiment(name, tags={"owner": "e2e", "k2": "v2"})
    exp = c.get_experiment(exp_id)
    expect_eq(exp.name, name, "name")
    expect_eq({k: v for k, v in exp.tags.items() if not k.startswith("mlflow.")}, {"owner": "e2e", "k2": "v2"}, "tags")
    c.set_experiment_tag(exp_id, "k2", "changed")
    expect_eq(c.get_experiment(exp_id).tags.get("k2"), "changed", "tag after set_experiment_tag")
    found = c.search_experiments(filter_string=f"name = '{name}'")
    expect_eq([e.experiment_id for e in found], [exp_id], "search_experiments by name")
    found = c.search_experiments(filter_string=f"name LIKE 'e2e-explife-{ctx.sfx}%'")
    expect_eq([e.experiment_id for e in found], [exp_id], "search_experiments by LIKE")
    new_name = name + "-renamed"
    c.rename_experiment(exp_id, new_name)
    expect_eq(c.get_experiment(exp_id).name, new_name, "name after rename")
    expect(c.get_experiment_by_name(name) is None, "old name still resolves after rename")
    c.delete_experiment(exp_id)
    expect_eq(c.get_experiment(exp_id).lifecycle_stage, "deleted", "lifecycle after delete")
    active = c.search_experiments(filter_string=f"name = '{new_name}'")
    expect_eq(active, [], "search_experiments (ACTIVE_ONLY) lists a deleted experiment")
    deleted = c.search_experiments(view_type=ViewType.DELETED_ONLY, filter_string=f"name = '{new_name}'")
    expect_eq([e.experiment_id for e in deleted], [exp_id], "search_experiments DELETED_ONLY")
    try:
        mlflow.set_experiment(new_name)
    except MlflowException:
        pass
    else:
        raise CheckFailed("set_experiment of a deleted experiment did not raise")
    c.restore_experiment(exp_id)
    expect_eq(c.get_experiment(exp_id).lifecycle_stage, "active", "lifecycle after restore")


@check("experiments: search_experiments pages with max_results and page tokens")
def check_experiment_paging(ctx):
    c = ctx.client
    prefix = ctx.name("exppage")
    ids = [c.create_experiment(f"{prefix}-{i}") for i in range(5)]
    seen, token, pages = [], None, 0
    while True:
        page = c.search_experiments(
            max_results=2, filter_string=f"name LIKE '{prefix}-%'", order_by=["name ASC"], page_token=token
        )
        expect(len(page) <= 2, f"page of {len(page)} > max_results 2")
        seen += [e.experiment_id for e in page]
        pages += 1
        token = page.token
        if not token:
            break
        expect(pages < 10, "paging does not end")
    expect_eq(seen, ids, "experiments collected over pages, by name")


@check("errors: duplicate create_experiment raises RESOURCE_ALREADY_EXISTS (HTTP 400)")
def check_duplicate_experiment(ctx):
    name = ctx.name("dup")
    ctx.client.create_experiment(name)
    expect_mlflow_error(lambda: ctx.client.create_experiment(name), "RESOURCE_ALREADY_EXISTS", "second create")
    expect_raw_error(
        ctx, "POST", f"{API}/experiments/create", {"name": name}, None, 400, "RESOURCE_ALREADY_EXISTS", "raw create"
    )


@check("errors: get_run of an unknown run raises RESOURCE_DOES_NOT_EXIST (HTTP 404)")
def check_unknown_run(ctx):
    missing = uuid.uuid4().hex
    expect_mlflow_error(lambda: ctx.client.get_run(missing), "RESOURCE_DOES_NOT_EXIST", "get_run")
    expect_raw_error(
        ctx, "GET", f"{API}/runs/get", None, {"run_id": missing}, 404, "RESOURCE_DOES_NOT_EXIST", "raw runs/get"
    )


@check("errors: unknown experiment: get_experiment_by_name is None, get_experiment raises RESOURCE_DOES_NOT_EXIST")
def check_unknown_experiment(ctx):
    expect(ctx.client.get_experiment_by_name(ctx.name("nope")) is None, "get_experiment_by_name is not None")
    expect_mlflow_error(lambda: ctx.client.get_experiment("987654321"), "RESOURCE_DOES_NOT_EXIST", "get_experiment")
    expect_raw_error(
        ctx, "GET", f"{API}/experiments/get-by-name", None, {"experiment_name": ctx.name("nope")},
        404, "RESOURCE_DOES_NOT_EXIST", "raw get-by-name",
    )


# --------------------------------------------------------------------------
# Runs: params, metrics, tags
# --------------------------------------------------------------------------


@check("runs: start_run/end_run: RUNNING then FINISHED, run name, times, system tags")
def check_run_lifecycle(ctx):
    mlflow.set_experiment(experiment_id=ctx.experiment_id())
    before = int(time.time() * 1000)
    with mlflow.start_run(run_name="lifecycle", description="a note") as run:
        rid = run.info.run_id
        live = ctx.client.get_run(rid)
        expect_eq(live.info.status, "RUNNING", "status inside the run")
        expect_eq(mlflow.active_run().info.run_id, rid, "active_run")
    after = int(time.time() * 1000)
    done = ctx.client.get_run(rid)
    expect_eq(done.info.status, "FINISHED", "status after the with block")
    expect_eq(done.info.run_name, "lifecycle", "run_name")
    expect_eq(done.info.experiment_id, ctx.experiment_id(), "experiment_id")
    expect_eq(done.info.lifecycle_stage, "active", "lifecycle_stage")
    expect(before - 5 <= done.info.start_time <= after + 5, f"start_time {done.info.start_time} not in [{before}, {after}]")
    expect(done.info.end_time is not None and done.info.start_time <= done.info.end_time <= after + 5, f"end_time {done.info.end_time}")
    tags = tags_of(done)
    expect_eq(tags.get("mlflow.runName"), "lifecycle", "mlflow.runName tag")
    expect_eq(tags.get("mlflow.note.content"), "a note", "mlflow.note.content tag (description)")
    for key in ("mlflow.user", "mlflow.source.name", "mlflow.source.type"):
        expect(key in tags, f"system tag {key} missing; tags: {sorted(tags)}")
    # A run that raises ends FAILED.
    try:
        with mlflow.start_run(run_name="fails") as bad:
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    expect_eq(ctx.client.get_run(bad.info.run_id).info.status, "FAILED", "status after an exception")
    # Resuming a finished run by id sets it RUNNING again.
    with mlflow.start_run(run_id=rid):
        expect_eq(ctx.client.get_run(rid).info.status, "RUNNING", "status of a resumed run")
    expect_eq(ctx.client.get_run(rid).info.status, "FINISHED", "status after the resumed run ends")


@check("runs: nested start_run tags the child with mlflow.parentRunId")
def check_nested_runs(ctx):
    mlflow.set_experiment(experiment_id=ctx.experiment_id())  # nested runs go to the active experiment
    with mlflow.start_run(run_name="parent") as parent:
        with mlflow.start_run(run_name="child-1", nested=True) as child1:
            with mlflow.start_run(run_name="grandchild", nested=True) as grandchild:
                pass
        with mlflow.start_run(run_name="child-2", nested=True) as child2:
            pass
    pid = parent.info.run_id
    expect("mlflow.parentRunId" not in tags_of(ctx.client.get_run(pid)), "the parent has a parentRunId tag")
    for child in (child1, child2):
        tags = tags_of(ctx.client.get_run(child.info.run_id))
        expect_eq(tags.get("mlflow.parentRunId"), pid, f"mlflow.parentRunId of {child.info.run_name}")
    tags = tags_of(ctx.client.get_run(grandchild.info.run_id))
    expect_eq(tags.get("mlflow.parentRunId"), child1.info.run_id, "mlflow.parentRunId of the grandchild")
    children = ctx.client.search_runs([ctx.experiment_id()], filter_string=f"tags.mlflow.parentRunId = '{pid}'")
    expect_eq(sorted(r.info.run_id for r in children), sorted([child1.info.run_id, child2.info.run_id]), "children found by search")
    for r in (parent, child1, child2, grandchild):
        expect_eq(ctx.client.get_run(r.info.run_id).info.status, "FINISHED", f"status of {r.info.run_name}")


@check("params: log_param, log_params (150 params: several log-batch calls), same value again is accepted")
def check_params(ctx):
    many = {f"p{i:03d}": f"value-{i}" for i in range(150)}
    long_value = "x" * 6000
    with mlflow.start_run(experiment_id=ctx.experiment_id(), run_name="params") as run:
        mlflow.log_param("lr", 0.01)
        mlflow.log_param("layers", 3)
        mlflow.log_param("long", long_value)
        mlflow.log_params(many)
        mlflow.log_param("lr", 0.01)  # the same value again is idempotent
        mlflow.log_params({"layers": 3})
    params = ctx.client.get_run(run.info.run_id).data.params
    expect_eq(params.get("lr"), "0.01", "param lr")
    expect_eq(params.get("layers"), "3", "param layers")
    expect_eq(params.get("long"), long_value, "6000-character param value")
    expect_eq({k: v for k, v in params.items() if k.startswith("p")}, many, "150 params from log_params")


@check("errors: log_param twice with a different value raises INVALID_PARAMETER_VALUE (HTTP 400)")
def check_param_overwrite(ctx):
    with mlflow.start_run(experiment_id=ctx.experiment_id(), run_name="param-twice") as run:
        mlflow.log_param("alpha", "1")
        expect_mlflow_error(lambda: mlflow.log_param("alpha", "2"), "INVALID_PARAMETER_VALUE", "log_param")
        expect_mlflow_error(lambda: mlflow.log_params({"alpha": "3"}), "INVALID_PARAMETER_VALUE", "log_params")
        expect_raw_error(
            ctx, "POST", f"{API}/runs/log-parameter", {"run_id": run.info.run_id, "key": "alpha", "value": "4"},
            None, 400, "INVALID_PARAMETER_VALUE", "raw log-parameter",
        )
    expect_eq(ctx.client.get_run(run.info.run_id).data.params.get("alpha"), "1", "param after the refused changes")


@check("metrics: log_metric with steps; get_metric_history returns every step, value and timestamp")
def check_metric_history(ctx):
    c = ctx.client
    base = int(time.time() * 1000) - 10_000
    explicit = [  # (value, timestamp, step): repeated steps append, out-of-order steps are kept
        (0.5, base + 0, 0), (0.25, base + 10, 1), (0.125, base + 20, 2), (0.2, base + 30, 1),
        (-3.75, base + 40, 7), (1e10, base + 50, 2**40), (42.0, base + 60, 3),
    ]
    with mlflow.start_run(experiment_id=ctx.experiment_id(), run_name="metric-history") as run:
        rid = run.info.run_id
        for value, ts, step in explicit:
            c.log_metric(rid, "loss", value, timestamp=ts, step=step)
        t0 = int(time.time() * 1000)
        for step in range(5):
            mlflow.log_metric("acc", step / 4, step=step)
        mlflow.log_metric("nostep", 1.5)
        t1 = int(time.time() * 1000)
    history = c.get_metric_history(rid, "loss")
    got = sorted((m.value, m.timestamp, m.step) for m in history)
    expect_eq(got, sorted(explicit), "loss history (value, timestamp, step)")
    expect(all(m.key == "loss" for m in history), "history entries carry another key")
    acc = sorted(((m.step, m.value) for m in c.get_metric_history(rid, "acc")))
    expect_eq(acc, [(s, s / 4) for s in range(5)], "acc history (step, value)")
    for m in c.get_metric_history(rid, "acc"):
        expect(t0 - 5 <= m.timestamp <= t1 + 5, f"client timestamp {m.timestamp} not in [{t0}, {t1}]")
    nostep = c.get_metric_history(rid, "nostep")
    expect_eq([(m.value, m.step) for m in nostep], [(1.5, 0)], "metric logged without a step has step 0")
    expect_eq(c.get_metric_history(rid, "never-logged"), [], "history of a key never logged")


@check("metrics: log_metrics with a step; run data holds the latest value per key (highest step)")
def check_latest_metrics(ctx):
    with mlflow.start_run(experiment_id=ctx.experiment_id(), run_name="latest-metrics") as run:
        for step, (a, b) in enumerate([(1.0, 10.0), (2.0, 20.0), (3.0, 30.0)]):
            mlflow.log_metrics({"a": a, "b": b}, step=step)
        mlflow.log_metric("c", 5.0, step=5)
        mlflow.log_metric("c", 1.0, step=1)  # later but a lower step: not the latest
        big = {f"m{i:04d}": float(i) for i in range(1200)}  # more than one log-batch (1000 metrics max)
        mlflow.log_metrics(big, step=0)
    metrics = ctx.client.get_run(run.info.run_id).data.metrics
    expect_eq(metrics.get("a"), 3.0, "latest a")
    expect_eq(metrics.get("b"), 30.0, "latest b")
    expect_eq(metrics.get("c"), 5.0, "latest c (the highest step wins over the latest timestamp)")
    expect_eq({k: v for k, v in metrics.items() if k.startswith("m")}, big, "1200 metrics from log_metrics")
    expect_eq(len(ctx.client.get_metric_history(run.info.run_id, "a")), 3, "history length of a")


@check("tags: set_tag, set_tags, overwrite, delete_tag")
def check_tags(ctx):
    with mlflow.start_run(experiment_id=ctx.experiment_id(), run_name="tags") as run:
        rid = run.info.run_id
        mlflow.set_tag("stage", "dev")
        mlflow.set_tags({"team": "ml", "k": "v", "long": "t" * 5000})
        mlflow.set_tag("stage", "prod")  # tags overwrite
        ctx.client.delete_tag(rid, "k")
    tags = tags_of(ctx.client.get_run(rid))
    expect_eq(tags.get("stage"), "prod", "overwritten tag")
    expect_eq(tags.get("team"), "ml", "tag from set_tags")
    expect_eq(tags.get("long"), "t" * 5000, "5000-character tag value")
    expect("k" not in tags, "deleted tag still present")
    expect_mlflow_error(lambda: ctx.client.delete_tag(rid, "never-set"), "RESOURCE_DOES_NOT_EXIST", "delete of a missing tag")


@check("runs: log_input records a dataset input (log-inputs)")
def check_log_input(ctx):
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    dataset = mlflow.data.from_pandas(df, name=f"ds-{ctx.sfx}", targets="y")
    with mlflow.start_run(experiment_id=ctx.experiment_id(), run_name="inputs") as run:
        mlflow.log_input(dataset, context="training")
    inputs = ctx.client.get_run(run.info.run_id).inputs.dataset_inputs
    expect_eq(len(inputs), 1, "number of dataset inputs")
    expect_eq(inputs[0].dataset.name, f"ds-{ctx.sfx}", "dataset name")
    expect_eq(inputs[0].dataset.digest, dataset.digest, "dataset digest")
    expect_eq({t.key: t.value for t in inputs[0].tags}.get("mlflow.data.context"), "training", "input context tag")


@check("runs: delete_run hides the run from search, restore_run brings it back (run_view_type)")
def check_delete_restore_run(ctx):
    c = ctx.client
    exp_id = c.create_experiment(ctx.name("delrun"))
    keep = c.create_run(exp_id, run_name="keep").info.run_id
    gone = c.create_run(exp_id, run_name="gone").info.run_id
    c.delete_run(gone)
    expect_eq(c.get_run(gone).info.lifecycle_stage, "deleted", "lifecycle after delete_run")
    ids = lambda view: sorted(r.info.run_id for r in c.search_runs([exp_id], run_view_type=view))  # noqa: E731
    expect_eq(ids(ViewType.ACTIVE_ONLY), [keep], "ACTIVE_ONLY")
    expect_eq(ids(ViewType.DELETED_ONLY), [gone], "DELETED_ONLY")
    expect_eq(ids(ViewType.ALL), sorted([keep, gone]), "ALL")
    c.restore_run(gone)
    expect_eq(c.get_run(gone).info.lifecycle_stage, "active", "lifecycle after restore_run")
    expect_eq(ids(ViewType.ACTIVE_ONLY), sorted([keep, gone]), "ACTIVE_ONLY after restore")


# --------------------------------------------------------------------------
# Artifacts
# --------------------------------------------------------------------------


@check("artifacts: experiment artifact_location and run artifact_uri are mlflow-artifacts:/ (server proxy)")
def check_artifact_uri(ctx):
    exp = ctx.client.get_experiment(ctx.experiment_id())
    expect(exp.artifact_location.startswith("mlflow-artifacts:/"), f"artifact_location {exp.artifact_location!r}")
    with mlflow.start_run(experiment_id=ctx.experiment_id(), run_name="uri") as run:
        pass
    uri = ctx.client.get_run(run.info.run_id).info.artifact_uri
    expect(uri.startswith("mlflow-artifacts:/"), f"artifact_uri {uri!r} does not use the proxy")
    expect(run.info.run_id in uri, f"artifact_uri {uri!r} does not name the run")


@check("artifacts: log_artifact and log_artifacts (nested dir); list_artifacts paths, is_dir and sizes")
def check_list_artifacts(ctx):
    rid, files = ctx.artifact_run()
    root = {f.path: f for f in ctx.client.list_artifacts(rid)}
    expect_eq(sorted(root), ["hello.txt", "sub", "tree"], "root listing")
    expect(not root["hello.txt"].is_dir and root["hello.txt"].file_size == len(files["hello.txt"]), f"hello.txt entry {root['hello.txt']}")
    expect(root["sub"].is_dir and root["tree"].is_dir, "sub/ and tree/ are not listed as directories")
    tree = {f.path: f for f in ctx.client.list_artifacts(rid, "tree")}
    expect_eq(sorted(tree), ["tree/a.txt", "tree/empty.txt", "tree/nested", "tree/with space.txt"], "tree/ listing")
    for rel in ("tree/a.txt", "tree/empty.txt", "tree/with space.txt"):
        expect(not tree[rel].is_dir, f"{rel} listed as a directory")
        want = len(files[rel]) or None  # MLflow omits file_size 0 (the proto default): the client reads None
        expect(tree[rel].file_size in (len(files[rel]), want), f"size of {rel}: {tree[rel].file_size}")
    expect(tree["tree/nested"].is_dir, "tree/nested is not a directory")
    deeper = {f.path: f for f in ctx.client.list_artifacts(rid, "tree/nested/deeper")}
    expect_eq(sorted(deeper), ["tree/nested/deeper/c.bin"], "tree/nested/deeper listing")
    expect_eq(deeper["tree/nested/deeper/c.bin"].file_size, len(files["tree/nested/deeper/c.bin"]), "size of c.bin")
    expect_eq(ctx.client.list_artifacts(rid, "no-such-dir"), [], "listing of a missing directory")


@check("artifacts: download_artifacts of a file, a directory and the whole run is byte-identical")
def check_download_artifacts(ctx):
    rid, files = ctx.artifact_run()
    dst = ctx.fresh_dir("dl-file")
    path = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="sub/data.bin", dst_path=str(dst))
    expect_eq(Path(path).read_bytes(), files["sub/data.bin"], "sub/data.bin bytes")
    dst = ctx.fresh_dir("dl-dir")
    path = mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{rid}/tree", dst_path=str(dst))
    expect_same_tree(path, {k[len("tree/"):]: v for k, v in files.items() if k.startswith("tree/")}, "runs:/RUN/tree")
    dst = ctx.fresh_dir("dl-all")
    path = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="", dst_path=str(dst))
    expect_same_tree(path, files, "whole run")
    dst = ctx.fresh_dir("dl-client")
    path = ctx.client.download_artifacts(rid, "hello.txt", str(dst))
    expect_eq(Path(path).read_bytes(), files["hello.txt"], "MlflowClient.download_artifacts bytes")


@check("artifacts: a 12 MiB binary file round-trips byte-identical")
def check_large_artifact(ctx):
    data = os.urandom(12 * 1024 * 1024 + 17)
    src = ctx.fresh_dir("big") / "big.bin"
    src.write_bytes(data)
    with mlflow.start_run(experiment_id=ctx.experiment_id(), run_name="big") as run:
        mlflow.log_artifact(str(src), artifact_path="blobs")
    listed = ctx.client.list_artifacts(run.info.run_id, "blobs")
    expect_eq([(f.path, f.file_size) for f in listed], [("blobs/big.bin", len(data))], "listing")
    path = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="blobs/big.bin", dst_path=str(ctx.fresh_dir("big-dl"))
    )
    got = Path(path).read_bytes()
    expect(hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), f"downloaded {len(got)} bytes differ")


@check("artifacts: the uploaded bytes are stored under --artifact-check-dir", needs_artifact_dir=True)
def check_artifact_store(ctx):
    rid, files = ctx.artifact_run()
    expect(ctx.artifact_dir.is_dir(), f"{ctx.artifact_dir} is not a directory")
    for rel, data in files.items():
        hits = [
            p for p in ctx.artifact_dir.rglob(Path(rel).name)
            if p.is_file() and rid in p.parts and p.as_posix().endswith("/" + rel)
        ]
        expect(hits, f"no file under {ctx.artifact_dir} for run {rid} ending in /{rel}")
        expect(any(p.read_bytes() == data for p in hits), f"stored {rel} differs from what was uploaded")


# --------------------------------------------------------------------------
# search_runs
# --------------------------------------------------------------------------

SEARCH_FILTERS = [  # (filter string, indices of the matching runs r0..r6)
    ("metrics.acc > 0.35", [4, 5, 6]),
    ("metrics.acc >= 0.2 and metrics.acc < 0.5", [2, 3, 4]),
    ("metrics.loss <= 8", [2, 3]),
    ("params.lr = '0.1'", [1, 3, 5]),
    ("params.lr != '0.1'", [0, 2, 4, 6]),
    ("params.lr LIKE '0.0%'", [0, 2, 4, 6]),
    ("tags.team = 'a'", [0, 3, 6]),
    ("tags.team != 'a'", [1, 2, 4, 5]),
    ("tags.parity = 'odd' AND tags.team = 'b'", [1]),
    ("params.lr = '0.1' and tags.team = 'b'", [1]),
    ("metrics.acc > 0.1 AND params.lr = '0.01' AND tags.team = 'c'", [2]),
    ("attributes.status = 'FAILED'", [5]),
    ("attributes.status = 'FINISHED' and metrics.acc > 0.35", [4, 6]),
    ("attributes.run_name = 'r3'", [3]),
    ("run_name LIKE 'r%'", [0, 1, 2, 3, 4, 5, 6]),
    ("attributes.run_name ILIKE 'R6'", [6]),
    ("tags.`mlflow.runName` = 'r1'", [1]),
    ("tags.team ILIKE 'A'", [0, 3, 6]),
]


@check("search_runs: filter strings on metrics, params, tags and attributes")
def check_search_filters(ctx):
    fx = ctx.search_fixture()
    runs = fx["runs"]
    for flt, want in SEARCH_FILTERS:
        got = ctx.client.search_runs([fx["exp_id"]], filter_string=flt)
        expect_eq(sorted(runs.index(r.info.run_id) for r in got), want, f"filter {flt!r}")
    base = fx["base"]
    got = ctx.client.search_runs([fx["exp_id"]], filter_string=f"attributes.start_time >= {base + 3000}")
    expect_eq(sorted(runs.index(r.info.run_id) for r in got), [3, 4, 5, 6], "filter on attributes.start_time")
    wanted = f"attributes.run_id IN ('{runs[1]}', '{runs[4]}')"
    got = ctx.client.search_runs([fx["exp_id"]], filter_string=wanted)
    expect_eq(sorted(runs.index(r.info.run_id) for r in got), [1, 4], "filter on attributes.run_id IN")
    # Every run returned carries its data.
    r = ctx.client.search_runs([fx["exp_id"]], filter_string="attributes.run_name = 'r2'")[0]
    expect_eq(r.data.metrics, {"acc": 0.2, "loss": 8.0}, "metrics of r2 in search results")
    expect_eq(r.data.params, {"lr": "0.01", "idx": "2"}, "params of r2 in search results")
    expect_eq(tags_of(r).get("team"), "c", "tag of r2 in search results")
    expect_mlflow_error(
        lambda: ctx.client.search_runs([fx["exp_id"]], filter_string="metrics.acc >>> 1"),
        "INVALID_PARAMETER_VALUE", "malformed filter",
    )


@check("search_runs: order_by on metrics, params and attributes; default order is start_time DESC")
def check_search_order(ctx):
    fx = ctx.search_fixture()
    runs = fx["runs"]

    def order(order_by):
        got = ctx.client.search_runs([fx["exp_id"]], order_by=order_by)
        return [runs.index(r.info.run_id) for r in got]

    expect_eq(order(None), [6, 5, 4, 3, 2, 1, 0], "default order (start_time DESC)")
    expect_eq(order(["metrics.acc DESC"]), [6, 5, 4, 3, 2, 1, 0], "metrics.acc DESC")
    expect_eq(order(["metrics.acc ASC"]), [0, 1, 2, 3, 4, 5, 6], "metrics.acc ASC")
    expect_eq(order(["metrics.acc"]), [0, 1, 2, 3, 4, 5, 6], "metrics.acc (ASC by default)")
    expect_eq(order(["params.lr ASC", "metrics.acc DESC"]), [6, 4, 2, 0, 5, 3, 1], "params.lr ASC, metrics.acc DESC")
    expect_eq(order(["tags.team DESC", "attributes.start_time ASC"]), [2, 5, 1, 4, 0, 3, 6], "tags.team DESC, start_time ASC")
    expect_eq(order(["attributes.start_time ASC"]), [0, 1, 2, 3, 4, 5, 6], "attributes.start_time ASC")
    expect_eq(order(["attributes.run_name DESC"]), [6, 5, 4, 3, 2, 1, 0], "attributes.run_name DESC")
    # Runs without the metric sort last in both directions.
    expect_eq(order(["metrics.loss ASC"])[:4], [3, 2, 1, 0], "metrics.loss ASC (present values first)")
    expect_eq(sorted(order(["metrics.loss ASC"])[4:]), [4, 5, 6], "metrics.loss ASC (missing last)")
    expect_eq(order(["metrics.loss DESC"])[:4], [0, 1, 2, 3], "metrics.loss DESC (present values first)")


@check("search_runs: max_results paging with page tokens (MlflowClient.search_runs)")
def check_search_paging(ctx):
    fx = ctx.search_fixture()
    runs = fx["runs"]
    seen, sizes, token = [], [], None
    while True:
        page = ctx.client.search_runs([fx["exp_id"]], max_results=3, order_by=["metrics.acc ASC"], page_token=token)
        sizes.append(len(page))
        seen += [runs.index(r.info.run_id) for r in page]
        token = page.token
        if not token:
            break
        expect(len(sizes) < 10, "paging does not end")
    expect_eq(seen, [0, 1, 2, 3, 4, 5, 6], "runs collected over pages")
    expect_eq(sizes[:3], [3, 3, 1], "page sizes")
    seen, token = [], None
    while True:  # paging combined with a filter
        page = ctx.client.search_runs(
            [fx["exp_id"]], filter_string="params.lr = '0.01'", max_results=1, order_by=["metrics.acc DESC"], page_token=token
        )
        seen += [runs.index(r.info.run_id) for r in page]
        token = page.token
        if not token:
            break
        expect(len(seen) < 10, "filtered paging does not end")
    expect_eq(seen, [6, 4, 2, 0], "filtered runs collected over pages of 1")


@check("search_runs: mlflow.search_runs DataFrame by experiment id and by experiment name")
def check_search_fluent(ctx):
    fx = ctx.search_fixture()
    df = mlflow.search_runs(experiment_ids=[fx["exp_id"]], filter_string="metrics.acc > 0.35", order_by=["metrics.acc DESC"])
    expect_eq(list(df["run_id"]), [fx["runs"][i] for i in (6, 5, 4)], "run_id column")
    expect_eq(list(df["metrics.acc"]), [0.6, 0.5, 0.4], "metrics.acc column")
    expect_eq(list(df["params.lr"]), ["0.01", "0.1", "0.01"], "params.lr column")
    expect_eq(list(df["tags.team"]), ["a", "c", "b"], "tags.team column")
    expect_eq(list(df["status"]), ["FINISHED", "FAILED", "FINISHED"], "status column")
    df = mlflow.search_runs(experiment_names=[fx["name"]], filter_string="tags.team = 'b'")
    expect_eq(sorted(df["run_id"]), sorted([fx["runs"][1], fx["runs"][4]]), "by experiment name")
    runs = mlflow.search_runs(experiment_ids=[fx["exp_id"]], output_format="list", max_results=2)
    expect_eq(len(runs), 2, "output_format=list with max_results=2")


# --------------------------------------------------------------------------
# Model registry
# --------------------------------------------------------------------------


@check("registry: create/get/update/search registered model, set/delete tag; duplicate raises RESOURCE_ALREADY_EXISTS")
def check_registered_model_crud(ctx):
    c = ctx.client
    name = ctx.name("rm")
    rm = c.create_registered_model(name, tags={"team": "ml", "tmp": "x"}, description="first")
    expect_eq(rm.name, name, "name")
    expect_eq(rm.description, "first", "description")
    got = c.get_registered_model(name)
    expect_eq(got.tags, {"team": "ml", "tmp": "x"}, "tags")
    expect(got.creation_timestamp and got.last_updated_timestamp, "timestamps missing")
    expect_eq(got.latest_versions, [], "latest_versions of a model without versions")
    expect_eq(got.aliases, {}, "aliases of a new model")
    c.update_registered_model(name, description="second")
    expect_eq(c.get_registered_model(name).description, "second", "description after update")
    c.set_registered_model_tag(name, "team", "platform")
    c.delete_registered_model_tag(name, "tmp")
    expect_eq(c.get_registered_model(name).tags, {"team": "platform"}, "tags after set/delete")
    found = c.search_registered_models(filter_string=f"name = '{name}'")
    expect_eq([m.name for m in found], [name], "search_registered_models by name")
    found = c.search_registered_models(filter_string=f"name LIKE '%rm-{ctx.sfx}%'")
    expect_eq([m.name for m in found], [name], "search_registered_models by LIKE")
    expect_mlflow_error(lambda: c.create_registered_model(name), "RESOURCE_ALREADY_EXISTS", "duplicate create")
    expect_raw_error(
        ctx, "POST", f"{API}/registered-models/create", {"name": name}, None, 400, "RESOURCE_ALREADY_EXISTS", "raw create"
    )
    expect_mlflow_error(lambda: c.get_registered_model(name + "-nope"), "RESOURCE_DOES_NOT_EXIST", "get of unknown model")


@check("registry: rename_registered_model and delete_registered_model (then RESOURCE_DOES_NOT_EXIST)")
def check_registered_model_rename_delete(ctx):
    c = ctx.client
    name = ctx.name("rm-ren")
    c.create_registered_model(name)
    rid, _ = ctx.model_dir_run()
    run = c.get_run(rid)
    c.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=rid, await_creation_for=AWAIT_S)
    new_name = name + "-new"
    c.rename_registered_model(name, new_name)
    expect_eq(c.get_registered_model(new_name).name, new_name, "get of the new name")
    expect_mlflow_error(lambda: c.get_registered_model(name), "RESOURCE_DOES_NOT_EXIST", "get of the old name")
    expect_eq(c.get_model_version(new_name, "1").name, new_name, "version follows the rename")
    c.delete_registered_model(new_name)
    expect_mlflow_error(lambda: c.get_registered_model(new_name), "RESOURCE_DOES_NOT_EXIST", "get after delete")
    expect_mlflow_error(lambda: c.get_model_version(new_name, "1"), "RESOURCE_DOES_NOT_EXIST", "version after delete")
    expect_eq(c.search_model_versions(f"name='{new_name}'"), [], "versions found after delete")


def versioned_model(ctx):
    """A registered model with three versions: v1, v2 from run A, v3 from run B."""

    def build():
        c = ctx.client
        name = ctx.name("mv")
        c.create_registered_model(name)
        run_a, _ = ctx.model_dir_run()
        with mlflow.start_run(experiment_id=ctx.experiment_id(), run_name="model-b") as run_b:
            src = ctx.fresh_dir("model-b")
            (src / "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
            mlflow.log_artifacts(str(src), artifact_path="model")
        run_b = run_b.info.run_id
        versions = []
        for rid, desc in ((run_a, "one"), (run_a, "two"), (run_b, "three")):
            uri = c.get_run(rid).info.artifact_uri
            versions.append(c.create_model_version(
                name, f"{uri}/model", run_id=rid, description=desc, tags={"d": desc}, await_creation_for=AWAIT_S
            ))
        return {"name": name, "run_a": run_a, "run_b": run_b, "versions": versions}

    return ctx.once("versioned", build)


@check("registry: create_model_version; search_model_versions with name= and run_id=")
def check_model_versions(ctx):
    c = ctx.client
    fx = versioned_model(ctx)
    name = fx["name"]
    expect_eq([v.version for v in fx["versions"]], ["1", "2", "3"], "version numbers")
    for v in fx["versions"]:
        expect_eq(v.status, "READY", f"status of version {v.version}")
        expect_eq(v.current_stage, "None", f"stage of version {v.version}")
    v1 = c.get_model_version(name, "1")
    expect_eq((v1.run_id, v1.description, v1.tags), (fx["run_a"], "one", {"d": "one"}), "v1 run_id, description, tags")
    expect(v1.source.endswith("/model"), f"v1 source {v1.source!r}")
    found = c.search_model_versions(f"name='{name}'")
    expect_eq(sorted(v.version for v in found), ["1", "2", "3"], "search by name=")
    found = c.search_model_versions(f"run_id='{fx['run_b']}'")
    expect_eq([(v.name, v.version) for v in found], [(name, "3")], "search by run_id=")
    found = c.search_model_versions(f"name='{name}' and run_id='{fx['run_a']}'")
    expect_eq(sorted(v.version for v in found), ["1", "2"], "search by name= and run_id=")
    found = c.search_model_versions(f"run_id IN ('{fx['run_b']}', '{uuid.uuid4().hex}')")
    expect_eq([(v.name, v.version) for v in found], [(name, "3")], "search by run_id IN")
    latest = c.get_registered_model(name).latest_versions
    expect_eq([v.version for v in latest], ["3"], "latest_versions of the registered model")
    expect_mlflow_error(lambda: c.get_model_version(name, "99"), "RESOURCE_DOES_NOT_EXIST", "get of unknown version")


@check("registry: update_model_version, set/delete version tag, get_model_version_download_uri, delete_model_version")
def check_model_version_updates(ctx):
    c = ctx.client
    name = ctx.name("mv-upd")
    c.create_registered_model(name)
    rid, _ = ctx.model_dir_run()
    uri = c.get_run(rid).info.artifact_uri
    v1 = c.create_model_version(name, f"{uri}/model", run_id=rid, await_creation_for=AWAIT_S)
    v2 = c.create_model_version(name, f"{uri}/model", run_id=rid, await_creation_for=AWAIT_S)
    c.update_model_version(name, v1.version, description="updated")
    expect_eq(c.get_model_version(name, v1.version).description, "updated", "description after update")
    c.set_model_version_tag(name, v1.version, "validated", "yes")
    c.set_model_version_tag(name, v1.version, "tmp", "x")
    c.delete_model_version_tag(name, v1.version, "tmp")
    expect_eq(c.get_model_version(name, v1.version).tags, {"validated": "yes"}, "tags after set/delete")
    download = c.get_model_version_download_uri(name, v1.version)
    expect_eq(download, f"{uri}/model", "download uri")
    c.delete_model_version(name, v1.version)
    expect_mlflow_error(lambda: c.get_model_version(name, v1.version), "RESOURCE_DOES_NOT_EXIST", "get after delete")
    v3 = c.create_model_version(name, f"{uri}/model", run_id=rid, await_creation_for=AWAIT_S)
    expect_eq((v2.version, v3.version), ("2", "3"), "version numbers are not reused after a delete")


@check("registry: transition_model_version_stage and get_latest_versions")
def check_stages(ctx):
    c = ctx.client
    name = ctx.name("stages")
    c.create_registered_model(name)
    rid, _ = ctx.model_dir_run()
    uri = c.get_run(rid).info.artifact_uri
    for _ in range(3):
        c.create_model_version(name, f"{uri}/model", run_id=rid, await_creation_for=AWAIT_S)
    mv = c.transition_model_version_stage(name, "1", "Staging")
    expect_eq(mv.current_stage, "Staging", "stage returned by the transition")
    c.transition_model_version_stage(name, "2", "Production")
    expect_eq([v.version for v in c.get_latest_versions(name, stages=["Staging"])], ["1"], "latest Staging")
    expect_eq([v.version for v in c.get_latest_versions(name, stages=["Production"])], ["2"], "latest Production")
    latest = {v.current_stage: v.version for v in c.get_latest_versions(name)}
    expect_eq(latest, {"None": "3", "Staging": "1", "Production": "2"}, "latest per stage")
    c.transition_model_version_stage(name, "3", "Production", archive_existing_versions=True)
    expect_eq(c.get_model_version(name, "2").current_stage, "Archived", "v2 after archive_existing_versions")
    expect_eq([v.version for v in c.get_latest_versions(name, stages=["production"])], ["3"], "latest production (any case)")
    expect_mlflow_error(
        lambda: c.transition_model_version_stage(name, "1", "NoSuchStage"), "INVALID_PARAMETER_VALUE", "unknown stage"
    )


@check("registry: set_registered_model_alias, get_model_version_by_alias, move, delete_registered_model_alias")
def check_aliases(ctx):
    c = ctx.client
    fx = versioned_model(ctx)
    name = fx["name"]
    c.set_registered_model_alias(name, "champion", "1")
    c.set_registered_model_alias(name, "challenger", "2")
    mv = c.get_model_version_by_alias(name, "champion")
    expect_eq((mv.name, mv.version), (name, "1"), "champion")
    expect_eq(mv.aliases, ["champion"], "aliases on the version")
    expect_eq(c.get_registered_model(name).aliases, {"champion": "1", "challenger": "2"}, "aliases on the model")
    c.set_registered_model_alias(name, "champion", "3")  # move
    expect_eq(c.get_model_version_by_alias(name, "champion").version, "3", "champion after the move")
    expect_eq(c.get_model_version(name, "1").aliases, [], "aliases of v1 after the move")
    expect_eq(c.get_model_version(name, "3").aliases, ["champion"], "aliases of v3 after the move")
    c.delete_registered_model_alias(name, "challenger")
    expect_mlflow_error(
        lambda: c.get_model_version_by_alias(name, "challenger"), "INVALID_PARAMETER_VALUE", "get of a deleted alias"
    )
    expect_eq(c.get_registered_model(name).aliases, {"champion": "3"}, "aliases after delete")
    expect_mlflow_error(
        lambda: c.set_registered_model_alias(name, "bad", "99"), "RESOURCE_DOES_NOT_EXIST", "alias to an unknown version"
    )
    status, body = raw(ctx, "GET", f"{API}/registered-models/alias", query={"name": name, "alias": "champion"})
    expect(status == 200, f"raw GET registered-models/alias: HTTP {status}")
    expect_eq(body["model_version"]["version"], "3", "raw get-by-alias version")


@check("registry: mlflow.register_model('runs:/RUN/model', NAME) creates a READY version")
def check_register_model(ctx):
    rid, _ = ctx.model_dir_run()
    name = ctx.name("regmodel")
    mv = mlflow.register_model(f"runs:/{rid}/model", name, await_registration_for=AWAIT_S)  # creates the registered model too
    expect_eq((mv.name, mv.version, mv.status), (name, "1", "READY"), "first version")
    expect_eq(mv.run_id, rid, "run_id")
    mv2 = mlflow.register_model(f"runs:/{rid}/model", name, AWAIT_S, tags={"via": "register_model"})
    expect_eq(mv2.version, "2", "second version (registered model already exists)")
    expect_eq(ctx.client.get_model_version(name, "2").tags, {"via": "register_model"}, "tags of v2")
    ctx._cache["registered"] = name


@check("artifacts: download_artifacts('models:/NAME@ALIAS') is byte-identical to the logged directory")
def check_download_by_alias(ctx):
    rid, src = ctx.model_dir_run()
    name = ctx.once("registered", lambda: mlflow.register_model(f"runs:/{rid}/model", ctx.name("regmodel-b"), AWAIT_S).name)
    version = ctx.client.search_model_versions(f"name='{name}'")[0].version
    ctx.client.set_registered_model_alias(name, "prod", version)
    path = mlflow.artifacts.download_artifacts(f"models:/{name}@prod", dst_path=str(ctx.fresh_dir("alias-dl")))
    expect_same_tree(path, tree_bytes(src), f"models:/{name}@prod")
    path = mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(ctx.fresh_dir("ver-dl")))
    expect_same_tree(path, tree_bytes(src), f"models:/{name}/{version}")


# --------------------------------------------------------------------------
# MLflow 3 LoggedModels: pyfunc log_model / load_model
# --------------------------------------------------------------------------


class AddN(mlflow.pyfunc.PythonModel):
    """A tiny pyfunc: adds n to every column."""

    def __init__(self, n):
        self.n = n

    def predict(self, context, model_input, params=None):
        return model_input + self.n


def pyfunc_model(ctx):
    def build():
        name = ctx.name("pyfunc")
        with mlflow.start_run(experiment_id=ctx.experiment_id(), run_name="pyfunc") as run:
            mlflow.log_param("n", 7)
            info = mlflow.pyfunc.log_model(
                name="adder",
                python_model=AddN(7),
                registered_model_name=name,
                await_registration_for=AWAIT_S,
                pip_requirements=[f"mlflow=={mlflow.__version__}"],
            )
        return {"name": name, "info": info, "run_id": run.info.run_id}

    return ctx.once("pyfunc", build)


@check("pyfunc: log_model(name=, python_model=, registered_model_name=) makes a READY LoggedModel and a version")
def check_pyfunc_log(ctx):
    c = ctx.client
    fx = pyfunc_model(ctx)
    info = fx["info"]
    expect(info.model_id and info.model_id.startswith("m-"), f"model_id {info.model_id!r}")
    expect_eq(info.model_uri, f"models:/{info.model_id}", "model_uri")
    expect_eq(str(info.registered_model_version), "1", "registered_model_version")
    lm = c.get_logged_model(info.model_id)
    expect_eq(lm.name, "adder", "LoggedModel name")
    expect_eq(str(lm.status), "READY", "LoggedModel status")
    expect_eq(lm.source_run_id, fx["run_id"], "LoggedModel source_run_id")
    expect_eq(lm.experiment_id, ctx.experiment_id(), "LoggedModel experiment_id")
    expect(lm.artifact_location.startswith("mlflow-artifacts:/"), f"artifact_location {lm.artifact_location!r}")
    found = c.search_logged_models(experiment_ids=[ctx.experiment_id()], filter_string="name = 'adder'")
    expect(info.model_id in [m.model_id for m in found], "search_logged_models does not find the model")
    mv = c.get_model_version(fx["name"], "1")
    expect_eq((mv.status, mv.run_id), ("READY", fx["run_id"]), "version status, run_id")
    # MLflow 3.17.2's server does not echo model_id on the version; the source names the LoggedModel.
    expect(mv.model_id in (None, info.model_id), f"version model_id {mv.model_id!r}")
    expect_eq(mv.source, f"models:/{info.model_id}", "version source")
    expect_eq(lm.params, {"n": "7"}, "LoggedModel params (the client copies the run's params)")
    versions = json.loads(lm.tags.get("mlflow.modelVersions", "[]"))
    expect(
        any(v.get("name") == fx["name"] and str(v.get("version")) == "1" for v in versions),
        f"LoggedModel tag mlflow.modelVersions {lm.tags.get('mlflow.modelVersions')!r} lacks the version",
    )
    run = c.get_run(fx["run_id"])
    outputs = [o.model_id for o in (run.outputs.model_outputs if run.outputs else [])]
    expect(info.model_id in outputs, f"run outputs {outputs} lack the model")
    names = {f.path for f in c.list_logged_model_artifacts(info.model_id)}
    expect("MLmodel" in names, f"LoggedModel artifacts {sorted(names)} lack MLmodel")


@check("pyfunc: load_model('models:/NAME@champion') predicts like the original model")
def check_pyfunc_load(ctx):
    fx = pyfunc_model(ctx)
    ctx.client.set_registered_model_alias(fx["name"], "champion", "1")
    df = pd.DataFrame({"x": [1.0, 2.0, 3.5], "y": [-1.0, 0.0, 10.0]})
    want = df + 7
    model = mlflow.pyfunc.load_model(f"models:/{fx['name']}@champion")
    got = model.predict(df)
    expect(isinstance(got, pd.DataFrame), f"prediction is a {type(got).__name__}")
    expect(got.equals(want), f"prediction {got.to_dict()} != {want.to_dict()}")
    model = mlflow.pyfunc.load_model(fx["info"].model_uri)  # models:/m-...
    expect(model.predict(df).equals(want), "prediction through models:/<model_id> differs")
    model = mlflow.pyfunc.load_model(f"models:/{fx['name']}/1")
    expect(model.predict(df).equals(want), "prediction through models:/NAME/1 differs")


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


def wait_until_ready(uri, timeout_s):
    deadline = time.monotonic() + timeout_s
    url = f"{uri.rstrip('/')}{API}/experiments/get?experiment_id=0"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return True
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", required=True, metavar="URL", help="e.g. http://127.0.0.1:8080")
    parser.add_argument("--artifact-check-dir", metavar="DIR", help="the server's local artifact root, to check stored bytes")
    parser.add_argument("-k", dest="filter", default="", help="run only checks whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the server to answer")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of unexpected exceptions")
    args = parser.parse_args()

    selected = [
        (n, f) for n, f, needs_dir in CHECKS if args.filter in n and (args.artifact_check_dir or not needs_dir)
    ]
    if args.list:
        for name, _ in selected:
            print(name)
        return 0
    if not selected:
        print(f"no check matches {args.filter!r}")
        return 1
    if not wait_until_ready(args.tracking_uri, args.wait):
        print(f"server at {args.tracking_uri} does not answer experiments/get?experiment_id=0 after {args.wait:g} s")
        print(f"0 passed, {len(selected)} failed")
        return 1
    ctx = Context(args)
    try:
        return 0 if run_checks(ctx, selected, args.verbose) else 1
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
