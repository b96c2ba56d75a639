"""Autoscaling, simulated with measured numbers: a load curve replayed through the HPA's rule.

No cluster runs here, so the scaling of deploy/k8s is checked by replaying a day's shape of traffic (ramp
up, a spike, ramp down) second by second through the Horizontal Pod Autoscaler's algorithm, with one
replica's capacity, latency and in-flight requests at each utilisation as `bench.bench_capacity`
measured them (bench/out/capacity.json). The metrics the overlays can scale on:

- requests in flight (KEDA's Prometheus trigger on the summed ``xmlc_inflight_requests``, an
  AverageValue): ``desired = ceil(total / target)``;
- CPU utilisation of the requested core (an HPA Resource metric, or KEDA's cpu trigger):
  ``desired = ceil(current * utilisation / target)``, pods not yet ready counted at 0% while scaling up;
- both at once: the HPA computes each metric's proposal and takes the largest.

All with the HPA's 10% tolerance, a 15 s sync, the metric as old as its scrape (5 s for Prometheus, 15 s
for metrics-server), scale-up by max(100%, 4 pods) a period with no stabilisation, scale-down stabilised
over 300 s and by at most 50% a minute, bounds [min, max]. A new pod takes traffic after a start-up delay
(the measured process start to ready, plus an assumed scheduling and image-start time). Requests spread
evenly over ready replicas; above capacity the excess waits in a queue, and waits past the deadline are
shed (503). Projected p99 = the measured p99 at that utilisation + the queue's wait.

    python -m bench.scaling_sim                 # reads bench/out/capacity.json; writes the plot and section

Outputs: bench/figures/scaling.png, bench/out/scaling.json and the ``bench:scaling`` section of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shlex
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SYNC_S, TOLERANCE = 15, 0.1


@dataclass
class Replica:
    """One replica's measured behaviour, interpolated in utilisation (fraction of capacity)."""

    capacity_rps: float
    rho: np.ndarray
    p99_ms: np.ndarray
    inflight: np.ndarray
    cores: np.ndarray
    ready_s: float

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> Replica:
        """Only the runs the replica kept up with (achieved >= 97% of target, every answer 2xx); p99, in
        flight and CPU as their running maximum in utilisation (a noisy run never makes more load look
        cheaper)."""
        c = report["capacity_rps"]
        runs = [
            r
            for r in report["runs"]
            if r["achieved_rps"] >= 0.97 * r["target_rps"] and r["non2xx"] == 0 and not r["errors"]
        ]
        runs.sort(key=lambda r: r["achieved_rps"])
        rho = np.array([0.0] + [r["achieved_rps"] / c for r in runs])
        p99 = np.array([runs[0]["p99_ms"]] + [r["p99_ms"] for r in runs])
        inflight = np.array([0.0] + [r["inflight_mean"] for r in runs])
        cores = np.array([0.0] + [r["server_cores"] or 0.0 for r in runs])
        up = np.maximum.accumulate
        return cls(c, rho, up(p99), up(inflight), up(cores), report["ready_s"])

    def at(self, values: np.ndarray, rho: float) -> float:
        return float(np.interp(rho, self.rho, values))


METRIC_LAG_S = {"inflight": 5, "cpu": 15}  # Prometheus scrapes every 5 s; metrics-server averages 15 s
METRIC_NAMES = {"inflight": "in flight", "cpu": "CPU"}


@dataclass
class Scaler:
    """The HPA's rule for one or more metrics (it takes the largest proposal), as KEDA or an HPA sets it.

    ``targets``: "inflight" -> requests in flight a replica (an AverageValue of their sum), "cpu" ->
    utilisation of the one core a replica requests.
    """

    targets: dict[str, float]
    min_replicas: int = 2
    max_replicas: int = 20
    history: deque[tuple[int, int]] = field(default_factory=deque)  # (t, recommendation)
    spec_history: deque[tuple[int, int]] = field(default_factory=deque)

    @classmethod
    def parse(cls, spec: str) -> Scaler:
        """``"cpu=0.75+inflight=10"`` -> a scaler on both metrics."""
        targets = {}
        for part in spec.split("+"):
            name, _, value = part.partition("=")
            if name not in METRIC_LAG_S:
                raise ValueError(f"unknown metric {name!r} in {spec!r} (inflight, cpu)")
            targets[name] = float(value)
        return cls(targets)

    @property
    def name(self) -> str:
        return " + ".join(f"{METRIC_NAMES[m]} {t:g}" for m, t in self.targets.items())

    @staticmethod
    def proposal(metric: str, target: float, current: int, ready: int, value: float) -> int:
        """One metric's replica count (``value``: total in flight, or mean CPU of ready pods)."""
        if metric == "inflight":
            ratio = value / (target * current)
            raw = math.ceil(value / target)
        else:  # unready pods count as 0% while scaling up
            ratio = value * ready / max(current, 1) / target
            raw = math.ceil(value * ready / target) if ratio > 1 else math.ceil(current * ratio)
        return current if abs(ratio - 1) <= TOLERANCE else raw

    def decide(self, t: int, current: int, ready: int, values: dict[str, float]) -> int:
        """The next replica count: the largest proposal, bounded, then the scale-up and -down behaviour."""
        desired = max(self.proposal(m, x, current, ready, values[m]) for m, x in self.targets.items())
        desired = min(max(desired, self.min_replicas), self.max_replicas)
        self.history.append((t, desired))
        while self.history and self.history[0][0] < t - 300:
            self.history.popleft()
        self.spec_history.append((t, current))
        while self.spec_history and self.spec_history[0][0] < t - 60:
            self.spec_history.popleft()
        if desired > current:
            return min(desired, max(2 * current, current + 4), self.max_replicas)
        stabilised = max(r for _, r in self.history)  # scale-down: the highest of the last 300 s
        floor = math.floor(max(r for _, r in self.spec_history) * 0.5)
        return max(min(stabilised, current), floor, self.min_replicas)


