"""Label-tree shortlister (XR-Linear / Parabel / Bonsai family): beam search over linear node scorers.

A tree stores, per level, the parent of every node and a sparse weight column per node; all levels sit
side by side in one CSR matrix (features x nodes), so one sparse product scores every node of a document
and beam search then walks the levels on that dense score row. Several trees are averaged at the leaves.
It reads a batch's TF-IDF rows (`xmlc.batch.Batch.features`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from xmlc.batch import Batch
from xmlc.topk import top_k

POSTS = ("l3-hinge", "sigmoid")


@dataclass(frozen=True)
class TreePredParams:
    """How scores are searched: beam width per level and the margin-to-probability transform."""

    beam_size: int = 10
    post: str = "l3-hinge"

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError("beam_size must be >= 1")
        if self.post not in POSTS:
            raise ValueError(f"post must be one of {POSTS}, got {self.post!r}")


def transform_scores(z: np.ndarray, post: str) -> np.ndarray:
    """Margins -> (0, 1] scores multiplied along a path: l3-hinge exp(-max(0, 1-z)^3) or sigmoid."""
    if post == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    h = np.maximum(0.0, 1.0 - z)
    return np.exp(-(h * h * h))


class Tree:
    """One label tree: ``parents`` per level, weights (features x all nodes) and biases."""

    def __init__(
        self, parents: list[np.ndarray], label_of_leaf: np.ndarray, weights: sp.csr_matrix, bias: np.ndarray
    ) -> None:
        self.parents = [np.asarray(p, dtype=np.int32) for p in parents]
        self.label_of_leaf = np.asarray(label_of_leaf, dtype=np.int32)
        self.weights = weights.tocsr().astype(np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)
        sizes = [len(p) for p in self.parents]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        if self.weights.shape[1] != self.offsets[-1] or len(self.bias) != self.offsets[-1]:
            raise ValueError("tree weights do not match its levels")
        if len(self.label_of_leaf) != sizes[-1]:
            raise ValueError("tree leaf level does not match its labels")

    @property
    def n_labels(self) -> int:
        return len(self.label_of_leaf)

    def leaf_scores(self, X: sp.csr_matrix, params: TreePredParams) -> np.ndarray:
        """Dense (docs x labels) path scores after beam search; labels off the beam score 0."""
        z = (
            np.asarray((X @ self.weights).todense(), dtype=np.float32)
            if X.shape[0]
            else np.zeros((0, self.weights.shape[1]), np.float32)
        )
        z += self.bias
        s = transform_scores(z, params.post)
        n = X.shape[0]
        path = np.ones((n, 1), dtype=np.float32)
        rows = np.arange(n)[:, None]
        last = len(self.parents) - 1
        for level, parent in enumerate(self.parents):
            cand = path[:, parent] * s[:, self.offsets[level] : self.offsets[level + 1]]
            if level == last or cand.shape[1] <= params.beam_size:
                path = cand
                continue
            keep = np.argpartition(-cand, params.beam_size - 1, axis=1)[:, : params.beam_size]
            path = np.zeros_like(cand)
            path[rows, keep] = cand[rows, keep]
        out = np.zeros((n, self.n_labels), dtype=np.float32)
        out[:, self.label_of_leaf] = path
        return out

    def save(self, folder: Path, prefix: str) -> list[str]:
        """Weights as float16 values and the narrowest integer node ids: half the size, same ranking."""
        names = [f"{prefix}_weights.npz", f"{prefix}_structure.npz"]
        w = self.weights
        index_dtype = np.uint16 if w.shape[1] <= np.iinfo(np.uint16).max else np.int32
        np.savez(
            folder / names[0],
            data=w.data.astype(np.float16),
            indices=w.indices.astype(index_dtype),
            indptr=w.indptr.astype(np.int64),
            shape=np.asarray(w.shape, dtype=np.int64),
        )
        arrays: dict[str, Any] = {f"parents_{i}": p for i, p in enumerate(self.parents)}
        arrays.update(label_of_leaf=self.label_of_leaf, bias=self.bias)
        np.savez(folder / names[1], **arrays)
        return names

    @classmethod
    def load(cls, folder: Path, prefix: str) -> Tree:
        with np.load(folder / f"{prefix}_weights.npz", allow_pickle=False) as z:
            shape = tuple(int(x) for x in z["shape"])
            weights = sp.csr_matrix(
                (z["data"].astype(np.float32), z["indices"].astype(np.int32), z["indptr"]), shape=shape
            )
        with np.load(folder / f"{prefix}_structure.npz", allow_pickle=False) as z:
            n_levels = sum(1 for k in z.files if k.startswith("parents_"))
            parents = [z[f"parents_{i}"] for i in range(n_levels)]
            return cls(parents, z["label_of_leaf"], weights, z["bias"])


class TreeShortlister:
    """An ensemble of label trees; returns the top labels with their averaged path scores."""

    kind: ClassVar[str] = "tree"
    role: ClassVar[str] = "shortlister"
    needs_ranker: ClassVar[bool] = False
    PARAMS_FILE = "tree_pred_params.json"

    def __init__(self, trees: list[Tree], params: TreePredParams | None = None) -> None:
        if not trees:
            raise ValueError("a tree shortlister needs at least one tree")
        if len({t.n_labels for t in trees}) != 1:
            raise ValueError("all trees must cover the same labels")
        self.trees = trees
        self.params = params or TreePredParams()

    @property
    def n_labels(self) -> int:
        return self.trees[0].n_labels

    @property
    def n_features(self) -> int:
        return int(self.trees[0].weights.shape[0])

    def scores(self, X: sp.csr_matrix, params: TreePredParams | None = None) -> np.ndarray:
        p = params or self.params
        total = self.trees[0].leaf_scores(X, p)
        for tree in self.trees[1:]:
            total += tree.leaf_scores(X, p)
        if len(self.trees) > 1:
            total /= len(self.trees)
        return total

    def shortlist(self, batch: Batch, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """The batch's top-``depth`` labels and path scores (the `Shortlister` contract)."""
        return self.search(batch.features(), depth)

    def search(
        self, X: sp.csr_matrix, k: int, params: TreePredParams | None = None, chunk: int = 512
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` label indices and scores per row, best first (``k`` capped at the label count)."""
        k = min(k, self.n_labels)
        idx_parts, val_parts = [], []
        for start in range(0, max(X.shape[0], 1), chunk):
            sc = self.scores(X[start : start + chunk], params)
            idx, val = top_k(sc, k)
            idx_parts.append(idx)
            val_parts.append(val)
        return np.concatenate(idx_parts), np.concatenate(val_parts)

    def save(self, folder: Path) -> list[str]:
        files = []
        for i, tree in enumerate(self.trees):
            files += tree.save(folder, f"tree{i}")
        (folder / self.PARAMS_FILE).write_text(json.dumps(asdict(self.params), indent=2))
        return [*files, self.PARAMS_FILE]

    def meta(self) -> dict[str, Any]:
        return {
            "n_trees": len(self.trees),
            "level_sizes": [len(p) for p in self.trees[0].parents],
            **asdict(self.params),
        }

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any]) -> TreeShortlister:
        params = TreePredParams(**json.loads((folder / cls.PARAMS_FILE).read_text()))
        return cls([Tree.load(folder, f"tree{i}") for i in range(int(meta["n_trees"]))], params)
