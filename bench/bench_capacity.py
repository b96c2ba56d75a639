"""Benchmark: one replica's capacity and its latency curve, the numbers the autoscaling simulation needs.

A Kubernetes replica asks for one core (deploy/k8s/base/api.yaml), so the service runs pinned to one core
(``taskset``) and the load generator on the others. First a closed-loop wrk run of cache misses (every
document new) gives the replica's capacity C in requests/s; then open-loop fixed-rate runs at fractions of
C give, for each utilisation, p50/p99 latency, the requests in flight on the replica (its own
``xmlc_inflight_requests`` gauge, sampled) and the CPU it used. Also timed: process start to ``/ready``
(what a new replica needs before it takes traffic, image pull and scheduling aside).

    python -m bench.bench_capacity --bundle bench/out/bundle-tree+ranker --data ../shared/data/eurlex57k

Writes bench/out/capacity.json, read by `bench.scaling_sim`. Skips cleanly without data, bundle, wrk,
taskset or Redis.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from bench.service_load import WRK_LUA, WrkSettings, load_bodies, run_fixed_rate, run_wrk
from bench.service_servers import ROOT, Server, flush_redis, redis_problem, start_server

REDIS_URL = "redis://127.0.0.1:6379/5"


class GaugeSampler:
    """Samples the replica's in-flight gauge every ``every_s`` seconds while a run lasts."""

    def __init__(self, server: Server, every_s: float = 0.25) -> None:
        self.server, self.every_s = server, every_s
        self.values: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        import httpx

        with httpx.Client(timeout=5, trust_env=False) as client:
            while not self.stop.wait(self.every_s):
                try:
                    text = client.get(self.server.url + "/metrics").text
                except httpx.HTTPError:
                    continue
                for line in text.splitlines():
                    if line.startswith("xmlc_inflight_requests "):
                        self.values.append(float(line.split()[1]))

    def __enter__(self) -> GaugeSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "bench" / "out" / "bundle-tree+ranker")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "eurlex57k")
    ap.add_argument("--server-cpus", default="1", help="taskset core list of the replica (its CPU limit)")
    ap.add_argument("--fractions", default="0.2,0.4,0.6,0.7,0.8,0.9,1.0,1.1")
    ap.add_argument("--duration", type=int, default=10, help="measured seconds of each run")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32, help="open-loop connections (more than in flight)")
    ap.add_argument("--timeout", type=int, default=10)
    ap.add_argument("--redis-url", default=REDIS_URL, help="its database is flushed before each run")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = ap.parse_args(argv)
    cli = sys.argv[1:] if argv is None else argv
    dev = args.data / "dev.jsonl.gz"
    missing = [
        (not dev.is_file(), f"no EURLEX57K dev documents at {dev}"),
        (not (args.bundle / "manifest.json").is_file(), f"no bundle at {args.bundle}"),
        (shutil.which("wrk") is None, "wrk is not installed (apt-get install wrk)"),
        (shutil.which("taskset") is None, "taskset is not installed (util-linux)"),
    ]
    for absent, why in missing:
        if absent:
            print(f"skipped: {why}")
            return 0
    problem = redis_problem(args.redis_url)
    if problem:
        print(f"skipped: {problem}")
        return 0
    server_cpus = {int(c) for c in args.server_cpus.split(",")}
    others = set(os.sched_getaffinity(0)) - server_cpus
    if others:  # the load generator (this process and wrk) keeps off the replica's cores
        os.sched_setaffinity(0, others)
    bodies = load_bodies(dev, 5)
    fractions = [float(f) for f in args.fractions.split(",")]
    env = {"XMLC_BUNDLE": str(args.bundle), "XMLC_REDIS_URL": args.redis_url}
    env["XMLC_MAX_BODY_BYTES"] = str(max(len(b) for b in bodies) + 4096)
    report: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "command": shlex.join(["python", "-m", "bench.bench_capacity", *cli]),
        "bundle": str(args.bundle),
        "server_cpus": args.server_cpus,
        "loadgen_cpus": sorted(others),
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp_name:
        tmp = Path(tmp_name)
        script, miss_file = tmp / "service.lua", tmp / "bodies.txt"
        script.write_text(WRK_LUA)
        miss_file.write_text("\n".join(bodies) + "\n")
        flush_redis(args.redis_url)
        with start_server(
            "service", "app.main:app_from_env", env, "/ready", tmp, factory=True, cpus=args.server_cpus
        ) as svc:
            report["ready_s"] = svc.ready_s
            report["server"] = svc.command
            print(f"replica ready {svc.ready_s:.1f} s after its start; closed loop ...", flush=True)
            w = WrkSettings(1, 16, args.timeout, script)
            run_wrk(w, svc, args.warmup, miss_file, "w", "unique")
            closed = run_wrk(w, svc, args.duration, miss_file, "c", "unique")
            capacity = closed["rps"]
            report["capacity_rps"] = capacity
            report["closed_loop"] = {k: closed[k] for k in ("rps", "p50_ms", "p99_ms", "server_cores")}
            print(f"    capacity {capacity:.0f} req/s on {closed['server_cores']:.2f} cores", flush=True)
            for i, fraction in enumerate(fractions):
                flush_redis(args.redis_url)
                with GaugeSampler(svc) as sampler:
                    r = run_fixed_rate(
                        svc,
                        bodies=bodies,
                        rate=fraction * capacity,
                        warmup_s=args.warmup,
                        seconds=args.duration,
                        connections=args.connections,
                        tag=f"r{i}",
                        timeout_s=float(args.timeout),
                    )
                inflight = sampler.values or [0.0]
                run = {
                    "fraction": fraction,
                    "inflight_mean": sum(inflight) / len(inflight),
                    **{
                        k: r[k]
                        for k in (
                            "target_rps",
                            "achieved_rps",
                            "p50_ms",
                            "p99_ms",
                            "n5xx",
                            "non2xx",
                            "errors",
                            "server_cores",
                        )
                    },
                }
                report["runs"].append(run)
                print(
                    f"    {fraction:.2f} C: {r['achieved_rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, "
                    f"p99 {r['p99_ms']:.1f} ms, in flight {run['inflight_mean']:.1f}, "
                    f"{r['server_cores']:.2f} cores, non-2xx {r['non2xx']}",
                    flush=True,
                )
        flush_redis(args.redis_url)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "capacity.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
