"""Train label trees: cluster the labels, then one-vs-rest linear classifiers at every level.

Each child of a node is trained on the documents that reach the node (the positives of the node, so
the negatives are the positives of its siblings: tree negatives), with liblinear's L2-regularised
squared-hinge dual solver through scikit-learn. Small weights are pruned so that the model is sparse.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC
from tqdm.auto import tqdm

from training.clustering import ClusterParams, TreeLayout, build_layout, pifa
from xmlc.tree import Tree, TreePredParams, TreeShortlister


@dataclass(frozen=True)
class LinearParams:
    """One binary classifier per node: liblinear squared hinge, C, tolerance, bias and pruning threshold."""

    C: float = 1.0
    tol: float = 0.1
    max_iter: int = 100
    threshold: float = 0.1


@dataclass(frozen=True)
class TreeTrainParams:
    cluster: ClusterParams = field(default_factory=ClusterParams)
    linear: LinearParams = field(default_factory=LinearParams)
    n_trees: int = 1
    # > 0: retrain each tree's leaf classifiers on matcher-aware negatives from its top-`man_depth`
    # shortlist of the training documents (`retrain_leaves_man`); 0: tree negatives only.
    man_depth: int = 0


def _membership(layout: TreeLayout) -> list[sp.csr_matrix]:
    """Per level, the (labels x nodes) 0/1 matrix saying which labels sit under which node."""
    n_labels = len(layout.label_of_leaf)
    node_of_label: np.ndarray = np.empty(n_labels, dtype=np.int64)
    node_of_label[layout.label_of_leaf] = np.arange(n_labels)
    mats = []
    for level in range(len(layout.parents) - 1, -1, -1):
        size = len(layout.parents[level])
        mats.append(
            sp.csr_matrix(
                (np.ones(n_labels, np.float32), (np.arange(n_labels), node_of_label)), shape=(n_labels, size)
            )
        )
        node_of_label = layout.parents[level][node_of_label].astype(np.int64)
    return mats[::-1]


def _train_node(
    X: sp.csr_matrix, rows: np.ndarray, Y_children: sp.csc_matrix, params: LinearParams
) -> tuple[sp.csc_matrix, np.ndarray]:
    """Classifiers for the children of one node, on the documents ``rows`` that reach it."""
    n_children = Y_children.shape[1]
    d = X.shape[1]
    X_sub = X[rows].astype(np.float64)
    Y_sub = Y_children[rows].toarray() > 0
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    bias = np.zeros(n_children, dtype=np.float32)
    for c in range(n_children):
        y = Y_sub[:, c]
        if y.all() or not y.any():
            # Degenerate node (every or no document): a constant scorer, no features.
            bias[c] = 4.0 if y.all() else -4.0
            cols.append(np.zeros(0, np.int32))
            vals.append(np.zeros(0, np.float32))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            svm = LinearSVC(
                C=params.C,
                tol=params.tol,
                max_iter=params.max_iter,
                dual=True,
                loss="squared_hinge",
                random_state=0,
                intercept_scaling=1.0,
            )
            svm.fit(X_sub, y)
        w = svm.coef_.ravel()
        nz = np.flatnonzero(np.abs(w) >= params.threshold)
        cols.append(nz.astype(np.int32))
        vals.append(w[nz].astype(np.float32))
        bias[c] = svm.intercept_[0]
    indptr = np.concatenate([[0], np.cumsum([len(c) for c in cols])])
    W = sp.csc_matrix((np.concatenate(vals), np.concatenate(cols), indptr), shape=(d, n_children))
    return W, bias


_SHARED: tuple | None = None  # (X, Y_levels, tasks, params), set before forking the workers


def _run_task(t: int) -> tuple[int, sp.csc_matrix, np.ndarray]:
    assert _SHARED is not None
    X, Y_levels, tasks, params = _SHARED
    level, lo, hi, rows = tasks[t]
    if len(rows) == 0:
        return t, sp.csc_matrix((X.shape[1], hi - lo), dtype=np.float32), np.full(hi - lo, -4.0, np.float32)
    W, b = _train_node(X, rows, Y_levels[level][:, lo:hi], params)
    return t, W, b


def _fit_tasks(
    X: sp.csr_matrix,
    Y_levels: list[sp.csc_matrix],
    tasks: list[tuple[int, int, int, np.ndarray]],
    params: LinearParams,
    n_jobs: int,
    progress: bool,
    desc: str,
) -> dict[int, tuple[sp.csc_matrix, np.ndarray]]:
    """Train every (level, child range, rows) task, in parallel processes."""
    # Biggest first so that the workers finish together; fork shares X and Y with them copy-free.
    order = sorted(range(len(tasks)), key=lambda t: -len(tasks[t][3]) * (tasks[t][2] - tasks[t][1]))
    results: dict[int, tuple[sp.csc_matrix, np.ndarray]] = {}
    global _SHARED
    _SHARED = (X, Y_levels, tasks, params)
    total = sum(t[2] - t[1] for t in tasks)
    try:
        pool_cm = mp.get_context("fork").Pool(n_jobs) if n_jobs > 1 else nullcontext()
        with tqdm(total=total, desc=desc, unit="node", disable=not progress) as bar, pool_cm as pool:
            for t, W, b in pool.imap_unordered(_run_task, order) if pool else map(_run_task, order):
                results[t] = (W, b)
                bar.update(tasks[t][2] - tasks[t][1])
    finally:
        _SHARED = None
    return results


def train_tree(
    X: sp.csr_matrix,
    Y: sp.csr_matrix,
    layout: TreeLayout,
    params: LinearParams,
    n_jobs: int | None = None,
    progress: bool = True,
    desc: str = "train tree",
) -> Tree:
    """Fit every node's classifier of ``layout``; nodes are trained in parallel processes."""
    n_jobs = max(1, n_jobs or os.cpu_count() or 1)
    members = _membership(layout)
    Y_levels = [(Y @ m).tocsc() for m in members]
    tasks = []  # (level, parent index, child node ids, rows)
    all_rows = np.arange(X.shape[0])
    for level, parents in enumerate(layout.parents):
        ptr = np.concatenate(
            [
                [0],
                np.cumsum(
                    np.bincount(parents, minlength=1 if level == 0 else len(layout.parents[level - 1]))
                ),
            ]
        )
        for p in range(len(ptr) - 1):
            if level == 0:
                rows = all_rows
            else:
                col = Y_levels[level - 1][:, p]
                rows = col.indices[col.data > 0] if col.nnz else col.indices
            tasks.append((level, ptr[p], ptr[p + 1], np.sort(rows)))
    results = _fit_tasks(X, Y_levels, tasks, params, n_jobs, progress, desc)
    weights = sp.hstack([results[t][0] for t in range(len(tasks))], format="csr", dtype=np.float32)
    bias = np.concatenate([results[t][1] for t in range(len(tasks))])
    return Tree(layout.parents, layout.label_of_leaf, weights, bias)


