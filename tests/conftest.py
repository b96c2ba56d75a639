"""Shared fixtures: a small generated corpus and one trained bundle, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from xmlc.data import Document, write_documents
from xmlc.synthetic import SyntheticSpec, make_corpus


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The Docker deployment test runs after everything else (it is the slowest, and needs the engine)."""
    items.sort(key=lambda item: item.get_closest_marker("deployment") is not None)


@pytest.fixture(scope="session")
def corpus() -> tuple[list[Document], list[Document], dict[str, str]]:
    docs, names = make_corpus(SyntheticSpec(n_docs=1500, n_labels=64, seed=1))
    return docs[:1200], docs[1200:], names


@pytest.fixture(scope="session")
def corpus_files(tmp_path_factory: pytest.TempPathFactory, corpus) -> dict[str, Path]:
    train, test, names = corpus
    folder = tmp_path_factory.mktemp("corpus")
    write_documents(folder / "train.jsonl.gz", train)
    write_documents(folder / "test.jsonl", test)
    (folder / "labels.jsonl").write_text(
        "".join(f'{{"id": "{i}", "name": "{n}"}}\n' for i, n in names.items())
    )
    return {
        "train": folder / "train.jsonl.gz",
        "test": folder / "test.jsonl",
        "labels": folder / "labels.jsonl",
    }


def train_small(corpus_files: dict[str, Path], out: Path, method: str, **settings: object) -> Path:
    """A bundle of ``method`` with ``settings`` (by name, `training.methods.configure`), on one core."""
    from training.methods import configure
    from training.train import train_bundle

    params = configure(method, settings)
    train_bundle(  # the method as given: the held-out choice (holdout) has tests of its own
        corpus_files["train"],
        out,
        params,
        labels_path=corpus_files["labels"],
        n_jobs=1,
        progress=False,
        holdout=0,
    )
    return out


@pytest.fixture(scope="session")
def tree_bundle(tmp_path_factory: pytest.TempPathFactory, corpus_files) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "tree"
    return train_small(corpus_files, out, "tree", branching=4, leaf_size=8)


def _two_stage_bundle(tmp_path_factory: pytest.TempPathFactory, corpus_files, method: str) -> Path:
    out = tmp_path_factory.mktemp("bundles") / method.replace("+", "-")
    settings = {"dim": 32, "epochs": 8, "n_candidates": 32}
    if method == "tree+ranker":
        settings.update(branching=4, leaf_size=8)
    return train_small(corpus_files, out, method, **settings)


@pytest.fixture(scope="session")
def ranker_bundle(tmp_path_factory: pytest.TempPathFactory, corpus_files) -> Path:
    """tree + ONNX ranker."""
    return _two_stage_bundle(tmp_path_factory, corpus_files, "tree+ranker")


@pytest.fixture(scope="session")
def hnsw_bundle(tmp_path_factory: pytest.TempPathFactory, corpus_files) -> Path:
    """HNSW over the ranker's label vectors + ONNX ranker."""
    return _two_stage_bundle(tmp_path_factory, corpus_files, "hnsw+ranker")
