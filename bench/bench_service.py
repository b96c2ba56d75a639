"""Benchmark: HTTP requests/s and latency of the service on one uvicorn worker, against a do-nothing app.

One run, one worker each, EURLEX57K dev documents as request bodies:

- (a) a do-nothing FastAPI endpoint taking the same body (`bench/noop_app.py`),
- (b) POST /predict with every document new to the cache (cache miss),
- (c) POST /predict on 50 repeated documents, sent once before the run (cache hit),

each with wrk (closed loop, a Lua script that gives each request its own body and counts status codes and
the X-Cache header), then a fixed-rate open-loop run at 70% of (b)'s requests/s (a small asyncio client,
latency from the scheduled send time) for p50/p99. Servers are started here on free 127.0.0.1 ports and
always stopped. Results: a markdown table (printed, and into BENCHMARKS.md between the ``bench:service``
markers) and raw JSON in bench/out/bench_service.json. Skips cleanly without data, bundle, wrk or Redis.

    python -m bench.bench_service --bundle bench/out/bundle-tree --data ../shared/data/eurlex57k
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gzip
import json
import os
import platform
import resource
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
REDIS_URL = "redis://127.0.0.1:6379/5"

# wrk script. init(args): bodies file (one JSON body a line, the "title" field last), number of wrk
# threads, a tag, and a mode. Thread t sends bodies t, t+T, t+2T, ...; in "unique" mode a thread that has
# gone through its share starts again with " #<tag><pass>" put at the end of the title, and a non-empty
# tag marks every body, so no two requests of one run (nor of two runs with different tags) carry the
# same document text. "cycle" mode repeats the bodies unchanged. response() counts status classes and
# X-Cache values; done() prints one line "BENCH_RESULT {json}".
WRK_LUA = r"""
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

n2xx, n429, n5xx, nother = 0, 0, 0, 0
hit, miss, partial, nocache = 0, 0, 0, 0
local bodies, n, share, i = {}, 0, 0, 0
local nthreads, tag, unique = 1, "", false
local headers = {["Content-Type"] = "application/json"}

function init(args)
  nthreads = tonumber(args[2])
  tag = args[3] or ""
  unique = args[4] == "unique"
  for line in io.lines(args[1]) do
    n = n + 1
    bodies[n] = line
  end
  share = math.floor((n - tid + nthreads - 1) / nthreads)
end

function request()
  local k = i % share
  local pass = math.floor(i / share)
  i = i + 1
  local body = bodies[tid + 1 + k * nthreads]
  if unique then
    local mark = tag
    if pass > 0 then mark = mark .. pass end
    if mark ~= "" then body = string.sub(body, 1, -3) .. " #" .. mark .. '"}' end
  end
  return wrk.format("POST", "/predict", headers, body)
end

function response(status, hdrs, body)
  if status >= 200 and status < 300 then n2xx = n2xx + 1
  elseif status == 429 then n429 = n429 + 1
  elseif status >= 500 then n5xx = n5xx + 1
  else nother = nother + 1 end
  local c = hdrs["x-cache"] or hdrs["X-Cache"]
  if c == "hit" then hit = hit + 1
  elseif c == "miss" then miss = miss + 1
  elseif c then partial = partial + 1
  else nocache = nocache + 1 end
end

function done(summary, latency, requests)
  local c = {n2xx = 0, n429 = 0, n5xx = 0, nother = 0, hit = 0, miss = 0, partial = 0, nocache = 0}
  for _, t in ipairs(threads) do
    for key, _ in pairs(c) do c[key] = c[key] + (t:get(key) or 0) end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "non2xx3xx": %d, "timeouts": %d, "mean_us": %.1f, ' ..
    '"max_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, "n2xx": %d, ' ..
    '"n429": %d, "n5xx": %d, "nother": %d, "hit": %d, "miss": %d, "partial": %d, "nocache": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), c.n2xx, c.n429, c.n5xx, c.nother, c.hit,
    c.miss, c.partial, c.nocache))
