import numpy as np
import pytest
import scipy.sparse as sp

from training.clustering import ClusterParams, build_layout, pifa
from training.featurizer_fit import FeaturizerParams, fit_featurizer
from training.tree_train import (
    LinearParams,
    TreeTrainParams,
    out_of_fold_shortlists,
    retrain_leaves_man,
    train_tree,
    train_tree_shortlister,
)
from xmlc.labels import LabelTable
from xmlc.metrics import evaluate
from xmlc.tree import Tree, TreePredParams, TreeShortlister, top_k


@pytest.fixture(scope="module")
def data(corpus):
    train, test, _ = corpus
    featurizer, X = fit_featurizer(
        [d.full_text for d in train], FeaturizerParams(max_features=5000), n_jobs=1, progress=False
    )
    labels = LabelTable.from_documents([d.labels for d in train])
    Y = labels.matrix([d.labels for d in train])
    Xt = featurizer.transform([d.full_text for d in test])
    return X, Y, Xt, labels, [list(d.labels) for d in test]


@pytest.mark.parametrize("branching,balanced", [(2, True), (4, True), (8, False)])
def test_layout_covers_every_label_once(data, branching, balanced):
    X, Y, *_ = data
    layout = build_layout(pifa(X, Y), ClusterParams(branching=branching, leaf_size=6, balanced=balanced))
    assert sorted(layout.label_of_leaf.tolist()) == list(range(Y.shape[1]))
    for level, parents in enumerate(layout.parents):
        assert np.all(np.diff(parents) >= 0), "children of a node must be contiguous"
        n_parent = 1 if level == 0 else len(layout.parents[level - 1])
        assert set(parents.tolist()) == set(range(n_parent)), "every node has children"
        assert np.bincount(parents).max() <= (branching if level < len(layout.parents) - 1 else 6 + 1)
    if balanced:
        sizes = np.bincount(layout.parents[-1])
        assert sizes.max() - sizes.min() <= 1


def test_balanced_layout_needs_power_of_two(data):
    X, Y, *_ = data
    with pytest.raises(ValueError, match="power-of-two"):
        build_layout(pifa(X, Y), ClusterParams(branching=6))


def _precision(shortlister, Xt, labels, truths, params=None):
    idx, _ = shortlister.shortlist(Xt, 5, params)
    return evaluate([[labels.ids[i] for i in row] for row in idx], truths, ks=(1, 5)).metrics


@pytest.mark.parametrize("branching", [2, 4])
def test_tree_recovers_planted_labels(data, branching):
    X, Y, Xt, labels, truths = data
    layout = build_layout(pifa(X, Y), ClusterParams(branching=branching, leaf_size=8))
    tree = train_tree(X, Y, layout, LinearParams(), n_jobs=2, progress=False)
    metrics = _precision(TreeShortlister([tree]), Xt, labels, truths)
    # Chance P@1 is about 1/64; the planted structure must be found.
    assert metrics["P@1"] > 90, metrics
    assert tree.weights.nnz < tree.weights.shape[0] * tree.weights.shape[1] * 0.5, "weights are pruned"


def test_beam_search_and_ensemble(data):
    X, Y, Xt, labels, truths = data
    emb = pifa(X, Y)
    trees = [
        train_tree(
            X,
            Y,
            build_layout(emb, ClusterParams(branching=2, leaf_size=8, seed=s)),
            LinearParams(),
            n_jobs=1,
            progress=False,
        )
        for s in (0, 1)
    ]
    narrow = _precision(TreeShortlister(trees[:1]), Xt, labels, truths, TreePredParams(beam_size=1))
    wide = _precision(TreeShortlister(trees[:1]), Xt, labels, truths, TreePredParams(beam_size=20))
    both = _precision(TreeShortlister(trees), Xt, labels, truths, TreePredParams(beam_size=20))
    assert wide["P@5"] >= narrow["P@5"]  # a wider beam never loses recall on the same tree
    assert both["P@1"] > 90
    # Single-row scoring equals the batch scoring.
    sh = TreeShortlister(trees)
    full = sh.scores(Xt[:20])
    for i in range(0, 20, 7):
        np.testing.assert_allclose(sh.scores(Xt[i]), full[i : i + 1], rtol=1e-6)


