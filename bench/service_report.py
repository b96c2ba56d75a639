"""The report of `bench.bench_service`: progress lines, targets and the BENCHMARKS.md section."""

from __future__ import annotations

import os
from typing import Any

from bench.service_burst import FIGURE_SLACK_S, burst_checks


def _show(text: str, r: dict[str, Any]) -> None:
    """A run's progress line, then the first warning lines its server logged."""
    print(f"    {text}", flush=True)
    for line in r["server_log_sample"][:3]:
        print(f"      server: {line}")


def show_run(r: dict[str, Any]) -> None:
    rps = r.get("rps", r.get("achieved_rps", 0.0))
    _show(
        f"{rps:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, X-Cache hit "
        f"{r.get('hit', r.get('x_cache', {}).get('hit', 0))} miss "
        f"{r.get('miss', r.get('x_cache', {}).get('miss', 0))}, Redis errors {_fmt(r['redis_errors'], 'd')}, "
        f"server log warnings {r['server_log_problems']} (counted from the warm-up on)",
        r,
    )


def show_burst(r: dict[str, Any]) -> None:
    """The burst run's progress line: what came back and how fast."""
    la = r["latency_all"]
    _show(
        f"{r['answered']} answered in {r['wall_s']:.1f} s: 2xx {r['n2xx']}, 429 {r['n429']}, 503 "
        f"{r['n503']}, other 4xx {r['n4xx_other']}, other 5xx {r['n5xx_other']}, socket errors "
        f"{r['socket_errors']}, Retry-After missing {r['retry_after_missing']}; p50 {la['p50_ms']:.1f} ms, "
        f"p99 {la['p99_ms']:.1f} ms, max {la['max_ms']:.1f} ms; Redis errors {_fmt(r['redis_errors'], 'd')}",
        r,
    )


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
        f"client CPU {_fmt(f['loadgen_cores'])} cores"
        + (
            f" (the worst p99/p50 of {len(report['fixed_repeats'])} consecutive runs: "
            + ", ".join(
                f"{r['p99_ms']:.1f}/{r['p50_ms']:.1f} ms = {r['p99_over_p50']:.2f}"
                for r in report["fixed_repeats"]
            )
            + ")."
            if len(report.get("fixed_repeats") or []) > 1
            else "."
        ),
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
        *burst_lines(report),
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


LATENCY_KEYS = ("p50_ms", "p90_ms", "p99_ms", "max_ms")