end
"""


# ----------------------------------------------------------------------------------------------- bodies


def load_bodies(path: Path, k: int) -> list[str]:
    """One JSON request body a document: ``{"k", "text", "title"}``, title last (the Lua tags it)."""
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            d = json.loads(line)
            body = json.dumps({"k": k, "text": d["text"], "title": d.get("title") or ""})
            assert body.endswith('"}') and "\n" not in body
            out.append(body)
    return out


def tagged(body: str, mark: str) -> str:
    """The body with `` #mark`` at the end of its title (as the Lua script does)."""
    return body[:-2] + f' #{mark}"}}' if mark else body


# ---------------------------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process, all its threads (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    command: str
    log_path: Path
    log_lines: tuple[str, ...] = ()  # warnings and errors from its whole log, once stopped

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cpu_s(self) -> float | None:
        return proc_cpu_s(self.proc.pid)

    def cache_errors(self) -> float | None:
        """The service's ``xmlc_cache_errors_total`` (Redis errors); None where there is no such metric."""
        import httpx

        try:
            text = httpx.get(self.url + "/metrics", timeout=10).text
        except httpx.HTTPError:
            return None
        values = [
            float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith("xmlc_cache_errors_total")
        ]
        return sum(values) if values else (0.0 if "xmlc_cache_total" in text else None)

    def mark(self) -> tuple[int, float | None]:
        """Where the log and the Redis error count stand now (see `since`)."""
        return self.log_path.stat().st_size, self.cache_errors()

    def since(self, mark: tuple[int, float | None]) -> dict[str, Any]:
        """Warning and error lines logged, and Redis errors counted, since ``mark``."""
        offset, errors0 = mark
        with self.log_path.open("rb") as f:
            f.seek(offset)
            problems = _problems(f.read().decode(errors="replace"))
        errors1 = self.cache_errors()
        return {
            "server_log_problems": len(problems),
            "server_log_sample": problems[:5],
            "redis_errors": None if errors0 is None or errors1 is None else int(errors1 - errors0),
        }


def _problems(text: str) -> list[str]:
    marks = ("WARNING", "ERROR", "Traceback", "CRITICAL")
    return [line for line in text.splitlines() if any(m in line for m in marks)]


def uvicorn_command(target: str, port: int, factory: bool) -> list[str]:
    cmd = [sys.executable, "-m", "uvicorn", target]
    if factory:
        cmd.append("--factory")
    return [*cmd, "--host", HOST, "--port", str(port), "--workers", "1", "--no-access-log"]


