"""The ONNX ranker: export parity, learning on generated data, bundle round trips, torch-free serving."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from model_export.onnx_export import OPSET, ParityError, export_and_check, parity_check  # noqa: E402
from training.ranker_model import RankerNet, RankerNetParams, merge_rankers  # noqa: E402
from training.ranker_train import RankerTrainParams, bag_tensors, train_ranker  # noqa: E402
from training.train import TrainConfig, train_bundle  # noqa: E402
from xmlc.data import write_documents  # noqa: E402
from xmlc.evaluation import evaluate_pipeline  # noqa: E402
from xmlc.pipeline import Pipeline  # noqa: E402
from xmlc.ranker import OnnxRanker, RankerConfig, padded_rows  # noqa: E402
from xmlc.synthetic import SyntheticSpec, make_corpus  # noqa: E402


def _random_inputs(n_docs: int, n_features: int, n_labels: int, n_cand: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = sp.random(n_docs, n_features, density=0.05, format="csr", dtype=np.float32, random_state=seed)
    X.data = rng.random(X.nnz).astype(np.float32)
    cand = rng.integers(0, n_labels, size=(n_docs, n_cand)).astype(np.int64)
    prior = rng.random((n_docs, n_cand)).astype(np.float32)
    return X, cand, prior


def _net(n_features: int = 300, n_labels: int = 40, hidden: int = 16) -> RankerNet:
    torch.manual_seed(0)
    net = RankerNet(n_features, n_labels, RankerNetParams(dim=24, hidden=hidden))
    with torch.no_grad():  # move away from the init so that every term matters
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net.eval()


def test_padded_rows() -> None:
    X = sp.csr_matrix(np.array([[0, 2.0, 0, 1.0], [0, 0, 0, 0], [3.0, 0, 0, 0]], dtype=np.float32))
    ids, vals = padded_rows(X)
    assert ids.shape == vals.shape == (3, 2)
    assert ids.tolist() == [[1, 3], [0, 0], [0, 0]]
    assert vals.tolist() == [[2.0, 1.0], [0.0, 0.0], [3.0, 0.0]]


def _tiny_training_set():
    """64 random documents whose first candidate is their one true label, and small ranker settings."""
    X, cand, prior = _random_inputs(64, 120, 20, 10)
    Y = sp.csr_matrix((np.ones(64, np.float32), (np.arange(64), cand[:, 0])), shape=(64, 20))
    return X, Y, cand, prior, RankerTrainParams(net=RankerNetParams(dim=8), epochs=2, n_candidates=10)


def test_feature_dropout_changes_training_and_is_checked() -> None:
    X, Y, cand, prior, base = _tiny_training_set()
    plain = train_ranker(X, Y, cand, prior, base, progress=False)
    dropped = train_ranker(X, Y, cand, prior, replace(base, feature_dropout=0.5), progress=False)
    again = train_ranker(X, Y, cand, prior, replace(base, feature_dropout=0.5), progress=False)
    assert not torch.allclose(plain.features.weight, dropped.features.weight)
    assert torch.equal(dropped.features.weight, again.features.weight)  # seeded: reproducible
    with pytest.raises(ValueError, match="feature_dropout"):
        RankerTrainParams(feature_dropout=1.0)


@pytest.mark.parametrize("hidden", [0, 16])
def test_merged_rankers_score_the_mean_logit(tmp_path: Path, hidden: int) -> None:
    nets = []
    for seed in range(3):
        torch.manual_seed(seed)
        net = RankerNet(300, 40, RankerNetParams(dim=8 + 4 * seed, hidden=hidden and hidden + seed))
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.3 * torch.randn_like(p))
        nets.append(net.eval())
    merged = merge_rankers(nets)
    assert merged.params.dim == 8 + 12 + 16
    X, cand, prior = _random_inputs(16, 300, 40, 7)
    bag = bag_tensors(X, np.arange(16))
    c, p = torch.from_numpy(cand), torch.from_numpy(prior)
    with torch.no_grad():
        mean = torch.stack([n.score(n.encode_bag(*bag), c, p) for n in nets]).mean(0)
        got = merged.score(merged.encode_bag(*bag), c, p)
    torch.testing.assert_close(got, mean, rtol=1e-5, atol=1e-5)
    config = RankerConfig(dim=merged.params.dim, n_features=300, n_labels=40, n_candidates=7)
    assert export_and_check(merged, tmp_path, config, X, cand, prior)[1] <= 1e-4


def test_several_models_are_trained_and_merged() -> None:
    X, Y, cand, prior, base = _tiny_training_set()
    one = train_ranker(X, Y, cand, prior, base, progress=False)
    two = train_ranker(X, Y, cand, prior, replace(base, n_models=2), progress=False)
    assert two.params.dim == 16
    # The first member is the single model (same seed): its half of the term table is identical.
    assert torch.equal(two.features.weight[:, :8], one.features.weight)
    with pytest.raises(ValueError, match="n_models"):
        RankerTrainParams(n_models=0)


@pytest.mark.parametrize("hidden", [0, 16])
def test_export_parity_on_other_shapes(tmp_path: Path, hidden: int) -> None:
    net = _net(hidden=hidden)
    X, cand, prior = _random_inputs(8, 300, 40, 5)
    config = RankerConfig(dim=24, n_features=300, n_labels=40, n_candidates=5)
    files, diff = export_and_check(net, tmp_path, config, X, cand, prior)
    assert sorted(files) == ["encoder.onnx", "ranker.json", "scorer.onnx"]
    assert diff <= 1e-4
    for name in ("encoder.onnx", "scorer.onnx"):
        model = onnx.load(str(tmp_path / name))
        assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= OPSET
    # Dynamic axes: other batch, document-length and candidate sizes than the export used.
    X2, cand2, prior2 = _random_inputs(3, 300, 40, 17, seed=5)
    assert parity_check(net, OnnxRanker.load(tmp_path), X2, cand2, prior2) <= 1e-4


def test_parity_check_refuses_a_graph_that_differs(tmp_path: Path) -> None:
    net = _net()
    X, cand, prior = _random_inputs(8, 300, 40, 5)
    export_and_check(net, tmp_path, RankerConfig(dim=24, n_features=300, n_labels=40), X, cand, prior)
    with torch.no_grad():
        net.label_bias.weight.add_(0.5)
    with pytest.raises(ParityError):
        parity_check(net, OnnxRanker.load(tmp_path), X, cand, prior)


def _net_with_text(
    n_features: int = 300, n_labels: int = 40, mode: str = "shared"
) -> tuple[RankerNet, sp.csr_matrix]:
    text = sp.random(n_labels, n_features, density=0.02, format="lil", dtype=np.float32, random_state=1)
    text[3] = 0  # a label without text
    text = text.tocsr()
    torch.manual_seed(0)
    net = RankerNet(n_features, n_labels, RankerNetParams(dim=24, label_text=mode), text)
    with torch.no_grad():
        net.text_weight.fill_(0.7)
    return net.eval(), text


def test_label_text_vectors_are_the_encoded_names() -> None:
    net, text = _net_with_text()
    ids = torch.tensor([[5, 3, 5], [39, 0, 12]])
    dense = torch.from_numpy(text.toarray()) @ net.features.weight.detach()
    expected = net.labels.weight.detach()[ids] + 0.7 * dense[ids]
    assert torch.allclose(net.label_vectors(ids).detach(), expected, atol=1e-6)
    # Gradients reach the term table through the label side too, except when detached.
    net.label_vectors(ids).sum().backward()
    assert net.features.weight.grad is not None
    detached, _ = _net_with_text(mode="detached")
    detached.label_vectors(ids).sum().backward()
    assert detached.features.weight.grad is None


def test_label_text_is_off_by_default() -> None:
    _, text = _net_with_text()
    assert RankerNet(300, 40, RankerNetParams(dim=8), text).text is None


@pytest.mark.parametrize("mode", ["shared", "detached", "own"])
def test_folding_label_text_keeps_every_score(tmp_path: Path, mode: str) -> None:
    net, _ = _net_with_text(mode=mode)
    if net.text_table is not None:  # starts at zero: give it values so that folding has work to do
        with torch.no_grad():
            net.text_table.weight.normal_(std=0.1)
    X, cand, prior = _random_inputs(8, 300, 40, 6)
    with torch.no_grad():
        h = net.encode_bag(*bag_tensors(X, np.arange(8)))
        before = net.score(h, torch.from_numpy(cand), torch.from_numpy(prior))
        every = net.score_all(h)
        net.fold_label_text()
        assert net.text is None
        assert torch.allclose(
            net.score(h, torch.from_numpy(cand), torch.from_numpy(prior)), before, atol=1e-5
        )
        assert torch.allclose(net.score_all(h), every, atol=1e-5)
    # The folded net exports like any other and passes parity.
    config = RankerConfig(dim=24, n_features=300, n_labels=40, n_candidates=6)
    _, diff = export_and_check(net, tmp_path, config, X, cand, prior)
    assert diff <= 1e-4


def test_label_text_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="label text"):
        RankerNet(
            300, 40, RankerNetParams(dim=8, label_text="shared"), sp.csr_matrix((41, 300), dtype=np.float32)
        )


def test_ranker_improves_over_a_weak_tree(tmp_path: Path) -> None:
    docs, _ = make_corpus(SyntheticSpec(n_docs=1500, n_labels=64, noise=0.9, seed=3))
    write_documents(tmp_path / "train.jsonl", docs[:1200])
    test = docs[1200:]
    p_at_1 = {}
    for method in ("tree", "tree+ranker"):
        # C=0.01 leaves the tree barely trained: the ranker must do the work on its shortlists.
        config = (
            TrainConfig.for_method(method, n_jobs=1)
            .with_tree(branching=4, leaf_size=8, C=0.01)
            .with_ranker(dim=32, epochs=12)
        )
        train_bundle(tmp_path / "train.jsonl", tmp_path / method, config, progress=False)
        report, _ = evaluate_pipeline(
            Pipeline.load(tmp_path / method), [d.full_text for d in test], [list(d.labels) for d in test]
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
    texts, truths = [d.full_text for d in test], [list(d.labels) for d in test]
    first = Pipeline.load(bundle)
    assert first.kind == expected_kind
    report, _ = evaluate_pipeline(first, texts, truths)
    assert report.to_dict()["P@1"] > 50.0  # 64 labels: chance is under 2%
    again = Pipeline.load(bundle).predict_batch(texts[:20], k=5)
    ref = first.predict_batch(texts[:20], k=5)
    np.testing.assert_array_equal(again.indices, ref.indices)
    np.testing.assert_allclose(again.scores, ref.scores, rtol=1e-6)
    assert set(ref.timings) == {"featurize", "encode", "shortlist", "rank"}
    assert np.all(np.diff(ref.scores, axis=1) <= 0) and np.all((ref.scores >= 0) & (ref.scores <= 1))


def test_k_beyond_the_candidate_depth(ranker_bundle: Path) -> None:
    pipeline = Pipeline.load(ranker_bundle)
    res = pipeline.predict_batch(["w_a w_b some text"], k=50)  # n_candidates is 32 in the fixture
    assert res.indices.shape == (1, 50)
    assert len(set(res.indices[0].tolist())) == 50


def test_ranker_config_mismatch_is_refused(ranker_bundle: Path) -> None:
    pipeline = Pipeline.load(ranker_bundle)
    assert pipeline.ranker is not None
    bad = OnnxRanker(
        pipeline.ranker.encoder,
        pipeline.ranker.scorer,
        replace(pipeline.ranker.config, n_labels=pipeline.ranker.config.n_labels + 1),
    )
    with pytest.raises(ValueError):
        Pipeline(pipeline.featurizer, pipeline.shortlister, pipeline.labels, pipeline.manifest, bad)


SERVING_PROBE = """
import sys
from fastapi.testclient import TestClient
from app.main import create_app
from app.settings import Settings
from xmlc.pipeline import Pipeline
for folder in sys.argv[1:]:
    Pipeline.load(folder).predict(["some words w_a"], k=3)
    with TestClient(create_app(Settings(bundle=folder, redis_url=None))) as client:
        r = client.post("/predict", json={"text": "some words w_a", "k": 3})
        assert r.status_code == 200, r.text
        assert len(r.json()["labels"]) == 3
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "training", "model_export"))
print("IMPORTED:" + ",".join(bad))
"""


def test_serving_path_imports_neither_torch_nor_training(ranker_bundle: Path, hnsw_bundle: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SERVING_PROBE, str(ranker_bundle), str(hnsw_bundle)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.returncode == 0, out.stderr
    assert "IMPORTED:\n" in out.stdout or out.stdout.strip().endswith("IMPORTED:"), out.stdout


def test_large_batches_are_chunked_with_the_same_result(ranker_bundle: Path, corpus, monkeypatch) -> None:
    import xmlc.ranker as ranker_module

    pipeline = Pipeline.load(ranker_bundle)
    assert pipeline.ranker is not None
    _, test, _ = corpus
    X = pipeline.featurizer.transform([d.full_text for d in test[:40]])
    whole = pipeline.ranker.encode(X)
    monkeypatch.setattr(ranker_module, "MAX_PADDED_TERMS", 64)  # a few rows per call
    monkeypatch.setattr(ranker_module, "SCORER_CHUNK_DOCS", 7)
    chunked = pipeline.ranker.encode(X)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
    cand = np.tile(np.arange(10), (40, 1))
    prior = np.full((40, 10), 0.5, np.float32)
    monkeypatch.setattr(ranker_module, "SCORER_CHUNK_DOCS", 512)
    ref = pipeline.ranker.score(whole, cand, prior)
    monkeypatch.setattr(ranker_module, "SCORER_CHUNK_DOCS", 7)
    np.testing.assert_allclose(pipeline.ranker.score(whole, cand, prior), ref, rtol=1e-6)