def test_tree_save_load(tmp_path, data):
    X, Y, Xt, *_ = data
    layout = build_layout(pifa(X, Y), ClusterParams(branching=4, leaf_size=8))
    sh = TreeShortlister(
        [train_tree(X, Y, layout, LinearParams(), n_jobs=1, progress=False)],
        TreePredParams(beam_size=3, post="sigmoid"),
    )
    sh.save(tmp_path)
    again = TreeShortlister.load(tmp_path, 1)
    assert again.params == sh.params
    # Weights are stored as float16: scores move by rounding only and the ranking stays.
    np.testing.assert_allclose(again.scores(Xt), sh.scores(Xt), atol=2e-2)
    a, _ = again.shortlist(Xt, 1)
    b, _ = sh.shortlist(Xt, 1)
    assert (a == b).mean() > 0.97


def test_top_k_orders_and_breaks_ties():
    scores = np.array([[0.1, 0.5, 0.5, 0.9], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    idx, val = top_k(scores, 3)
    assert idx.tolist() == [[3, 1, 2], [0, 1, 2]]
    assert val[0].tolist() == pytest.approx([0.9, 0.5, 0.5])
    assert top_k(scores, 10)[0].shape == (2, 4)


def test_tree_rejects_mismatched_parts():
    with pytest.raises(ValueError, match="do not match"):
        Tree(
            [np.zeros(2, np.int32), np.array([0, 1], np.int32)],
            np.array([0, 1]),
            sp.csr_matrix((5, 3)),
            np.zeros(3),
        )
    with pytest.raises(ValueError):
        TreePredParams(beam_size=0)


def test_matcher_aware_leaves_keep_upper_levels_and_still_predict(data):
    X, Y, Xt, labels, truths = data
    layout = build_layout(pifa(X, Y), ClusterParams(branching=4, leaf_size=8))
    tree = train_tree(X, Y, layout, LinearParams(), n_jobs=1, progress=False)
    cand, _ = TreeShortlister([tree]).shortlist(X, 20)
    man = retrain_leaves_man(X, Y, tree, cand, LinearParams(), n_jobs=2, progress=False)
    lo = int(tree.offsets[-2])
    assert man.weights.shape == tree.weights.shape
    # Upper levels untouched, leaf level retrained on more documents (so different weights).
    assert (man.weights[:, :lo] != tree.weights[:, :lo]).nnz == 0
    np.testing.assert_array_equal(man.bias[:lo], tree.bias[:lo])
    assert (man.weights[:, lo:] != tree.weights[:, lo:]).nnz > 0
    metrics = _precision(TreeShortlister([man]), Xt, labels, truths)
    assert metrics["P@1"] > 90, metrics


def test_out_of_fold_shortlists_come_from_trees_that_never_saw_the_document(data):
    X, Y, *_ = data
    n = 600
    X, Y = X[:n], Y[:n]
    params = TreeTrainParams(ClusterParams(branching=4, leaf_size=8), LinearParams(), n_trees=1)
    pred = TreePredParams(beam_size=4)
    own, own_scores = train_tree_shortlister(X, Y, params, pred, n_jobs=1, progress=False).shortlist(X, 10)
    cand, prior = out_of_fold_shortlists(X, Y, n, params, pred, 10, folds=2, n_jobs=1, progress=False)
    assert cand.shape == prior.shape == (n, 10) and cand.min() >= 0
    truth = Y.toarray() > 0
    rows = np.arange(n)
    # Unseen documents: still well above chance (64 labels), but less sure of the truth than the
    # trees that were fitted on them.
    assert truth[rows, cand[:, 0]].mean() > 0.5
    assert prior[truth[rows[:, None], cand]].mean() < own_scores[truth[rows[:, None], own]].mean()
    with pytest.raises(ValueError, match="2 folds"):
        out_of_fold_shortlists(X, Y, n, params, pred, 10, folds=1)
