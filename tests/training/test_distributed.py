"""Label trees trained as sub-trees on a local Ray cluster of two worker processes equal the local ones."""

from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from training.featurizer_fit import fit_featurizer  # noqa: E402
from training.params import ClusterParams, FeaturizerParams, LinearParams, TreeParams  # noqa: E402
from training.tree_train import train_trees  # noqa: E402
from xmlc.labels import LabelTable  # noqa: E402
from xmlc.synthetic import ScaleCorpus, ScaleSpec  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data():
    corpus = ScaleCorpus(ScaleSpec(n_labels=600, n_docs=1500, seed=4))
    docs = list(corpus.documents(1500, seed=1))
    _, X = fit_featurizer([d.doc for d in docs], FeaturizerParams(), n_jobs=1, progress=False)
    labels = LabelTable.from_documents([d.labels for d in docs])
    Y = labels.matrix([d.labels for d in docs])
    yield X, Y
    if ray.is_initialized():
        ray.shutdown()


@pytest.mark.parametrize(
    "cluster",
    [
        ClusterParams(branching=4, leaf_size=16),  # balanced: every sub-tree as deep
        ClusterParams(branching=8, leaf_size=30, balanced=False),  # unbalanced: shallow ones carried down
    ],
    ids=["balanced", "unbalanced"],
)
def test_ray_subtrees_equal_the_local_tree(data, cluster) -> None:
    X, Y = data
    params = TreeParams(cluster, LinearParams(C=2.0), n_trees=2)
    local = train_trees(X, Y, params, n_jobs=1, progress=False)
    remote = train_trees(X, Y, params, n_jobs=2, progress=False, ray_address="local")
    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2
    for a, b in zip(local.trees, remote.trees, strict=True):
        np.testing.assert_array_equal(a.levels, b.levels)
        np.testing.assert_array_equal(a.label_of_leaf, b.label_of_leaf)
        np.testing.assert_array_equal(a.child_ptr, b.child_ptr)
        np.testing.assert_array_equal(a.bias, b.bias)
        assert (a.to_csr() != b.to_csr()).nnz == 0
    if not cluster.balanced:  # sub-trees of unequal depth: leaf clusters carried down, one child each
        assert (np.diff(local.trees[0].child_ptr) == 1).any()
    idx_a, sc_a = local.search(X[:200], 10)
    idx_b, sc_b = remote.search(X[:200], 10)
    np.testing.assert_array_equal(idx_a, idx_b)
    np.testing.assert_array_equal(sc_a, sc_b)
