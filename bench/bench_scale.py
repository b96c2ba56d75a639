"""Extreme scale: ours and PECOS XR-Linear side by side on generated corpora of 10K to 670K labels.

For each label count L the corpus has Amazon-670K's proportions (`xmlc generate`: 0.73 L training
documents, power-law labels, about 5 labels and 50-150 tokens a document) plus held-out documents. In
one run, on the same machine, every system trains in a child process of its own (wall time, CPU time
of the whole process tree, peak RSS of its largest process), then is scored on the held-out documents:
P@1/P@5, single-document latency (ours from raw text, PECOS from a ready TF-IDF row, as in PEERS.md),
batch documents/s, bundle or model size. Growth exponents in L are fitted on log-log scales.

    python -m bench.bench_scale --labels 10000,100000,670000 --systems tree,tree+ranker,pecos \\
        --peer-python /work/venv-peers/bin/python

Results go to bench/out/scale/results.json after every measurement (``--resume`` keeps them), the
table and a log-log plot into BENCHMARKS.md. PECOS needs numpy < 2 (libpecos 1.2.8): give the Python
of an environment that has it (``--peer-python``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_tree import write_section
from bench.peers import dir_bytes

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "scale"
N_SINGLE = 300
RUSAGE_WRAPPER = (
    "import json, resource, subprocess, sys, time; t = time.perf_counter(); "
    "subprocess.run(sys.argv[2:], check=True); wall = time.perf_counter() - t; "
    "r = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "open(sys.argv[1], 'w').write(json.dumps({'wall_s': wall, 'cpu_s': r.ru_utime + r.ru_stime, "
    "'peak_rss_mb': r.ru_maxrss / 1024}))"
)


def corpus(n_labels: int, n_test: int) -> Path:
    """The generated corpus of ``n_labels`` labels (made once, then reused)."""
    folder = OUT / f"L{n_labels}"
    if not (folder / "test.jsonl.gz").is_file():
        cmd = [sys.executable, "-m", "xmlc.cli", "generate", "--out", str(folder)]
        subprocess.run([*cmd, "--n-labels", str(n_labels), "--n-test", str(n_test)], check=True)
    return folder


def measured(cmd: list[str], out: Path) -> dict[str, float]:
    """Run ``cmd`` in a fresh parent process: wall, CPU of the process tree, largest process's RSS."""
    stats = out.with_suffix(".rusage.json")
    subprocess.run([sys.executable, "-c", RUSAGE_WRAPPER, str(stats), *cmd], check=True)
    return json.loads(stats.read_text())


