"""Score a model on labelled documents with the project's metrics (`xmlc eval`, benchmarks)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xmlc.calibration import expected_calibration_error
from xmlc.data import read_documents
from xmlc.doc import Doc
from xmlc.loader import load_model
from xmlc.metrics import Report, evaluate
from xmlc.model import Model


def evaluate_model(
    model: Model,
    docs: Sequence[Doc],
    truths: Sequence[Sequence[str]],
    ks: Sequence[int] = (1, 3, 5),
    recall_ks: Sequence[int] = (10, 50, 100),
    prop_a: float = 0.55,
    prop_b: float = 1.5,
    progress: bool = False,
    chunk: int = 1024,
) -> tuple[Report, dict[str, Any]]:
    """Predict the top max(k) labels of every document (in chunks, a progress bar on stderr with
    ``progress``) and score them against ``truths``."""
    from tqdm.auto import tqdm

    depth = max([*ks, *recall_ks])
    ids = model.labels.ids
    predictions: list[list[str]] = []
    top_scores: list[np.ndarray] = []
    seconds = 0.0
    with tqdm(total=len(docs), desc="eval", unit="doc", disable=not progress) as bar:
        for start in range(0, len(docs), chunk):
            t0 = time.perf_counter()
            res = model.predict_batch(docs[start : start + chunk], depth)
            seconds += time.perf_counter() - t0
            predictions += [[ids[i] for i in row if i >= 0] for row in res.indices.tolist()]
            top_scores.append(res.scores[:, :5])
            bar.update(len(res.indices))
    report = evaluate(predictions, truths, ks, model.labels.propensity(prop_a, prop_b), recall_ks)
    # How far the top-5 scores are from the precision they claim (calibrated scores when the bundle has a
    # calibration; raw ones, clipped to [0, 1], otherwise).
    scores = np.concatenate(top_scores) if top_scores else np.zeros((0, 5), np.float32)
    probs = model.calibration(scores) if model.calibration is not None else np.clip(scores, 0, 1)
    cols = probs.shape[1]
    hits = np.zeros(probs.shape, dtype=bool)
    for i, (pred, truth) in enumerate(zip(predictions, truths, strict=True)):
        tset = set(truth)
        for r, label in enumerate(pred[:cols]):
            hits[i, r] = label in tset
    info = {
        "ece_top5": expected_calibration_error(probs, hits),
        "calibrated": model.calibration is not None,
        "predict_s": seconds,
        "docs_per_s": len(docs) / max(seconds, 1e-9),
        "model": model.name,
        "version": model.version,
    }
    return report, info


def evaluate_bundle(
    bundle: str | Path,
    data: str | Path,
    ks: Sequence[int],
    recall_ks: Sequence[int],
    prop_a: float = 0.55,
    prop_b: float = 1.5,
    skip_bad: bool = False,
    progress: bool = False,
) -> tuple[Report, dict[str, Any]]:
    model = load_model(bundle)
    docs, stats = read_documents(data, skip_bad=skip_bad)
    if not docs:
        raise ValueError(f"{data}: no documents to evaluate")
    report, info = evaluate_model(
        model,
        [d.doc for d in docs],
        [list(d.labels) for d in docs],
        ks,
        recall_ks,
        prop_a,
        prop_b,
        progress,
    )
    info["n_skipped"] = stats.n_skipped
    return report, info
