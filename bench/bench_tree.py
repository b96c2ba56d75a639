"""Benchmark: xmlc bundles (tree, tree+ranker, hnsw+ranker, ...) against PECOS XR-Linear and other peers.

Same run, same machine: our model is trained from raw text with `xmlc train` in a child process (wall
time and peak RSS of the largest process), then scored on dev through `load_model` (raw text in, labels
out). The peers run on the scikit-learn TF-IDF of PEERS.md. Results go to bench/out/*.json and into
BENCHMARKS.md between markers. Skips cleanly when the data is absent.

    python -m bench.bench_tree --data ../shared/data/eurlex57k --peers pecos
    python -m bench.bench_tree --peers pecos --methods tree,tree+ranker,hnsw+ranker --section two-stage
    python -m bench.bench_tree --section families --plot \
        --peers pecos,omikuji-parabel,omikuji-bonsai,napkinxc \
        --methods "parabel,bonsai,tree,tree+ranker,hnsw+ranker,plst,cplst,svd,leml,attentionxml,\
xtransformer,ensemble(tree+ranker|xtransformer)" \
        --metrics P@1,P@3,P@5,PSP@1,PSP@3,PSP@5
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.peers import dir_bytes
from xmlc.data import read_documents
from xmlc.doc import Doc
from xmlc.evaluation import evaluate_model
from xmlc.loader import load_model
from xmlc.model import Model
from xmlc.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("P@1", "P@3", "P@5", "nDCG@5", "PSP@5", "R@100")


PEAK_RSS_WRAPPER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[2:], check=True); "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))"
)


def hnsw_recall(pipeline: Pipeline, docs: list[Doc], truths: list[list[str]], k: int = 100) -> float:
    """Share of the true labels found by exact top-k search that the HNSW top-k also holds."""
    from xmlc.hnsw import HnswShortlister, shortlist_recall

    assert isinstance(pipeline.shortlister, HnswShortlister)
    h = pipeline.batch(docs).vectors()
    found, _ = pipeline.shortlister.search(h, k)
    exact, _ = pipeline.shortlister.exact(h, k)
    index = pipeline.labels.index
    truth = [{index[x] for x in t if x in index} for t in truths]
    return shortlist_recall(found, exact, truth)


def run_ours(
    data: Path, out_dir: Path, method: str, extra_args: list[str], n_single: int = 300
) -> dict[str, Any]:
    """Train with the command line in a child process, then score the bundle on dev."""
    bundle = out_dir / f"bundle-{method}"
    cmd = [
        sys.executable,
        "-m",
        "xmlc.cli",
        "train",
        "--train",
        str(data / "train.jsonl.gz"),
        "--out",
        str(bundle),
        "--force",  # the benchmark's own bundle of an earlier run
        "--method",
        method,
        "--labels",
        str(data / "labels.jsonl.gz"),
        *extra_args,
    ]
    # A fresh parent per run: RUSAGE_CHILDREN keeps the maximum over every child ever waited for.
    rss_file = out_dir / f".peak-rss-{method}"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", PEAK_RSS_WRAPPER, str(rss_file), *cmd], check=True)
    train_s = time.perf_counter() - t0
    peak_kb = int(rss_file.read_text())
    return {
        "name": f"xmlc {method}",
        **score_bundle(bundle, data, n_single),
        "train_s": train_s,
        "featurize_s": None,
        "peak_rss_mb": peak_kb / 1024,
        "command": " ".join(["xmlc", *cmd[3:]]),
    }


def run_ensemble(data: Path, out_dir: Path, method: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``ensemble(a|b|c)``: ensemble of the bundles of methods a, b, c measured earlier.

    Equal weights unless given as ``ensemble(a*0.8|b*0.2)`` (chosen with `bench.tune_ensemble` on a split
    of train). Its training time and peak RSS are the members' sum and maximum (trained one by one).
    """
    parts = [p.partition("*") for p in method[len("ensemble(") : -1].split("|")]
    names = [name for name, _, _ in parts]
    weights = [w for _, _, w in parts]
    members = {r["name"]: r for r in rows}
    missing = [n for n in names if f"xmlc {n}" not in members]
    if missing:
        raise SystemExit(f"{method}: measure {', '.join(missing)} first (in --methods, before the ensemble)")
    tag = "-".join(f"{n}x{w}" if w else n for n, w in zip(names, weights, strict=True))
    bundle = out_dir / f"bundle-ensemble-{tag}"
    member_args = [a for n in names for a in ("--member", str(out_dir / f"bundle-{n}"))]
    cmd = ["xmlc", "ensemble", *member_args]
    if any(weights):
        if not all(weights):
            raise SystemExit(f"{method}: give a weight to every member or to none")
        cmd += ["--weights", ",".join(weights)]
    cmd.append("--out")
    cmd = [*cmd[1:], str(bundle), "--name", method, "--force"]
    subprocess.run([sys.executable, "-m", "xmlc.cli", *cmd], check=True)
    return {
        "name": f"xmlc {method}",
        **score_bundle(bundle, data),
        "train_s": sum(members[f"xmlc {n}"]["train_s"] for n in names),
        "featurize_s": None,
        "peak_rss_mb": max(members[f"xmlc {n}"]["peak_rss_mb"] for n in names),
        "command": " ".join([*cmd, str(bundle)]),
    }


