import numpy as np
import pytest
import scipy.sparse as sp

from training.clustering import build_layout, pifa
from training.featurizer_fit import fit_featurizer
from training.params import ClusterParams, FeaturizerParams, LinearParams, TreeParams
from training.tree_train import train_tree, train_trees
from xmlc.labels import LabelTable
from xmlc.metrics import evaluate
from xmlc.topk import top_k
from xmlc.tree import Tree, TreePredParams, TreeShortlister


@pytest.fixture(scope="module")
def data(corpus):
    train, test, _ = corpus
    featurizer, X = fit_featurizer(
        [d.doc for d in train], FeaturizerParams(max_features=5000), n_jobs=1, progress=False
    )
    labels = LabelTable.from_documents([d.labels for d in train])
    Y = labels.matrix([d.labels for d in train])
    Xt = featurizer.transform([d.doc for d in test])
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
    idx, _ = shortlister.search(Xt, 5, params)
    return evaluate([[labels.ids[i] for i in row] for row in idx], truths, ks=(1, 5)).metrics


@pytest.mark.parametrize("branching", [2, 4])
def test_tree_recovers_planted_labels(data, branching):
    X, Y, Xt, labels, truths = data
    layout = build_layout(pifa(X, Y), ClusterParams(branching=branching, leaf_size=8))
    tree = train_tree(X, Y, layout, LinearParams(), n_jobs=2, progress=False)
    metrics = _precision(TreeShortlister([tree]), Xt, labels, truths)
    # Chance P@1 is about 1/64; the planted structure must be found.
    assert metrics["P@1"] > 90, metrics
    weights = tree.to_csr()
    assert weights.nnz < weights.shape[0] * weights.shape[1] * 0.5, "weights are pruned"


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
    # Single-row search equals the batch search; threads split the batch without changing it.
    sh = TreeShortlister(trees)
    full_idx, full_sc = sh.search(Xt[:20], 5)
    for i in range(0, 20, 7):
        idx, sc = sh.search(Xt[i], 5)
        np.testing.assert_array_equal(idx, full_idx[i : i + 1])
        np.testing.assert_array_equal(sc, full_sc[i : i + 1])
    threaded = sh.search(Xt, 5, n_jobs=2)
    np.testing.assert_array_equal(threaded[0], sh.search(Xt, 5)[0])


def test_tree_save_load(tmp_path, data):
    X, Y, Xt, *_ = data
    layout = build_layout(pifa(X, Y), ClusterParams(branching=4, leaf_size=8))
    sh = TreeShortlister(
        [train_tree(X, Y, layout, LinearParams(), n_jobs=1, progress=False)],
        TreePredParams(beam_size=3, post="sigmoid"),
    )
    sh.save(tmp_path)
    again = TreeShortlister.load(tmp_path, sh.meta())
    assert again.params == sh.params
    # The weights are float16 in memory and on disk: the loaded tree answers exactly the same.
    a, sa = again.search(Xt, 5)
    b, sb = sh.search(Xt, 5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa, sb)


def test_top_k_orders_and_breaks_ties():
    scores = np.array([[0.1, 0.5, 0.5, 0.9], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    idx, val = top_k(scores, 3)
    assert idx.tolist() == [[3, 1, 2], [0, 1, 2]]
    assert val[0].tolist() == pytest.approx([0.9, 0.5, 0.5])
    assert top_k(scores, 10)[0].shape == (2, 4)


def test_tree_rejects_mismatched_parts():
    with pytest.raises(ValueError, match="do not match"):
        Tree.from_csr(
            [np.zeros(2, np.int32), np.array([0, 1], np.int32)],
            np.array([0, 1]),
            sp.csr_matrix((5, 3)),
            np.zeros(3),
        )
    with pytest.raises(ValueError):
        TreePredParams(beam_size=0)


def test_trees_differ_by_seed_and_follow_their_params(data):
    X, Y, Xt, labels, truths = data
    params = TreeParams(ClusterParams(branching=4, leaf_size=8), LinearParams(), n_trees=2)
    trees = train_trees(X, Y, params, n_jobs=1, progress=False)
    assert len(trees.trees) == 2 and trees.params == params.predict
    first, second = (t.label_of_leaf.tolist() for t in trees.trees)
    assert first != second  # each tree clusters with its own seed
    assert _precision(trees, Xt, labels, truths)["P@1"] > 90


def test_the_direct_liblinear_call_fits_what_linear_svc_fits(data, capfd):
    from training.tree_train import fit_binary, fit_binary_sklearn

    X, Y, *_ = data
    X = X[:300].astype(np.float64)
    for col in (0, 5, 17):
        y = Y[:300, col].toarray().ravel() > 0
        for params in (LinearParams(), LinearParams(C=2.0, tol=0.01)):
            w, b = fit_binary(X, y, params)
            w_ref, b_ref = fit_binary_sklearn(X, y, params)
            np.testing.assert_array_equal(w, w_ref)
            assert b == b_ref
    assert capfd.readouterr().out == ""  # liblinear's log stays off
