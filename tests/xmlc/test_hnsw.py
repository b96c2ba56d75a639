"""HNSW shortlister: recall against exact search, save/load, the recall measure itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xmlc.hnsw import HnswParams, HnswShortlister, shortlist_recall


def _clustered(n_labels: int, n_docs: int, dim: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(32, dim))
    labels = centres[rng.integers(0, 32, n_labels)] + 0.5 * rng.normal(size=(n_labels, dim))
    bias = rng.normal(scale=0.3, size=n_labels)
    docs = centres[rng.integers(0, 32, n_docs)] + 0.5 * rng.normal(size=(n_docs, dim))
    return labels.astype(np.float32), bias.astype(np.float32), docs.astype(np.float32)


def test_recall_against_exact_search() -> None:
    vecs, bias, docs = _clustered(3000, 300, 32)
    index = HnswShortlister.build(vecs, bias, HnswParams(M=16, ef_construction=100, ef_search=100))
    found, found_scores = index.search(docs, 100)
    exact, exact_scores = index.exact(docs, 100)
    # Truth: each document's 5 best labels by exact inner product.
    truth = [set(row[:5]) for row in exact.tolist()]
    assert shortlist_recall(found, exact, truth) >= 0.97
    # Scores are inner products with the bias folded in, best first.
    expected = docs @ vecs.T + bias
    np.testing.assert_allclose(
        found_scores[:, 0], expected[np.arange(len(docs)), found[:, 0]], rtol=1e-4, atol=1e-4
    )
    assert np.all(np.diff(found_scores, axis=1) <= 1e-6)
    np.testing.assert_allclose(exact_scores[:, 0], expected.max(1), rtol=1e-5, atol=1e-5)


def test_small_ef_loses_recall_large_ef_restores_it() -> None:
    vecs, bias, docs = _clustered(3000, 200, 32, seed=1)
    index = HnswShortlister.build(vecs, bias, HnswParams(M=8, ef_construction=100, ef_search=16))
    exact, _ = index.exact(docs, 50)
    truth = [set(row) for row in exact.tolist()]
    low = shortlist_recall(index.search(docs, 50, ef_search=50)[0], exact, truth)
    high = shortlist_recall(index.search(docs, 50, ef_search=800)[0], exact, truth)
    assert high > low and high >= 0.95


def test_save_load_round_trip(tmp_path: Path) -> None:
    vecs, bias, docs = _clustered(500, 20, 16)
    index = HnswShortlister.build(vecs, bias, HnswParams(M=8, ef_search=64))
    files = index.save(tmp_path)
    assert sorted(files) == ["hnsw.json", "labels.hnsw"]
    again = HnswShortlister.load(tmp_path)
    assert again.params == index.params and again.n_labels == 500 and again.dim == 16
    a, sa = index.search(docs, 10)
    b, sb = again.search(docs, 10)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(sa, sb)


def test_k_capped_and_empty_batch() -> None:
    vecs, bias, docs = _clustered(20, 3, 8)
    index = HnswShortlister.build(vecs, bias, HnswParams(M=4))
    idx, _ = index.search(docs, 50)
    assert idx.shape == (3, 20)
    assert sorted(idx[0].tolist()) == list(range(20))
    assert index.search(docs[:0], 5)[0].shape == (0, 5)


def test_shortlist_recall_by_hand() -> None:
    found = np.array([[1, 2, 3], [4, 5, 6]])
    exact = np.array([[1, 2, 9], [4, 7, 8]])
    # doc 0: truth {1, 9, 10}; exact holds {1, 9}; found holds {1} -> 1/2. doc 1: truth {7}; exact
    # holds {7}, found does not -> 0/1. Total 1/3.
    assert shortlist_recall(found, exact, [{1, 9, 10}, {7}]) == pytest.approx(1 / 3)
    assert shortlist_recall(found, exact, [{42}, set()]) == 1.0


def test_bad_params() -> None:
    with pytest.raises(ValueError):
        HnswParams(M=1)
