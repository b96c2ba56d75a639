"""Benchmark: HTTP requests/s and latency of the service on one uvicorn worker, against a do-nothing app.

One run, one worker each, EURLEX57K dev documents as request bodies:

- (a) a do-nothing FastAPI endpoint taking the same body (`bench/noop_app.py`),
- (b) POST /predict with every document new to the cache (cache miss),
- (c) POST /predict on 50 repeated documents, sent once before the run (cache hit),

each with wrk (closed loop, a Lua script that gives each request its own body and counts status codes and
the X-Cache header), then a fixed-rate open-loop run at 70% of (b)'s requests/s (a small asyncio client,
latency from the scheduled send time) for p50/p99, then a burst (issue 16: 1,000 concurrent keep-alive
clients, 5,000 requests of new documents, each client sending again as soon as it is answered) that counts
2xx, 429, 503, other answers, socket errors and Redis errors and times them against the service's deadline
(`bench.service_burst`). Servers are started here on free 127.0.0.1 ports and always stopped. Results: a
markdown table (printed, and into BENCHMARKS.md between the ``bench:service`` markers) and raw JSON in
bench/out/bench_service.json. Skips cleanly without data, bundle, wrk or Redis.

    python -m bench.bench_service --bundle bench/out/bundle-tree --data ../shared/data/eurlex57k

The parts: `bench.service_servers` (uvicorn and Redis), `bench.service_load` (bodies, wrk, open loop),
`bench.service_burst` (the concurrent burst), `bench.service_report` (the table, the targets and the
method text); this module runs them in order.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from app.settings import Settings
from bench.service_burst import raise_open_files, run_burst
from bench.service_load import WRK_LUA, WrkSettings, load_bodies, run_fixed_rate, run_wrk, tagged
from bench.service_model import docs_of, model_ceiling
from bench.service_report import method_text, render, show_burst, show_run, targets
from bench.service_servers import ROOT, check_predict, flush_redis, prewarm, redis_problem, start_server

REDIS_URL = "redis://127.0.0.1:6379/5"


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
    ap.add_argument("--fixed-repeats", type=int, default=3, help="consecutive fixed-rate runs (at least 1)")
    ap.add_argument("--timeout", type=int, default=10, help="per-request timeout, seconds")
    ap.add_argument(
        "--burst-clients", type=int, default=1000, help="concurrent clients of the burst run; 0 skips it"
    )
    ap.add_argument("--burst-requests", type=int, default=5000, help="requests of the burst run in all")
    ap.add_argument(
        "--burst-timeout-s",
        type=float,
        default=None,
        help="the service's deadline (XMLC_REQUEST_TIMEOUT_S, for every run of the service); "
        "default: the service's own (app.settings)",
    )
    ap.add_argument("--redis-url", default=REDIS_URL, help="its database is flushed before each run")
    ap.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="XMLC_NAME=VALUE",
        help="extra environment for the service (e.g. a setting); repeatable",
    )
    ap.add_argument(
        "--workers", type=int, default=0, help="service processes (default: XMLC_WORKERS's, one per core)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    if args.fixed_repeats < 1:
        ap.error("--fixed-repeats is at least 1")
    if args.duration < 1 or args.warmup < 1:
        ap.error("--duration and --warmup are whole seconds, at least 1 (wrk's -d)")
    if args.burst_clients < 0 or (args.burst_clients and args.burst_requests < 1):
        ap.error("--burst-clients is at least 0 and --burst-requests at least 1")
    if args.burst_timeout_s is not None and args.burst_timeout_s <= 0:
        ap.error("--burst-timeout-s is a positive number of seconds")
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
    if args.burst_timeout_s is not None:
        extra_env["XMLC_REQUEST_TIMEOUT_S"] = str(args.burst_timeout_s)
    defaults = Settings()
    deadline = float(extra_env.get("XMLC_REQUEST_TIMEOUT_S", defaults.request_timeout_s))
    batch_size = int(extra_env.get("XMLC_BATCH_MAX_SIZE", defaults.batch_max_size))
    threads = int(extra_env.get("XMLC_BATCH_WORKERS", defaults.batch_workers))
    workers = args.workers or defaults.workers
    model_threads = min(workers * threads, os.cpu_count() or 1)  # the model alone on as many cores
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
        "fixed_repeats": args.fixed_repeats,
        "timeout": args.timeout,
        "redis_url": args.redis_url,
        "service_env": extra_env,
        "batch_size": batch_size,
        "batch_workers": threads,
        "workers": workers,
        "model_threads": model_threads,
        "request_timeout_s": deadline,
        "burst_clients": args.burst_clients,
        "burst_requests": args.burst_requests,
        "burst_timeout_s": args.burst_timeout_s,
    }
    mean_kb = sum(len(b) for b in bodies) / len(bodies) / 1000
    print(
        f"{len(bodies)} bodies (mean {mean_kb:.1f} KB); wrk {args.threads} threads, {args.connections} "
        f"connections, {args.warmup:g} s warm-up + {args.duration:g} s per run; the load generator shares "
        f"the {os.cpu_count()} cores with the server",
        flush=True,
    )

    # The model alone first, on a quiet machine: the ceiling of (b) whatever the HTTP layer does.
    texts = docs_of(bodies)
    model: list[dict[str, Any]] = []
    for n in sorted({1, model_threads}):
        print(f"model alone, batches of {batch_size}, {n} thread(s) ...", flush=True)
        model.append(model_ceiling(args.bundle, texts, batch_size, n, min(args.duration, 10), args.k))
        print(f"    {model[-1]['docs_per_s']:.0f} docs/s, {model[-1]['cores']:.2f} cores", flush=True)

    if args.burst_clients:
        # Before the servers start, so that the service inherits it: both ends hold a socket a client.
        problem = raise_open_files(args.burst_clients + 256)
        if problem:
            print(f"warning: {problem}; the burst run may see connection errors", flush=True)

    runs: dict[str, dict[str, Any]] = {}
    burst: dict[str, Any] | None = None
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
            show_run(runs["a"])
        server_logs["noop"] = list(noop.log_lines[:20])

        flush_redis(args.redis_url)
        env = {"XMLC_BUNDLE": str(args.bundle), "XMLC_REDIS_URL": args.redis_url}
        if max_body > 1_000_000:
            env["XMLC_MAX_BODY_BYTES"] = str(max_body)
        env.update(extra_env)
        service = start_server(
            "service", "app.main:app_from_env", env, "/ready", tmp, factory=True, workers=workers
        )
        with service as svc:
            servers.append(svc.command)
            cache_state = check_predict(svc, tagged(bodies[0], "check"))
            if cache_state != "hit":
                print(f"warning: a repeated request answered X-Cache {cache_state!r}, not 'hit'")

            print("(b) /predict, cache miss ...", flush=True)
            mark = svc.mark()
            run_wrk(w, svc, args.warmup, miss_file, "w", "unique")
            flush_redis(args.redis_url)
            runs["b"] = run_wrk(w, svc, args.duration, miss_file, "", "unique", mark)
            b = runs["b"]
            show_run(b)
            if b["hit"]:
                print(f"warning: {b['hit']} cache hits in the cache-miss run")

            print("(c) /predict, cache hit ...", flush=True)
            flush_redis(args.redis_url)
            mark = svc.mark()
            seen = prewarm(svc, hit_bodies)
            if seen.get("hit", 0) != len(hit_bodies):
                print(f"warning: pre-warmed documents answered X-Cache {dict(seen)}")
            run_wrk(w, svc, args.warmup, hit_file, "", "cycle")
            runs["c"] = run_wrk(w, svc, args.duration, hit_file, "", "cycle", mark)
            c = runs["c"]
            show_run(c)
            if c["miss"]:
                print(f"warning: {c['miss']} cache misses in the cache-hit run")

            rate = args.fixed_fraction * b["rps"]
            print(f"fixed rate {rate:.0f} req/s, open loop ...", flush=True)
            repeats = []
            for i in range(args.fixed_repeats):  # the issue asks for the tail in consecutive runs
                flush_redis(args.redis_url)
                repeats.append(
                    run_fixed_rate(
                        svc,
                        svc.mark(),
                        bodies=bodies,
                        rate=rate,
                        warmup_s=args.warmup,
                        seconds=fixed_duration,
                        connections=fixed_connections,
                        tag=f"f{i}" if i else "f",
                        timeout_s=float(args.timeout),
                    )
                )
                show_run(repeats[-1])
            fixed = max(repeats, key=lambda r: r["p99_over_p50"])  # the worst of them is the figure

            if args.burst_clients:
                print(
                    f"burst: {args.burst_clients} concurrent clients, {args.burst_requests} requests, "
                    f"deadline {deadline:g} s ...",
                    flush=True,
                )
                flush_redis(args.redis_url)
                burst = run_burst(
                    svc,
                    bodies=bodies,
                    clients=args.burst_clients,
                    requests=args.burst_requests,
                    deadline_s=deadline,
                    tag="burst",
                )
                show_burst(burst)
                if burst["x_cache"].get("hit"):
                    print(f"warning: {burst['x_cache']['hit']} cache hits in the burst of new documents")
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
        "fixed_repeats": repeats,
        "burst": burst,
        "model_alone": model,
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