def load_curve(peak_rps: float, seed: int = 0) -> np.ndarray:
    """Requests/s each second: quiet, a 10-minute ramp, a 60% spike in 30 s held 3 minutes, a 10-minute
    ramp down, quiet again; 5% noise."""
    p = peak_rps
    parts = [
        np.full(300, 0.08 * p),
        np.linspace(0.08 * p, 0.6 * p, 600),
        np.linspace(0.6 * p, p, 30),
        np.full(180, p),
        np.linspace(p, 0.6 * p, 30),
        np.full(300, 0.6 * p),
        np.linspace(0.6 * p, 0.05 * p, 600),
        np.full(600, 0.05 * p),
    ]
    curve = np.concatenate(parts)
    return curve * (1 + 0.05 * np.random.default_rng(seed).standard_normal(len(curve)))


def simulate(
    replica: Replica,
    scaler: Scaler,
    load: np.ndarray,
    deadline_s: float,
    start_delay_s: float,
    slo_ms: float = 100.0,
) -> dict[str, Any]:
    """Second-by-second replay; returns the series and the summary figures."""
    c = replica.capacity_rps
    pods: list[float] = [0.0] * scaler.min_replicas  # the time each pod is ready
    backlog = shed = served = 0.0
    metric_log: dict[str, list[float]] = {m: [] for m in METRIC_LAG_S}
    series: dict[str, list[float]] = {"replicas": [], "ready": [], "p99_ms": [], "rho": []}
    changes: list[tuple[int, int]] = []  # (t, +1 or -1)
    for t, rate in enumerate(load):
        ready = max(1, sum(1 for r in pods if r <= t))
        cap = ready * c
        backlog += rate - cap
        backlog = max(backlog, 0.0)
        if backlog > cap * deadline_s:  # requests that would wait past the deadline are shed (503)
            shed += backlog - cap * deadline_s
            backlog = cap * deadline_s
        served += rate
        rho = min(rate / cap, 1.0)
        wait_ms = backlog / cap * 1e3
        series["p99_ms"].append(replica.at(replica.p99_ms, rho) + wait_ms)
        series["rho"].append(rho)
        series["replicas"].append(len(pods))
        series["ready"].append(ready)
        metric_log["inflight"].append(ready * replica.at(replica.inflight, rho) + backlog)
        metric_log["cpu"].append(replica.at(replica.cores, rho))
        if t % SYNC_S == 0 and t > 0:
            values = {}  # in flight: the last scrape's value; CPU: metrics-server's 15 s average
            for m, log in metric_log.items():
                lag = min(METRIC_LAG_S[m], t)
                values[m] = float(np.mean(log[-lag - 1 :])) if m == "cpu" else log[-lag - 1]
            new = scaler.decide(t, len(pods), ready, values)
            if new > len(pods):
                pods += [t + start_delay_s] * (new - len(pods))
                changes.append((t, 1))
            elif new < len(pods):
                pods = sorted(pods)[:new]  # the newest go first; drained ones stop taking work at once
                changes.append((t, -1))
    p99 = np.array(series["p99_ms"])
    reversals = sum(1 for (t0, d0), (t1, d1) in itertools.pairwise(changes) if d0 != d1 and t1 - t0 < 300)
    return {
        "scaler": scaler.name,
        "targets": scaler.targets,
        "series": series,
        "max_p99_ms": float(p99.max()),
        "seconds_over_deadline": int((p99 > deadline_s * 1e3).sum()),
        "seconds_over_slo": int((p99 > slo_ms).sum()),
        "shed_fraction": shed / served if served else 0.0,
        "replica_minutes": float(np.sum(series["replicas"]) / 60),
        "max_replicas": int(max(series["replicas"])),
        "scale_ups": sum(1 for _, d in changes if d > 0),
        "scale_downs": sum(1 for _, d in changes if d < 0),
        "reversals_within_5_min": reversals,
    }