def score_bundle(bundle: Path, data: Path, n_single: int = 300) -> dict[str, Any]:
    """Accuracy on dev, batch throughput and single-document latency from raw text, bundle size."""
    model: Model = load_model(bundle)
    docs, _ = read_documents(data / "dev.jsonl.gz")
    texts = [d.doc for d in docs]
    truths = [list(d.labels) for d in docs]
    report, _ = evaluate_model(model, texts, truths, recall_ks=(10, 50, 100))
    recall_vs_exact = None
    if isinstance(model, Pipeline) and model.kind.startswith("hnsw"):
        recall_vs_exact = hnsw_recall(model, texts, truths)
    # Batch throughput at the depth users ask for (top 10), raw text in, labels out.
    t0 = time.perf_counter()
    model.predict(texts, k=10)
    batch_ms = (time.perf_counter() - t0) / len(texts) * 1000
    model.warm_up()
    lat = []
    for text in texts[:n_single]:
        t = time.perf_counter()
        model.predict([text], k=10)
        lat.append((time.perf_counter() - t) * 1000)
    return {
        "metrics": report.metrics,
        "hnsw_recall_vs_exact": recall_vs_exact,
        "batch_ms_per_doc": batch_ms,
        "single_p50_ms": float(np.percentile(lat, 50)),
        "single_p99_ms": float(np.percentile(lat, 99)),
        "model_bytes": dir_bytes(bundle),
    }


def run_peers(data: Path, names: list[str]) -> list[dict[str, Any]]:
    from bench.peers import PEERS, read_docs, tfidf_features
    from xmlc.metrics import Propensity

    train, dev = read_docs(data / "train.jsonl.gz"), read_docs(data / "dev.jsonl.gz")
    features = tfidf_features(train, dev)
    prop = Propensity.from_label_lists(features.train_truth)
    out = []
    for name in names:
        result = asdict(PEERS[name](features, prop))
        result["train_s_total"] = result["train_s"] + result["featurize_s"]
        out.append(result)
    return out


