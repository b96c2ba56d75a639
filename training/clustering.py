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


def node_rng(seed: int, path: tuple[int, ...]) -> np.random.Generator:
    """The random stream of the node at ``path`` (child indices from the root): a node splits the same
    way whichever order the nodes are visited in, on one machine or as sub-trees on a cluster."""
    return np.random.default_rng([seed, len(path), *path])


def _split(
    emb: sp.csr_matrix, params: ClusterParams, rng: np.random.Generator, n_binary: int
) -> list[np.ndarray]:
    """The node's children: row groups of ``emb``, each non-empty, in child order."""
    n = emb.shape[0]
    if params.balanced:
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
        return [g for g in groups if len(g)]
    k = min(params.branching, n)
    if k <= 1:
        return [np.arange(n)]
    km = KMeans(n_clusters=k, n_init=1, max_iter=params.max_iter, random_state=int(rng.integers(1 << 31)))
    labels = km.fit_predict(emb)
    return [np.flatnonzero(labels == c) for c in np.unique(labels)]


def n_binary_splits(n_labels: int, params: ClusterParams) -> int:
    """A balanced tree's depth in binary splits, fixed up front so leaf clusters have about one size."""
    return max(1, math.ceil(math.log2(max(n_labels / params.leaf_size, 1.0))))


def check_params(params: ClusterParams) -> None:
    if params.branching < 2:
        raise ValueError("branching must be at least 2")
    if params.balanced and not math.log2(params.branching).is_integer():
        raise ValueError(f"a balanced tree needs a power-of-two branching factor, got {params.branching}")


def grow(
    emb: sp.csr_matrix,
    roots: list[tuple[np.ndarray, tuple[int, ...]]],
    params: ClusterParams,
    done_binary: int,
    total_binary: int,
) -> tuple[list[np.ndarray], list[np.ndarray], list[tuple[int, ...]]]:
    """Split the clusters ``roots`` (label ids, path from the root) level by level to the leaf clusters.

    Returns the parents of each new level (indices into the level above, ``roots`` being the first),
    and the leaf clusters with their paths. Unbalanced trees carry a small cluster down as the only
    child of itself, so every leaf cluster ends at the same depth.
    """
    clusters = [members for members, _ in roots]
    paths = [path for _, path in roots]
    parents: list[np.ndarray] = []
    step = int(math.log2(params.branching))
    while True:
        if params.balanced:
            step = min(int(math.log2(params.branching)), total_binary - done_binary)
            if step <= 0:
                break
        elif all(len(c) <= params.leaf_size for c in clusters):
            break
        nxt: list[np.ndarray] = []
        nxt_paths: list[tuple[int, ...]] = []
        parent_of: list[int] = []
        for p, (members, path) in enumerate(zip(clusters, paths, strict=True)):
            if not params.balanced and len(members) <= params.leaf_size:
                children = [members]
            else:
                groups = _split(
                    emb[members], params, node_rng(params.seed, path), step if params.balanced else 0
                )
                children = [members[g] for g in groups]
            for c, ch in enumerate(children):
                nxt.append(ch)
                nxt_paths.append((*path, c))
                parent_of.append(p)
        parents.append(np.asarray(parent_of, dtype=np.int32))
        clusters, paths = nxt, nxt_paths
        if params.balanced:
            done_binary += step
    return parents, clusters, paths


def build_layout(emb: sp.csr_matrix, params: ClusterParams) -> TreeLayout:
    """Cluster label embeddings top-down until every leaf cluster holds at most ``leaf_size`` labels."""
    check_params(params)
    n_labels = emb.shape[0]
    parents, clusters, _ = grow(
        emb, [(np.arange(n_labels), ())], params, 0, n_binary_splits(n_labels, params)
    )
    return layout_of(parents, clusters)


def layout_of(parents: list[np.ndarray], clusters: list[np.ndarray]) -> TreeLayout:
    """The tree of cluster levels ``parents`` whose last level holds the leaf ``clusters`` (label sets)."""
    leaf_parent = np.concatenate([np.full(len(c), i, dtype=np.int32) for i, c in enumerate(clusters)])
    label_of_leaf = np.concatenate(clusters).astype(np.int32)
    return TreeLayout(parents=[*parents, leaf_parent], label_of_leaf=label_of_leaf)


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
