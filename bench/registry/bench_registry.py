#!/usr/bin/env python3
"""Throughput and latency of an MLflow-compatible tracking server under closed-loop load.

Scenarios (bench/registry/scenarios.json): log-metric, log-batch (100 metrics),
search-runs (filter + order over an experiment holding 1000 runs) and
get-by-alias (GET registered-models/alias). Each runs with 16 keep-alive
HTTP/1.1 connections by default; every connection sends its next request as
soon as the previous answer is read. Requests completing during the warm-up
are not counted.

    python3 bench/registry/bench_registry.py --tracking-uri http://127.0.0.1:5055 \
        [--scenario log-metric ...] [--connections 16] [--duration 15] [--warmup 3] \
        [--procs 1] [--server-pid PID] [--json-out results.json] [--baseline mlflow.json]

    # the parts on their own (a Rust generator can replace `run`):
    python3 bench/registry/bench_registry.py --tracking-uri URL setup --state-out state.json
    python3 bench/registry/bench_registry.py --tracking-uri URL run --state state.json

Standard library only (any python3 >= 3.9). The load generator is a callback-
driven asyncio.Protocol per connection with a minimal HTTP/1.1 response parser
(Content-Length and chunked), split over --procs processes. Its own CPU time
per request is measured and printed (gen CPU us/req), so its ceiling on a
given machine is visible in every report: see README.md for the measured
figures and for when a Rust generator must take over.
"""

import argparse
import asyncio
import gc
import http.client
import json
import multiprocessing
import os
import re
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SCENARIOS = HERE / "scenarios.json"
API = "/api/2.0/mlflow"
NUMERIC_PLACEHOLDERS = {"seq", "timestamp_ms", "value", "i"}
PLACEHOLDER = re.compile(r"\$\{([a-z_]+)\}")


# --------------------------------------------------------------------------
# Templates: scenarios.json bodies -> fast per-request rendering
# --------------------------------------------------------------------------


def expand(value):
    """Expand {"$repeat": N, "item": X}; numeric placeholders become bare-number markers."""
    if isinstance(value, dict):
        if "$repeat" in value:
            return [expand(_subst_i(value["item"], i)) for i in range(value["$repeat"])]
        return {k: expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v) for v in value]
    if isinstance(value, str):
        m = PLACEHOLDER.fullmatch(value)
        if m and m.group(1) in NUMERIC_PLACEHOLDERS:
            return _Bare(m.group(1))
    return value


def _subst_i(value, i):
    if isinstance(value, dict):
        return {k: _subst_i(v, i) for k, v in value.items()}
    if isinstance(value, list):
        return [_subst_i(v, i) for v in value]
    if isinstance(value, str):
        if value == "${i}":
            return i
        return value.replace("${i}", str(i))
    return value


class _Bare:
    def __init__(self, name):
        self.name = name


def to_template(value):
    """JSON text with `${name}` placeholders (bare for numbers, inside quotes for strings)."""
    marker = "\x00BARE:%s\x00"

    def prepare(v):
        if isinstance(v, _Bare):
            return marker % v.name
        if isinstance(v, dict):
            return {k: prepare(x) for k, x in v.items()}
        if isinstance(v, list):
            return [prepare(x) for x in v]
        return v

    text = json.dumps(prepare(value), separators=(",", ":"))
    return re.sub(r'"\\u0000BARE:([a-z_]+)\\u0000"', r"${\1}", text)


class Template:
    """Pre-split text; render(values) joins the constant parts and the values."""

    def __init__(self, text, constants):
        text = PLACEHOLDER.sub(lambda m: constants.get(m.group(1), m.group(0)), text)
        self.parts, self.names = [], []
        pos = 0
        for m in PLACEHOLDER.finditer(text):
            self.parts.append(text[pos:m.start()])
            self.names.append(m.group(1))
            pos = m.end()
        self.parts.append(text[pos:])
        unknown = set(self.names) - {"seq", "timestamp_ms", "value", "run_id"}
        if unknown:
            raise SystemExit(f"unknown placeholders {sorted(unknown)} in a scenario")

    @property
    def constant(self):
        return not self.names

    def render(self, values):
        parts, names = self.parts, self.names
        out = [parts[0]]
        for k in range(len(names)):
            out.append(values[names[k]])
            out.append(parts[k + 1])
        return "".join(out)


