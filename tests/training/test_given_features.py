"""Training, evaluating and serving on given feature vectors (Extreme Classification Repository files)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.main import create_app
from app.settings import Settings
from training.featurizer_fit import fit_featurizer
from training.params import FeaturizerParams
from xmlc.cli import app
from xmlc.data import DataError, read_documents, write_documents
from xmlc.doc import Doc
from xmlc.given_features import GivenFeatures
from xmlc.loader import load_model
from xmlc.synthetic import SyntheticSpec, make_corpus
from xmlc.xc_format import XCData, write_xc

TREE = ["--method", "tree", "--branching", "4", "--leaf-size", "8", "--jobs", "1"]


@pytest.fixture(scope="module")
def xc_files(tmp_path_factory):
    """The same documents as JSON lines (text) and as XC files of their TF-IDF rows (features)."""
    folder = tmp_path_factory.mktemp("xc")
    docs, _ = make_corpus(SyntheticSpec(n_docs=1500, n_labels=64, doc_len=20, noise=0.8, seed=5))
    docs = [d.__class__(d.id, d.text, labels=d.labels) for d in docs]  # no titles: one field
    train, test = docs[:1200], docs[1200:]
    write_documents(folder / "train.jsonl", train)
    write_documents(folder / "test.jsonl", test)
    featurizer, X = fit_featurizer([d.doc for d in train], FeaturizerParams(title_weight=0.0), 1, False)

    def Y(ds):
        rows = [i for i, d in enumerate(ds) for _ in d.labels]
        cols = [int(label[1:]) for d in ds for label in d.labels]
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(ds), 64))

    write_xc(folder / "xc_train.txt", XCData(X, Y(train)))
    write_xc(folder / "xc_test.txt", XCData(featurizer.transform([d.doc for d in test]), Y(test)))
    return folder


def _eval(bundle, data) -> dict:
    r = CliRunner().invoke(app, ["eval", "--bundle", str(bundle), "--data", str(data), "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output[r.output.index("{") :])


def test_an_xc_file_trains_and_scores_as_its_text_does(xc_files, tmp_path):
    """The XC rows are the text's TF-IDF rows, so a tree trained on them scores as the text's tree."""
    for name, data in (("xc", "xc_train.txt"), ("text", "train.jsonl")):
        args = ["train", "--train", str(xc_files / data), "--out", str(tmp_path / name), *TREE]
        r = CliRunner().invoke(app, [*args, "--title-weight", "0"])
        assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "xc" / "manifest.json").read_text())
    assert manifest["featurizer"]["kind"] == "features" and manifest["n_labels"] == 64
    on_xc = _eval(tmp_path / "xc", xc_files / "xc_test.txt")
    on_text = _eval(tmp_path / "text", xc_files / "test.jsonl")
    assert 30 < on_xc["P@1"] < 100
    for m in ("P@1", "P@5", "nDCG@5"):
        assert on_xc[m] == pytest.approx(on_text[m], abs=0.5)
    # Batch predict from the XC file: row numbers as ids, labels as the file's label indices.
    out = tmp_path / "pred.jsonl"
    args = ["predict", "--bundle", str(tmp_path / "xc"), "--input", str(xc_files / "xc_test.txt")]
    r = CliRunner().invoke(app, [*args, "--output", str(out), "-k", "3"])
    assert r.exit_code == 0, r.output
    first = json.loads(out.read_text().splitlines()[0])
    assert first["id"] == "0" and len(first["labels"]) == 3 and first["labels"][0]["id"].isdigit()


def test_the_api_labels_a_feature_vector(xc_files, tmp_path):
    args = ["train", "--train", str(xc_files / "xc_train.txt"), "--out", str(tmp_path / "b"), *TREE]
    assert CliRunner().invoke(app, args).exit_code == 0
    doc = read_documents(xc_files / "xc_test.txt")[0][0]
    features = {str(i): v for i, v in zip(*doc.features, strict=True)}
    with TestClient(create_app(Settings(bundle=tmp_path / "b", redis_url=None))) as client:
        r = client.post("/predict", json={"features": features, "k": 3})
        assert r.status_code == 200, r.text
        expected = load_model(tmp_path / "b").predict([doc.doc], k=3)[0]
        assert [x["id"] for x in r.json()["labels"]] == [p.id for p in expected]
        assert r.json().get("warning") is None
        batch = client.post("/predict", json={"documents": [{"features": features}, {"text": "words"}]})
        results = batch.json()["results"]
        assert results[0]["labels"][0]["id"] == r.json()["labels"][0]["id"]
        assert results[1].get("warning")  # a text means nothing to a bundle of feature vectors
        bad_vectors = (
            ({"9x": 1.0}, "non-negative integer"),
            ({}, "non-empty object"),
            ({"1" * 20: 1}, "10^9"),
        )
        for bad, message in bad_vectors:
            r = client.post("/predict", json={"features": bad})
            assert r.status_code == 422 and message in r.text


def test_given_features_rows_and_bad_vectors(tmp_path):
    featurizer = GivenFeatures(4)
    X = featurizer.transform([Doc("", features=((0, 2, 2, 9), (3.0, 2.0, 2.0, 5.0))), Doc("words")])
    assert X.shape == (2, 4) and X[1].nnz == 0  # unknown id 9 dropped, repeated id 2 summed
    assert np.allclose(X[0].toarray(), [[0.6, 0, 0.8, 0]])
    assert featurizer.save(tmp_path) == ["given_features.json"]
    assert GivenFeatures.load(tmp_path, None).meta() == {"dim": 4, "normalize": True}
    lines = ['{"id": "a", "features": {"3": 1.5}, "labels": ["x"]}', '{"id": "b", "features": {"3": "high"}}']
    (tmp_path / "docs.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"docs.jsonl:2: feature 3: value must be a finite number"):
        read_documents(tmp_path / "docs.jsonl")
    docs, _ = read_documents(tmp_path / "docs.jsonl", skip_bad=True)
    assert docs[0].features == ((3,), (1.5,)) and docs[0].text == ""


def test_a_text_method_refuses_feature_vectors(xc_files, tmp_path):
    args = ["train", "--train", str(xc_files / "xc_train.txt"), "--out", str(tmp_path / "b")]
    r = CliRunner().invoke(app, [*args, "--method", "attentionxml"])
    assert r.exit_code == 2 and "reads raw text" in r.output