def table(
    rows: list[dict[str, Any]], reference: dict[str, Any] | None, metrics: tuple[str, ...] = METRICS
) -> str:
    head = [
        "model",
        *metrics,
        "train s (from text)",
        "batch ms/doc",
        "1-doc p50 ms",
        "1-doc p99 ms",
        "size MB",
        "peak RSS MB",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        total = r["train_s"] + (r["featurize_s"] or 0.0)
        cells = [
            r["name"].replace("|", "\\|"),  # ensemble names hold pipes
            *(f"{r['metrics'][m]:.2f}" if m in r["metrics"] else "-" for m in metrics),
            f"{total:.0f}" + (f" ({r['featurize_s']:.0f} + {r['train_s']:.0f})" if r["featurize_s"] else ""),
            f"{r['batch_ms_per_doc']:.2f}",
            f"{r['single_p50_ms']:.2f}",
            f"{r['single_p99_ms']:.2f}",
            f"{r['model_bytes'] / 1e6:.1f}",
            f"{r['peak_rss_mb']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for r in rows:
        if r.get("hnsw_recall_vs_exact") is not None:
            lines.append("")
            lines.append(
                f"{r['name']}: the HNSW top-100 holds {100 * r['hnsw_recall_vs_exact']:.2f}% of the true "
                "labels that exact search over the same embeddings finds in its top 100."
            )
    if reference:
        ref_total = reference["train_s"] + (reference["featurize_s"] or 0.0)
        lines.append("")
        lines.append(f"Ratios to {reference['name']} (ours / theirs; lower is better for costs):")
        lines.append("")
        for r in rows:
            if r is reference:
                continue
            total = r["train_s"] + (r["featurize_s"] or 0.0)
            lines.append(
                f"- {r['name']}: P@1 {r['metrics']['P@1'] - reference['metrics']['P@1']:+.2f} pts, "
                f"P@5 {r['metrics']['P@5'] - reference['metrics']['P@5']:+.2f} pts; "
                f"train {total / ref_total:.2f}x; "
                f"batch {r['batch_ms_per_doc'] / reference['batch_ms_per_doc']:.2f}x; "
                f"1-doc p50 {r['single_p50_ms'] / reference['single_p50_ms']:.2f}x; "
                f"size {r['model_bytes'] / reference['model_bytes']:.2f}x"
            )
    return "\n".join(lines)


def provenance(rows: list[dict[str, Any]], stamp: str, cmd: str) -> str:
    """Which run measured which rows: this one, and each earlier one whose rows ``--resume`` kept."""
    lines = []
    if any(r.get("measured") == stamp for r in rows):
        lines.append(f"Measured {stamp} on a 2-core machine with `{cmd}`.")
    earlier: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        if r.get("measured") != stamp:
            earlier.setdefault((r.get("measured", "?"), r.get("run", "")), []).append(r["name"])
    for (when, run), names in earlier.items():
        how = f" with `{run}`" if run else ""
        lines.append(f"Kept from a run of {when}{how} (`--resume`): {', '.join(names)}.")
    return "\n\n".join(lines)


def write_section(path: Path, marker: str, body: str) -> None:
    """Replace the text between ``<!-- marker -->`` and ``<!-- /marker -->`` (append when missing)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    block = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "eurlex57k")
    ap.add_argument("--methods", default="tree", help="comma-separated xmlc methods")
    ap.add_argument(
        "--peers",
        default="pecos",
        help="comma-separated: pecos, omikuji-parabel, omikuji-bonsai, napkinxc; empty for none",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--train-args", default="", help="extra arguments for xmlc train")
    ap.add_argument("--section", default="tree", help="BENCHMARKS.md section (marker bench:SECTION)")
    ap.add_argument("--metrics", default=",".join(METRICS), help="comma-separated table columns")
    ap.add_argument("--plot", action="store_true", help="also plot P@5 against 1-doc latency (PNG)")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows already in bench/out/bench_SECTION.json that this run does not measure again "
        "(the peers named in --peers always run again)",
    )
    args = ap.parse_args(argv)
    if not (args.data / "train.jsonl.gz").is_file():
        print(f"skipped: no EURLEX57K data at {args.data}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / f"bench_{args.section}.json"
    done = {}
    peers = [p for p in args.peers.split(",") if p]
    if args.resume and results.is_file():
        done = {r["name"]: r for r in json.loads(results.read_text())}
        if peers:  # peers run again as a whole: keep none of their earlier rows
            done = {name: r for name, r in done.items() if name.startswith("xmlc ")}
    stamp = time.strftime("%Y-%m-%d %H:%M")
    cmd = "python -m bench.bench_tree " + shlex.join(argv if argv is not None else sys.argv[1:])
    rows = []
    if peers:
        rows += [{**r, "measured": stamp, "run": cmd} for r in run_peers(args.data, peers)]
    methods = [m for m in args.methods.split(",") if m]
    for method in methods:
        if f"xmlc {method}" in done:
            rows.append(done.pop(f"xmlc {method}"))
            continue
        if method.startswith("ensemble("):
            row = run_ensemble(args.data, args.out, method, rows + list(done.values()))
        else:
            row = run_ours(args.data, args.out, method, args.train_args.split())
        rows.append({**row, "measured": stamp, "run": cmd})
        # A long run keeps what it has measured, and the rows it was asked to keep.
        results.write_text(json.dumps(rows + list(done.values()), indent=2))
    rows = [r for r in done.values() if not r["name"].startswith("xmlc ")] + rows  # kept peers first
    rows += [r for r in done.values() if r["name"].startswith("xmlc ")]  # kept rows not named this time
    results.write_text(json.dumps(rows, indent=2))
    reference = next((r for r in rows if r["name"].startswith("PECOS")), None)
    body = table(rows, reference, tuple(m for m in args.metrics.split(",") if m))
    if args.plot:
        from bench.plot import plot_accuracy_vs_latency

        png = plot_accuracy_vs_latency(rows, ROOT / "bench" / "figures" / f"{args.section}.png")
        body += f"\n\n![P@5 against single-document latency]({png.relative_to(ROOT)})"
    print(body)
    write_section(args.markdown, f"bench:{args.section}", f"{provenance(rows, stamp, cmd)}\n\n{body}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