def train_tree_shortlister(
    X: sp.csr_matrix,
    Y: sp.csr_matrix,
    params: TreeTrainParams,
    pred_params: TreePredParams | None = None,
    n_jobs: int | None = None,
    progress: bool = True,
) -> TreeShortlister:
    """PIFA embeddings, then ``n_trees`` trees with different clustering seeds."""
    emb = pifa(X, Y)
    trees = []
    for i in range(params.n_trees):
        cp = ClusterParams(**{**params.cluster.__dict__, "seed": params.cluster.seed + i})
        layout = build_layout(emb, cp)
        tree = train_tree(
            X, Y, layout, params.linear, n_jobs, progress, desc=f"tree {i + 1}/{params.n_trees}"
        )
        if params.man_depth > 0:
            cand, _ = TreeShortlister([tree], pred_params).shortlist(X, params.man_depth)
            tree = retrain_leaves_man(X, Y, tree, cand, params.linear, n_jobs, progress)
        trees.append(tree)
    return TreeShortlister(trees, pred_params)


def out_of_fold_shortlists(
    X_tree: sp.csr_matrix,
    Y_tree: sp.csr_matrix,
    n_docs: int,
    tree_params: TreeTrainParams,
    pred_params: TreePredParams,
    n_candidates: int,
    folds: int,
    seed: int = 0,
    n_jobs: int | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Shortlists of the first ``n_docs`` rows, each from trees that never saw that document (stacking).

    The trees' scores on their own training documents are overconfident, so a ranker trained on them
    learns to trust the shortlister more than it should at serving time. Rows past ``n_docs`` (label-name
    documents) are in every fold's training set.
    """
    if folds < 2:
        raise ValueError(f"out-of-fold shortlists need at least 2 folds, got {folds}")
    fold_of = np.random.default_rng(seed).permutation(n_docs) % folds
    extra = np.arange(n_docs, X_tree.shape[0])
    cand = np.full((n_docs, n_candidates), -1, dtype=np.int64)
    prior = np.zeros((n_docs, n_candidates), dtype=np.float32)
    for f in range(folds):
        held = np.flatnonzero(fold_of == f)
        fit_rows = np.concatenate([np.flatnonzero(fold_of != f), extra])
        trees = train_tree_shortlister(
            X_tree[fit_rows], Y_tree[fit_rows], tree_params, pred_params, n_jobs, progress
        )
        c, p = trees.shortlist(X_tree[held], n_candidates)
        cand[held, : c.shape[1]], prior[held, : p.shape[1]] = c, p
    return cand, prior


def retrain_leaves_man(
    X: sp.csr_matrix,
    Y: sp.csr_matrix,
    tree: Tree,
    cand: np.ndarray,
    params: LinearParams,
    n_jobs: int | None = None,
    progress: bool = True,
) -> Tree:
    """Leaf classifiers retrained on matcher-aware negatives (XR-Linear's "tfn+man").

    A leaf cluster's classifiers first saw only the documents tagged with one of its labels (tree
    negatives). Here they also see every document whose shortlist ``cand`` (from this tree) reached the
    cluster: the confusable documents the beam search actually lets through.
    """
    n_jobs = max(1, n_jobs or os.cpu_count() or 1)
    last = len(tree.parents) - 1
    leaf_parent = tree.parents[last].astype(np.int64)
    n_parents = int(tree.offsets[last] - tree.offsets[last - 1]) if last else 1
    leaf_of_label = np.empty(tree.n_labels, dtype=np.int64)
    leaf_of_label[tree.label_of_leaf] = np.arange(tree.n_labels)
    n_docs = X.shape[0]
    reached = sp.csr_matrix(
        (
            np.ones(cand.size, np.float32),
            (np.repeat(np.arange(n_docs), cand.shape[1]), leaf_parent[leaf_of_label[cand.ravel()]]),
        ),
        shape=(n_docs, n_parents),
    )
    Y_leaf = Y.tocsc()[:, tree.label_of_leaf].tocsc()
    parent_of = sp.csr_matrix(
        (np.ones(tree.n_labels, np.float32), (np.arange(tree.n_labels), leaf_parent)),
        shape=(tree.n_labels, n_parents),
    )
    rows_by_parent = ((reached + Y_leaf @ parent_of) > 0).tocsc()
    ptr = np.concatenate([[0], np.cumsum(np.bincount(leaf_parent, minlength=n_parents))])
    tasks = [
        (last, int(ptr[p]), int(ptr[p + 1]), np.sort(rows_by_parent[:, p].indices)) for p in range(n_parents)
    ]
    Y_levels: list[sp.csc_matrix] = [Y_leaf] * (last + 1)
    results = _fit_tasks(X, Y_levels, tasks, params, n_jobs, progress, "leaves (man)")
    W_leaf = sp.hstack([results[t][0] for t in range(len(tasks))], format="csc", dtype=np.float32)
    b_leaf = np.concatenate([results[t][1] for t in range(len(tasks))])
    lo = int(tree.offsets[last])
    weights = sp.hstack([tree.weights.tocsc()[:, :lo], W_leaf], format="csr", dtype=np.float32)
    bias = np.concatenate([tree.bias[:lo], b_leaf])
    return Tree(tree.parents, tree.label_of_leaf, weights, bias)
