"""The burst run of `bench.bench_service`: many concurrent keep-alive clients against one service replica.

Why: GitHub issue 16 (item 7) asks how one replica behaves far past its capacity, and sets the figure:
1,000 concurrent clients with a healthy Redis give 0 cache errors, 0 5xx, and every request answered or
shed within its deadline (p99 of all responses <= deadline + 100 ms). The service sheds work past its
deadline (``XMLC_REQUEST_TIMEOUT_S``) with 503 + Retry-After and answers 429 + Retry-After when its queue
is full, so under a burst most answers are quick refusals; this run counts them and times them.

Each of ``clients`` connections is opened first, then each sends its next request as soon as it has the
answer to the last, until ``requests`` have been sent in all. Bodies are new documents tagged as in run
(b), so none is a cache hit. Connection errors and client timeouts (deadline + a few seconds) are counted
apart from answers.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter
from typing import Any

import numpy as np

from bench.service_load import Answer, loop_factory, post_predict, read_response, unique_body
from bench.service_servers import HOST, Server

CLIENT_SLACK_S = 5.0  # the client gives up this long after the service's deadline
FIGURE_SLACK_S = 0.1  # the figure: p99 of all responses <= deadline + 100 ms
_NET_ERRORS = (TimeoutError, OSError, EOFError, asyncio.LimitOverrunError, ValueError)


def raise_open_files(need: int, pid: int = 0) -> str | None:
    """Raise the soft open-file limit of this process (``pid`` 0) or of a child to ``need``, up to the
    hard limit: 1,000 sockets do not fit the usual soft limit of 1,024 with the rest a process holds.
    Returns None when the limit is enough, else what stands in the way."""
    try:
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    except (AttributeError, OSError) as e:  # prlimit is Linux only; a child may be gone
        return f"cannot read the open-file limit of {'pid ' + str(pid) if pid else 'this process'}: {e}"
    if soft == resource.RLIM_INFINITY or soft >= need:
        return None
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    who = f"pid {pid}" if pid else "this process"
    try:
        if pid:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (want, hard))
        else:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (OSError, ValueError) as e:
        return f"cannot raise the open-file limit of {who} from {soft} to {want}: {e}"
    return None if want >= need else f"open-file limit of {who} is {want} (its hard limit), {need} wanted"


def _percentiles(ms: np.ndarray) -> dict[str, float]:
    """p50, p90, p99 and max of latencies in ms (NaN with none)."""
    if not len(ms):
        return dict.fromkeys(("p50_ms", "p90_ms", "p99_ms", "max_ms"), float("nan"))
    p50, p90, p99 = (float(x) for x in np.percentile(ms, [50, 90, 99]))
    return {"p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": float(ms.max())}


async def burst(
    port: int, bodies: list[str], clients: int, requests: int, tag: str, timeout_s: float
) -> dict[str, Any]:
    """``clients`` keep-alive connections, each sending its next request as soon as it has an answer,
    ``requests`` in all; latency from the first byte sent to the last byte of the answer."""
    clock = time.perf_counter
    records: list[tuple[Answer, float]] = []
    errors: Counter[str] = Counter()  # "open <Error>": a connection not opened at the start
    failed = 0  # requests sent (or tried) without an answer
    sent = 0

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout_s)

    async def exchange(writer: asyncio.StreamWriter, reader: asyncio.StreamReader, data: bytes) -> Answer:
        writer.write(data)
        await writer.drain()
        return await read_response(reader)

    async def client(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        nonlocal failed, sent
        while sent < requests:
            data = post_predict(port, unique_body(bodies, sent, tag))
            sent += 1
            try:
                if conn is None:
                    conn = await connect()
                reader, writer = conn
                t0 = clock()
                answer = await asyncio.wait_for(exchange(writer, reader, data), timeout_s)
                records.append((answer, clock() - t0))
                if answer.close:
                    writer.close()
                    conn = None
            except _NET_ERRORS as e:
                errors[type(e).__name__] += 1
                failed += 1
                if conn is not None:
                    conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()

    opened = await asyncio.gather(*(connect() for _ in range(clients)), return_exceptions=True)
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = []
    for c in opened:
        if isinstance(c, BaseException):
            errors[f"open {type(c).__name__}"] += 1
            conns.append(None)  # tried again by its first request
        else:
            conns.append(c)
    t0 = clock()
    await asyncio.gather(*(client(c) for c in conns))
    wall = clock() - t0

    statuses = Counter(a.status for a, _ in records)
    lat = np.array([s for _, s in records]) * 1000
    ok = np.array([s for a, s in records if 200 <= a.status < 300]) * 1000
    return {
        "clients": clients,
        "requests": sent,
        "answered": len(records),
        "failed": failed,
        "open_failed": sum(v for k, v in errors.items() if k.startswith("open ")),
        "socket_errors": sum(errors.values()),
        "errors": dict(errors),
        "n2xx": sum(v for s, v in statuses.items() if 200 <= s < 300),
        "n429": statuses.get(429, 0),
        "n503": statuses.get(503, 0),
        "n4xx_other": sum(v for s, v in statuses.items() if 400 <= s < 500 and s != 429),
        "n5xx_other": sum(v for s, v in statuses.items() if s >= 500 and s != 503),
        "nother": sum(v for s, v in statuses.items() if s < 200 or 300 <= s < 400),
        "retry_after_missing": sum(1 for a, _ in records if a.status in (429, 503) and not a.retry_after),
        "statuses": {str(s): v for s, v in sorted(statuses.items())},
        "x_cache": dict(Counter(a.cache or "none" for a, _ in records)),
        "latency_all": _percentiles(lat),
        "latency_2xx": _percentiles(ok),
        "wall_s": wall,
        "answered_per_s": len(records) / wall if wall > 0 else float("nan"),
        "client_timeout_s": timeout_s,
    }


def run_burst(
    server: Server,
    bodies: list[str],
    clients: int,
    requests: int,
    deadline_s: float,
    tag: str = "burst",
    mark: tuple[int, float | None] | None = None,
) -> dict[str, Any]:
    """The burst against a started service whose deadline is ``deadline_s``: counts, latencies, CPU, and
    the service's Redis errors and log warnings over the run."""
    notes = [
        n
        for n in (raise_open_files(clients + 64), raise_open_files(clients + 256, server.proc.pid))
        if n is not None
    ]
    for note in notes:
        print(f"warning: {note}; expect connection errors", flush=True)
    mark = mark or server.mark()
    cpu0, own0, t0 = server.cpu_s(), time.process_time(), time.perf_counter()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        r = runner.run(burst(server.port, bodies, clients, requests, tag, deadline_s + CLIENT_SLACK_S))
    wall = time.perf_counter() - t0
    cpu1, own1 = server.cpu_s(), time.process_time()
    r["deadline_s"] = deadline_s
    r["open_file_notes"] = notes
    r["server_cores"] = (cpu1 - cpu0) / wall if cpu0 is not None and cpu1 is not None else None
    r["loadgen_cores"] = (own1 - own0) / wall
    r.update(server.since(mark))
    return r


def burst_checks(r: dict[str, Any]) -> dict[str, bool]:
    """The issue's figure, each part: no Redis errors, no 5xx but the shedding 503, no socket errors, and
    p99 of all responses within the deadline + 100 ms."""
    limit_ms = (r["deadline_s"] + FIGURE_SLACK_S) * 1000
    return {
        "0 Redis errors": r["redis_errors"] == 0,
        "0 5xx other than 503": r["n5xx_other"] == 0,
        "0 socket errors": r["socket_errors"] == 0,
        f"p99 <= {limit_ms:.0f} ms": r["latency_all"]["p99_ms"] <= limit_ms,  # NaN: False
    }
