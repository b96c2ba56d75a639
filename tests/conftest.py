"""Shared fixtures: a small generated corpus and one trained bundle, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from xmlc.data import Document, write_documents
from xmlc.synthetic import SyntheticSpec, make_corpus


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


@pytest.fixture(scope="session")
def tree_bundle(tmp_path_factory: pytest.TempPathFactory, corpus_files) -> Path:
    from training.clustering import ClusterParams
    from training.train import TrainConfig, train_bundle

    out = tmp_path_factory.mktemp("bundles") / "tree"
    config = TrainConfig.for_method("tree", n_jobs=1).with_tree(branching=4, leaf_size=8)
    assert config.tree.cluster == ClusterParams(branching=4, leaf_size=8)
    train_bundle(corpus_files["train"], out, config, labels_path=corpus_files["labels"], progress=False)
    return out


def _two_stage_bundle(tmp_path_factory: pytest.TempPathFactory, corpus_files, method: str) -> Path:
    from training.train import TrainConfig, train_bundle

    out = tmp_path_factory.mktemp("bundles") / method.replace("+", "-")
    config = (
        TrainConfig.for_method(method, n_jobs=1)
        .with_tree(branching=4, leaf_size=8)
        .with_ranker(dim=32, epochs=8, n_candidates=32)
    )
    train_bundle(corpus_files["train"], out, config, labels_path=corpus_files["labels"], progress=False)
    return out


@pytest.fixture(scope="session")
def ranker_bundle(tmp_path_factory: pytest.TempPathFactory, corpus_files) -> Path:
    """tree + ONNX ranker."""
    return _two_stage_bundle(tmp_path_factory, corpus_files, "tree+ranker")


@pytest.fixture(scope="session")
def hnsw_bundle(tmp_path_factory: pytest.TempPathFactory, corpus_files) -> Path:
    """HNSW over the ranker's label vectors + ONNX ranker."""
    return _two_stage_bundle(tmp_path_factory, corpus_files, "hnsw+ranker")
