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
    assert {"encoder.onnx", "scorer.onnx", "ranker.json"} <= set(manifest["files"])
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
