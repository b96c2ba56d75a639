"""Ensemble bundles: members saved with checksums, merged scores, served like any bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from xmlc.bundle import BundleError
from xmlc.ensemble import Ensemble, merge_top_k
from xmlc.evaluation import evaluate_model
from xmlc.loader import load_model


def write_ensemble(out: Path, members: list[Path], weights: list[float] | None = None) -> dict:
    return Ensemble([load_model(m) for m in members], weights).save(out)


def test_merge_top_k_sums_weighted_scores() -> None:
    a = (np.array([[3, 1, 2]]), np.array([[0.9, 0.5, 0.1]], np.float32))
    b = (np.array([[1, 4, -1]]), np.array([[0.8, 0.7, -1.0]], np.float32))
    idx, sc = merge_top_k([a, b], [0.5, 0.5], 4)
    assert idx.tolist() == [[1, 3, 4, 2]]  # 1: (0.5 + 0.8) / 2, 3: 0.45, 4: 0.35, 2: 0.05; -1 dropped
    np.testing.assert_allclose(sc[0], [0.65, 0.45, 0.35, 0.05], rtol=1e-6)
    idx, _ = merge_top_k([a, b], [1.0, 0.0], 6)
    assert idx[0, :3].tolist() == [3, 1, 2] and idx[0, 4:].tolist() == [-1, -1]


def test_ensemble_bundle_round_trip(tmp_path: Path, tree_bundle: Path, ranker_bundle: Path, corpus) -> None:
    out = tmp_path / "ens"
    manifest = write_ensemble(out, [tree_bundle, ranker_bundle], [0.3, 0.7])
    assert manifest["kind"] == "ensemble" and len(manifest["members"]) == 2
    assert any(f.startswith("members/1-tree+ranker/") for f in manifest["files"])
    _, test, _ = corpus
    texts, truths = [d.doc for d in test], [list(d.labels) for d in test]
    ens = load_model(out)
    assert isinstance(ens, Ensemble) and ens.kind == "ensemble"
    # The members are the bundles they were made of: same answers.
    for member, source in zip(ens.members, (tree_bundle, ranker_bundle), strict=True):
        np.testing.assert_array_equal(
            member.predict_batch(texts[:20], 5).indices,
            load_model(source).predict_batch(texts[:20], 5).indices,
        )
    p1 = {}
    for label, model in (("ens", ens), ("tree", load_model(tree_bundle))):
        report, _ = evaluate_model(model, texts, truths)
        p1[label] = report.to_dict()["P@1"]
    assert p1["ens"] >= p1["tree"] - 1.0, p1
    res = ens.predict_batch(texts[:5], k=3)
    assert res.indices.shape == (5, 3) and np.all(np.diff(res.scores, axis=1) <= 0)
    with TestClient(create_app(Settings(bundle=out, redis_url=None))) as client:  # type: ignore[arg-type]
        r = client.post("/predict", json={"text": test[0].text, "title": test[0].title, "k": 3})
        assert r.status_code == 200 and len(r.json()["labels"]) == 3
        assert client.get("/model").json()["method"] == "ensemble"


def test_a_changed_member_file_is_refused(tmp_path: Path, tree_bundle: Path, ranker_bundle: Path) -> None:
    out = tmp_path / "ens"
    write_ensemble(out, [tree_bundle, ranker_bundle])
    member_manifest = out / "members" / "0-tree" / "manifest.json"
    data = json.loads(member_manifest.read_text())
    data["name"] = "tampered"
    member_manifest.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="checksum"):
        load_model(out)


def test_ensemble_needs_two_members_and_valid_weights(tmp_path: Path, tree_bundle: Path) -> None:
    with pytest.raises(ValueError, match="two member"):
        write_ensemble(tmp_path / "e", [tree_bundle])
    with pytest.raises(ValueError, match="weight"):
        write_ensemble(tmp_path / "e", [tree_bundle, tree_bundle], [1.0])


def test_ensemble_command(tmp_path: Path, tree_bundle: Path, ranker_bundle: Path) -> None:
    from typer.testing import CliRunner

    from xmlc.cli import app

    runner = CliRunner()
    args = [
        "ensemble",
        "--member",
        str(tree_bundle),
        "--member",
        str(ranker_bundle),
        "--out",
        str(tmp_path / "e"),
    ]
    ok = runner.invoke(app, [*args, "--weights", "1,2"])
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "e" / "manifest.json").read_text())["members"][1]["weight"] == 2.0
    bad = runner.invoke(app, ["ensemble", "--member", str(tree_bundle), "--out", str(tmp_path / "f")])
    assert bad.exit_code == 2 and "two member" in bad.output
