"""Calibrated scores: a model's raw score mapped to the probability that the label is right.

Raw scores (tree path products, ranker logits through a sigmoid) rank well but are not probabilities:
a top score of 0.005 can be right, so a threshold means nothing across texts or models. A monotone
(isotonic) map fitted offline on held-out documents (`training.calibration`) turns them into the
observed precision of labels with that raw score; it never changes the order, so P@k and nDCG@k are
unchanged. Stored as two arrays of a JSON file in the bundle, applied with `np.interp`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FILE = "calibration.json"


@dataclass(frozen=True)
class Calibration:
    """Piecewise-linear, non-decreasing map from raw score to probability (isotonic regression's knots)."""

    x: np.ndarray  # raw scores, increasing
    y: np.ndarray  # probabilities, non-decreasing, in [0, 1]
    info: dict[str, Any]  # how it was fitted: documents, ranks, error before and after

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y) or len(self.x) < 1:
            raise ValueError("calibration needs as many probabilities as raw scores, at least one")
        if np.any(np.diff(self.x) < 0) or np.any(np.diff(self.y) < 0):
            raise ValueError("calibration knots must be non-decreasing")
        if self.y.min() < 0 or self.y.max() > 1:
            raise ValueError("calibrated values must lie in [0, 1]")

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities for raw ``scores`` (constant beyond the first and last knots)."""
        return np.interp(np.asarray(scores, dtype=np.float64), self.x, self.y).astype(np.float32)

    def save(self, folder: Path) -> str:
        body = {"kind": "isotonic", "x": self.x.tolist(), "y": self.y.tolist(), "info": self.info}
        (folder / FILE).write_text(json.dumps(body))
        return FILE

    @classmethod
    def load(cls, folder: Path) -> Calibration:
        body = json.loads((folder / FILE).read_text())
        if body.get("kind") != "isotonic":
            raise ValueError(f"{folder / FILE}: unknown calibration kind {body.get('kind')!r}")
        return cls(np.asarray(body["x"], np.float64), np.asarray(body["y"], np.float64), body.get("info", {}))


def expected_calibration_error(probs: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """ECE: the mean, over equal-width probability bins weighted by their share of predictions, of
    |observed precision - mean predicted probability|."""
    probs, correct = np.ravel(probs).astype(np.float64), np.ravel(correct).astype(np.float64)
    if not len(probs):
        return 0.0
    which = np.minimum((probs * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(correct[mask].mean() - probs[mask].mean())
    return float(total / len(probs))


def hits_of(indices: np.ndarray, ids: Sequence[str], truths: Sequence[set[str]]) -> np.ndarray:
    """1 where the label at ``indices[i, r]`` is in document i's truth set (padding -1: 0)."""
    out = np.zeros(indices.shape, dtype=bool)
    for i, (row, truth) in enumerate(zip(indices.tolist(), truths, strict=True)):
        for r, j in enumerate(row):
            out[i, r] = j >= 0 and ids[j] in truth
    return out
