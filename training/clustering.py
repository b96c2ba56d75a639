"""Label representations (PIFA) and hierarchical label clustering: the shape of the label tree.

Balanced trees split every cluster by balanced spherical 2-means (Parabel, PECOS), repeated log2(B) times
per level to make a B-way node. Unbalanced trees (Bonsai) run scikit-learn's k-means with B clusters on
each node. Either way the result is a `TreeLayout`: per level, the parent of every node, and the order of
labels along the leaf level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.preprocessing import normalize

from training.params import ClusterParams


@dataclass
class TreeLayout:
    """``parents[l][j]``: parent (index in level l-1; level -1 is the root) of node j of level l.

    The last level holds the labels: ``label_of_leaf[j]`` is the label index of its node j. Nodes are
    ordered so that the children of each node are contiguous.
    """

    parents: list[np.ndarray]
    label_of_leaf: np.ndarray

    @property
    def level_sizes(self) -> list[int]:
        return [len(p) for p in self.parents]


def pifa(X: sp.csr_matrix, Y: sp.csr_matrix) -> sp.csr_matrix:
    """Positive-instance feature aggregation: each label is the normalised sum of its documents' rows."""
    emb = (Y.T.tocsr().astype(np.float32) @ normalize(X)).tocsr()
    return normalize(emb).astype(np.float32)


def compact_columns(M: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """``M`` restricted to the columns it uses, renumbered in order, and those columns' ids.

    Renumbering keeps each row's entries in the same order, so every product sums the same terms in the
    same order as over all columns. A large matrix is compacted through a mask of all columns (linear),
    a small one by sorting its column ids.
    """
    if M.nnz * 16 > M.shape[1]:
        mask = np.zeros(M.shape[1], bool)
        mask[M.indices] = True
        used = np.flatnonzero(mask)
        new = (np.cumsum(mask) - 1)[M.indices]
    else:
        used = np.unique(M.indices)
        new = np.searchsorted(used, M.indices)
    return sp.csr_matrix((M.data, new, M.indptr), shape=(M.shape[0], max(len(used), 1))), used


def _balanced_2means(emb: sp.csr_matrix, rng: np.random.Generator, max_iter: int) -> np.ndarray:
    """Split rows into two halves of equal size (±1) by spherical 2-means; returns a 0/1 assignment.

    The centers are dense over the columns these rows use only (renumbered in order): deep in a tree a
    group of a few dozen labels touches a few thousand features, not all of them.
    """
    emb = compact_columns(emb)[0]
    n = emb.shape[0]
    first, second = rng.choice(n, size=2, replace=False)
    centers = emb[[first, second]].toarray()
    side = np.zeros(n, dtype=np.int8)
    for it in range(max_iter):
        diff = np.asarray(emb @ (centers[0] - centers[1])).ravel()
        order = np.argsort(-diff, kind="stable")
        new = np.ones(n, dtype=np.int8)
        new[order[: (n + 1) // 2]] = 0
        if it and np.array_equal(new, side):
            break
        side = new
        for c in (0, 1):
            mean = np.asarray(emb[side == c].sum(axis=0)).ravel()
            centers[c] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return side


def _split(emb: sp.csr_matrix, params: ClusterParams, rng: np.random.Generator, n_binary: int) -> np.ndarray:
    """Assign each row of ``emb`` to one of the node's children (ids 0..k-1, every id used)."""
    n = emb.shape[0]
    if params.balanced:
        child = np.zeros(n, dtype=np.int64)
        groups = [np.arange(n)]
        for _ in range(n_binary):
            nxt = []
            for g in groups:
                if len(g) < 2:
                    nxt.extend([g, g[:0]])
                    continue
                side = _balanced_2means(emb[g], rng, params.max_iter)
                nxt.extend([g[side == 0], g[side == 1]])
            groups = nxt
        for cid, g in enumerate(gg for gg in groups if len(gg)):
            child[g] = cid
        return child
    k = min(params.branching, n)
    if k <= 1:
        return np.zeros(n, dtype=np.int64)
    km = KMeans(n_clusters=k, n_init=1, max_iter=params.max_iter, random_state=int(rng.integers(1 << 31)))
    labels = km.fit_predict(emb)
    _, dense = np.unique(labels, return_inverse=True)
    return dense.astype(np.int64)


def build_layout(emb: sp.csr_matrix, params: ClusterParams) -> TreeLayout:
    """Cluster label embeddings top-down until every leaf cluster holds at most ``leaf_size`` labels."""
    n_labels = emb.shape[0]
    if params.branching < 2:
        raise ValueError("branching must be at least 2")
    log_b = math.log2(params.branching)
    if params.balanced and not log_b.is_integer():
        raise ValueError(f"a balanced tree needs a power-of-two branching factor, got {params.branching}")
    rng = np.random.default_rng(params.seed)
    # Balanced: the depth in binary splits is fixed up front so every leaf cluster has about the same size.
    total_binary = max(1, math.ceil(math.log2(max(n_labels / params.leaf_size, 1.0))))
    clusters = [np.arange(n_labels)]  # label sets of the current level's nodes, in node order
    parents: list[np.ndarray] = []
    done_binary = 0
    while True:
        if params.balanced:
            step = min(int(log_b), total_binary - done_binary)
            if step <= 0:
                break
        elif all(len(c) <= params.leaf_size for c in clusters):
            break
        nxt: list[np.ndarray] = []
        parent_of: list[int] = []
        for p, members in enumerate(clusters):
            if not params.balanced and len(members) <= params.leaf_size:
                children = [members]
            else:
                assign = _split(emb[members], params, rng, step if params.balanced else 0)
                children = [members[assign == c] for c in range(int(assign.max()) + 1)]
            for ch in children:
                nxt.append(ch)
                parent_of.append(p)
        parents.append(np.asarray(parent_of, dtype=np.int32))
        clusters = nxt
        if params.balanced:
            done_binary += step
    leaf_parent = np.concatenate([np.full(len(c), i, dtype=np.int32) for i, c in enumerate(clusters)])
    parents.append(leaf_parent)
    return TreeLayout(parents=parents, label_of_leaf=np.concatenate(clusters).astype(np.int32))


def cluster_members(X: sp.csr_matrix, Y: sp.csr_matrix, n_clusters: int, seed: int) -> np.ndarray:
    """(clusters x max size) label ids of a one-level balanced tree over PIFA, -1 pads."""
    n_labels = Y.shape[1]
    n_clusters = max(2, min(2 ** round(math.log2(max(n_clusters, 2))), n_labels))
    leaf = math.ceil(n_labels / n_clusters)
    layout = build_layout(pifa(X, Y), ClusterParams(branching=n_clusters, leaf_size=leaf, seed=seed))
    parent = layout.parents[-1]
    size = np.bincount(parent)
    members = np.full((len(size), int(size.max())), -1, dtype=np.int64)
    fill = np.zeros(len(size), dtype=np.int64)
    for label, c in zip(layout.label_of_leaf.tolist(), parent.tolist(), strict=True):
        members[c, fill[c]] = label
        fill[c] += 1
    return members
