"""Ranker design on a split of EURLEX57K *train* (dev stays untouched): one set of trees, many rankers.

The trees of the default ``tree+ranker`` method (label names as extra documents when a labels file is
there) are fitted once on 90% of train; then every ranker variant is trained on their shortlists and
scored on the held-out 10%. A variant is a set of `RankerTrainParams` / `RankerNetParams` overrides:

    python -m bench.tune_ranker --variants "base;dim=512;epochs=6;dim=512,epochs=6"

``--title-weights 0,1`` fits the featurizer and the trees once per title-field weight (0: no title
field). ``--crossfit 0,2`` trains every variant twice: on the final trees' shortlists of the training
documents (0) and on out-of-fold shortlists from trees fitted on the other half (2).

Prints one line per variant (P@1/3/5, PSP@5) and writes them as JSON to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.featurizer_fit import fit_featurizer
from training.ranker_model import RankerNet, RankerNetParams
from training.ranker_train import RankerTrainParams, bag_tensors, train_ranker
from training.train import TWO_STAGE, TrainConfig, with_label_documents
from training.tree_train import out_of_fold_shortlists, train_tree_shortlister
from xmlc.data import Document, read_documents, read_label_records
from xmlc.labels import LabelTable
from xmlc.metrics import Propensity, evaluate

ROOT = Path(__file__).resolve().parents[1]
NET_FIELDS = {f.name for f in fields(RankerNetParams)}
TRAIN_FIELDS = {f.name for f in fields(RankerTrainParams)} - {"net"}


def split_documents(docs: list[Document], holdout: float, seed: int) -> tuple[list[Document], list[Document]]:
    """The seeded (fit, held-out) split of train that every tuning script uses."""
    order = np.random.default_rng(seed).permutation(len(docs))
    n_ho = int(len(docs) * holdout)
    return [docs[i] for i in order[n_ho:]], [docs[i] for i in order[:n_ho]]


def parse_variant(spec: str, base: RankerTrainParams) -> RankerTrainParams:
    """``"dim=512,epochs=6"`` -> ``base`` with those fields replaced (``"base"`` = unchanged)."""
    net: dict[str, Any] = {}
    top: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        if item == "base":
            continue
        key, _, raw = item.partition("=")
        target = net if key in NET_FIELDS else top if key in TRAIN_FIELDS else None
        if target is None:
            raise SystemExit(f"unknown ranker setting {key!r} in variant {spec!r}")
        default = getattr(base.net if key in NET_FIELDS else base, key)
        target[key] = raw if isinstance(default, str) else type(default)(float(raw) if raw else 0)
    return replace(base, net=replace(base.net, **net), **top)


@torch.no_grad()
def rank_top_k(net: RankerNet, X: Any, cand: np.ndarray, prior: np.ndarray, k: int) -> np.ndarray:
    """Label indices of the ranker's top ``k`` among each row's candidates."""
    out = []
    for start in range(0, X.shape[0], 512):
        rows = np.arange(start, min(start + 512, X.shape[0]))
        h = net.encode_bag(*bag_tensors(X, rows))
        logits = net.score(h, torch.from_numpy(cand[rows]), torch.from_numpy(prior[rows]))
        top = torch.topk(logits, k, dim=1).indices.numpy()
        out.append(np.take_along_axis(cand[rows], top, axis=1))
    return np.concatenate(out)


def report(
    pred: np.ndarray, ids: Sequence[str], truths: Sequence[Sequence[str]], prop: Propensity
) -> dict[str, float]:
    """P@1/3/5 and PSP@5 of label-index rows (-1 pads), ``ids`` mapping an index to its label id."""
    predicted = [[ids[j] for j in row if j >= 0] for row in pred]
    metrics = evaluate(predicted, truths, ks=(1, 3, 5), propensity=prop).metrics
    return {m: round(metrics[m], 2) for m in ("P@1", "P@3", "P@5", "PSP@5")}


def recall(cand: np.ndarray, labels: LabelTable, truths: Sequence[Sequence[str]]) -> float:
    """R@(shortlist width) as `xmlc.metrics.evaluate` reports it (mean over documents, percent)."""
    k = max(cand.shape[1], 1)
    predicted = [[labels.ids[j] for j in row if j >= 0] for row in cand]
    return evaluate(predicted, truths, ks=(1,), recall_ks=(k,)).metrics[f"R@{k}"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "eurlex57k")
    ap.add_argument("--variants", default="base", help="';'-separated variants of the default ranker")
    ap.add_argument("--beams", default="", help="comma-separated tree beam widths (default: the preset's)")
    ap.add_argument(
        "--crossfit", default="0", help="comma-separated fold counts for the training shortlists (0 = none)"
    )
    ap.add_argument(
        "--title-weights", default="", help="comma-separated title-field weights (default: the featurizer's)"
    )
    ap.add_argument("--holdout", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "tune_ranker.json")
    args = ap.parse_args(argv)
    if not (args.data / "train.jsonl.gz").is_file():
        print(f"skipped: no EURLEX57K data at {args.data}")
        return 0
    args.json.parent.mkdir(parents=True, exist_ok=True)
    docs, _ = read_documents(args.data / "train.jsonl.gz")
    fit_docs, ho_docs = split_documents(docs, args.holdout, args.seed)
    labels_file = args.data / "labels.jsonl.gz"
    label_texts = {r.id: r.text for r in read_label_records(labels_file)} if labels_file.is_file() else {}
    config = TrainConfig.for_method("tree+ranker")
    weights = [float(w) for w in args.title_weights.split(",") if w] or [config.featurizer.title_weight]
    results: list[dict[str, Any]] = []
    for weight in weights:
        featurizer = replace(config.featurizer, title_weight=weight)
        for row in tune_on_split(
            fit_docs, ho_docs, label_texts, replace(config, featurizer=featurizer), args
        ):
            results.append(row)
            args.json.write_text(json.dumps(results, indent=2))
    return 0


def tune_on_split(
    fit_docs: list[Document],
    ho_docs: list[Document],
    label_texts: dict[str, str],
    config: TrainConfig,
    args: argparse.Namespace,
) -> Iterator[dict[str, Any]]:
    """Featurizer and trees fitted once on ``fit_docs``, then one row per (beam, crossfit, variant)."""
    tree_params, base = TWO_STAGE["tree+ranker"]
    assert tree_params is not None
    featurizer, X = fit_featurizer([d.full_text for d in fit_docs], config.featurizer)
    X = X.astype(np.float32)
    X_ho = featurizer.transform([d.full_text for d in ho_docs]).astype(np.float32)
    labels = LabelTable.from_documents([d.labels for d in fit_docs])
    Y = labels.matrix([d.labels for d in fit_docs])
    X_tree, Y_tree = X, Y
    if label_texts and config.label_text_docs:
        names_X = featurizer.transform([label_texts.get(i, "") for i in labels.ids])
        X_tree, Y_tree = with_label_documents(X, Y, names_X)
    t0 = time.perf_counter()
    tree = train_tree_shortlister(X_tree, Y_tree, tree_params, config.predict)
    print(f"trees: {time.perf_counter() - t0:.0f} s")
    truths = [d.labels for d in ho_docs]
    prop = Propensity.from_label_lists([d.labels for d in fit_docs])
    title = {"title_weight": config.featurizer.title_weight}
    for beam in [int(b) for b in args.beams.split(",") if b] or [config.predict.beam_size]:
        pred = replace(config.predict, beam_size=beam)
        cand, prior = tree.shortlist(X, base.n_candidates, pred)
        cand_ho, prior_ho = tree.shortlist(X_ho, base.n_candidates, pred)
        prior, prior_ho = prior.astype(np.float32), prior_ho.astype(np.float32)
        row: dict[str, Any] = {"variant": "trees alone", "beam": beam, **title}
        row.update(report(cand_ho[:, :5], labels.ids, truths, prop))
        row["R@100"] = round(recall(cand_ho, labels, truths), 2)
        print(row, flush=True)
        yield row
        for folds in [int(f) for f in args.crossfit.split(",") if f]:
            train_cand, train_prior = cand, prior
            if folds:
                train_cand, train_prior = out_of_fold_shortlists(
                    X_tree, Y_tree, X.shape[0], tree_params, pred, base.n_candidates, folds, args.seed
                )
            for spec in args.variants.split(";"):
                params = parse_variant(spec, base)
                t0 = time.perf_counter()
                net = train_ranker(X, Y, train_cand, train_prior, params)
                top = rank_top_k(net, X_ho, cand_ho, prior_ho, 5)
                row = {"variant": spec, "beam": beam, "crossfit": folds, **title}
                row.update(report(top, labels.ids, truths, prop))
                row["train_s"] = round(time.perf_counter() - t0)
                print(row, flush=True)
                yield row


if __name__ == "__main__":
    raise SystemExit(main())
