"""The autoscaling replay: the HPA rule (tolerance, policies, stabilisation) and the queue it drives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.scaling_sim import Replica, Scaler, load_curve, main, simulate


def capacity_report(c: float = 100.0) -> dict:
    runs = []
    points = [(0.2, 10, 0.3, 0.2), (0.5, 15, 1.0, 0.5), (0.8, 40, 4.0, 0.8), (1.1, 900, 50, 1)]
    for f, p99, inflight, cores in points:
        achieved = f * c if f <= 1 else c  # the last run could not keep up: left out of the curve
        runs.append(
            {"fraction": f, "target_rps": f * c, "achieved_rps": achieved, "p50_ms": p99 / 2, "p99_ms": p99,
             "inflight_mean": inflight, "server_cores": cores, "non2xx": 0, "errors": {}}
        )  # fmt: skip
    return {"date": "d", "command": "c", "capacity_rps": c, "ready_s": 3.0, "runs": runs}


def test_the_curve_keeps_only_runs_the_replica_kept_up_with():
    r = Replica.from_report(capacity_report())
    assert list(r.rho) == [0.0, 0.2, 0.5, 0.8]
    assert r.at(r.inflight, 0.65) == 2.5 and r.at(r.p99_ms, 1.0) == 40


def test_hpa_rule_tolerance_policies_and_stabilisation():
    s = Scaler({"inflight": 10.0}, min_replicas=2, max_replicas=20)

    def decide(t: int, current: int, ready: int, inflight: float) -> int:
        return s.decide(t, current, ready, {"inflight": inflight, "cpu": 0.0})

    assert decide(15, 4, 4, 42.0) == 4  # 42 / (10 * 4) = 1.05: inside the 10% tolerance
    assert decide(30, 4, 4, 200.0) == 8  # wants 20: at most max(100%, +4) a period
    assert decide(45, 2, 2, 200.0) == 6  # +4 beats +100% from 2
    assert decide(60, 8, 8, 10.0) == 8  # wants 2, but wanted 20 within 300 s: stabilised
    t = 60 + 301
    assert decide(t, 8, 8, 10.0) == 4  # the window passed: down by at most 50% a minute
    assert decide(t + 15, 4, 4, 10.0) == 4  # 8 was the count within the last minute
    assert decide(t + 75, 4, 4, 10.0) == 2


def test_cpu_rule_counts_unready_pods_as_idle_while_scaling_up():
    s = Scaler.parse("cpu=0.5")
    # 4 pods, 2 ready at 90%: (0.9 * 2) / 4 = 0.45 against 0.5 -> inside tolerance, no new pods
    assert s.decide(15, 4, 2, {"cpu": 0.9, "inflight": 0.0}) == 4
    assert s.decide(30, 4, 4, {"cpu": 0.9, "inflight": 0.0}) == 8  # all ready at 90%: ceil(4 * 1.8)


def test_two_metrics_take_the_largest_proposal():
    s = Scaler.parse("cpu=0.5+inflight=10")
    assert s.name == "CPU 0.5 + in flight 10"
    assert s.decide(15, 4, 4, {"cpu": 0.5, "inflight": 80.0}) == 8  # CPU on target, in flight wants 8
    assert s.decide(30, 8, 8, {"cpu": 0.75, "inflight": 10.0}) == 12  # CPU wants 12, in flight 2


def test_replay_scales_with_the_load_and_sheds_only_past_max():
    r = Replica.from_report(capacity_report())
    load = load_curve(10 * r.capacity_rps)
    out = simulate(r, Scaler.parse("inflight=1"), load, deadline_s=10, start_delay_s=13)
    reps = np.array(out["series"]["replicas"])
    assert reps[0] == 2 and reps.max() >= 10 and reps[-1] == 2
    assert out["scale_ups"] > 0 and out["scale_downs"] > 0
    small = simulate(r, Scaler({"inflight": 1.0}, max_replicas=3), load, deadline_s=10, start_delay_s=13)
    assert small["shed_fraction"] > 0.1 and small["max_p99_ms"] > 1000
    assert out["shed_fraction"] < small["shed_fraction"]


def test_main_writes_the_figure_and_the_section(tmp_path: Path):
    cap = tmp_path / "capacity.json"
    cap.write_text(json.dumps(capacity_report()))
    md = tmp_path / "B.md"
    args = ["--capacity", str(cap), "--out", str(tmp_path), "--figure", str(tmp_path / "s.png")]
    assert main([*args, "--markdown", str(md), "--scalers", "inflight=2;cpu=0.7+inflight=9"]) == 0
    text = md.read_text()
    assert (
        "<!-- bench:scaling -->" in text and "| in flight 2 |" in text and "| CPU 0.7 + in flight 9 |" in text
    )
    assert (tmp_path / "s.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "scaling.json").read_text())["results"][0]["targets"] == {"inflight": 2.0}
    assert main(["--capacity", str(tmp_path / "none.json")]) == 0  # skipped cleanly
