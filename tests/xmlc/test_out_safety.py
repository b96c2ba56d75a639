"""`--out` never destroys what a user owns: a folder of other things or a file is refused before any
training, a bundle is replaced only with --force (and only once the new one is complete)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xmlc.bundle import BundleError, check_out, read_manifest
from xmlc.cli import app

runner = CliRunner()
SMALL = ["--branching", "4", "--leaf-size", "8", "--jobs", "1", "--method", "tree"]


def train(train_file: Path, out: Path, *extra: str):
    return runner.invoke(app, ["train", "--train", str(train_file), "--out", str(out), *SMALL, *extra])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_training_into_the_folder_of_its_own_data_is_refused(tmp_path, corpus_files):
    mydata = tmp_path / "mydata"
    mydata.mkdir()
    shutil.copy(corpus_files["train"], mydata / "train.jsonl.gz")
    (mydata / "notes.txt").write_text("mine")
    before = snapshot(mydata)
    r = train(mydata / "train.jsonl.gz", mydata)
    assert r.exit_code == 2
    assert "exists and is not a bundle" in r.output and "nothing written" in r.output
    assert snapshot(mydata) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mydata"]  # no hidden copy or leftover


def test_an_existing_file_is_refused_and_left_alone(tmp_path, corpus_files):
    target = tmp_path / "model.bin"
    target.write_bytes(b"precious")
    r = train(corpus_files["train"], target)
    assert r.exit_code == 2 and "(a file)" in r.output
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]


def test_a_bundle_is_replaced_only_with_force(tmp_path, corpus_files):
    out = tmp_path / "bundle"
    assert train(corpus_files["train"], out).exit_code == 0
    first = read_manifest(out)
    r = train(corpus_files["train"], out, "--C", "0.5")
    assert r.exit_code == 2 and "--force replaces it" in r.output
    assert read_manifest(out)["version"] == first["version"]
    r = train(corpus_files["train"], out, "--C", "0.5", "--force")
    assert r.exit_code == 0, r.output
    assert read_manifest(out)["version"] != first["version"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_an_empty_folder_is_free(tmp_path, corpus_files):
    out = tmp_path / "empty"
    out.mkdir()
    assert train(corpus_files["train"], out).exit_code == 0
    assert (out / "manifest.json").is_file()


def test_check_out_rules(tmp_path):
    check_out(tmp_path / "new")  # does not exist: free
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.json").write_text(json.dumps({"format": "xmlc-bundle"}))
    with pytest.raises(BundleError, match="--force"):
        check_out(tmp_path / "b")
    check_out(tmp_path / "b", force=True)
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "manifest.json").write_text("{}")  # someone else's manifest: not ours to replace
    with pytest.raises(BundleError, match="not a bundle"):
        check_out(tmp_path / "fake", force=True)
