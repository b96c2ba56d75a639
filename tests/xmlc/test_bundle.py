import json
import shutil

import numpy as np
import pytest

from xmlc.bundle import MANIFEST, BundleError, read_manifest
from xmlc.labels import ARRAYS as LABEL_ARRAYS
from xmlc.loader import load_model


def test_manifest_describes_the_bundle(tree_bundle):
    manifest = read_manifest(tree_bundle)
    assert manifest["schema_version"] == 1 and manifest["method"] == "tree"
    assert manifest["n_labels"] == 64 and manifest["n_features"] > 100
    assert manifest["kind"] == "tree" and manifest["shortlister"]["kind"] == "tree"
    assert manifest["train_params"]["model"]["cluster"]["branching"] == 4
    assert manifest["shortlister"]["beam_size"] == 10
    # Each part lists its files; together with the label table they are the bundle's files.
    parts = [manifest[role]["files"] for role in ("featurizer", "shortlister")]
    label_files = ["labels.json", *(f"{name}.npy" for name in LABEL_ARRAYS)]
    assert sorted([*(f for files in parts for f in files), *label_files]) == sorted(manifest["files"])
    for name, meta in manifest["files"].items():
        assert (tree_bundle / name).stat().st_size == meta["bytes"] and len(meta["sha256"]) == 64
    assert not any(p.suffix in {".pkl", ".pickle"} for p in tree_bundle.iterdir())


def test_round_trip_predicts_the_same(tree_bundle, corpus):
    texts = [d.doc for d in corpus[1][:50]]
    a = load_model(tree_bundle).predict_batch(texts, 5)
    copy = tree_bundle.parent / "copy"
    shutil.copytree(tree_bundle, copy)
    b = load_model(copy).predict_batch(texts, 5)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)


@pytest.fixture
def broken(tree_bundle, tmp_path):
    target = tmp_path / "b"
    shutil.copytree(tree_bundle, target)
    return target


def test_corrupted_file_is_refused(broken):
    weights = broken / "tree0.level_val.npy"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"checksum mismatch for tree0\.level_val\.npy"):
        load_model(broken)


def test_missing_file_and_missing_manifest_are_refused(broken, tmp_path):
    (broken / "vocabulary.json").unlink()
    with pytest.raises(BundleError, match=r"missing file vocabulary\.json"):
        load_model(broken)
    (broken / MANIFEST).unlink()
    with pytest.raises(BundleError, match=r"no manifest\.json"):
        load_model(broken)
    with pytest.raises(BundleError, match="no such directory"):
        load_model(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda m: m.update(schema_version=99), "schema version 99"),
        (lambda m: m.update(format="other"), "not an xmlc-bundle"),
        (lambda m: m["files"].update({"../etc/passwd": {"sha256": "0", "bytes": 1}}), "escapes the bundle"),
    ],
)
def test_bad_manifest_is_refused(broken, edit, message):
    manifest = json.loads((broken / MANIFEST).read_text())
    edit(manifest)
    (broken / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=message):
        load_model(broken)


def test_manifest_not_json(broken):
    (broken / MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_manifest(broken)


def test_unknown_part_kind_is_refused_by_name(broken):
    manifest = json.loads((broken / MANIFEST).read_text())
    manifest["shortlister"]["kind"] = "forest"
    (broken / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"unknown shortlister kind 'forest'; this build reads .*tree"):
        load_model(broken)


def test_a_manifest_of_the_previous_layout_still_loads(broken, tree_bundle, corpus):
    """Manifests written before the part registry: no file lists per part, tree settings at the top (the
    tree files of that time load too: tests/xmlc/test_tree_search.py)."""
    manifest = json.loads((broken / MANIFEST).read_text())
    for role in ("featurizer", "shortlister"):
        del manifest[role]["files"]
    kept = ("kind", "n_trees", "level_sizes", "layout", "n_features")
    manifest["shortlister"] = {k: manifest["shortlister"][k] for k in kept}
    manifest["predict_params"] = {"beam_size": 10, "post": "l3-hinge"}
    (broken / MANIFEST).write_text(json.dumps(manifest))
    docs = [d.doc for d in corpus[1][:20]]
    old = load_model(broken).predict_batch(docs, 5)
    new = load_model(tree_bundle).predict_batch(docs, 5)
    np.testing.assert_array_equal(old.indices, new.indices)
    np.testing.assert_array_equal(old.scores, new.scores)
