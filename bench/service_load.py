"""Load generation for `bench.bench_service`: request bodies, wrk (closed loop) and a fixed-rate open loop.

The raw-asyncio HTTP/1.1 pieces here (`post_predict`, `unique_body`, `read_response`) are shared with the
burst run of `bench.service_burst`.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import resource
import shlex
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bench.service_servers import HOST, Server

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


# --------------------------------------------- asyncio clients: fixed-rate open loop (burst: service_burst)


class Answer(NamedTuple):
    """What the load clients keep of one HTTP answer (its body is read and dropped)."""

    status: int
    cache: str | None  # the X-Cache header
    close: bool  # the server closes the connection after it
    retry_after: bool  # a Retry-After header was there


def post_predict(port: int, body: str) -> bytes:
    """One keep-alive HTTP/1.1 POST /predict with ``body``, as bytes on the wire."""
    data = body.encode()
    return (
        f"POST /predict HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


def unique_body(bodies: list[str], i: int, tag: str) -> str:
    """Request ``i``'s body as wrk's "unique" mode makes it: later passes get the pass number after
    ``tag``, so no two requests carry the same document text."""
    return tagged(bodies[i % len(bodies)], f"{tag}{i // len(bodies) or ''}")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (as uvicorn picks it), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def read_response(reader: asyncio.StreamReader) -> Answer:
    """Read one HTTP/1.1 answer off a keep-alive connection (Content-Length or chunked body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, cache, close, retry_after = 0, False, None, False, False
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
        elif name == b"retry-after":
            retry_after = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return Answer(status, cache, close, retry_after)


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
    total = int(rate * (warmup_s + seconds))
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    # (due, sent, done, status, cache) per answered request
    records: list[tuple[float, float, float, int, str | None]] = []
    errors: Counter[str] = Counter()

    async def worker() -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while True:
            item = await queue.get()
            if item is None:
                break
            i, due = item
            data = post_predict(port, unique_body(bodies, i, tag))
            try:
                if conn is None:
                    conn = await asyncio.open_connection(HOST, port)
                reader, writer = conn
                sent = clock()
                writer.write(data)
                answer = await asyncio.wait_for(read_response(reader), timeout_s)
                records.append((due, sent, clock(), answer.status, answer.cache))
                if answer.close:
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
    mark = mark or server.mark()
    cpu0, own0, t0 = server.cpu_s(), time.process_time(), time.perf_counter()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        r = runner.run(fixed_rate(server.port, **kw))
    wall = time.perf_counter() - t0
    cpu1, own1 = server.cpu_s(), time.process_time()
    r["server_cores"] = (cpu1 - cpu0) / wall if cpu0 is not None and cpu1 is not None else None
    r["loadgen_cores"] = (own1 - own0) / wall
    r.update(server.since(mark))
    return r
