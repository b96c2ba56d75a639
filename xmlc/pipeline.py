"""The one prediction path: text -> featurizer -> shortlister -> (ranker) -> top-k labels with names.

The command line, the evaluation and the service all call `Pipeline`, so what is measured is what is
served. Stage timings are returned so that the service can feed its per-stage histograms.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xmlc.attention import AttentionShortlister
from xmlc.bundle import BundleError, read_manifest
from xmlc.featurizer import TfidfFeaturizer
from xmlc.hnsw import HnswShortlister
from xmlc.labels import LabelTable
from xmlc.matcher import TransformerMatcher
from xmlc.ranker import OnnxRanker
from xmlc.tree import TreeShortlister, top_k

Shortlister = TreeShortlister | HnswShortlister | AttentionShortlister | TransformerMatcher
SHORTLISTER_KINDS = ("tree", "hnsw", "attention", "transformer")


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
    """A loaded bundle, ready to answer "top-k labels for this text".

    Kinds: a tree alone; a tree whose shortlist an ONNX ranker re-scores; an HNSW index over the ranker's
    label vectors whose shortlist the ranker scores; the attention model, which reads the words of the
    text itself and scores its own shortlist. The HNSW kind needs a ranker (its query is the ranker's
    document vector). Label indices of -1 in a result are padding (fewer candidates than ``k``).
    """

    def __init__(
        self,
        featurizer: TfidfFeaturizer,
        shortlister: Shortlister,
        labels: LabelTable,
        manifest: dict[str, Any] | None = None,
        ranker: OnnxRanker | None = None,
    ) -> None:
        if (
            isinstance(shortlister, TreeShortlister)
            and featurizer.dim != shortlister.trees[0].weights.shape[0]
        ):
            raise ValueError("featurizer and shortlister disagree on the feature dimension")
        if shortlister.n_labels != len(labels):
            raise ValueError("shortlister and label table disagree on the label count")
        if isinstance(shortlister, HnswShortlister | TransformerMatcher) and ranker is None:
            raise ValueError(f"a {shortlister.kind} shortlister needs a ranker")
        if ranker is not None and (
            ranker.config.n_features != featurizer.dim or ranker.config.n_labels != len(labels)
        ):
            raise ValueError("ranker does not match the featurizer or the label table")
        self.featurizer = featurizer
        self.shortlister = shortlister
        self.labels = labels
        self.manifest = manifest or {}
        self.ranker = ranker

    @property
    def kind(self) -> str:
        """``tree``, ``tree+ranker`` or ``hnsw+ranker``."""
        return self.shortlister.kind + ("+ranker" if self.ranker is not None else "")

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
        if manifest.get("kind") == "ensemble":
            return EnsemblePipeline.load_members(folder, manifest)
        shortlister_meta = manifest.get("shortlister") or {}
        ranker_meta = manifest.get("ranker") or {}
        kind = shortlister_meta.get("kind")
        if kind not in SHORTLISTER_KINDS:
            raise BundleError(f"{folder}: unknown shortlister kind {kind!r}")
        if ranker_meta and ranker_meta.get("kind") != OnnxRanker.kind:
            raise BundleError(f"{folder}: unknown ranker kind {ranker_meta.get('kind')!r}")
        try:
            featurizer = TfidfFeaturizer.load(folder)
            shortlister: Shortlister
            if kind == "tree":
                shortlister = TreeShortlister.load(folder, int(shortlister_meta["n_trees"]))
            elif kind == "hnsw":
                shortlister = HnswShortlister.load(folder)
            elif kind == "transformer":
                shortlister = TransformerMatcher.load(folder)
            else:
                shortlister = AttentionShortlister.load(folder)
            ranker = OnnxRanker.load(folder) if ranker_meta else None
            labels = LabelTable.load(folder)
            return cls(featurizer, shortlister, labels, manifest, ranker)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
            raise BundleError(f"{folder}: cannot load bundle: {e}") from e

    def predict_batch(self, texts: Sequence[str], k: int = 5) -> BatchResult:
        """Top-``k`` label indices and scores for every text, with per-stage timings."""
        t0 = time.perf_counter()
        if isinstance(self.shortlister, AttentionShortlister):
            return self._predict_attention(self.shortlister, texts, k)
        X = self.featurizer.transform(texts)
        t1 = time.perf_counter()
        if self.ranker is None:
            assert isinstance(self.shortlister, TreeShortlister)
            idx, scores = self.shortlister.shortlist(X, k)
            return BatchResult(idx, scores, {"featurize": t1 - t0, "shortlist": time.perf_counter() - t1})
        doc_vec = self.ranker.encode(X)
        t2 = time.perf_counter()
        depth = max(k, self.ranker.config.n_candidates)
        if isinstance(self.shortlister, HnswShortlister):
            cand, prior = self.shortlister.shortlist(doc_vec, depth)
        elif isinstance(self.shortlister, TransformerMatcher):
            cand, prior = self.shortlister.shortlist_text(texts)
        else:
            cand, prior = self.shortlister.shortlist(X, depth)
        t3 = time.perf_counter()
        probs = self.ranker.score(doc_vec, cand, prior)
        order, scores = top_k(probs, min(k, probs.shape[1]))
        idx = np.take_along_axis(cand, order, axis=1)
        t4 = time.perf_counter()
        timings = {"featurize": t1 - t0, "encode": t2 - t1, "shortlist": t3 - t2, "rank": t4 - t3}
        return BatchResult(idx, scores, timings)

    def _predict_attention(self, model: AttentionShortlister, texts: Sequence[str], k: int) -> BatchResult:
        t0 = time.perf_counter()
        word_ids = model.word_ids(self.featurizer, texts)
        t1 = time.perf_counter()
        cand, score = model.score(word_ids)
        t2 = time.perf_counter()
        order, scores = top_k(score, min(k, cand.shape[1]))
        idx = np.take_along_axis(cand, order, axis=1)
        timings = {"featurize": t1 - t0, "shortlist": t2 - t1, "rank": time.perf_counter() - t2}
        return BatchResult(idx, scores, timings)

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
                    if i >= 0 and (threshold is None or s >= threshold)
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
        if self.ranker is not None:
            self.ranker.warm_up()
        self.predict(["warm up"], k=1)


class EnsemblePipeline(Pipeline):
    """Member pipelines over the same labels, answering with the weighted sum of their scores."""

    def __init__(
        self, members: Sequence[Pipeline], weights: Sequence[float], manifest: dict[str, Any], depth: int
    ) -> None:
        first = members[0]
        if any(m.labels.ids != first.labels.ids for m in members[1:]):
            raise ValueError("ensemble members have different label tables")
        super().__init__(first.featurizer, first.shortlister, first.labels, manifest, first.ranker)
        self.members = list(members)
        self.weights = list(weights)
        self.depth = depth
        # Members run side by side: their onnxruntime and numpy work releases the GIL, so a request
        # waits for the slowest member rather than for the sum.
        self._pool = ThreadPoolExecutor(max_workers=len(self.members), thread_name_prefix="member")

    @property
    def kind(self) -> str:
        return "ensemble"

    @classmethod
    def load_members(cls, folder: Path, manifest: dict[str, Any]) -> EnsemblePipeline:
        """The members (already checked by the ensemble's own manifest) and their weights."""
        from xmlc.ensemble import DEFAULT_DEPTH, member_paths

        paths = member_paths(folder, manifest)
        try:
            members = [Pipeline.load(path, verify=False) for path, _ in paths]
            return cls(members, [w for _, w in paths], manifest, int(manifest.get("depth", DEFAULT_DEPTH)))
        except ValueError as e:
            raise BundleError(f"{folder}: cannot load ensemble: {e}") from e

    def predict_batch(self, texts: Sequence[str], k: int = 5) -> BatchResult:
        from xmlc.ensemble import timed_merge

        depth = max(k, self.depth)
        results = list(self._pool.map(lambda m: m.predict_batch(texts, depth), self.members))
        idx, scores, timings = timed_merge(results, self.weights, k)
        return BatchResult(idx, scores, timings)

    def warm_up(self) -> None:
        for m in self.members:
            m.warm_up()
