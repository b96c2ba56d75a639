"""Label trees trained as sub-trees on Ray, the way PECOS's distributed XR-Linear shards its training.

The driver computes the label embeddings, splits the root once (the top level of the tree) and fits the
root's children; every top-level cluster's sub-tree (its clustering down to the leaf clusters, and the
classifiers of all its nodes) is then one Ray task, which reads the documents and labels from Ray's
object store and keeps the rows under its labels. The driver puts the sub-trees side by side into the
tree the local path builds: clusters split with random streams keyed by their place in the tree
(`training.clustering.node_rng`) and node classifiers that see the same rows in the same order, so the
weights are the same whichever machine fitted them.

Ray is an optional extra (``pip install -e ".[distributed]"``); the local path stays the default.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from training.clustering import (
    _split,
    check_params,
    grow,
    layout_of,
    n_binary_splits,
    node_rng,
    pifa,
)
from training.params import ClusterParams, LinearParams, TreeParams
from training.tree_train import node_weights, train_children
from xmlc.tree import Tree, TreeShortlister

CARRIED_BIAS = 4.0  # a node whose only child is itself: every document that reaches it goes on


def connect(address: str, n_cpus: int) -> Any:
    """``ray`` after connecting: ``local`` starts a cluster of ``n_cpus`` worker processes here; any
    other address (``auto``, ``ray://host:10001``) joins a running cluster."""
    try:
        import ray
    except ImportError as e:
        raise ValueError('Ray is not installed: pip install -e ".[distributed]"') from e
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=n_cpus, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    return ray


Part = tuple[list[np.ndarray], np.ndarray, list[sp.csr_matrix], list[np.ndarray]]


def subtree(
    emb: sp.csr_matrix,
    labels: np.ndarray,
    path: tuple[int, ...],
    cluster: ClusterParams,
    done_binary: int,
    total_binary: int,
    X: sp.csr_matrix,
    Y: sp.csr_matrix,
    linear: LinearParams,
) -> Part:
    """The sub-tree of one top-level cluster (``labels``, ``emb`` their rows): per level below its root
    the parents (the first level's are all 0: the root), its leaves' labels (global ids), and per level
    the nodes' weights and biases, trained on the documents with a label in the cluster."""
    parents, clusters, _ = grow(emb, [(np.arange(len(labels)), path)], cluster, done_binary, total_binary)
    layout = layout_of(parents, clusters)
    local_Y = Y[:, labels].tocsr()
    docs = np.flatnonzero(local_Y.getnnz(axis=1))
    weights, bias = node_weights(X[docs], local_Y[docs], layout, linear, n_jobs=1, progress=False)
    bounds = np.concatenate([[0], np.cumsum([len(p) for p in layout.parents])])
    levels = list(pairwise(bounds))
    return (
        layout.parents,
        labels[layout.label_of_leaf],
        [weights[:, a:b] for a, b in levels],
        [bias[a:b] for a, b in levels],
    )


def train_trees_ray(
    X: sp.csr_matrix,
    Y: sp.csr_matrix,
    params: TreeParams,
    address: str,
    n_cpus: int = 2,
    progress: bool = True,
) -> TreeShortlister:
    """``params.n_trees`` trees, each grown as sub-trees on the Ray cluster at ``address``."""
    ray = connect(address, n_cpus)
    emb = pifa(X, Y)
    X_ref, Y_ref = ray.put(X), ray.put(Y)
    remote = ray.remote(num_cpus=1)(subtree)
    n_labels = emb.shape[0]
    trees = []
    for i in range(params.n_trees):
        cluster = replace(params.cluster, seed=params.cluster.seed + i)
        check_params(cluster)
        total = n_binary_splits(n_labels, cluster)
        step = min(int(np.log2(cluster.branching)), total) if cluster.balanced else 0
        top = [np.arange(n_labels)[g] for g in _split(emb, cluster, node_rng(cluster.seed, ()), step)]
        futures = [
            remote.remote(emb[labels], labels, (c,), cluster, step, total, X_ref, Y_ref, params.linear)
            for c, labels in enumerate(top)
        ]
        top_of = np.empty(n_labels, np.int64)
        for c, labels in enumerate(top):
            top_of[labels] = c
        A = sp.csr_matrix(
            (np.ones(n_labels, np.float32), (np.arange(n_labels), top_of)), shape=(n_labels, len(top))
        )
        W_top, b_top = train_children(X, np.arange(X.shape[0]), (Y @ A).tocsc(), params.linear)
        with tqdm(
            total=len(futures), desc=f"sub-trees {i + 1}/{params.n_trees}", disable=not progress
        ) as bar:
            pending = list(futures)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                bar.update(len(done))
        trees.append(_assemble(W_top.tocsr(), b_top, ray.get(futures)))
    return TreeShortlister(trees, params.predict)


def _assemble(W_top: sp.csr_matrix, b_top: np.ndarray, parts: list[Part]) -> Tree:
    """The whole tree, level by level: the root's children, then the sub-trees below them side by side.

    A sub-tree shallower than the deepest (unbalanced trees) has its leaf clusters carried down, each the
    only child of itself, above its leaves: what the local path builds.
    """
    n_features = W_top.shape[0]
    depth = max(len(p[0]) for p in parts)  # levels below the top, the leaves' included
    expanded = []
    for parents, _, weights, biases in parts:
        missing = depth - len(parents)
        width = len(parents[-2]) if len(parents) > 1 else 1  # the leaf clusters (or the sub-tree root)
        carried = [
            (np.arange(width, dtype=np.int32), sp.csr_matrix((n_features, width), dtype=np.float32),
             np.full(width, CARRIED_BIAS, np.float32))
        ] * missing  # fmt: skip
        levels = list(zip(parents, weights, biases, strict=True))
        expanded.append(levels[:-1] + carried + levels[-1:])
    all_parents = [np.zeros(len(parts), np.int32)]
    blocks, all_bias = [W_top], [b_top]
    above = np.arange(len(parts))  # where each sub-tree's nodes start on the level above
    for j in range(depth):
        level_parents = []
        sizes = []
        for c, levels in enumerate(expanded):
            local_parents, W, b = levels[j]
            level_parents.append(local_parents.astype(np.int32) + above[c])
            blocks.append(W)
            all_bias.append(b)
            sizes.append(len(local_parents))
        all_parents.append(np.concatenate(level_parents))
        above = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    weights = sp.hstack(blocks, format="csr", dtype=np.float32)
    label_of_leaf = np.concatenate([p[1] for p in parts]).astype(np.int32)
    return Tree.from_csr(all_parents, label_of_leaf, weights, np.concatenate(all_bias))