def plot(
    load: np.ndarray,
    c: float,
    results: list[dict[str, Any]],
    deadline_s: float,
    path: Path,
    slo_ms: float | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 8.5), dpi=110, sharex=True)
    minutes = np.arange(len(load)) / 60
    axes[0].plot(minutes, load, color="black", lw=0.8, label="offered load")
    for r in results:
        axes[0].plot(minutes, np.array(r["series"]["ready"]) * c, lw=1, label=f"capacity, {r['scaler']}")
        axes[1].plot(minutes, r["series"]["replicas"], lw=1.2, label=r["scaler"])
        axes[2].plot(minutes, r["series"]["p99_ms"], lw=1, label=r["scaler"])
    axes[0].set_ylabel("requests/s")
    axes[1].set_ylabel("replicas")
    axes[2].set_ylabel("projected p99, ms (log)")
    axes[2].set_yscale("log")
    axes[2].axhline(deadline_s * 1e3, color="red", ls="--", lw=0.8, label="deadline")
    if slo_ms:
        axes[2].axhline(slo_ms, color="grey", ls=":", lw=0.8, label=f"{slo_ms:g} ms")
    axes[2].set_xlabel("minutes")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    axes[0].set_title("Autoscaling replay with one replica's measured capacity and latency")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def render(report: dict[str, Any]) -> str:
    cap = report["capacity"]
    lines = [
        f"Measured {cap['date']} (`{cap['command']}`): one replica pinned to one core answers "
        f"{cap['capacity_rps']:.0f} cache misses/s closed loop and is ready {cap['ready_s']:.1f} s after "
        f"its process starts. Latency and in-flight requests at fixed rates:",
        "",
        "| utilisation | req/s | p50 ms | p99 ms | in flight | cores | non-2xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in cap["runs"]:
        lines.append(
            f"| {r['fraction']:.2f} | {r['achieved_rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['inflight_mean']:.1f} | {r['server_cores'] or 0:.2f} | {r['non2xx']} |"
        )
    lines += [
        "",
        f"Replay (`{report['command']}`): peak {report['peak_rps']:.0f} req/s "
        f"({report['peak_rps'] / cap['capacity_rps']:.1f} replicas' worth), "
        f"start-up delay {report['start_delay_s']:.0f} s a new pod "
        f"({cap['ready_s']:.1f} s measured + {report['schedule_s']:.0f} s assumed for scheduling and the "
        f"container start), deadline {report['deadline_s']:g} s.",
        "",
        f"| scaling on (targets) | max p99 ms | s over deadline | s over {report['slo_ms']:g} ms | shed | "
        "replica-minutes | max replicas | "
        "scale-ups | scale-downs | reversals < 5 min |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['scaler']} | {r['max_p99_ms']:.0f} | {r['seconds_over_deadline']} | "
            f"{r['seconds_over_slo']} | "
            f"{100 * r['shed_fraction']:.2f}% | {r['replica_minutes']:.0f} | {r['max_replicas']} | "
            f"{r['scale_ups']} | {r['scale_downs']} | {r['reversals_within_5_min']} |"
        )
    lines += ["", "![autoscaling replay](bench/figures/scaling.png)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--capacity", type=Path, default=ROOT / "bench" / "out" / "capacity.json")
    ap.add_argument("--peak-replicas", type=float, default=12.0, help="peak load in replicas' capacity")
    ap.add_argument(
        "--scalers",
        default="inflight=3;inflight=6;cpu=0.6;cpu=0.75;cpu=0.75+inflight=10",
        help="';'-separated; each metric=target, '+' joins metrics (the HPA takes the largest proposal)",
    )
    ap.add_argument("--max-replicas", type=int, default=20, help="the scaler's upper bound")
    ap.add_argument("--schedule-s", type=float, default=10.0, help="assumed: scheduling + container start")
    ap.add_argument("--deadline-s", type=float, default=10.0, help="XMLC_REQUEST_TIMEOUT_S")
    ap.add_argument("--slo-ms", type=float, default=100.0, help="a latency objective for p99")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--figure", type=Path, default=ROOT / "bench" / "figures" / "scaling.png")
    ap.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    if not args.capacity.is_file():
        print(f"skipped: no {args.capacity} (python -m bench.bench_capacity makes it)")
        return 0
    cap = json.loads(args.capacity.read_text())
    command = shlex.join(["python", "-m", "bench.scaling_sim", *(sys.argv[1:] if argv is None else argv)])
    replica = Replica.from_report(cap)
    peak = args.peak_replicas * replica.capacity_rps
    load = load_curve(peak)
    delay = replica.ready_s + args.schedule_s
    scalers = [Scaler.parse(spec) for spec in args.scalers.split(";") if spec]
    for scaler in scalers:
        scaler.max_replicas = args.max_replicas
    results = [simulate(replica, s, load, args.deadline_s, delay, args.slo_ms) for s in scalers]
    report = {
        "command": command,
        "capacity": cap,
        "peak_rps": peak,
        "start_delay_s": delay,
        "schedule_s": args.schedule_s,
        "deadline_s": args.deadline_s,
        "slo_ms": args.slo_ms,
        "results": results,
    }
    plot(load, replica.capacity_rps, results, args.deadline_s, args.figure, args.slo_ms)
    body = render(report)
    print(body)
    args.out.mkdir(parents=True, exist_ok=True)
    for r in results:
        r.pop("series")
    (args.out / "scaling.json").write_text(json.dumps(report, indent=2) + "\n")
    from bench.bench_tree import write_section

    write_section(args.markdown, "bench:scaling", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
