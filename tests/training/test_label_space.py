"""Compressed-sensing and linear-algebra families (PLST, CPLST, SVD, LEML) on generated data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from tests.conftest import train_small
from training.label_space import label_basis, squared_loss
from training.params import LabelSpaceParams
from xmlc.evaluation import evaluate_model
from xmlc.loader import load_model

KINDS = ["plst", "cplst", "svd", "leml"]


def test_label_basis_is_orthonormal_and_cplst_differs(corpus) -> None:
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    X = sp.random(300, 80, density=0.1, format="csr", random_state=0, dtype=np.float32)
    Y = sp.csr_matrix((rng.random((300, 30)) < 0.1).astype(np.float32))
    V, s = label_basis(X, Y, LabelSpaceParams(kind="plst", dim=8))
    assert V.shape == (30, 8)
    np.testing.assert_allclose(V.T @ V, np.eye(8), atol=1e-4)
    assert np.all(np.diff(s) <= 1e-6)
    Vc, _ = label_basis(X, Y, LabelSpaceParams(kind="cplst", dim=8, x_components=12))
    np.testing.assert_allclose(Vc.T @ Vc, np.eye(8), atol=1e-4)
    # The conditional basis spans a different space than the plain one when X explains only part of Y.
    assert np.linalg.norm(V.T @ Vc) < np.sqrt(8) - 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_family_learns_and_round_trips(tmp_path: Path, corpus_files, corpus, kind: str) -> None:
    out = train_small(corpus_files, tmp_path / kind, kind, dim=32, epochs=12)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == kind and manifest["kind"] == "hnsw+ranker"
    _, test, _ = corpus
    report, _ = evaluate_model(load_model(out), [d.doc for d in test], [list(d.labels) for d in test])
    # 64 labels: chance P@1 is under 2%; the planted structure must be found.
    assert report.to_dict()["P@1"] > 60.0, (kind, report.to_dict())


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="label-space kind"):
        LabelSpaceParams(kind="pca")


def test_the_squared_loss_without_a_label_matrix_equals_the_dense_one() -> None:
    import scipy.sparse as sp
    import torch

    rng = np.random.default_rng(0)
    Y = sp.random(32, 500, density=0.01, format="csr", random_state=2, dtype=np.float32)
    Y.data[:] = 1.0
    V = rng.standard_normal((500, 16)).astype(np.float32)
    h = torch.from_numpy(rng.standard_normal((32, 16)).astype(np.float32))
    dense = ((h @ torch.from_numpy(V).T - torch.from_numpy(Y.toarray())) ** 2).sum()
    trick = squared_loss(h, Y, V, torch.from_numpy(V.T @ V))
    assert abs(float(dense) - float(trick)) < 1e-4 * float(dense)