def burst_lines(report: dict[str, Any]) -> list[str]:
    """The burst run (`bench/service_burst.py`): its paragraph and table, none when it was skipped."""
    r = report.get("burst")
    if not r:
        return []
    checks = burst_checks(r)
    failed = [name for name, ok in checks.items() if not ok]
    verdict = "PASS" if not failed else "FAIL (" + "; ".join(failed) + ")"
    lat = [("all responses", r["latency_all"]), ("2xx only", r["latency_2xx"])]
    notes = "".join(f" Warning: {n}." for n in r.get("open_file_notes", []))
    return [
        f"Burst ({r['clients']} concurrent clients, issue 16): after the fixed-rate run, on the same service "
        f"process and Redis (flushed first), {r['clients']} keep-alive connections opened at once, each "
        f"sending its next request as soon as it has an answer (Retry-After is not waited for), "
        f"{r['requests']} requests of new documents tagged as in (b) (X-Cache "
        f"{', '.join(f'{k} {v}' for k, v in sorted(r['x_cache'].items())) or '-'}). The service's deadline "
        f"`XMLC_REQUEST_TIMEOUT_S` = {r['deadline_s']:g} s; the client gives up after "
        f"{r['client_timeout_s']:g} s. Latency runs from the first byte sent to the last byte of the answer. "
        f"{r['answered']} answers in {r['wall_s']:.1f} s ({r['answered_per_s']:.0f}/s); server CPU "
        f"{_fmt(r['server_cores'])}, client CPU {_fmt(r['loadgen_cores'])} cores; warning or error lines "
        f"in the server log {r['server_log_problems']}.{notes}",
        "",
        "| 2xx | 429 | 503 | other 4xx | other 5xx | socket errors | Retry-After missing (429/503) "
        "| Redis errors |",
        "|---|---|---|---|---|---|---|---|",
        f"| {r['n2xx']} | {r['n429']} | {r['n503']} | {r['n4xx_other']} | {r['n5xx_other']} "
        f"| {r['socket_errors']} | {r['retry_after_missing']} | {_fmt(r['redis_errors'], 'd')} |",
        "",
        "| latency | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
        *[f"| {name} | " + " | ".join(_fmt(x[k], ".1f") for k in LATENCY_KEYS) + " |" for name, x in lat],
        "",
        f"The issue's figure for it (0 Redis errors, 0 5xx other than the shedding 503, 0 socket errors, "
        f"p99 of all responses <= deadline + 100 ms): {verdict}"
        + (f"; socket errors {r['errors']}" if r["errors"] else "")
        + ".",
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
    settings = report["settings"]
    workers = settings.get("model_threads", settings.get("batch_workers"))
    ceiling = next((m["docs_per_s"] for m in report.get("model_alone") or [] if m["workers"] == workers), 0)
    rm = runs["b"]["rps"] / ceiling if ceiling else float("nan")
    out = [
        {
            "name": f"(b) >= 0.8 x the model alone on {workers} threads",
            "value": _fmt(rm),
            "ok": rm >= 0.8,  # NaN (no such model-alone run): False
        },
        {"name": "(b)/(a) >= 0.3", "value": f"{rb:.2f}", "ok": rb >= 0.3},
        {"name": "(c)/(a) >= 1.0", "value": f"{rc:.2f}", "ok": rc >= 1.0},
        {
            "name": f"p99 <= 3 x p50 at fixed rate (worst of {len(report.get('fixed_repeats') or [f])} runs)",
            "value": f"{f['p99_over_p50']:.2f}",
            "ok": f["p99_over_p50"] <= 3,
        },
        {"name": "no 5xx in (a), (b), (c) and the fixed rate", "value": str(n5xx), "ok": n5xx == 0},
    ]
    burst = report.get("burst")
    if burst:
        checks = burst_checks(burst)
        limit = burst["deadline_s"] + FIGURE_SLACK_S
        out.append(
            {
                "name": f"{burst['clients']} concurrent: Redis errors/5xx other than 503/socket errors "
                f"0/0/0, p99 <= {limit:g} s",
                "value": f"{_fmt(burst['redis_errors'], 'd')}/{burst['n5xx_other']}/{burst['socket_errors']}/"
                f"{burst['latency_all']['p99_ms'] / 1000:.2f} s",
                "ok": all(checks.values()),
            }
        )
    return out


def method_text(s: dict[str, Any], n_docs: int, mean_kb: float) -> str:
    local_off = s.get("service_env", {}).get("XMLC_LOCAL_CACHE_SIZE", "").strip() == "0"
    hits_from = (
        "Redis (the in-process answer cache is off: `XMLC_LOCAL_CACHE_SIZE=0`)"
        if local_off
        else "the service's in-process answer cache in front of Redis (`XMLC_LOCAL_CACHE_SIZE`; "
        "`--env XMLC_LOCAL_CACHE_SIZE=0` measures Redis hits)"
    )
    burst = " and the burst run" if s.get("burst_clients") else ""
    return (
        f"Each server runs under `uvicorn` with the access log off (uvicorn picks uvloop and httptools), "
        f"started by the benchmark on a free 127.0.0.1 port: (a) `bench/noop_app.py`, one process, "
        f"a FastAPI POST /predict that parses the same body with a pydantic model (text, title, k) and "
        f"returns a fixed small JSON; (b), (c), the fixed-rate run{burst} share one service of "
        f"{s.get('workers', 1)} worker process(es) with {s.get('batch_workers', 1)} model thread(s) each "
        f"(`--workers 2` as `xmlc serve --workers 2` runs it: one port, metrics summed) and "
        f"its Redis cache ({s['redis_url']}, flushed before each run). Bodies are the {n_docs} EURLEX57K dev "
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
