"""Corpora of other shapes: does the default `xmlc train` hold where EURLEX57K's tuning does not apply?

Three generated corpora (`xmlc.synthetic.ScaleCorpus`, seeded), each with held-out test documents:

- ``long``: long texts (300-900 tokens) with about 5 labels each, 4,000 labels, no title (EURLEX57K's
  shape; a title naming the labels would make P@1 trivial here);
- ``short``: short texts (10-40 tokens) with about 20 labels each over a 1,000-word vocabulary, 1,000
  labels, weak and mixed-topic evidence, no title (a social-bookmark tagging corpus's shape);
- ``sparse``: 100,000 labels with 1-3 training documents each (uniform label popularity, every label
  covered once, then drawn again), with a title naming the document's labels.

On each, in one run: `tree` and `tree+ranker` as given (``--holdout 0``: no choice), and the default
``xmlc train`` (a held-out tenth chooses the title field and the ranker's blend, then a refit on every
document). Every system trains in a child process (wall time, CPU time, peak RSS) and is scored on the
test documents. The figure asked: the default within 0.3 P@1 and P@5 of the better of the two.

    python -m bench.bench_shapes            # all three; --shapes long,short to choose; --resume

Results go to bench/out/shapes/results.json after each system, the table into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.bench_scale import measured, results
from bench.bench_tree import write_section
from bench.peers import dir_bytes
from xmlc.data import atomic_text_writer, write_documents
from xmlc.synthetic import ScaleCorpus, ScaleSpec

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "shapes"
N_TEST = 3000
SHAPES = {  # one tree without the label names scored P@1 28-87 on these in a trial (with them: 75-95)
    "long": ScaleSpec(
        n_labels=4000,
        n_docs=12_000,
        vocabulary=20_000,
        min_len=300,
        max_len=900,
        signal_repeats=1.0,
        titles=False,
        seed=11,
    ),
    "short": ScaleSpec(
        n_labels=1000,
        n_docs=12_000,
        labels_per_doc=20,
        vocabulary=1000,
        min_len=10,
        max_len=40,
        signal_repeats=0.3,
        same_topic=0.3,
        titles=False,
        seed=12,
    ),
    "sparse": ScaleSpec(n_labels=100_000, n_docs=40_000, alpha=0.0, cover=True, signal_repeats=1.0, seed=13),
}
SYSTEMS = {  # name -> extra `xmlc train` arguments
    "tree": ["--method", "tree", "--holdout", "0"],
    "tree+ranker": ["--method", "tree+ranker", "--holdout", "0"],
    "default": [],
}


def corpus(shape: str) -> Path:
    """The shape's generated corpus (written once, then reused)."""
    folder = OUT / shape
    if (folder / "test.jsonl.gz").is_file():
        return folder
    spec = SHAPES[shape]
    gen = ScaleCorpus(spec)
    folder.mkdir(parents=True, exist_ok=True)
    write_documents(folder / "train.jsonl.gz", gen.documents(spec.docs, 1, "tr"))
    held_out = ScaleCorpus(replace(spec, cover=False)) if spec.cover else gen
    write_documents(folder / "test.jsonl.gz", held_out.documents(N_TEST, 2, "te"))
    with atomic_text_writer(folder / "labels.jsonl.gz") as fh:
        for label_id, name in gen.label_names():
            fh.write(json.dumps({"id": label_id, "name": name}) + "\n")
    return folder


def run(folder: Path, system: str) -> dict[str, Any]:
    bundle = folder / f"bundle-{system}"
    cmd = [sys.executable, "-m", "xmlc.cli", "train", "--train", str(folder / "train.jsonl.gz")]
    cmd += ["--labels", str(folder / "labels.jsonl.gz"), "--out", str(bundle), "--force", *SYSTEMS[system]]
    cost = measured(cmd, bundle)
    scored = subprocess.run(
        [sys.executable, "-m", "bench.bench_scale", "score", str(bundle), str(folder / "test.jsonl.gz")],
        check=True,
        capture_output=True,
        text=True,
    )
    manifest = json.loads((bundle / "manifest.json").read_text())
    choice = manifest.get("report", {}).get("choice", {})
    chose = choice.get("kept", manifest["kind"])
    if choice.get("prior_weight"):
        chose += f" (blend {choice['prior_weight']:g})"
    if "title" in choice:
        chose += f", title weight {choice['title']['title_weight']:g}"
    return {
        **cost,
        **json.loads(scored.stdout.splitlines()[-1]),
        "size_mb": dir_bytes(bundle) / 1e6,
        "chose": chose,
        "command": shlex.join(["xmlc", *cmd[3:]]),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| corpus | system | bundle | P@1 | P@5 | default - best P@1 / P@5 | train wall s | train CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for shape in SHAPES:
        got = {r["system"]: r for r in rows if r["shape"] == shape}
        fixed = [got[s] for s in ("tree", "tree+ranker") if s in got]
        for system in SYSTEMS:
            if system not in got:
                continue
            r = got[system]
            gap = ""
            if system == "default" and fixed:
                gap = " / ".join(f"{r[m] - max(f[m] for f in fixed):+.2f}" for m in ("P@1", "P@5"))
            lines.append(
                f"| {shape} | {system} | {r['chose']} | {r['P@1']:.2f} | {r['P@5']:.2f} | {gap} "
                f"| {r['wall_s']:.0f} | {r['cpu_s']:.0f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--resume", action="store_true", help="keep the measurements results.json holds")
    ap.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    results_file, rows = results(OUT, args.resume)
    cmd = "python -m bench.bench_shapes " + shlex.join(argv if argv is not None else sys.argv[1:])
    for shape in [s for s in args.shapes.split(",") if s]:
        folder = corpus(shape)
        for system in [s for s in args.systems.split(",") if s]:
            if any(r["shape"] == shape and r["system"] == system for r in rows):
                continue
            print(f"{shape}: {system} ...", flush=True)
            row = run(folder, system)
            rows.append({**row, "shape": shape, "system": system, "run": cmd, "cores": os.cpu_count(),
                         "measured": time.strftime("%Y-%m-%d %H:%M")})  # fmt: skip
            results_file.write_text(json.dumps(rows, indent=2))
            print(json.dumps(row), flush=True)
    body = table(rows)
    print(body)
    stamp = time.strftime("%Y-%m-%d")
    write_section(args.markdown, "bench:shapes", f"Measured {stamp} with `{cmd}`.\n\n{body}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
