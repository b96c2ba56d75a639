"""Fitting a bundle's calibration and choosing its default k and threshold, on labelled held-out data.

`fit_calibration`: isotonic regression (scikit-learn) of "the label is right" on the raw score, pooled
over the top ``depth`` labels of every document; its knots become the bundle's `xmlc.calibration`.
`optimize`: as `annif optimize` does, the k and probability threshold that maximise F1 (averaged over
documents), with precision and recall at each k, stored as the bundle's defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from xmlc.calibration import Calibration, expected_calibration_error, hits_of
from xmlc.doc import Doc
from xmlc.model import Model

THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(20))  # 0.00 ... 0.95


def ranked(model: Model, docs: Sequence[Doc], depth: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Top-``depth`` label indices and the scores ``to_labels`` would show (calibrated if it can)."""
    idx, sc = [], []
    for start in range(0, len(docs), chunk):
        res = model.predict_batch(docs[start : start + chunk], depth)
        idx.append(res.indices)
        sc.append(model.calibration(res.scores) if model.calibration is not None else res.scores)
    return np.concatenate(idx), np.concatenate(sc)


def fit_calibration(
    model: Model, docs: Sequence[Doc], truths: Sequence[set[str]], depth: int = 10
) -> Calibration:
    """Isotonic map from raw score to precision, fitted on the top ``depth`` labels of ``docs``."""
    from sklearn.isotonic import IsotonicRegression

    if not docs:
        raise ValueError("calibration needs labelled documents")
    raw_model = model.calibration
    model.calibration = None
    try:
        indices, scores = ranked(model, docs, depth)
    finally:
        model.calibration = raw_model
    hits = hits_of(indices, model.labels.ids, list(truths))
    mask = indices >= 0
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(scores[mask].astype(np.float64), hits[mask].astype(np.float64))
    x = np.asarray(iso.X_thresholds_, np.float64)
    y = np.clip(np.asarray(iso.y_thresholds_, np.float64), 0.0, 1.0)
    top = min(5, depth)
    info = {
        "fitted_on_docs": len(docs),
        "depth": depth,
        "ece_top5_raw": expected_calibration_error(np.clip(scores[:, :top], 0, 1), hits[:, :top]),
        "ece_top5_fit": expected_calibration_error(np.interp(scores[:, :top], x, y), hits[:, :top]),
    }
    return Calibration(x, y, info)


def f1_table(
    indices: np.ndarray, probs: np.ndarray, ids: Sequence[str], truths: Sequence[set[str]], max_k: int
) -> list[dict[str, float]]:
    """For each k <= ``max_k`` and threshold of `THRESHOLDS`: document-averaged precision, recall and
    F1 of the labels among the top k whose score reaches the threshold."""
    hits = hits_of(indices, ids, list(truths)).astype(np.float64)
    n_true = np.array([len(t) for t in truths], dtype=np.float64)
    rows = []
    for k in range(1, max_k + 1):
        for t in THRESHOLDS:
            chosen = (indices[:, :k] >= 0) & (probs[:, :k] >= t)
            n_chosen = chosen.sum(axis=1)
            good = (hits[:, :k] * chosen).sum(axis=1)
            p = np.divide(good, n_chosen, out=np.zeros_like(good), where=n_chosen > 0)
            r = np.divide(good, n_true, out=np.zeros_like(good), where=n_true > 0)
            f1 = np.divide(
                2 * good, n_chosen + n_true, out=np.zeros_like(good), where=(n_chosen + n_true) > 0
            )
            rows.append(
                {"k": k, "threshold": t, "P": float(p.mean()), "R": float(r.mean()), "F1": float(f1.mean())}
            )
    return rows


def optimize(
    model: Model, docs: Sequence[Doc], truths: Sequence[set[str]], max_k: int = 10
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """The (k, threshold) of best F1 (ties: the smaller k, then the higher threshold), and the table."""
    indices, probs = ranked(model, docs, max_k)
    table = f1_table(indices, probs, model.labels.ids, truths, max_k)
    best = max(table, key=lambda r: (round(r["F1"], 6), -r["k"], r["threshold"]))
    chosen = {
        "k": int(best["k"]),
        "threshold": float(best["threshold"]),
        "f1": best["F1"],
        "fitted_on_docs": len(docs),
    }
    return chosen, table
