"""The AttentionXML-like family: learns a planted structure, exports with parity, serves through the app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastapi.testclient import TestClient  # noqa: E402

from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402
from model_export.attention_export import export_attention, parity_check  # noqa: E402
from model_export.onnx_graph import ParityError  # noqa: E402
from training.attention_xml import AttentionNet  # noqa: E402
from training.params import AttentionParams, TrainParams  # noqa: E402
from training.train import train_bundle  # noqa: E402
from xmlc.attention import AttentionConfig, AttentionShortlister  # noqa: E402
from xmlc.evaluation import evaluate_model  # noqa: E402
from xmlc.loader import load_model  # noqa: E402

SMALL = AttentionParams(
    max_len=64, emb_dim=32, hidden=32, n_clusters=8, train_beam=3, beam=4, epochs=6, batch_size=16, lr=1e-2
)


@pytest.fixture(scope="module")
def attention_bundle(tmp_path_factory: pytest.TempPathFactory, corpus_files) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "attentionxml"
    params = TrainParams("attentionxml", SMALL)
    train_bundle(
        corpus_files["train"],
        out,
        params,
        labels_path=corpus_files["labels"],
        n_jobs=1,
        progress=False,
        holdout=0,
    )
    return out


def test_attention_learns_and_round_trips(attention_bundle: Path, corpus) -> None:
    manifest = json.loads((attention_bundle / "manifest.json").read_text())
    assert manifest["kind"] == "attention" and manifest["method"] == "attentionxml"
    assert manifest["shortlister"]["parity_max_abs_diff"] <= 1e-4
    _, test, _ = corpus
    texts, truths = [d.doc for d in test], [list(d.labels) for d in test]
    pipeline = load_model(attention_bundle)
    report, _ = evaluate_model(pipeline, texts, truths)
    # 64 labels: chance P@1 is under 2%, always answering the most frequent label about 10%.
    assert report.to_dict()["P@1"] > 40.0, report.to_dict()
    res = pipeline.predict_batch(texts[:10], k=5)
    again = load_model(attention_bundle).predict_batch(texts[:10], k=5)
    np.testing.assert_array_equal(res.indices, again.indices)
    assert np.all(np.diff(res.scores, axis=1) <= 0) and np.all((res.scores >= 0) & (res.scores <= 1))
    # One document alone gets what it gets in a batch (inputs are padded to a fixed length).
    alone = pipeline.predict_batch(texts[3:4], k=5)
    np.testing.assert_array_equal(alone.indices[0], res.indices[3])


def test_attention_bundle_serves_through_the_app(attention_bundle: Path, corpus) -> None:
    _, test, _ = corpus
    with TestClient(create_app(Settings(bundle=attention_bundle, redis_url=None))) as client:  # type: ignore[arg-type]
        r = client.post("/predict", json={"text": test[0].text, "title": test[0].title, "k": 3})
        assert r.status_code == 200, r.text
        labels = r.json()["labels"]
        assert len(labels) == 3 and all(lab["id"].startswith("L") for lab in labels)
        assert client.get("/model").json()["method"] == "attentionxml"


def test_attention_parity_refuses_a_graph_that_differs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    p = AttentionParams(emb_dim=8, hidden=4)
    net = AttentionNet(30, (3, 9), p).eval()
    members = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    config = AttentionConfig(max_len=12, n_words=30, n_clusters=3, n_labels=9, beam=2)
    ids = np.random.default_rng(0).integers(0, 31, (5, 12))
    exported = export_attention(net, np.arange(31), members, config, ids)
    exported.save(tmp_path)
    model = AttentionShortlister.load(tmp_path, exported.meta())
    assert model.export_info == exported.export_info
    assert parity_check(net, model, ids) <= 1e-4
    with torch.no_grad():
        net.bias[1].weight.add_(1.0)
    with pytest.raises(ParityError):
        parity_check(net, model, ids)