class Scenario:
    """One scenario bound to the setup state; builds the raw request bytes."""

    def __init__(self, spec, state, host_header):
        self.name = spec["name"]
        self.spec = spec
        self.expect = spec.get("expect", {"status": 200})
        constants = {
            "experiment_id": state["experiment_id"],
            "model_name": state["model_name"],
            "alias": state["alias"],
        }
        path = spec["path"]
        if spec.get("query"):
            query = {k: Template(v, constants).render({}) for k, v in spec["query"].items()}
            path += "?" + urllib.parse.urlencode(query)
        body = Template(to_template(expand(spec["body"])), constants) if "body" in spec else None
        self.log_runs = state["log_run_ids"]
        head = f"{spec['method']} {path} HTTP/1.1\r\nHost: {host_header}\r\nAccept: application/json\r\n"
        if body is None:
            self.constant_request = (head + "\r\n").encode()
            self.body = None
        else:
            self.head = head + "Content-Type: application/json\r\nContent-Length: "
            self.body = body
            self.constant_request = None
            if body.constant:
                data = body.render({}).encode()
                self.constant_request = (self.head + f"{len(data)}\r\n\r\n").encode() + data

    def request(self, conn_index, seq):
        if self.constant_request is not None:
            return self.constant_request
        values = {
            "seq": str(seq),
            "timestamp_ms": str(time.time_ns() // 1_000_000),
            "value": f"{seq}.5",
            "run_id": self.log_runs[conn_index % len(self.log_runs)],
        }
        data = self.body.render(values).encode()
        return (self.head + f"{len(data)}\r\n\r\n").encode() + data

    def check_response(self, status, body):
        """None if the response is what the scenario expects, else a reason."""
        if status != self.expect.get("status", 200):
            return f"HTTP {status}: {body[:300]!r}"
        if "list_field" in self.expect or "field" in self.expect:
            try:
                doc = json.loads(body)
            except ValueError:
                return f"body is not JSON: {body[:200]!r}"
            if "list_field" in self.expect:
                got = len(doc.get(self.expect["list_field"], []))
                if got != self.expect["list_length"]:
                    return f"{self.expect['list_field']} has {got} entries, expected {self.expect['list_length']}"
            if "field" in self.expect:
                node = doc
                for key in self.expect["field"]:
                    node = node.get(key) if isinstance(node, dict) else None
                if node != self.expect["equals"]:
                    return f"{'.'.join(self.expect['field'])} = {node!r}, expected {self.expect['equals']!r}"
        return None


# --------------------------------------------------------------------------
# The load generator: one asyncio.Protocol per connection, callback-driven
# --------------------------------------------------------------------------


class Connection(asyncio.Protocol):
    def __init__(self, worker, index):
        self.w = worker
        self.index = index
        self.seq = 0
        self.buf = bytearray()
        self.transport = None
        self.sent_at = 0
        self.checked = False

    def connection_made(self, transport):
        self.transport = transport
        self.send()

    def send(self):
        self.sent_at = time.perf_counter_ns()
        self.transport.write(self.w.scenario.request(self.index, self.seq))
        self.seq += 1

    def data_received(self, data):
        self.buf += data
        while True:
            parsed = parse_response(self.buf)
            if parsed is None:
                return
            status, body, used, close = parsed
            del self.buf[:used]
            self.w.completed(self, status, body)
            if close:
                self.transport.close()
                return
            if self.w.stopping:
                self.transport.close()
                return
            self.send()

    def connection_lost(self, exc):
        self.w.connection_closed(self)


def parse_response(buf):
    """(status, body bytes, bytes used, server closes) of the first full response, or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    status = int(head[9:12])
    start = end + 4
    close = b"\r\nconnection: close" in head
    i = head.find(b"\r\ncontent-length:")
    if i >= 0:
        j = head.find(b"\r\n", i + 2)
        length = int(head[i + 17:j if j >= 0 else len(head)])
        if len(buf) < start + length:
            return None
        return status, bytes(buf[start:start + length]), start + length, close
    if b"\r\ntransfer-encoding: chunked" in head:
        pos, chunks = start, []
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", line_end)
                if trailer_end < 0:
                    return None
                return status, b"".join(chunks), trailer_end + 4, close
            if len(buf) < line_end + 2 + size + 2:
                return None
            chunks.append(bytes(buf[line_end + 2:line_end + 2 + size]))
            pos = line_end + 2 + size + 2
    if status in (204, 304) or 100 <= status < 200:
        return status, b"", start, close
    raise RuntimeError("response with neither Content-Length nor chunked encoding")


class Worker:
    """Runs a share of the connections in one process and records latencies."""

    def __init__(self, scenario, host, port, indices, t_start, t_warm, t_end, check):
        self.scenario = scenario
        self.host, self.port = host, port
        self.indices = indices
        self.t_start, self.t_warm, self.t_end = t_start, t_warm, t_end
        self.check = check
        self.latencies = []  # ns, requests completed inside the measured window
        self.statuses = {}
        self.errors = []
        self.warm_done = 0
        self.reconnects = 0
        self.stopping = False
        self.open = 0

    def completed(self, conn, status, body):
        now = time.time()
        if now >= self.t_end:
            self.stopping = True
        if now >= self.t_warm and now < self.t_end:
            self.latencies.append(time.perf_counter_ns() - conn.sent_at)
            self.statuses[status] = self.statuses.get(status, 0) + 1
        else:
            self.warm_done += 1
        if self.check and (not conn.checked or status >= 300):
            conn.checked = True
            reason = self.scenario.check_response(status, body)
            if reason and len(self.errors) < 5:
                self.errors.append(reason)

    def connection_closed(self, conn):
        self.open -= 1
        if not self.stopping and time.time() < self.t_end:
            self.reconnects += 1
            asyncio.get_event_loop().create_task(self._connect(conn.index))
        elif self.open == 0 and not self.done.done():
            self.done.set_result(None)

    async def _connect(self, index):
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(lambda: Connection(self, index), self.host, self.port)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.open += 1

    async def run(self):
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        delay = self.t_start - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        for index in self.indices:
            await self._connect(index)
        # Stop even if a server stops answering.
        loop.call_later(max(0.0, self.t_end - time.time()) + 30, lambda: self.done.done() or self.done.set_result(None))
        await self.done


def worker_main(args):
    scenario, host, port, indices, t_start, t_warm, t_end, check, pipe = args
    gc.disable()  # the generator allocates little that cycles; no collector pauses in the measurements
    t0 = os.times()
    w = Worker(scenario, host, port, indices, t_start, t_warm, t_end, check)
    asyncio.run(w.run())
    t1 = os.times()
    cpu = (t1.user - t0.user) + (t1.system - t0.system)
    result = {
        "latencies": w.latencies, "statuses": w.statuses, "errors": w.errors, "cpu_s": cpu,
        "warm_done": w.warm_done, "reconnects": w.reconnects,
    }
    if pipe is None:
        return result
    pipe.send(result)
    pipe.close()
    return None


def proc_cpu_seconds(pids):
    """utime+stime of the given processes and all their descendants (Linux /proc)."""
    if not pids:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    parents = {}
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        stats[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    wanted = set(pids)
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in wanted and pid not in wanted:
                wanted.add(pid)
                changed = True
    return sum(stats.get(p, 0.0) for p in wanted)


def machine_busy_seconds():
    """CPU seconds all cores spent busy since boot (/proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_scenario(scenario, uri, connections, warmup, duration, procs, check, server_pids):
    parsed = urllib.parse.urlsplit(uri)
    host, port = parsed.hostname, parsed.port or 80
    procs = max(1, min(procs, connections))
    t_start = time.time() + 0.3 + 0.2 * procs
    t_warm = t_start + warmup
    t_end = t_warm + duration
    shares = [list(range(connections))[k::procs] for k in range(procs)]
    cpu_before = proc_cpu_seconds(server_pids)
    busy_before, wall_before = machine_busy_seconds(), time.time()
    if procs == 1:
        results = [worker_main((scenario, host, port, shares[0], t_start, t_warm, t_end, check, None))]
    else:
        ctx = multiprocessing.get_context("fork")
        children, pipes = [], []
        for share in shares:
            parent_end, child_end = ctx.Pipe(duplex=False)
            p = ctx.Process(target=worker_main, args=((scenario, host, port, share, t_start, t_warm, t_end, check, child_end),))
            p.start()
            children.append(p)
            pipes.append(parent_end)
        results = [pipe.recv() for pipe in pipes]
        for p in children:
            p.join()
    cpu_after = proc_cpu_seconds(server_pids)
    busy_after, wall_after = machine_busy_seconds(), time.time()
    latencies = sorted(x for r in results for x in r["latencies"])
    statuses = {}
    for r in results:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    n = len(latencies)
    total_requests = n + sum(r["warm_done"] for r in results)
    gen_cpu = sum(r["cpu_s"] for r in results)

    def pct(q):
        return latencies[min(n - 1, int(q * n))] / 1e6 if n else None

    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
    out = {
        "scenario": scenario.name,
        "connections": connections,
        "duration_s": duration,
        "requests": n,
        "ok": ok,
        "non_2xx": n - ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "throughput_rps": n / duration,
        "ok_rps": ok / duration,
        "latency_ms": {
            "mean": (sum(latencies) / n / 1e6) if n else None,
            "p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": latencies[-1] / 1e6 if n else None,
        },
        "generator_procs": procs,
        "generator_cpu_us_per_request": (gen_cpu / total_requests * 1e6) if total_requests else None,
        "reconnects": sum(r["reconnects"] for r in results),
        "check_errors": [e for r in results for e in r["errors"]][:5],
    }
    server_cpu = None
    if cpu_before is not None:
        # The server's CPU over the whole run (warm-up included), per request answered.
        server_cpu = cpu_after - cpu_before
        out["server_cpu_us_per_request"] = server_cpu / total_requests * 1e6 if total_requests else None
    if busy_before is not None:
        # Cores kept busy by everything else on the machine (a noisy neighbour shows up here;
        # without --server-pid the server is counted in it).
        other = (busy_after - busy_before) - gen_cpu - (server_cpu or 0.0)
        out["other_cores_busy"] = round(max(0.0, other) / (wall_after - wall_before), 2)
    return out


# --------------------------------------------------------------------------
# Setup through the REST API (stdlib http.client)
# --------------------------------------------------------------------------


class Rest:
    def __init__(self, uri):
        parsed = urllib.parse.urlsplit(uri)
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.conn = None

    def call(self, method, path, body=None, query=None, retries=5):
        if query:
            path += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in range(retries + 1):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                self.conn.request(method, API + path, body=data, headers=headers)
                resp = self.conn.getresponse()
                payload = resp.read()
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt == retries:
                    raise
                time.sleep(0.5 * (attempt + 1))
                continue
            if resp.status >= 500 and attempt < retries:  # e.g. "database is locked" on SQLite
                time.sleep(0.5 * (attempt + 1))
                continue
            if resp.status != 200:
                raise SystemExit(f"setup: {method} {path} -> HTTP {resp.status}: {payload[:300]!r}")
            return json.loads(payload) if payload else {}
        raise AssertionError("unreachable")


def setup(uri, spec, threads=8):
    s = spec["setup"]
    suffix = uuid.uuid4().hex[:8]
    rest = Rest(uri)
    exp_name = s["experiment_name"].replace("${suffix}", suffix)
    exp_id = rest.call("POST", "/experiments/create", {"name": exp_name})["experiment_id"]
    now = int(time.time() * 1000)

    local = threading.local()  # one keep-alive connection per setup thread

    def make_search_run(i):
        if not hasattr(local, "rest"):
            local.rest = Rest(uri)
        r = local.rest
        run = r.call("POST", "/runs/create", {
            "experiment_id": exp_id, "run_name": f"r{i}", "start_time": now + i,
            "tags": [{"key": "team", "value": "abc"[i % 3]}],
        })["run"]["info"]
        r.call("POST", "/runs/log-batch", {
            "run_id": run["run_id"],
            "metrics": [
                {"key": "acc", "value": i / 1000, "timestamp": now + i, "step": 0},
                {"key": "loss", "value": 1 - i / 1000, "timestamp": now + i, "step": 0},
            ],
            "params": [{"key": "lr", "value": "0.01" if i % 2 == 0 else "0.1"}, {"key": "idx", "value": str(i)}],
        })
        return run["run_id"]

    t0 = time.time()
    with ThreadPoolExecutor(threads) as pool:
        search_ids = list(pool.map(make_search_run, range(s["search_runs"])))
    log_runs = [
        rest.call("POST", "/runs/create", {"experiment_id": exp_id, "run_name": f"load-{k}", "start_time": now})["run"]["info"]
        for k in range(s["log_runs"])
    ]
    model = s["registered_model"].replace("${suffix}", suffix)
    rest.call("POST", "/registered-models/create", {"name": model})
    rest.call("POST", "/model-versions/create", {
        "name": model, "source": log_runs[0]["artifact_uri"] + "/model", "run_id": log_runs[0]["run_id"],
    })
    rest.call("POST", "/registered-models/alias", {"name": model, "alias": s["alias"], "version": "1"})
    state = {
        "tracking_uri": uri, "suffix": suffix, "experiment_id": exp_id, "experiment_name": exp_name,
        "search_run_count": len(search_ids), "log_run_ids": [r["run_id"] for r in log_runs],
        "model_name": model, "alias": s["alias"], "setup_s": round(time.time() - t0, 1),
    }
    return state


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def server_version(uri):
    parsed = urllib.parse.urlsplit(uri)
    try:
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=10)
        conn.request("GET", "/version")
        resp = conn.getresponse()
        text = resp.read().decode(errors="replace").strip()
        return text if resp.status == 200 and len(text) < 64 else None
    except (OSError, http.client.HTTPException):
        return None


def fmt(x, digits=1):
    return "-" if x is None else f"{x:,.{digits}f}"


def print_table(results, baseline=None):
    base = {r["scenario"]: r for r in (baseline or {}).get("results", [])}
    cols = ["scenario", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "non-2xx", "gen CPU us/req", "server CPU us/req", "other cores busy"]
    if base:
        cols += ["x req/s vs base", "p99 vs base"]
    rows = []
    for r in results:
        lat = r["latency_ms"]
        row = [
            r["scenario"], fmt(r["throughput_rps"]), fmt(lat["p50"], 2), fmt(lat["p90"], 2), fmt(lat["p99"], 2),
            fmt(lat["max"], 2), str(r["non_2xx"]), fmt(r["generator_cpu_us_per_request"], 0),
            fmt(r.get("server_cpu_us_per_request"), 0), fmt(r.get("other_cores_busy"), 2),
        ]
        if base:
            b = base.get(r["scenario"])
            if b and b["ok_rps"]:
                row.append(f"{r['ok_rps'] / b['ok_rps']:,.1f}x")
                row.append(f"{lat['p99'] / b['latency_ms']['p99']:.3f}x" if lat["p99"] and b["latency_ms"]["p99"] else "-")
            else:
                row += ["-", "-"]
        rows.append(row)
    widths = [max(len(c), *(len(row[k]) for row in rows)) for k, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    for r in results:
        for e in r["check_errors"]:
            print(f"  {r['scenario']}: response check failed: {e}")


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", required=True, metavar="URL")
    parser.add_argument("--scenarios", default=str(DEFAULT_SCENARIOS), help="scenario file (default: scenarios.json here)")
    parser.add_argument("--scenario", action="append", help="run only these scenarios (repeatable)")
    parser.add_argument("--connections", type=int, help="concurrent connections (default from the scenario file: 16)")
    parser.add_argument("--duration", type=float, help="measured seconds per scenario (default 15)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each scenario (default 5)")
    parser.add_argument("--procs", type=int, default=1, help="generator processes sharing the connections (default 1)")
    parser.add_argument("--server-pid", type=int, action="append", default=[], help="server process (and its children) whose CPU time to report")
    parser.add_argument("--no-check", action="store_true", help="do not validate response bodies (e.g. against a dummy server)")
    parser.add_argument("--json-out", help="write the results (and the setup state) here")
    parser.add_argument("--baseline", help="a --json-out file of another server: print throughput and p99 ratios")
    parser.add_argument("--label", default="", help="free text stored in the JSON (e.g. 'mlflow 3.17.2, sqlite, 4 workers')")
    sub = parser.add_subparsers(dest="cmd")
    p_setup = sub.add_parser("setup", help="only create the experiment, runs, model and alias")
    p_setup.add_argument("--state-out", required=True)
    p_run = sub.add_parser("run", help="only run the load, with the state written by `setup`")
    p_run.add_argument("--state", required=True)
    args = parser.parse_args()

    spec = json.loads(Path(args.scenarios).read_text())
    defaults = spec["defaults"]
    connections = args.connections or defaults["connections"]
    duration = args.duration or defaults["duration_s"]
    warmup = defaults["warmup_s"] if args.warmup is None else args.warmup
    uri = args.tracking_uri.rstrip("/")

    if args.cmd == "run":
        state = json.loads(Path(args.state).read_text())
    else:
        print(f"setup: {spec['setup']['search_runs']} search runs, {spec['setup']['log_runs']} log runs, a model and an alias on {uri}", file=sys.stderr)
        state = setup(uri, spec)
        print(f"setup: done in {state['setup_s']} s (experiment {state['experiment_id']}, model {state['model_name']})", file=sys.stderr)
        if args.cmd == "setup":
            Path(args.state_out).write_text(json.dumps(state, indent=2))
            return 0

    parsed = urllib.parse.urlsplit(uri)
    host_header = parsed.netloc
    chosen = [s for s in spec["scenarios"] if not args.scenario or s["name"] in args.scenario]
    if not chosen:
        raise SystemExit(f"no scenario named {args.scenario}")
    results = []
    for s in chosen:
        scenario = Scenario(s, state, host_header)
        print(f"{scenario.name}: {connections} connections, {warmup:g} s warm-up + {duration:g} s ...", file=sys.stderr, flush=True)
        results.append(run_scenario(scenario, uri, connections, warmup, duration, args.procs, not args.no_check, args.server_pid))
    report = {
        "label": args.label,
        "tracking_uri": uri,
        "server_version": server_version(uri),
        "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg()},
        "generator": f"bench_registry.py (python {sys.version.split()[0]}, asyncio, {args.procs} process(es))",
        "state": state,
        "results": results,
    }
    baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None
    print_table(results, baseline)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    failed = any(r["check_errors"] or r["non_2xx"] for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