def run_ours(folder: Path, method: str) -> dict[str, Any]:
    bundle = folder / f"bundle-{method}"
    cmd = [sys.executable, "-m", "xmlc.cli", "train", "--train", str(folder / "train.jsonl.gz")]
    cmd += ["--labels", str(folder / "labels.jsonl.gz"), "--method", method, "--out", str(bundle)]
    cmd.append("--force")  # the benchmark's own bundle of an earlier run
    cost = measured(cmd, bundle)
    score = json.loads(
        subprocess.run(
            [sys.executable, "-m", "bench.bench_scale", "score", str(bundle), str(folder / "test.jsonl.gz")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.splitlines()[-1]
    )
    return {
        "system": f"xmlc {method}",
        **cost,
        **score,
        "size_mb": dir_bytes(bundle) / 1e6,
        "command": shlex.join(cmd),
    }


def score_bundle(bundle: Path, test: Path) -> dict[str, Any]:
    """P@1/P@5 on the held-out documents, single-document latency from raw text, batch documents/s."""
    from xmlc.data import read_documents
    from xmlc.evaluation import evaluate_model
    from xmlc.loader import load_model

    t0 = time.perf_counter()
    model = load_model(bundle)
    load_s = time.perf_counter() - t0
    docs, _ = read_documents(test)
    batch = [d.doc for d in docs]
    report, _ = evaluate_model(model, batch, [list(d.labels) for d in docs], (1, 5), (100,))
    model.warm_up()
    lat = []
    for doc in batch[:N_SINGLE]:
        t = time.perf_counter()
        model.predict([doc], k=10)
        lat.append((time.perf_counter() - t) * 1e3)
    # Batch throughput as PECOS's is measured: every held-out document in one call, top 10, the model
    # warm (the scoring pass above touched the memory-mapped weights; PECOS loads them into memory).
    t = time.perf_counter()
    model.predict_batch(batch, 10)
    batch_s = time.perf_counter() - t
    return {
        "P@1": report.metrics["P@1"],
        "P@5": report.metrics["P@5"],
        "single_p50_ms": float(np.percentile(lat, 50)),
        "single_p99_ms": float(np.percentile(lat, 99)),
        "batch_docs_per_s": len(batch) / batch_s,
        "load_s": load_s,
    }


PECOS_CHILD = """
import json, resource, sys, time
import numpy as np
from bench.peers import dir_bytes, read_docs, tfidf_features
from pecos.xmc import Indexer, LabelEmbeddingFactory
from pecos.xmc.xlinear.model import XLinearModel
folder, out = sys.argv[1], sys.argv[2]
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
t0, c0 = time.perf_counter(), cpu()
f = tfidf_features(read_docs(folder + "/train.jsonl.gz"), read_docs(folder + "/test.jsonl.gz"))
featurize_s = time.perf_counter() - t0
emb = LabelEmbeddingFactory.create(f.Y_train, f.X_train, method="pifa")
tree = Indexer.gen(emb, indexer_type="hierarchicalkmeans", nr_splits=16)
model = XLinearModel.train(f.X_train, f.Y_train, C=tree, threshold=0.1)
wall, cpu_s = time.perf_counter() - t0, cpu() - c0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
model.save(out)
t = time.perf_counter()
Y = model.predict(f.X_dev, beam_size=10, only_topk=10)
batch_s = time.perf_counter() - t
lat = []
for i in range(min(300, f.X_dev.shape[0])):
    row = f.X_dev[i]
    t = time.perf_counter()
    model.predict(row, beam_size=10, only_topk=10)
    lat.append((time.perf_counter() - t) * 1e3)
hits1 = hits5 = 0
for i in range(Y.shape[0]):
    s, e = Y.indptr[i], Y.indptr[i + 1]
    top = [f.label_ids[j] for j in Y.indices[s:e][np.argsort(-Y.data[s:e], kind="stable")]]
    truth = set(f.dev_truth[i])
    hits1 += top[:1][0] in truth if top else 0
    hits5 += sum(x in truth for x in top[:5])
n = Y.shape[0]
print(json.dumps({"wall_s": wall, "cpu_s": cpu_s, "featurize_s": featurize_s, "peak_rss_mb": peak,
    "P@1": 100 * hits1 / n, "P@5": 100 * hits5 / (5 * n), "single_p50_ms": float(np.percentile(lat, 50)),
    "single_p99_ms": float(np.percentile(lat, 99)), "batch_docs_per_s": n / batch_s,
    "size_mb": dir_bytes(__import__("pathlib").Path(out)) / 1e6}))
"""


def run_pecos(folder: Path, python: str) -> dict[str, Any]:
    out = folder / "pecos-model"
    proc = subprocess.run(
        [python, "-c", PECOS_CHILD, str(folder), str(out)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return {"system": "PECOS XR-Linear", **json.loads(proc.stdout.splitlines()[-1])}


def exponent(rows: list[dict[str, Any]], system: str, key: str) -> float | None:
    """Slope of log(key) against log(labels) over the label counts measured for ``system``."""
    pts = [(r["labels"], r[key]) for r in rows if r["system"] == system and r.get(key)]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def table(rows: list[dict[str, Any]]) -> str:
    head = ["labels", "system", "train wall s", "train CPU s", "peak RSS MB", "size MB", "1-doc p50 ms",
            "1-doc p99 ms", "batch docs/s", "P@1", "P@5"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r["labels"], r["system"])):
        cells = [f"{r['labels']:,}", r["system"], f"{r['wall_s']:.0f}", f"{r['cpu_s']:.0f}",
                 f"{r['peak_rss_mb']:.0f}", f"{r['size_mb']:.0f}", f"{r['single_p50_ms']:.2f}",
                 f"{r['single_p99_ms']:.2f}", f"{r['batch_docs_per_s']:.0f}", f"{r['P@1']:.2f}",
                 f"{r['P@5']:.2f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Growth in L (slope of log-log fits over the label counts above):", ""]
    for system in sorted({r["system"] for r in rows}):
        lat, train = exponent(rows, system, "single_p50_ms"), exponent(rows, system, "cpu_s")
        if lat is not None and train is not None:
            lines.append(f"- {system}: 1-doc p50 ~ L^{lat:.2f}, train CPU ~ L^{train:.2f}")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for system in sorted({r["system"] for r in rows}):
        pts = sorted((r["labels"], r["single_p50_ms"], r["cpu_s"]) for r in rows if r["system"] == system)
        axes[0].loglog([p[0] for p in pts], [p[1] for p in pts], "o-", label=system)
        axes[1].loglog([p[0] for p in pts], [p[2] for p in pts], "o-", label=system)
    axes[0].set(xlabel="labels", ylabel="1-doc p50 ms", title="single-document latency")
    axes[1].set(xlabel="labels", ylabel="train CPU s", title="training CPU time")
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def results(folder: Path, resume: bool) -> tuple[Path, list[dict[str, Any]]]:
    """A resumable benchmark's results file and the rows it keeps (none unless ``resume``)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    return path, json.loads(path.read_text()) if resume and path.is_file() else []


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "score":
        print(json.dumps(score_bundle(Path(sys.argv[2]), Path(sys.argv[3]))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", default="10000,100000,670000")
    ap.add_argument("--systems", default="tree,tree+ranker,pecos")
    ap.add_argument("--n-test", type=int, default=5000)
    ap.add_argument("--peer-python", default=sys.executable, help="Python with libpecos (numpy < 2)")
    ap.add_argument("--resume", action="store_true", help="keep the measurements results.json holds")
    ap.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    results_file, rows = results(OUT, args.resume)
    cmd = "python -m bench.bench_scale " + shlex.join(argv if argv is not None else sys.argv[1:])
    for n_labels in [int(x) for x in args.labels.split(",") if x]:
        folder = corpus(n_labels, args.n_test)
        for system in [s for s in args.systems.split(",") if s]:
            name = "PECOS XR-Linear" if system == "pecos" else f"xmlc {system}"
            if any(r["labels"] == n_labels and r["system"] == name for r in rows):
                continue
            print(f"{n_labels} labels, {name} ...", flush=True)
            row = run_pecos(folder, args.peer_python) if system == "pecos" else run_ours(folder, system)
            rows.append({**row, "labels": n_labels, "measured": time.strftime("%Y-%m-%d %H:%M"), "run": cmd,
                         "cores": os.cpu_count()})  # fmt: skip
            results_file.write_text(json.dumps(rows, indent=2))
            print(json.dumps(row), flush=True)
    body = table(rows)
    png = plot(rows, ROOT / "bench" / "figures" / "scale.png")
    body += f"\n\n![latency and training CPU against labels]({png.relative_to(ROOT)})"
    print(body)
    write_section(args.markdown, "bench:scale", f"Measured with `{cmd}`.\n\n{body}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
