"""Ranker design on a split of EURLEX57K *train* (dev stays untouched): one set of trees, many rankers.

The trees of the default ``tree+ranker`` method (label names as extra documents when a labels file is
there) are fitted once on 90% of train; then every ranker variant is trained on their shortlists and
scored on the held-out 10% through the served path (`xmlc.pipeline.Pipeline` with the exported ONNX
ranker), so what is measured is what would be served. A variant is a set of `RankerParams` overrides:

    python -m bench.tune_ranker --variants "base;dim=512;epochs=6;dim=512,epochs=6"

``--title-weights 0,1`` fits the featurizer and the trees once per title-field weight (0: no title
field); ``--beams`` scores the same trees at other beam widths.

Prints one line per variant (P@1/3/5, PSP@5) and writes them as JSON to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from training.dataset import TrainingSet
from training.methods import METHODS
from training.params import FeaturizerParams, RankerParams, TreeRankerParams
from training.tree_train import train_trees
from training.two_stage import fit_ranker
from xmlc.data import Document, read_documents, read_label_records
from xmlc.evaluation import evaluate_model
from xmlc.metrics import Propensity, evaluate
from xmlc.model import Model
from xmlc.tree import TreeShortlister

ROOT = Path(__file__).resolve().parents[1]
RANKER_FIELDS = {f.name: f for f in fields(RankerParams)}


def split_documents(docs: list[Document], holdout: float, seed: int) -> tuple[list[Document], list[Document]]:
    """The seeded (fit, held-out) split of train that every tuning script uses."""
    order = np.random.default_rng(seed).permutation(len(docs))
    n_ho = int(len(docs) * holdout)
    return [docs[i] for i in order[n_ho:]], [docs[i] for i in order[:n_ho]]


def parse_variant(spec: str, base: RankerParams) -> RankerParams:
    """``"dim=512,epochs=6"`` -> ``base`` with those fields replaced (``"base"`` = unchanged)."""
    changes: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        if item == "base":
            continue
        key, _, raw = item.partition("=")
        if key not in RANKER_FIELDS:
            raise SystemExit(f"unknown ranker setting {key!r} in variant {spec!r}")
        default = getattr(base, key)
        changes[key] = raw if isinstance(default, str) else type(default)(float(raw) if raw else 0)
    return replace(base, **changes)


def report(
    pred: np.ndarray, ids: Sequence[str], truths: Sequence[Sequence[str]], prop: Propensity
) -> dict[str, float]:
    """P@1/3/5 and PSP@5 of label-index rows (-1 pads), ``ids`` mapping an index to its label id."""
    predicted = [[ids[j] for j in row if j >= 0] for row in pred]
    metrics = evaluate(predicted, truths, ks=(1, 3, 5), propensity=prop).metrics
    return {m: round(metrics[m], 2) for m in ("P@1", "P@3", "P@5", "PSP@5")}


def scores(model: Model, docs: Sequence[Document]) -> dict[str, float]:
    """P@1/3/5, PSP@5 and R@100 of ``model`` on ``docs`` (label propensities of its training set)."""
    report, _ = evaluate_model(model, [d.doc for d in docs], [list(d.labels) for d in docs], recall_ks=(100,))
    return {m: round(report.metrics[m], 2) for m in ("P@1", "P@3", "P@5", "PSP@5", "R@100")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "eurlex57k")
    ap.add_argument("--variants", default="base", help="';'-separated variants of the default ranker")
    ap.add_argument("--beams", default="", help="comma-separated tree beam widths (default: the preset's)")
    ap.add_argument(
        "--title-weights", default="", help="comma-separated title-field weights (default: the featurizer's)"
    )
    ap.add_argument("--holdout", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=0, help="worker processes (default: all cores)")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "tune_ranker.json")
    args = ap.parse_args(argv)
    if not (args.data / "train.jsonl.gz").is_file():
        print(f"skipped: no EURLEX57K data at {args.data}")
        return 0
    args.json.parent.mkdir(parents=True, exist_ok=True)
    docs, _ = read_documents(args.data / "train.jsonl.gz")
    fit_docs, ho_docs = split_documents(docs, args.holdout, args.seed)
    labels_file = args.data / "labels.jsonl.gz"
    records = read_label_records(labels_file) if labels_file.is_file() else []
    base = FeaturizerParams()
    weights = [float(w) for w in args.title_weights.split(",") if w] or [base.title_weight]
    results: list[dict[str, Any]] = []
    for weight in weights:
        data = TrainingSet.build(
            fit_docs, replace(base, title_weight=weight), records, args.jobs or os.cpu_count() or 1
        )
        for row in tune_on_split(data, ho_docs, args):
            results.append(row)
            args.json.write_text(json.dumps(results, indent=2))
    return 0


def tune_on_split(
    data: TrainingSet, ho_docs: list[Document], args: argparse.Namespace
) -> Iterator[dict[str, Any]]:
    """Trees fitted once on ``data``, then one row per (beam, variant), all scored on ``ho_docs``."""
    preset: TreeRankerParams = METHODS["tree+ranker"].params
    t0 = time.perf_counter()
    trees = train_trees(*data.tree_data(preset.tree.label_docs), preset.tree, data.n_jobs, data.progress)
    print(f"trees: {time.perf_counter() - t0:.0f} s")
    title = {"title_weight": data.featurizer.config.title_weight}
    for beam in [int(b) for b in args.beams.split(",") if b] or [preset.tree.predict.beam_size]:
        beamed = TreeShortlister(trees.trees, replace(trees.params, beam_size=beam))
        row: dict[str, Any] = {
            "variant": "trees alone",
            "beam": beam,
            **title,
            **scores(data.pipeline(beamed), ho_docs),
        }
        print(row, flush=True)
        yield row
        cand, prior = beamed.search(data.X, preset.ranker.n_candidates)
        for spec in args.variants.split(";"):
            params = parse_variant(spec, preset.ranker)
            t0 = time.perf_counter()
            ranker = fit_ranker(data, cand, prior, params)
            row = {"variant": spec, "beam": beam, **title, **scores(data.pipeline(beamed, ranker), ho_docs)}
            row["train_s"] = round(time.perf_counter() - t0)
            print(row, flush=True)
            yield row


if __name__ == "__main__":
    raise SystemExit(main())
