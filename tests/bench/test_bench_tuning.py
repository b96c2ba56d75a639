"""The tuning scripts of bench/: the split they share, ranker variants and the ensemble weight search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from bench.tune_ensemble import main as tune_ensemble
from bench.tune_ensemble import weight_grid
from bench.tune_ranker import main as tune_ranker
from bench.tune_ranker import parse_variant, split_documents
from training.methods import TREE_RANKER
from xmlc.data import write_documents
from xmlc.synthetic import SyntheticSpec, make_corpus


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("eurlex-like")
    docs, _ = make_corpus(SyntheticSpec(n_docs=900, n_labels=40, seed=5))
    write_documents(folder / "train.jsonl.gz", docs)
    return folder


def test_split_is_seeded_disjoint_and_complete() -> None:
    docs, _ = make_corpus(SyntheticSpec(n_docs=50, seed=1))
    fit, held = split_documents(docs, 0.2, seed=3)
    assert len(held) == 10 and len(fit) == 40
    assert {d.id for d in fit} | {d.id for d in held} == {d.id for d in docs}
    assert not {d.id for d in fit} & {d.id for d in held}
    assert [d.id for d in split_documents(docs, 0.2, seed=3)[1]] == [d.id for d in held]


def test_variants_override_the_shipped_ranker() -> None:
    params = parse_variant("dim=512,epochs=6,lr=0.01", TREE_RANKER)
    assert (params.dim, params.epochs, params.lr) == (512, 6, 0.01)
    assert params.batch_size == TREE_RANKER.batch_size
    assert parse_variant("base", TREE_RANKER) == TREE_RANKER
    with pytest.raises(SystemExit, match="colour"):
        parse_variant("colour=3", TREE_RANKER)


def test_weight_grid_sums_to_one() -> None:
    grid = weight_grid(2, 0.25)
    assert grid == [(0.0, 1.0), (0.25, 0.75), (0.5, 0.5), (0.75, 0.25), (1.0, 0.0)]
    assert all(abs(sum(w) - 1) < 1e-9 for w in weight_grid(3, 0.1))


def test_ranker_variants_are_scored_on_the_held_out_part(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "tune.json"
    argv = ["--data", str(data_dir), "--variants", "base;epochs=1", "--jobs", "1", "--json", str(out)]
    assert tune_ranker(argv) == 0
    rows = json.loads(out.read_text())
    assert [r["variant"] for r in rows] == ["trees alone", "base", "epochs=1"]
    assert rows[0]["P@1"] > 50  # planted structure: far above chance (1 in 40)
    assert all(0 <= r["P@5"] <= 100 and 0 <= r["R@100"] <= 100 for r in rows)


def test_title_weights_and_beams_each_get_their_rows(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "tune.json"
    argv = ["--data", str(data_dir), "--variants", "epochs=1", "--title-weights", "0,1", "--beams", "2,10"]
    assert tune_ranker([*argv, "--jobs", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(r["title_weight"], r["beam"], r["variant"]) for r in rows] == [
        (w, b, v) for w in (0.0, 1.0) for b in (2, 10) for v in ("trees alone", "epochs=1")
    ]
    assert all(r["P@1"] > 50 for r in rows)


def test_ensemble_weights_end_to_end(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ens.json"
    argv = ["--data", str(data_dir), "--members", "tree,bonsai", "--step", "0.5"]
    assert tune_ensemble([*argv, "--out", str(tmp_path / "split"), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["weights"] for r in result["rows"]] == [
        {"tree": 0.0, "bonsai": 1.0},
        {"tree": 0.5, "bonsai": 0.5},
        {"tree": 1.0, "bonsai": 0.0},
    ]
    assert result["best"] in result["rows"]
    assert all(r["P@1"] > 50 for r in result["rows"])
