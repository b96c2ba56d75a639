"""Label-tree shortlister (XR-Linear / Parabel / Bonsai family): beam search over linear node scorers.

Beam search scores only the children of the nodes in the beam (`xmlc.beam`), so a prediction costs
about ``levels x beam x children`` small sparse dot products whatever the number of labels. Several
trees are averaged at the leaves. A tree's arrays are saved as ``.npy`` files and memory-mapped on
load: replicas on one host, and a reload, share their pages. It reads a batch's TF-IDF rows
(`xmlc.batch.Batch.features`).
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from xmlc.batch import Batch
from xmlc.beam import POST_L3_HINGE, POST_SIGMOID, merge_trees, search_tree

POSTS = ("l3-hinge", "sigmoid")
LAYOUT = "levels"  # the manifest's shortlister "layout"; bundles without one hold a CSR weight matrix
ARRAYS = ("levels", "label_of_leaf", "bias", "child_ptr", "level_ptr", "level_node", "level_val")
SEARCH_ROWS = 2048  # documents per kernel call: bounds the (docs x candidates) buffers of a call


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


class Tree:
    """One label tree, level by level.

    Nodes are numbered over all levels (level 0 first); ``levels`` holds the level sizes, leaves are the
    last level and ``label_of_leaf`` maps them to labels; ``bias`` is per node. Chunk 0 is the root's,
    chunk ``n + 1`` node ``n``'s: its children are nodes ``child_ptr[c]:child_ptr[c + 1]``. Level ``l``'s
    weights are a CSR matrix by feature: ``level_ptr[l]`` over ``level_node`` (node offsets in the level,
    ascending in each row) and ``level_val`` (float16 bits).
    """

    def __init__(self, n_features: int, **arrays: np.ndarray) -> None:
        missing = set(ARRAYS) - set(arrays)
        if missing:
            raise ValueError(f"tree arrays missing: {sorted(missing)}")
        self.n_features = n_features
        self.levels = np.asarray(arrays["levels"], np.int64)
        self.label_of_leaf = arrays["label_of_leaf"]
        self.bias = arrays["bias"]
        self.child_ptr = arrays["child_ptr"]
        self.level_ptr = arrays["level_ptr"]
        self.level_node = arrays["level_node"]
        self.level_val = arrays["level_val"]
        self._local = threading.local()
        n_nodes = int(self.levels.sum())
        if len(self.bias) != n_nodes or len(self.child_ptr) != n_nodes - int(self.levels[-1]) + 2:
            raise ValueError("tree arrays do not match its levels")
        if len(self.label_of_leaf) != self.levels[-1]:
            raise ValueError("tree leaf level does not match its labels")
        if self.level_ptr.shape != (len(self.levels), n_features + 1) or self.level_ptr[-1, -1] != len(
            self.level_val
        ):
            raise ValueError("tree weight arrays are inconsistent")

    @property
    def n_labels(self) -> int:
        return len(self.label_of_leaf)

    @cached_property
    def leaf_first(self) -> int:
        return int(self.levels[:-1].sum())

    @cached_property
    def level_first(self) -> np.ndarray:
        """The first node of every level, and the node count at the end."""
        return np.concatenate([[0], np.cumsum(self.levels)]).astype(np.int64)

    @cached_property
    def leaf_width(self) -> int:
        """The most children of a last-level parent: a beam node's share of the leaf candidates (a pass
        over every node: computed once, not per search)."""
        widths = np.diff(self.child_ptr)[np.asarray(self.child_ptr[:-1]) >= self.leaf_first]
        return int(widths.max()) if len(widths) else 1

    def search(self, X: sp.csr_matrix, params: TreePredParams) -> tuple[np.ndarray, np.ndarray]:
        """Leaf candidates (labels, -1 pads) and path scores of every row of ``X`` (CSR, sorted)."""
        width = min(params.beam_size * self.leaf_width, self.n_labels)
        labels = np.full((X.shape[0], width), -1, np.int64)
        scores = np.zeros((X.shape[0], width), np.float32)
        post = POST_SIGMOID if params.post == "sigmoid" else POST_L3_HINGE
        search_tree(
            X.indptr, X.indices, X.data, self.child_ptr, self.level_ptr, self.level_node, self.level_val,
            self.bias, self.level_first, self.label_of_leaf, params.beam_size, post, self._slots(), labels,
            scores,
        )  # fmt: skip
        return labels, scores

    def _slots(self) -> np.ndarray:
        """This thread's scratch for `search_tree` (all -1 between calls; O(nodes) to make, so kept)."""
        buf: np.ndarray | None = getattr(self._local, "slots", None)
        if buf is None:
            buf = self._local.slots = np.full(int(self.levels.max()), -1, np.int64)
        return buf

    def to_csr(self) -> sp.csr_matrix:
        """The weights as one (features x nodes) float32 matrix: for exhaustive scoring in tests."""
        rows, cols = [], []
        first = self.level_first
        for level, ptr in enumerate(self.level_ptr):
            rows.append(np.repeat(np.arange(self.n_features), np.diff(ptr)))
            cols.append(first[level] + np.asarray(self.level_node[ptr[0] : ptr[-1]], np.int64))
        data = np.asarray(self.level_val).view(np.float16).astype(np.float32)
        shape = (self.n_features, int(self.levels.sum()))
        return sp.csr_matrix((data, (np.concatenate(rows), np.concatenate(cols))), shape=shape)

    def save(self, folder: Path, prefix: str) -> list[str]:
        names = []
        for name in ARRAYS:
            np.save(folder / f"{prefix}.{name}.npy", getattr(self, name), allow_pickle=False)
            names.append(f"{prefix}.{name}.npy")
        return names

    @classmethod
    def load(cls, folder: Path, prefix: str, n_features: int) -> Tree:
        """Memory-mapped: the arrays stay in the page cache, shared with every process that maps them."""
        arrays = {
            name: np.asarray(np.load(folder / f"{prefix}.{name}.npy", mmap_mode="r", allow_pickle=False))
            for name in ARRAYS
        }
        return cls(n_features, **arrays)

    @classmethod
    def from_csr(
        cls, parents: list[np.ndarray], label_of_leaf: np.ndarray, weights: sp.spmatrix, bias: np.ndarray
    ) -> Tree:
        """A tree from per-level parents and one (features x nodes) weight matrix (the layout of bundles
        before this one, and of training)."""
        levels = np.asarray([len(p) for p in parents], np.int64)
        offsets = np.concatenate([[0], np.cumsum(levels)])
        # The chunk of every node: its parent's (chunk 0 for level 0), in node order.
        chunk_of = np.concatenate(
            [np.zeros(levels[0], np.int64)]
            + [offsets[lv - 1] + np.asarray(parents[lv], np.int64) + 1 for lv in range(1, len(parents))]
        )
        n_chunks = int(offsets[-2]) + 1
        child_ptr = np.concatenate([[0], np.cumsum(np.bincount(chunk_of, minlength=n_chunks))])
        n_features = weights.shape[0]
        W = weights.tocsc()
        level_ptr = np.zeros((len(levels), n_features + 1), np.int64)
        nodes, vals = [], []
        done = 0
        for level in range(len(levels)):
            block = W[:, offsets[level] : offsets[level + 1]].tocsr()
            block.sort_indices()
            level_ptr[level] = block.indptr + done
            nodes.append(block.indices.astype(np.int32))
            vals.append(block.data.astype(np.float16))
            done += block.nnz
        return cls(
            n_features,
            levels=levels,
            label_of_leaf=np.asarray(label_of_leaf, np.int32),
            bias=np.asarray(bias, np.float32),
            child_ptr=child_ptr.astype(np.int64),
            level_ptr=level_ptr,
            level_node=np.concatenate(nodes),
            level_val=np.concatenate(vals).view(np.uint16),
        )