@contextlib.contextmanager
def start_server(
    name: str, target: str, env: dict[str, str], ready_path: str, log_dir: Path, factory: bool = False
) -> Iterator[Server]:
    import httpx

    port = free_port()
    cmd = uvicorn_command(target, port, factory)
    log_path = log_dir / f"{name}.log"
    shown_env = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    shown = (shown_env + " " if shown_env else "") + shlex.join(["python", *cmd[1:]])
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=log)
    server = Server(name, port, proc, shown, log_path)
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{_tail(log_path)}")
            try:
                if httpx.get(server.url + ready_path, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after 600 s:\n{_tail(log_path)}")
            time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with contextlib.suppress(OSError):
            server.log_lines = tuple(_problems(log_path.read_text(errors="replace")))


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def redis_problem(url: str) -> str | None:
    try:
        import redis
    except ImportError:
        return "the redis package is not installed (pip install -e '.[serve]')"
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as e:  # any failure means: no usable Redis
        return f"no Redis at {url} ({e})"
    finally:
        client.close()
    return None


# ------------------------------------------------------------------------------------------------- wrk


@dataclass
class WrkSettings:
    threads: int
    connections: int
    timeout_s: int
    script: Path


def wrk_command(w: WrkSettings, url: str, seconds: int, bodies: Path, tag: str, mode: str) -> list[str]:
    return [
        "wrk",
        "-t",
        str(w.threads),
        "-c",
        str(w.connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        f"{w.timeout_s}s",
        "-s",
        str(w.script),
        url + "/predict",
        "--",
        str(bodies),
        str(w.threads),
        tag,
        mode,
    ]


def run_wrk(
    w: WrkSettings,
    server: Server,
    seconds: int,
    bodies: Path,
    tag: str,
    mode: str,
    mark: tuple[int, float | None] | None = None,
) -> dict[str, Any]:
    """One wrk run: counts, latencies, the CPU the server and wrk used, and the server's warnings and
    Redis errors since ``mark`` (default: the start of this run)."""
    cmd = wrk_command(w, server.url, seconds, bodies, tag, mode)
    mark = mark or server.mark()
    cpu0 = server.cpu_s()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + w.timeout_s + 120)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = server.cpu_s()
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    r: dict[str, Any] = json.loads(line.split(" ", 1)[1])
    secs = r["duration_us"] / 1e6
    r["rps"] = r["requests"] / secs
    r["p50_ms"], r["p99_ms"] = r["p50_us"] / 1000, r["p99_us"] / 1000
    r["socket_errors"] = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    r["server_cores"] = (cpu1 - cpu0) / wall if cpu0 is not None and cpu1 is not None else None
    wrk_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    r["loadgen_cores"] = wrk_cpu / wall
    r["command"] = shlex.join(cmd)
    r.update(server.since(mark))
    return r


# ------------------------------------------------------------------------------ fixed-rate open loop


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, str | None, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, cache, close = 0, False, None, False
    for raw in lines[1:]:
        name, _, value = raw.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"x-cache":
            cache = value.decode()
        elif name == b"connection" and value.lower() == b"close":
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, cache, close


async def fixed_rate(
    port: int,
    bodies: list[str],
    rate: float,
    warmup_s: float,
    seconds: float,
    connections: int,
    tag: str,
    timeout_s: float,
) -> dict[str, Any]:
    """Open loop: request i is due at t0 + i/rate whatever happened before (as wrk2 does).

    A dispatcher puts each request on a queue at its due time; ``connections`` keep-alive connections
    take them in turn. Latency runs from the due time to the last byte of the answer, so time spent
    waiting for a free connection (the server being slow) counts. Requests due in the first
    ``warmup_s`` seconds are sent but not counted. Bodies as wrk's "unique" mode with ``tag``.
    """
    clock = time.perf_counter  # not loop.time(): uvloop's is in whole milliseconds
    n_docs = len(bodies)
    total = int(rate * (warmup_s + seconds))
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    # (due, sent, done, status, cache) per answered request
    records: list[tuple[float, float, float, int, str | None]] = []
    errors: Counter[str] = Counter()
    prefix = f"POST /predict HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"

    def request_bytes(i: int) -> bytes:
        pas = i // n_docs
        body = tagged(bodies[i % n_docs], f"{tag}{pas or ''}").encode()
        return (prefix + f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def worker() -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while True:
            item = await queue.get()
            if item is None:
                break
            i, due = item
            data = request_bytes(i)
            try:
                if conn is None:
                    conn = await asyncio.open_connection(HOST, port)
                reader, writer = conn
                sent = clock()
                writer.write(data)
                status, cache, close = await asyncio.wait_for(_read_response(reader), timeout_s)
                records.append((due, sent, clock(), status, cache))
                if close:
                    writer.close()
                    conn = None
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as e:
                errors[type(e).__name__] += 1
                if conn is not None:
                    conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    t0 = clock() + 0.5  # let the connections open
    for i in range(total):
        due = t0 + i / rate
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)

    start, end = t0 + warmup_s, t0 + warmup_s + seconds
    kept = [r for r in records if r[0] >= start]
    lat = np.array([r[2] - r[0] for r in kept]) * 1000
    lag = np.array([r[1] - r[0] for r in kept]) * 1000
    statuses = Counter(r[3] for r in kept)
    caches = Counter(r[4] or "none" for r in kept)
    sent_in_window = sum(1 for r in records if start <= r[0] < end)
    done_in_window = sum(1 for r in records if start <= r[2] < end)
    p50 = float(np.percentile(lat, 50)) if len(lat) else float("nan")
    p99 = float(np.percentile(lat, 99)) if len(lat) else float("nan")
    return {
        "target_rps": rate,
        "achieved_rps": done_in_window / seconds,
        "requests": len(kept),
        "scheduled": sent_in_window,
        "p50_ms": p50,
        "p90_ms": float(np.percentile(lat, 90)) if len(lat) else float("nan"),
        "p99_ms": p99,
        "p999_ms": float(np.percentile(lat, 99.9)) if len(lat) else float("nan"),
        "max_ms": float(lat.max()) if len(lat) else float("nan"),
        "p99_over_p50": p99 / p50 if p50 > 0 else float("nan"),
        "send_lag_p50_ms": float(np.percentile(lag, 50)) if len(lag) else float("nan"),
        "send_lag_p99_ms": float(np.percentile(lag, 99)) if len(lag) else float("nan"),
        "n2xx": sum(v for s, v in statuses.items() if 200 <= s < 300),
        "n429": statuses.get(429, 0),
        "n5xx": sum(v for s, v in statuses.items() if s >= 500),
        "non2xx": sum(v for s, v in statuses.items() if not 200 <= s < 300),
        "statuses": {str(s): v for s, v in sorted(statuses.items())},
        "x_cache": dict(caches),
        "errors": dict(errors),
        "connections": connections,
    }


def run_fixed_rate(server: Server, mark: tuple[int, float | None] | None = None, **kw: Any) -> dict[str, Any]:
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:
        factory = None
    mark = mark or server.mark()
    cpu0, own0, t0 = server.cpu_s(), time.process_time(), time.perf_counter()
    with asyncio.Runner(loop_factory=factory) as runner:
        r = runner.run(fixed_rate(server.port, **kw))
    wall = time.perf_counter() - t0
    cpu1, own1 = server.cpu_s(), time.process_time()
    r["server_cores"] = (cpu1 - cpu0) / wall if cpu0 is not None and cpu1 is not None else None
    r["loadgen_cores"] = (own1 - own0) / wall
    r.update(server.since(mark))
    return r


# ------------------------------------------------------------------------------------------------ main


def _check_predict(server: Server, body: str) -> str | None:
    """One request, then the same again: returns the second answer's X-Cache (checks the service works)."""
    import httpx

    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(2):
            r = client.post("/predict", content=body, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"/predict answered {r.status_code}: {r.text[:500]}")
        return r.headers.get("x-cache")


def _prewarm(server: Server, bodies: list[str]) -> Counter[str]:
    """Send each body twice; returns the X-Cache values of the second round (all "hit" when it worked)."""
    import httpx

    headers = {"Content-Type": "application/json"}
    seen: Counter[str] = Counter()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for round_ in range(2):
            for body in bodies:
                r = client.post("/predict", content=body, headers=headers)
                if round_:
                    seen[r.headers.get("x-cache", "none")] += 1
    return seen


def _show(r: dict[str, Any]) -> None:
    rps = r.get("rps", r.get("achieved_rps", 0.0))
    print(
        f"    {rps:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, X-Cache hit "
        f"{r.get('hit', r.get('x_cache', {}).get('hit', 0))} miss "
        f"{r.get('miss', r.get('x_cache', {}).get('miss', 0))}, Redis errors {_fmt(r['redis_errors'], 'd')}, "
        f"server log warnings {r['server_log_problems']} (counted from the warm-up on)",
        flush=True,
    )
    for line in r["server_log_sample"][:3]:
        print(f"      server: {line}")


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None or x != x else format(x, spec)


def render(report: dict[str, Any]) -> str:
    s = report["settings"]
    runs = report["runs"]
    a_rps = runs["a"]["rps"]
    lines = [
        f"Measured {report['date']} on a {report['cores']}-core machine ({report['cpu']}) with",
        "",
        f"    {report['command']}",
        "",
        report["method"],
        "",
        "| run | req/s | vs (a) | p50 ms | p99 ms | non-2xx | 5xx | 429 | socket errors | X-Cache hit/miss "
        "| server CPU | wrk CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, label in RUNS:
        r = runs[key]
        cache = "-" if key == "a" else f"{r['hit']}/{r['miss']}"
        lines.append(
            f"| {label} | {r['rps']:.0f} | {r['rps'] / a_rps:.2f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['non2xx3xx']} | {r['n5xx']} | {r['n429']} | {r['socket_errors']} | {cache} "
            f"| {_fmt(r['server_cores'])} | {_fmt(r['loadgen_cores'])} |"
        )
    f = report["fixed_rate"]
    samples = [x for v in [*runs.values(), f] for x in v["server_log_sample"]]
    lines += [
        "",
        f"Fixed rate, open loop ({f['connections']} connections, Python client, {s['fixed_duration']:g} s "
        f"after {s['warmup']:g} s warm-up, new documents as in (b)): target {f['target_rps']:.0f} req/s "
        f"({s['fixed_fraction']:.0%} of (b)), achieved {f['achieved_rps']:.0f} req/s, p50 "
        f"{f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, p99/p50 {f['p99_over_p50']:.2f}; non-2xx "
        f"{f['non2xx']}, 5xx {f['n5xx']}, 429 {f['n429']}, socket errors {sum(f['errors'].values())}; "
        f"client send lag p99 {f['send_lag_p99_ms']:.1f} ms; server CPU {_fmt(f['server_cores'])}, "
        f"client CPU {_fmt(f['loadgen_cores'])} cores.",
        "",
        "From each run's warm-up to its end, Redis errors (`xmlc_cache_errors_total`; after one the "
        "service skips the cache for `XMLC_CACHE_RETRY_S`): "
        + ", ".join(f"{k} {_fmt(v['redis_errors'], 'd')}" for k, v in [*runs.items(), ("fixed", f)])
        + "; warning or error lines in the server log: "
        + ", ".join(f"{k} {v['server_log_problems']}" for k, v in [*runs.items(), ("fixed", f)])
        + (f" (first: `{samples[0]}`)" if samples else "")
        + ".",
        "",
        "Targets: "
        + "; ".join(f"{t['name']}: {t['value']} {'PASS' if t['ok'] else 'FAIL'}" for t in report["targets"])
        + ".",
        "",
        "Commands (ports are picked free at each run; the Lua script is written by the benchmark, see "
        "`WRK_LUA` in bench/bench_service.py):",
        "",
        "```",
        *report["servers"],
        *[runs[key]["command"] for key, _ in RUNS],
        "```",
    ]
    return "\n".join(lines)


RUNS = (
    ("a", "(a) do-nothing FastAPI, same bodies"),
    ("b", "(b) /predict, every document new (cache miss)"),
    ("c", "(c) /predict, 50 repeated documents (cache hit)"),
)


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    runs, f = report["runs"], report["fixed_rate"]
    rb, rc = runs["b"]["rps"] / runs["a"]["rps"], runs["c"]["rps"] / runs["a"]["rps"]
    n5xx = sum(r["n5xx"] for r in runs.values()) + f["n5xx"]
    return [
        {"name": "(b)/(a) >= 0.4", "value": f"{rb:.2f}", "ok": rb >= 0.4},
        {"name": "(c)/(a) >= 0.8", "value": f"{rc:.2f}", "ok": rc >= 0.8},
        {
            "name": "p99 <= 3 x p50 at fixed rate",
            "value": f"{f['p99_over_p50']:.2f}",
            "ok": f["p99_over_p50"] <= 3,
        },
        {"name": "no 5xx", "value": str(n5xx), "ok": n5xx == 0},
    ]


def method_text(s: dict[str, Any], n_docs: int, mean_kb: float) -> str:
    return (
        f"Each server is one `uvicorn` process with one worker and the access log off (uvicorn picks "
        f"uvloop and httptools), started by the benchmark on a free 127.0.0.1 port: (a) `bench/noop_app.py`, "
        f"a FastAPI POST /predict that parses the same body with a pydantic model (text, title, k) and "
        f"returns a fixed small JSON; (b), (c) and the fixed-rate run share one service process with its "
        f"Redis cache ({s['redis_url']}, flushed before each run). Bodies are the {n_docs} EURLEX57K dev "
        f'documents as `{{"k": {s["k"]}, "text": ..., "title": ...}}` (mean {mean_kb:.1f} KB). wrk runs '
        f"closed loop ({s['threads']} threads, {s['connections']} connections, {s['warmup']:g} s warm-up "
        f"then {s['duration']:g} s measured) with one Lua script for all three runs: each request gets "
        f"its own body and response() counts status codes and the X-Cache header. (a) and (b) go through "
        f"the dev documents in order, each wrk thread its own share; when a run needs more requests than "
        f"there are documents, later passes put ` #<pass>` at the end of the title (warm-up requests "
        f"` #w<pass>`), so every request of (b) carries a text the cache has not seen (the X-Cache "
        f"hit/miss column checks it). (c) cycles through {s['hit_docs']} documents sent twice before its "
        f"warm-up. wrk cannot hold a rate, so p50/p99 under load come from a fixed-rate open-loop run: a "
        f"small asyncio client ({s['fixed_connections']} keep-alive connections) schedules requests at "
        f"equal intervals at {s['fixed_fraction']:.0%} of (b)'s requests/s and measures latency from each "
        f"request's scheduled time (so time waiting for a free connection counts, as wrk2 does), with "
        f"new documents as in (b). The load generators (wrk, the Python client) run on the same "
        f"{os.cpu_count()} cores as the server; the CPU columns give the cores each used during the "
        f"measured seconds (1.00 = one core busy all the time)."
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "bench" / "out" / "bundle-tree")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "eurlex57k")
    ap.add_argument("--duration", type=int, default=15, help="measured seconds of each run")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up seconds before each run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--k", type=int, default=5, help="labels asked for in each body")
    ap.add_argument("--hit-docs", type=int, default=50, help="repeated documents of run (c)")
    ap.add_argument("--fixed-fraction", type=float, default=0.7, help="fixed rate as a fraction of (b)")
    ap.add_argument("--fixed-duration", type=int, default=None, help="default: --duration")
    ap.add_argument("--fixed-connections", type=int, default=None, help="default: --connections")
    ap.add_argument("--timeout", type=int, default=10, help="per-request timeout, seconds")
    ap.add_argument("--redis-url", default=REDIS_URL, help="its database is flushed before each run")
    ap.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="XMLC_NAME=VALUE",
        help="extra environment for the service (e.g. a setting); repeatable",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    if args.duration < 1 or args.warmup < 1:
        ap.error("--duration and --warmup are whole seconds, at least 1 (wrk's -d)")
    cli = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "-m", "bench.bench_service", *cli])

    dev = args.data / "dev.jsonl.gz"
    if not dev.is_file():
        print(f"skipped: no EURLEX57K dev documents at {dev}")
        return 0
    if not (args.bundle / "manifest.json").is_file():
        print(
            f"skipped: no bundle at {args.bundle}; make it with `python -m bench.bench_tree --peers ''` or "
            f"`xmlc train --train {args.data / 'train.jsonl.gz'} --labels {args.data / 'labels.jsonl.gz'} "
            f"--out {args.bundle}`"
        )
        return 0
    if shutil.which("wrk") is None:
        print("skipped: wrk is not installed (Debian: apt-get install -y wrk)")
        return 0
    problem = redis_problem(args.redis_url)
    if problem:
        print(f"skipped: {problem}")
        return 0

    extra_env = dict(item.split("=", 1) for item in args.env if "=" in item)
    bodies = load_bodies(dev, args.k)
    if len(bodies) < max(args.threads, args.hit_docs):
        print(f"skipped: only {len(bodies)} documents in {dev}")
        return 0
    fixed_duration = args.fixed_duration or args.duration
    fixed_connections = args.fixed_connections or args.connections
    settings = {
        "bundle": str(args.bundle),
        "data": str(args.data),
        "duration": args.duration,
        "warmup": args.warmup,
        "connections": args.connections,
        "threads": args.threads,
        "k": args.k,
        "hit_docs": args.hit_docs,
        "fixed_fraction": args.fixed_fraction,
        "fixed_duration": fixed_duration,
        "fixed_connections": fixed_connections,
        "timeout": args.timeout,
        "redis_url": args.redis_url,
        "service_env": extra_env,
    }
    mean_kb = sum(len(b) for b in bodies) / len(bodies) / 1000
    print(
        f"{len(bodies)} bodies (mean {mean_kb:.1f} KB); wrk {args.threads} threads, {args.connections} "
        f"connections, {args.warmup:g} s warm-up + {args.duration:g} s per run; the load generator shares "
        f"the {os.cpu_count()} cores with the server",
        flush=True,
    )

    runs: dict[str, dict[str, Any]] = {}
    servers: list[str] = []
    server_logs: dict[str, list[str]] = {}
    max_body = max(len(b) for b in bodies) + 4096
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp_name:
        tmp = Path(tmp_name)
        script = tmp / "service.lua"
        script.write_text(WRK_LUA)
        miss_file, hit_file = tmp / "bodies.txt", tmp / "hit-bodies.txt"
        miss_file.write_text("\n".join(bodies) + "\n")
        hit_bodies = bodies[: args.hit_docs]
        hit_file.write_text("\n".join(hit_bodies) + "\n")
        w = WrkSettings(args.threads, args.connections, args.timeout, script)

        with start_server("noop", "bench.noop_app:app", {}, "/health", tmp) as noop:
            servers.append(noop.command)
            print("(a) do-nothing app ...", flush=True)
            mark = noop.mark()
            run_wrk(w, noop, args.warmup, miss_file, "w", "unique")
            runs["a"] = run_wrk(w, noop, args.duration, miss_file, "", "unique", mark)
            _show(runs["a"])
        server_logs["noop"] = list(noop.log_lines[:20])

        flush_redis(args.redis_url)
        env = {"XMLC_BUNDLE": str(args.bundle), "XMLC_REDIS_URL": args.redis_url}
        if max_body > 1_000_000:
            env["XMLC_MAX_BODY_BYTES"] = str(max_body)
        env.update(extra_env)
        with start_server("service", "app.main:app_from_env", env, "/ready", tmp, factory=True) as svc:
            servers.append(svc.command)
            cache_state = _check_predict(svc, tagged(bodies[0], "check"))
            if cache_state != "hit":
                print(f"warning: a repeated request answered X-Cache {cache_state!r}, not 'hit'")

            print("(b) /predict, cache miss ...", flush=True)
            mark = svc.mark()
            run_wrk(w, svc, args.warmup, miss_file, "w", "unique")
            flush_redis(args.redis_url)
            runs["b"] = run_wrk(w, svc, args.duration, miss_file, "", "unique", mark)
            b = runs["b"]
            _show(b)
            if b["hit"]:
                print(f"warning: {b['hit']} cache hits in the cache-miss run")

            print("(c) /predict, cache hit ...", flush=True)
            flush_redis(args.redis_url)
            mark = svc.mark()
            seen = _prewarm(svc, hit_bodies)
            if seen.get("hit", 0) != len(hit_bodies):
                print(f"warning: pre-warmed documents answered X-Cache {dict(seen)}")
            run_wrk(w, svc, args.warmup, hit_file, "", "cycle")
            runs["c"] = run_wrk(w, svc, args.duration, hit_file, "", "cycle", mark)
            c = runs["c"]
            _show(c)
            if c["miss"]:
                print(f"warning: {c['miss']} cache misses in the cache-hit run")

            rate = args.fixed_fraction * b["rps"]
            print(f"fixed rate {rate:.0f} req/s, open loop ...", flush=True)
            flush_redis(args.redis_url)
            fixed = run_fixed_rate(
                svc,
                svc.mark(),
                bodies=bodies,
                rate=rate,
                warmup_s=args.warmup,
                seconds=fixed_duration,
                connections=fixed_connections,
                tag="f",
                timeout_s=float(args.timeout),
            )
            _show(fixed)
        server_logs["service"] = list(svc.log_lines[:20])
        for name, lines in server_logs.items():
            for line in lines[:5]:
                print(f"{name} log: {line}")
        flush_redis(args.redis_url)

    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    report: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "command": command,
        "cores": os.cpu_count(),
        "cpu": cpu,
        "wrk": wrk_version.strip(),
        "settings": settings,
        "n_docs": len(bodies),
        "mean_body_kb": mean_kb,
        "servers": servers,
        "server_log_problems": server_logs,
        "runs": runs,
        "fixed_rate": fixed,
        "method": method_text(settings, len(bodies), mean_kb),
    }
    report["targets"] = targets(report)
    body = render(report)
    print()
    print(body)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_service.json").write_text(json.dumps(report, indent=2) + "\n")
    from bench.bench_tree import write_section

    write_section(args.markdown, "bench:service", body)
    print(f"\nwrote {args.out / 'bench_service.json'} and the bench:service section of {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
