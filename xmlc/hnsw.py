"""HNSW shortlister: approximate maximum-inner-product search over label embeddings (hnswlib).

Labels are indexed as ``[v_l, b_l]`` and documents query with ``[h, 1]``, so the inner product is the
ranker's own logit ``h . v_l + b_l`` and the index returns the labels the ranker would score highest.
The index file is hnswlib's binary format (no pickle) and sits in the bundle with its settings. It
queries with a batch's dense document vectors (`xmlc.batch.Batch.vectors`), which the ranker encodes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import hnswlib
import numpy as np

from xmlc.batch import Batch
from xmlc.topk import top_k

INDEX_FILE = "labels.hnsw"
CONFIG_FILE = "hnsw.json"


@dataclass(frozen=True)
class HnswParams:
    """Build (M, ef_construction) and search (ef_search) settings of the index."""

    M: int = 32
    ef_construction: int = 200
    ef_search: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.M < 2 or self.ef_construction < 1 or self.ef_search < 1:
            raise ValueError("M must be >= 2 and ef_construction, ef_search >= 1")


def _augment_docs(doc_vec: np.ndarray) -> np.ndarray:
    return np.hstack([doc_vec, np.ones((doc_vec.shape[0], 1), np.float32)]).astype(np.float32)


class HnswShortlister:
    """Top-k labels by (approximate) inner product between document and label vectors."""

    kind: ClassVar[str] = "hnsw"
    role: ClassVar[str] = "shortlister"
    needs_ranker: ClassVar[bool] = True  # its queries are the ranker's document vectors
    n_features: int | None = None  # reads dense vectors, not TF-IDF rows

    def __init__(self, index: hnswlib.Index, n_labels: int, dim: int, params: HnswParams) -> None:
        self.index = index
        self.n_labels = n_labels
        self.dim = dim
        self.params = params
        index.set_ef(params.ef_search)
        index.set_num_threads(1)

    @classmethod
    def build(cls, label_vecs: np.ndarray, label_bias: np.ndarray, params: HnswParams) -> HnswShortlister:
        """Index ``[label_vecs, label_bias]`` (labels x (dim + 1)) in inner-product space."""
        n, d = label_vecs.shape
        data = np.hstack([label_vecs, np.reshape(label_bias, (n, 1))]).astype(np.float32)
        index = hnswlib.Index(space="ip", dim=d + 1)
        index.init_index(
            max_elements=n, M=params.M, ef_construction=params.ef_construction, random_seed=params.seed
        )
        index.add_items(data, np.arange(n))
        return cls(index, n, d, params)

    def shortlist(self, batch: Batch, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """The batch's top-``depth`` labels by inner product (the `Shortlister` contract)."""
        return self.search(batch.vectors(), depth)

    def search(
        self, doc_vec: np.ndarray, k: int, ef_search: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` label indices and inner products per document, best first."""
        k = min(k, self.n_labels)
        n = doc_vec.shape[0]
        if n == 0 or k == 0:
            return np.zeros((n, k), np.int64), np.zeros((n, k), np.float32)
        self.index.set_ef(max(ef_search or self.params.ef_search, k))
        try:
            labels, dist = self.index.knn_query(_augment_docs(doc_vec), k=k)
        except RuntimeError:  # the graph walk found fewer than k labels (tiny ef or M): answer exactly
            return self.exact(doc_vec, k)
        return labels.astype(np.int64), (1.0 - dist).astype(np.float32)

    def exact(self, doc_vec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Brute-force top-``k`` over the same vectors: the reference for the index's recall."""
        items = self.index.get_items(np.arange(self.n_labels), return_type="numpy")
        return top_k(_augment_docs(doc_vec) @ np.asarray(items, np.float32).T, k)

    def save(self, folder: Path) -> list[str]:
        self.index.save_index(str(folder / INDEX_FILE))
        meta = {"n_labels": self.n_labels, "dim": self.dim, **asdict(self.params)}
        (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        return [INDEX_FILE, CONFIG_FILE]

    def meta(self) -> dict[str, Any]:
        return {"dim": self.dim, **asdict(self.params)}

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any] | None = None) -> HnswShortlister:
        meta = json.loads((folder / CONFIG_FILE).read_text())
        n, d = int(meta.pop("n_labels")), int(meta.pop("dim"))
        index = hnswlib.Index(space="ip", dim=d + 1)
        index.load_index(str(folder / INDEX_FILE), max_elements=n)
        if index.get_current_count() != n:
            raise ValueError(f"{INDEX_FILE} holds {index.get_current_count()} labels, expected {n}")
        return cls(index, n, d, HnswParams(**meta))


def shortlist_recall(found: np.ndarray, reference: np.ndarray, truth: list[set[int]]) -> float:
    """Share of the true labels in ``reference`` (exact top-k) that ``found`` (approximate) also holds."""
    hit = total = 0
    for f, r, t in zip(found.tolist(), reference.tolist(), truth, strict=True):
        in_ref = t.intersection(r)
        total += len(in_ref)
        hit += len(in_ref.intersection(f))
    return hit / total if total else 1.0
