"""The one prediction path: text -> featurizer -> shortlister -> (ranker) -> top-k labels with names.

The command line, the evaluation and the service all call `Pipeline`, so what is measured is what is
served. Stage timings are returned so that the service can feed its per-stage histograms.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xmlc.bundle import BundleError, read_manifest
from xmlc.featurizer import TfidfFeaturizer
from xmlc.labels import LabelTable
from xmlc.tree import TreeShortlister


@dataclass(frozen=True)
class LabelScore:
    id: str
    name: str
    score: float


@dataclass
class BatchResult:
    """Top-k label indices and scores per document, and seconds spent in each stage."""

    indices: np.ndarray
    scores: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


class Pipeline:
    """A loaded bundle, ready to answer "top-k labels for this text"."""

    def __init__(
        self,
        featurizer: TfidfFeaturizer,
        shortlister: TreeShortlister,
        labels: LabelTable,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        if featurizer.dim != shortlister.trees[0].weights.shape[0]:
            raise ValueError("featurizer and shortlister disagree on the feature dimension")
        if shortlister.n_labels != len(labels):
            raise ValueError("shortlister and label table disagree on the label count")
        self.featurizer = featurizer
        self.shortlister = shortlister
        self.labels = labels
        self.manifest = manifest or {}

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", "xmlc"))

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "unversioned"))

    @classmethod
    def load(cls, folder: str | Path, verify: bool = True) -> Pipeline:
        """Load a bundle after checking its manifest and checksums."""
        folder = Path(folder)
        manifest = read_manifest(folder, verify=verify)
        shortlister_meta = manifest.get("shortlister", {})
        if shortlister_meta.get("kind") != "tree":
            raise BundleError(f"{folder}: unknown shortlister kind {shortlister_meta.get('kind')!r}")
        try:
            featurizer = TfidfFeaturizer.load(folder)
            shortlister = TreeShortlister.load(folder, int(shortlister_meta["n_trees"]))
            labels = LabelTable.load(folder)
            return cls(featurizer, shortlister, labels, manifest)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BundleError(f"{folder}: cannot load bundle: {e}") from e

    def predict_batch(self, texts: Sequence[str], k: int = 5) -> BatchResult:
        """Top-``k`` label indices and scores for every text, with per-stage timings."""
        t0 = time.perf_counter()
        X = self.featurizer.transform(texts)
        t1 = time.perf_counter()
        idx, scores = self.shortlister.shortlist(X, k)
        t2 = time.perf_counter()
        return BatchResult(idx, scores, {"featurize": t1 - t0, "shortlist": t2 - t1})

    def to_labels(
        self, indices: np.ndarray, scores: np.ndarray, threshold: float | None = None
    ) -> list[list[LabelScore]]:
        out = []
        ids, names = self.labels.ids, self.labels.names
        for row_idx, row_sc in zip(indices.tolist(), scores.tolist(), strict=True):
            out.append(
                [
                    LabelScore(ids[i], names[i], float(s))
                    for i, s in zip(row_idx, row_sc, strict=True)
                    if threshold is None or s >= threshold
                ]
            )
        return out

    def predict(
        self, texts: Sequence[str], k: int = 5, threshold: float | None = None
    ) -> list[list[LabelScore]]:
        res = self.predict_batch(texts, k)
        return self.to_labels(res.indices, res.scores, threshold)

    def warm_up(self) -> None:
        """One prediction so that first-request latency does not include lazy initialisation."""
        self.predict(["warm up"], k=1)
