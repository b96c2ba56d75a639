"""Ensemble weights chosen on a split of EURLEX57K *train*, so that dev stays a test set.

Every member method is trained with `xmlc train` on the fitting part of the seeded split that
`bench.tune_ranker` uses; each member's top 50 (indices, scores) on the held-out part is computed once,
and every weight vector of a grid (steps of ``--step``, summing to 1) is scored by merging those lists
exactly as an ensemble bundle does (`xmlc.ensemble.merge_top_k`):

    python -m bench.tune_ensemble --members tree+ranker,attentionxml --step 0.1

Prints P@1/3/5 and PSP@5 per weight vector, the best (by P@1 + P@5) last, and writes them to ``--json``;
`xmlc ensemble --weights` then builds the dev ensemble with the chosen weights.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.tune_ranker import ROOT, report, split_documents
from xmlc.data import read_documents, write_documents
from xmlc.doc import Doc
from xmlc.ensemble import DEFAULT_DEPTH, merge_top_k
from xmlc.loader import load_model
from xmlc.metrics import Propensity


def weight_grid(n: int, step: float) -> list[tuple[float, ...]]:
    """Every weight vector of ``n`` non-negative multiples of ``step`` that sums to 1."""
    units = round(1 / step)
    return [
        tuple(u / units for u in combo)
        for combo in itertools.product(range(units + 1), repeat=n)
        if sum(combo) == units
    ]


def member_lists(
    bundle: Path, docs: list[Doc], depth: int = DEFAULT_DEPTH
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A trained member's top ``depth`` on ``docs``, with its label ids (index -> id)."""
    model = load_model(bundle)
    res = model.predict_batch(docs, depth)
    return res.indices, res.scores, list(model.labels.ids)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "eurlex57k")
    ap.add_argument("--members", default="tree+ranker,attentionxml", help="comma-separated methods")
    ap.add_argument("--step", type=float, default=0.1)
    ap.add_argument("--holdout", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "split")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "tune_ensemble.json")
    args = ap.parse_args(argv)
    if not (args.data / "train.jsonl.gz").is_file():
        print(f"skipped: no EURLEX57K data at {args.data}")
        return 0
    methods = [m for m in args.members.split(",") if m]
    if len(methods) < 2:
        raise SystemExit("--members needs at least two methods")
    docs, _ = read_documents(args.data / "train.jsonl.gz")
    fit_docs, ho_docs = split_documents(docs, args.holdout, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    fit_file = args.out / "fit.jsonl.gz"
    if not fit_file.is_file():
        write_documents(fit_file, fit_docs)
    texts = [d.doc for d in ho_docs]
    truths = [list(d.labels) for d in ho_docs]
    lists = []
    for method in methods:
        bundle = args.out / f"bundle-{method}"
        if not (bundle / "manifest.json").is_file():  # a member trained earlier on this split is reused
            cmd = ["train", "--train", str(fit_file), "--out", str(bundle), "--method", method]
            if (args.data / "labels.jsonl.gz").is_file():
                cmd += ["--labels", str(args.data / "labels.jsonl.gz")]
            subprocess.run([sys.executable, "-m", "xmlc.cli", *cmd], check=True)
        lists.append(member_lists(bundle, texts))
    ids = lists[0][2]
    if any(other[2] != ids for other in lists[1:]):
        raise SystemExit("members disagree on the label table: were they trained on the same file?")
    prop = Propensity.from_label_lists([d.labels for d in fit_docs])
    rows: list[dict[str, Any]] = []
    for weights in weight_grid(len(methods), args.step):
        idx, _ = merge_top_k([(i, s) for i, s, _ in lists], weights, 5)
        row: dict[str, Any] = {"weights": dict(zip(methods, weights, strict=True))}
        row.update(report(idx, ids, truths, prop))
        rows.append(row)
        print(row, flush=True)
    best = max(rows, key=lambda r: r["P@1"] + r["P@5"])
    print("best:", best)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "best": best}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
