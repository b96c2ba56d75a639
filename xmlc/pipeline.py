"""`Pipeline`: documents -> featurizer -> shortlister -> (ranker) -> top-k labels with names.

The parts meet only through their contracts (`xmlc.parts`): the shortlister and the ranker read what
they need from the `Batch` (TF-IDF rows, the ranker's document vectors, word ids, raw text), which
computes each view once. So one `predict_batch` serves every kind of bundle: a tree alone, a tree whose
shortlist the ranker re-scores, an HNSW index queried with the ranker's document vector, the attention
model, the transformer matcher with its ranker.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xmlc.batch import Batch
from xmlc.bundle import BundleError, read_manifest
from xmlc.doc import Doc
from xmlc.labels import LabelTable
from xmlc.model import BatchResult, Model
from xmlc.parts import PARTS, Featurizer, Ranker, Shortlister, describe
from xmlc.topk import top_k


class Pipeline(Model):
    """A featurizer, a shortlister and an optional ranker over one label table."""

    def __init__(
        self,
        featurizer: Featurizer,
        shortlister: Shortlister,
        labels: LabelTable,
        ranker: Ranker | None = None,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        width = featurizer.dim
        if shortlister.n_features is not None and shortlister.n_features != width:
            raise ValueError("featurizer and shortlister disagree on the feature dimension")
        if shortlister.n_labels != len(labels):
            raise ValueError("shortlister and label table disagree on the label count")
        if shortlister.needs_ranker and ranker is None:
            raise ValueError(f"a {shortlister.kind} shortlister needs a ranker")
        if ranker is not None and (ranker.n_features != width or ranker.n_labels != len(labels)):
            raise ValueError("ranker does not match the featurizer or the label table")
        self.featurizer = featurizer
        self.shortlister = shortlister
        self.labels = labels
        self.ranker = ranker
        self.manifest = dict(manifest or {})

    @property
    def kind(self) -> str:
        """``tree``, ``tree+ranker``, ``hnsw+ranker``, ``attention``, ``transformer+ranker``..."""
        return self.shortlister.kind + ("+ranker" if self.ranker is not None else "")

    def with_ranker(self, ranker: Ranker | None) -> Pipeline:
        """The same featurizer, shortlister, labels and manifest with another ranker (None: without)."""
        return Pipeline(self.featurizer, self.shortlister, self.labels, ranker, self.manifest)

    def batch(self, docs: Sequence[Doc]) -> Batch:
        """The documents with this pipeline's views (its featurizer, its ranker's encoder)."""
        return Batch(docs, self.featurizer, self.ranker.encode if self.ranker is not None else None)

    def predict_batch(self, docs: Sequence[Doc], k: int = 5) -> BatchResult:
        batch = self.batch(docs)
        depth = max(k, self.ranker.depth) if self.ranker is not None else k
        with batch.stage("shortlist"):
            cand, scores = self.shortlister.shortlist(batch, depth)
        with batch.stage("rank" if self.ranker is not None else "shortlist"):
            if self.ranker is not None:
                scores = self.ranker.rank(batch, cand, scores)
            order, best = top_k(scores, min(k, cand.shape[1]))
            idx = np.take_along_axis(cand, order, axis=1)
        return BatchResult(idx, best, batch.timings, batch.recognised())

    @classmethod
    def load(cls, folder: str | Path, manifest: dict[str, Any] | None = None) -> Pipeline:
        """Load the parts that the (verified) manifest names, each by its kind."""
        folder = Path(folder)
        manifest = manifest if manifest is not None else read_manifest(folder)
        try:
            featurizer = PARTS.load("featurizer", folder, manifest.get("featurizer") or {"kind": "tfidf"})
            shortlister = PARTS.load("shortlister", folder, manifest.get("shortlister") or {})
            ranker_meta = manifest.get("ranker")
            ranker = PARTS.load("ranker", folder, ranker_meta) if ranker_meta else None
            labels = LabelTable.load(folder)
            return cls(featurizer, shortlister, labels, ranker, manifest)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
            raise BundleError(f"{folder}: cannot load bundle: {e}") from e

    def write_parts(self, folder: Path) -> tuple[list[str], dict[str, Any]]:
        entries: dict[str, Any] = {
            "kind": self.kind,
            "n_labels": len(self.labels),
            "n_features": self.featurizer.dim,
        }
        files: list[str] = []
        parts = (("featurizer", self.featurizer), ("shortlister", self.shortlister), ("ranker", self.ranker))
        for role, part in parts:
            entries[role] = None
            if part is not None:
                written = part.save(folder)
                entries[role] = describe(part, written)
                files += written
        return files + self.labels.save(folder), entries
