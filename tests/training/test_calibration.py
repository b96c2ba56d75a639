"""Calibrated scores and chosen defaults: the isotonic map, its bundle file, `xmlc calibrate`,
`xmlc optimize`, and both used by the CLI and the service."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.main import create_app
from app.settings import Settings
from training.calibration import fit_calibration, optimize
from xmlc.calibration import Calibration, expected_calibration_error
from xmlc.cli import app
from xmlc.loader import load_model

runner = CliRunner()


def test_ece_by_hand():
    probs = np.array([0.9, 0.9, 0.1, 0.1])
    correct = np.array([1, 0, 0, 0])
    # two bins: {0.9, 0.9} precision 0.5 -> |0.5 - 0.9|; {0.1, 0.1} precision 0 -> 0.1
    assert expected_calibration_error(probs, correct) == pytest.approx((2 * 0.4 + 2 * 0.1) / 4)
    assert expected_calibration_error(np.array([]), np.array([])) == 0.0


def test_calibration_is_checked_and_round_trips(tmp_path):
    with pytest.raises(ValueError, match="non-decreasing"):
        Calibration(np.array([0.0, 1.0]), np.array([0.5, 0.2]), {})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Calibration(np.array([0.0, 1.0]), np.array([0.0, 1.5]), {})
    cal = Calibration(np.array([0.1, 0.5]), np.array([0.2, 0.8]), {"n": 3})
    cal.save(tmp_path)
    back = Calibration.load(tmp_path)
    np.testing.assert_allclose(back(np.array([0.0, 0.3, 1.0])), [0.2, 0.5, 0.8], rtol=1e-6)


def test_fit_keeps_the_order_and_lowers_the_error_on_held_out(tree_bundle, corpus):
    model = load_model(tree_bundle)
    test = corpus[1]
    fit_docs, check_docs = test[:150], test[150:]
    truths = [set(d.labels) for d in fit_docs]
    raw = model.predict_batch([d.doc for d in check_docs], 5)
    model.calibration = fit_calibration(model, [d.doc for d in fit_docs], truths)
    after = model.predict_batch([d.doc for d in check_docs], 5)
    np.testing.assert_array_equal(raw.indices, after.indices)  # order is the model's
    check_truths = [set(d.labels) for d in check_docs]
    hits = np.array(
        [[model.labels.ids[j] in t for j in row] for row, t in zip(raw.indices, check_truths, strict=True)]
    )
    ece_raw = expected_calibration_error(np.clip(raw.scores, 0, 1), hits)
    ece_cal = expected_calibration_error(model.calibration(raw.scores), hits)
    assert ece_cal < ece_raw and ece_cal < 0.1


def test_calibrate_and_optimize_commands_and_their_use(tree_bundle, corpus_files, corpus, tmp_path):
    held = tmp_path / "held.jsonl"
    held.write_text("".join(line + "\n" for line in corpus_files["test"].read_text().splitlines()[:200]))
    cal = tmp_path / "calibrated"
    r = runner.invoke(
        app, ["calibrate", "--bundle", str(tree_bundle), "--data", str(held), "--out", str(cal)]
    )
    assert r.exit_code == 0, r.output
    assert "expected calibration error" in r.output
    manifest = json.loads((cal / "manifest.json").read_text())
    assert manifest["calibration"]["kind"] == "isotonic" and "calibration.json" in manifest["files"]
    r = runner.invoke(app, ["eval", "--bundle", str(cal), "--data", str(corpus_files["test"]), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["calibrated"] is True

    best = tmp_path / "best"
    r = runner.invoke(app, ["optimize", "--bundle", str(cal), "--data", str(held), "--out", str(best)])
    assert r.exit_code == 0, r.output
    defaults = json.loads((best / "manifest.json").read_text())["defaults"]
    model = load_model(best)
    assert model.defaults == defaults and 1 <= defaults["k"] <= 10
    # The choice is at least as good as every fixed k without a threshold, on the same documents.
    docs = [d.doc for d in corpus[1][:200]]
    truths = [set(d.labels) for d in corpus[1][:200]]
    chosen, table = optimize(model, docs, truths)
    assert chosen["f1"] >= max(row["F1"] for row in table if row["threshold"] == 0.0)

    r = runner.invoke(app, ["predict", "--bundle", str(best), "--text", "wa wb wc wd"])
    labels = json.loads(r.output)["labels"]
    assert len(labels) <= defaults["k"] and all(x["score"] >= defaults["threshold"] for x in labels)
    with TestClient(create_app(Settings(bundle=best))) as client:
        got = client.post("/predict", json={"text": "wa wb wc wd"}).json()["labels"]
        assert got == labels  # the service uses the same defaults and calibrated scores
        many = client.post("/predict", json={"text": "wa wb wc wd", "k": 10, "threshold": 0}).json()
        assert len(many["labels"]) == 10  # a request's own k and threshold win
