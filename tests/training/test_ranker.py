"""The ranker trained on shortlists: it learns, and two-stage bundles round-trip and serve."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from tests.conftest import train_small
from xmlc.data import write_documents
from xmlc.evaluation import evaluate_model
from xmlc.loader import load_model
from xmlc.synthetic import SyntheticSpec, make_corpus


def test_ranker_improves_over_a_weak_tree(tmp_path: Path) -> None:
    docs, _ = make_corpus(SyntheticSpec(n_docs=1500, n_labels=64, noise=0.9, seed=3))
    write_documents(tmp_path / "train.jsonl", docs[:1200])
    (tmp_path / "labels.jsonl").write_text("")
    files = {"train": tmp_path / "train.jsonl", "labels": tmp_path / "labels.jsonl"}
    test = docs[1200:]
    p_at_1 = {}
    for method in ("tree", "tree+ranker"):
        # C=0.01 leaves the tree barely trained: the ranker must do the work on its shortlists.
        settings = {"branching": 4, "leaf_size": 8, "C": 0.01}
        if method == "tree+ranker":
            settings.update(dim=32, epochs=12)
        train_small(files, tmp_path / method, method, **settings)
        report, _ = evaluate_model(
            load_model(tmp_path / method), [d.doc for d in test], [list(d.labels) for d in test]
        )
        p_at_1[method] = report.to_dict()["P@1"]
    assert p_at_1["tree+ranker"] >= p_at_1["tree"] + 30.0, p_at_1


@pytest.mark.parametrize("fixture", ["ranker_bundle", "hnsw_bundle"])
def test_two_stage_bundle_round_trip(request: pytest.FixtureRequest, fixture: str, corpus) -> None:
    bundle: Path = request.getfixturevalue(fixture)
    manifest = json.loads((bundle / "manifest.json").read_text())
    expected_kind = "tree+ranker" if fixture == "ranker_bundle" else "hnsw+ranker"
    assert manifest["kind"] == expected_kind and manifest["method"] == expected_kind
    assert manifest["ranker"]["kind"] == "onnx" and manifest["ranker"]["parity_max_abs_diff"] <= 1e-4
    assert {"ranker_feature_table.npy", "scorer.onnx", "ranker.json"} <= set(manifest["files"])
    _, test, _ = corpus
    docs, truths = [d.doc for d in test], [list(d.labels) for d in test]
    first = load_model(bundle)
    assert first.kind == expected_kind
    report, _ = evaluate_model(first, docs, truths)
    assert report.to_dict()["P@1"] > 50.0  # 64 labels: chance is under 2%
    again = load_model(bundle).predict_batch(docs[:20], k=5)
    ref = first.predict_batch(docs[:20], k=5)
    np.testing.assert_array_equal(again.indices, ref.indices)
    np.testing.assert_allclose(again.scores, ref.scores, rtol=1e-6)
    assert set(ref.timings) == {"featurize", "encode", "shortlist", "rank"}
    assert np.all(np.diff(ref.scores, axis=1) <= 0) and np.all((ref.scores >= 0) & (ref.scores <= 1))


def test_sampled_one_vs_all_loss_stands_for_every_label() -> None:
    import scipy.sparse as sp
    import torch

    from training.ranker_train import one_vs_all_loss, sampled_labels

    rng = np.random.default_rng(0)
    Y = sp.random(16, 2000, density=0.003, format="csr", random_state=1, dtype=np.float32)
    Y.data[:] = 1.0
    h = torch.from_numpy(rng.standard_normal((16, 8)).astype(np.float32))
    V = torch.from_numpy(rng.standard_normal((2000, 8)).astype(np.float32)) * 0.3

    def logits_of(ids):
        return h @ (V if ids is None else V[ids]).T

    assert sampled_labels(Y, 2000, rng) is None  # few enough labels: all of them, exactly
    full = float(one_vs_all_loss(logits_of, Y, 2000, rng))
    ids, weight = sampled_labels(Y, 300, rng)
    assert set(np.unique(Y.indices)) <= set(ids.tolist()) and len(ids) < 2000
    assert weight[: len(np.unique(Y.indices))].tolist() == [1.0] * len(np.unique(Y.indices))
    estimates = [float(one_vs_all_loss(logits_of, Y, 300, rng)) for _ in range(200)]
    assert abs(np.mean(estimates) - full) < 0.02 * full  # unbiased: the weighted sample estimates the sum