class TreeShortlister:
    """An ensemble of label trees; returns the top labels with their averaged path scores."""

    kind: ClassVar[str] = "tree"
    role: ClassVar[str] = "shortlister"
    needs_ranker: ClassVar[bool] = False
    PARAMS_FILE = "tree_pred_params.json"

    def __init__(self, trees: list[Tree], params: TreePredParams | None = None) -> None:
        if not trees:
            raise ValueError("a tree shortlister needs at least one tree")
        if len({t.n_labels for t in trees}) != 1 or len({t.n_features for t in trees}) != 1:
            raise ValueError("all trees must cover the same labels and features")
        self.trees = trees
        self.params = params or TreePredParams()

    @property
    def n_labels(self) -> int:
        return self.trees[0].n_labels

    @property
    def n_features(self) -> int:
        return self.trees[0].n_features

    def shortlist(self, batch: Batch, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """The batch's top-``depth`` labels and path scores (the `Shortlister` contract)."""
        return self.search(batch.features(), depth)

    def search(
        self, X: sp.csr_matrix, k: int, params: TreePredParams | None = None, n_jobs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` label indices and mean path scores per row, best first; -1 pads rows whose beams
        reached fewer labels. ``n_jobs`` threads search parts of ``X`` side by side (the kernel
        releases the GIL)."""
        p = params or self.params
        k = min(k, self.n_labels)
        X = X.tocsr().astype(np.float32, copy=False)
        if not X.has_sorted_indices:
            X = X.sorted_indices()

        def part(start: int) -> tuple[np.ndarray, np.ndarray]:
            rows = X if X.shape[0] <= SEARCH_ROWS else X[start : start + SEARCH_ROWS]
            found = [tree.search(rows, p) for tree in self.trees]
            labels = np.hstack([f[0] for f in found])
            scores = np.hstack([f[1] for f in found])
            return merge_trees(labels, scores, len(self.trees), k)

        starts = range(0, X.shape[0], SEARCH_ROWS)
        if n_jobs > 1 and len(starts) > 1:
            with ThreadPoolExecutor(n_jobs) as pool:
                parts = list(pool.map(part, starts))
        else:
            parts = [part(s) for s in starts]
        if not parts:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        return np.concatenate([q[0] for q in parts]), np.concatenate([q[1] for q in parts])

    def save(self, folder: Path) -> list[str]:
        files = []
        for i, tree in enumerate(self.trees):
            files += tree.save(folder, f"tree{i}")
        (folder / self.PARAMS_FILE).write_text(json.dumps(asdict(self.params), indent=2))
        return [*files, self.PARAMS_FILE]

    def meta(self) -> dict[str, Any]:
        return {
            "layout": LAYOUT,
            "n_trees": len(self.trees),
            "n_features": self.n_features,
            "level_sizes": self.trees[0].levels.tolist(),
            **asdict(self.params),
        }

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any]) -> TreeShortlister:
        params = TreePredParams(**json.loads((folder / cls.PARAMS_FILE).read_text()))
        n = int(meta["n_trees"])
        if meta.get("layout") == LAYOUT:
            trees = [Tree.load(folder, f"tree{i}", int(meta["n_features"])) for i in range(n)]
        else:
            trees = [load_csr_tree(folder, f"tree{i}") for i in range(n)]
        return cls(trees, params)


def load_csr_tree(folder: Path, prefix: str) -> Tree:
    """A tree of a bundle written before the chunked layout (a CSR weight matrix in an ``.npz``)."""
    with np.load(folder / f"{prefix}_weights.npz", allow_pickle=False) as z:
        shape = tuple(int(x) for x in z["shape"])
        weights = sp.csr_matrix(
            (z["data"].astype(np.float32), z["indices"].astype(np.int32), z["indptr"]), shape=shape
        )
    with np.load(folder / f"{prefix}_structure.npz", allow_pickle=False) as z:
        n_levels = sum(1 for k in z.files if k.startswith("parents_"))
        parents = [z[f"parents_{i}"] for i in range(n_levels)]
        return Tree.from_csr(parents, z["label_of_leaf"], weights, z["bias"])
