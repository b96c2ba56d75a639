"""Beam search that scores only the beam's children, against exhaustive scoring (the test oracle).

The oracle is the search this project used before: every node of every level scored for every document
(dense docs x nodes), the beam applied as a mask. On random trees of several shapes both must keep the
same nodes and give the same top-k; with a beam as wide as the tree, every label is reached.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from xmlc.tree import LAYOUT, Tree, TreePredParams, TreeShortlister


def oracle_leaf_scores(tree: Tree, X: sp.csr_matrix, params: TreePredParams) -> np.ndarray:
    """Dense (docs x labels) path scores: exhaustive scoring, the beam as a mask (labels off it: 0)."""
    levels = tree.levels.tolist()
    offsets = np.concatenate([[0], np.cumsum(levels)])
    parents = [np.zeros(levels[0], np.int64)]
    for lv in range(1, len(levels)):
        lo, hi = offsets[lv], offsets[lv + 1]
        chunk_of = np.repeat(np.arange(len(tree.child_ptr) - 1), np.diff(tree.child_ptr))
        parents.append(chunk_of[lo:hi] - 1 - offsets[lv - 1])
    z = np.asarray((X @ tree.to_csr()).todense(), dtype=np.float32) + tree.bias
    if params.post == "sigmoid":
        s = 1 / (1 + np.exp(-z))
    else:
        h = np.maximum(0.0, 1.0 - z)
        s = np.exp(-(h * h * h))
    path = np.ones((X.shape[0], 1), np.float32)
    rows = np.arange(X.shape[0])[:, None]
    for lv, parent in enumerate(parents):
        cand = path[:, parent] * s[:, offsets[lv] : offsets[lv + 1]]
        if lv == len(parents) - 1 or cand.shape[1] <= params.beam_size:
            path = cand
            continue
        keep = np.argsort(-cand, axis=1, kind="stable")[:, : params.beam_size]
        path = np.zeros_like(cand)
        path[rows, keep] = cand[rows, keep]
    out = np.zeros((X.shape[0], tree.n_labels), np.float32)
    out[:, tree.label_of_leaf] = path
    return out


def random_parents(rng: np.random.Generator, branching: list[int]) -> list[np.ndarray]:
    """Per level, the parent of every node: about ``branching[l]`` children a node, unevenly."""
    parents, size = [], 1
    for b in branching:
        counts = rng.integers(max(1, b - 2), b + 1, size=size)
        parents.append(np.repeat(np.arange(size), counts))
        size = int(counts.sum())
    return parents


def random_tree(
    rng: np.random.Generator, n_features: int, branching: list[int], density: float, parents=None
) -> Tree:
    """A tree of that shape (or of ``parents``) with random sparse weights and biases."""
    parents = parents or random_parents(rng, branching)
    size = len(parents[-1])
    n_nodes = sum(len(p) for p in parents)
    W = sp.random(n_features, n_nodes, density=density, format="csr", random_state=rng, dtype=np.float32)
    W.data = (rng.standard_normal(W.nnz) * 1.5).astype(np.float32)
    bias = rng.standard_normal(n_nodes).astype(np.float32)
    return Tree.from_csr(parents, rng.permutation(size), W, bias)


def random_docs(rng: np.random.Generator, n: int, n_features: int, density: float) -> sp.csr_matrix:
    X = sp.random(n, n_features, density=density, format="csr", random_state=rng, dtype=np.float32)
    X.data = rng.random(X.nnz).astype(np.float32)
    return X


@pytest.mark.parametrize(
    "branching,density,beam,post,doc_density",
    [
        ([4, 4, 8], 0.05, 3, "l3-hinge", 0.05),
        ([2, 2, 2, 2, 6], 0.1, 2, "l3-hinge", 0.05),
        ([16, 32], 0.02, 5, "sigmoid", 0.05),
        ([3, 5, 7], 0.3, 4, "l3-hinge", 0.01),  # dense weights, short documents: long rows to gallop
        ([3, 5, 7], 0.02, 4, "l3-hinge", 0.3),  # sparse weights, long documents: short rows
        ([50], 0.05, 1, "l3-hinge", 0.05),  # one level: the root's children are the leaves
    ],
)
def test_beam_search_keeps_what_exhaustive_scoring_keeps(branching, density, beam, post, doc_density):
    rng = np.random.default_rng(len(branching) * 100 + beam)
    tree = random_tree(rng, 400, branching, density)
    X = random_docs(rng, 60, 400, doc_density)
    X.data[X.indptr[7] : X.indptr[8]] = 0  # an empty document: biases alone
    X.eliminate_zeros()
    params = TreePredParams(beam_size=beam, post=post)
    expected = oracle_leaf_scores(tree, X, params)
    labels, scores = tree.search(X, params)
    for d in range(X.shape[0]):
        got = dict(zip(labels[d][labels[d] >= 0].tolist(), scores[d][labels[d] >= 0].tolist(), strict=True))
        reached = np.flatnonzero(expected[d] > 0)
        assert set(reached.tolist()) <= set(got), d  # every label the oracle reaches
        np.testing.assert_allclose([got[j] for j in reached], expected[d, reached], rtol=2e-5, atol=1e-7)
        assert all(expected[d, j] == 0 or j in reached for j in got)
    # The shortlister's top-k equals the oracle's top-k (ties broken by the lower label on both sides).
    k = 10
    idx, val = TreeShortlister([tree], params).search(X, k)
    for d in range(X.shape[0]):
        order = np.lexsort((np.arange(tree.n_labels), -expected[d]))[:k]
        live = val[d] > 0
        np.testing.assert_array_equal(idx[d][live], order[: live.sum()])


def test_a_beam_as_wide_as_the_tree_scores_every_label_like_the_oracle() -> None:
    rng = np.random.default_rng(5)
    parents = random_parents(rng, [4, 5, 6])
    trees = [random_tree(rng, 300, [], 0.08, parents) for _ in range(3)]
    X = random_docs(rng, 40, 300, 0.05)
    params = TreePredParams(beam_size=10_000)
    n_labels = trees[0].n_labels
    shortlister = TreeShortlister(trees, params)
    idx, val = shortlister.search(X, n_labels)
    assert (idx >= 0).all()  # every label reached
    mean = sum(oracle_leaf_scores(t, X, params) for t in trees) / 3
    for d in range(X.shape[0]):
        np.testing.assert_allclose(val[d], mean[d, idx[d]], rtol=2e-5, atol=1e-7)
        order = np.lexsort((np.arange(n_labels), -mean[d]))
        np.testing.assert_array_equal(idx[d][:20], order[:20])


def test_chunks_round_trip_the_weight_matrix() -> None:
    rng = np.random.default_rng(1)
    parents = [np.zeros(3, np.int64), np.array([0, 0, 1, 2, 2, 2])]
    W = sp.random(50, 9, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    tree = Tree.from_csr(parents, np.arange(6), W, np.zeros(9, np.float32))
    back = tree.to_csr()
    np.testing.assert_array_equal(back.toarray(), W.toarray().astype(np.float16).astype(np.float32))
    assert tree.levels.tolist() == [3, 6] and tree.leaf_width == 3


def test_saved_trees_are_memory_mapped(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    sh = TreeShortlister([random_tree(rng, 200, [4, 6], 0.1)], TreePredParams(beam_size=2))
    files = sh.save(tmp_path)
    assert all(f.endswith((".npy", ".json")) for f in files)
    again = TreeShortlister.load(tmp_path, sh.meta())
    tree = again.trees[0]
    for name in ("level_val", "level_node", "level_ptr", "bias"):
        arr = getattr(tree, name)
        assert isinstance(arr.base, np.memmap) or isinstance(getattr(arr.base, "base", None), np.memmap), name
    X = random_docs(rng, 10, 200, 0.1)
    np.testing.assert_array_equal(again.search(X, 5)[0], sh.search(X, 5)[0])
    assert sh.meta()["layout"] == LAYOUT


def test_a_tree_of_the_previous_layout_loads(tmp_path: Path) -> None:
    """Bundles before the chunked layout kept one CSR weight matrix and per-level parents in .npz."""
    rng = np.random.default_rng(3)
    tree = random_tree(rng, 120, [3, 4], 0.2)
    W = tree.to_csr()
    np.savez(
        tmp_path / "tree0_weights.npz",
        data=W.data.astype(np.float16),
        indices=W.indices.astype(np.uint16),
        indptr=W.indptr.astype(np.int64),
        shape=np.asarray(W.shape, dtype=np.int64),
    )
    chunk_of = np.repeat(np.arange(len(tree.child_ptr) - 1), np.diff(tree.child_ptr))
    parents = [np.zeros(3, np.int32), (chunk_of[3:] - 1).astype(np.int32)]
    np.savez(
        tmp_path / "tree0_structure.npz",
        parents_0=parents[0],
        parents_1=parents[1],
        label_of_leaf=tree.label_of_leaf,
        bias=tree.bias,
    )
    (tmp_path / TreeShortlister.PARAMS_FILE).write_text(json.dumps({"beam_size": 2, "post": "l3-hinge"}))
    old = TreeShortlister.load(tmp_path, {"kind": "tree", "n_trees": 1, "level_sizes": [3, 12]})
    X = random_docs(rng, 15, 120, 0.1)
    new = TreeShortlister([tree], TreePredParams(beam_size=2))
    np.testing.assert_array_equal(old.search(X, 6)[0], new.search(X, 6)[0])
    np.testing.assert_array_equal(old.search(X, 6)[1], new.search(X, 6)[1])
