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
from dataclasses import replace

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC, _liblinear
from tqdm.auto import tqdm

from training.clustering import TreeLayout, build_layout, compact_columns, pifa
from training.params import LinearParams, TreeParams
from xmlc.tree import Tree, TreeShortlister


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


# liblinear's seed as scikit-learn derives it from random_state=0 (the first draw of RandomState(0)).
LIBLINEAR_SEED = int(np.random.RandomState(0).randint(np.iinfo("i").max))
L2R_L2LOSS_SVC_DUAL = 1  # liblinear's solver for the squared hinge, dual coordinate descent


def fit_binary(X: sp.csr_matrix, y: np.ndarray, params: LinearParams) -> tuple[np.ndarray, float]:
    """Weights and bias of one squared-hinge linear SVM: what `LinearSVC(dual=True, random_state=0)`
    fits, through scikit-learn's liblinear wrapper directly.

    Why: a million-label tree fits a million small classifiers, and `LinearSVC.fit` spends about 2 ms
    a call checking its arguments against 0.1 ms of solving. The wrapper is scikit-learn's private
    API: if it changes, `LinearSVC` is used instead (the tests check both give the same weights).
    """
    try:
        _liblinear.set_verbosity_wrap(0)  # liblinear's own log goes to stdout unless turned off
        raw, _ = _liblinear.train_wrap(
            X, y.astype(np.float64), True, L2R_L2LOSS_SVC_DUAL, params.tol, 1.0, params.C,
            np.ones(2), params.max_iter, LIBLINEAR_SEED, 0.1, np.ones(X.shape[0]),
        )  # fmt: skip
        return raw[0, :-1], float(raw[0, -1])
    except (TypeError, ValueError, AttributeError):
        return fit_binary_sklearn(X, y, params)


def fit_binary_sklearn(X: sp.csr_matrix, y: np.ndarray, params: LinearParams) -> tuple[np.ndarray, float]:
    """The same fit through the public `LinearSVC`."""
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
        svm.fit(X, y)
    return svm.coef_.ravel(), float(svm.intercept_[0])


def train_children(
    X: sp.csr_matrix, rows: np.ndarray, Y_children: sp.csc_matrix, params: LinearParams
) -> tuple[sp.csc_matrix, np.ndarray]:
    """The classifiers of one node's children (see `_train_node`), for callers outside this module."""
    return _train_node(X, rows, Y_children, params)


def _train_node(
    X: sp.csr_matrix, rows: np.ndarray, Y_children: sp.csc_matrix, params: LinearParams
) -> tuple[sp.csc_matrix, np.ndarray]:
    """Classifiers for the children of one node, on the documents ``rows`` that reach it.

    liblinear sees only the columns these documents use (renumbered in order, so every dot product sums
    in the same order as over all columns): a weight vector as long as the node's vocabulary, not the
    whole feature space, which at a million labels is the difference between O(nodes x features) and
    O(nonzeros).
    """
    n_children = Y_children.shape[1]
    d = X.shape[1]
    X_sub, used = compact_columns(X[rows])
    X_sub = X_sub.astype(np.float64)
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
        w, bias[c] = fit_binary(X_sub, y, params)
        nz = np.flatnonzero(np.abs(w) >= params.threshold)
        cols.append(used[nz].astype(np.int32))
        vals.append(w[nz].astype(np.float32))
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
    weights, bias = node_weights(X, Y, layout, params, n_jobs, progress, desc)
    return Tree.from_csr(layout.parents, layout.label_of_leaf, weights, bias)


def node_weights(
    X: sp.csr_matrix,
    Y: sp.csr_matrix,
    layout: TreeLayout,
    params: LinearParams,
    n_jobs: int | None = None,
    progress: bool = True,
    desc: str = "train tree",
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Every node's weights (features x nodes, in node order) and biases; the root's children are
    trained on all of ``X``, every other node on the documents with a label under its parent."""
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
    return weights, bias


def train_trees(
    X: sp.csr_matrix,
    Y: sp.csr_matrix,
    params: TreeParams,
    n_jobs: int | None = None,
    progress: bool = True,
    ray_address: str | None = None,
) -> TreeShortlister:
    """PIFA embeddings, then ``n_trees`` trees with different clustering seeds; with ``ray_address``,
    each tree's sub-trees are trained as tasks on that Ray cluster (`training.distributed`)."""
    if ray_address:
        from training.distributed import train_trees_ray

        return train_trees_ray(X, Y, params, ray_address, max(1, n_jobs or os.cpu_count() or 1), progress)
    emb = pifa(X, Y)
    trees = []
    for i in range(params.n_trees):
        layout = build_layout(emb, replace(params.cluster, seed=params.cluster.seed + i))
        trees.append(
            train_tree(X, Y, layout, params.linear, n_jobs, progress, desc=f"tree {i + 1}/{params.n_trees}")
        )
    return TreeShortlister(trees, params.predict)
