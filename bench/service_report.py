"""The report of `bench.bench_service`: progress lines, targets and the BENCHMARKS.md section."""

from __future__ import annotations

import os
from typing import Any


def show_run(r: dict[str, Any]) -> None:
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
        *model_lines(report),
        "Targets: "
        + "; ".join(f"{t['name']}: {t['value']} {'PASS' if t['ok'] else 'FAIL'}" for t in report["targets"])
        + ".",
        "",
        "Commands (ports are picked free at each run; the Lua script is written by the benchmark, see "
        "`WRK_LUA` in bench/service_load.py):",
        "",
        "```",
        *report["servers"],
        *[runs[key]["command"] for key, _ in RUNS],
        "```",
    ]
    return "\n".join(lines)


def model_lines(report: dict[str, Any]) -> list[str]:
    """The model alone (`bench.service_model`): the ceiling of (b), as a share of (a)."""
    model = report.get("model_alone") or []
    if not model:
        return []
    a_rps = report["runs"]["a"]["rps"]
    parts = [
        f"{m['docs_per_s']:.0f} documents/s with {m['workers']} thread{'s' if m['workers'] > 1 else ''} "
        f"({m['docs_per_s'] / a_rps:.2f} of (a); {m['ms_per_doc']:.2f} ms a document, {m['cores']:.2f} "
        f"cores)"
        for m in model
    ]
    best = max(m["docs_per_s"] for m in model)
    return [
        f"The model alone, no HTTP (`bench/service_model.py`: `Model.predict_batch` on the same "
        f"documents in batches of {model[0]['batch_size']}, the service's batch size, for "
        f"{model[0]['seconds']:.0f} s before the servers start): " + "; ".join(parts) + ". Every request "
        f"of (b) needs the model, so (b) cannot exceed {best:.0f} requests/s, {best / a_rps:.2f} of (a).",
        "",
    ]


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
    local_off = s.get("service_env", {}).get("XMLC_LOCAL_CACHE_SIZE", "").strip() == "0"
    hits_from = (
        "Redis (the in-process answer cache is off: `XMLC_LOCAL_CACHE_SIZE=0`)"
        if local_off
        else "the service's in-process answer cache in front of Redis (`XMLC_LOCAL_CACHE_SIZE`; "
        "`--env XMLC_LOCAL_CACHE_SIZE=0` measures Redis hits)"
    )
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
        f"warm-up, answered from {hits_from}. wrk cannot hold a rate, so p50/p99 under load come from a "
        f"fixed-rate open-loop run: a "
        f"small asyncio client ({s['fixed_connections']} keep-alive connections) schedules requests at "
        f"equal intervals at {s['fixed_fraction']:.0%} of (b)'s requests/s and measures latency from each "
        f"request's scheduled time (so time waiting for a free connection counts, as wrk2 does), with "
        f"new documents as in (b). The load generators (wrk, the Python client) run on the same "
        f"{os.cpu_count()} cores as the server; the CPU columns give the cores each used during the "
        f"measured seconds (1.00 = one core busy all the time)."
    )
