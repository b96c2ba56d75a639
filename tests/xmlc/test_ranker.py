"""The runtime ONNX ranker inside a pipeline: padding, chunking, depth, and parts that must agree."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from xmlc.doc import Doc
from xmlc.loader import load_model
from xmlc.pipeline import Pipeline
from xmlc.ranker import OnnxRanker, padded_rows


def test_padded_rows() -> None:
    X = sp.csr_matrix(np.array([[0, 2.0, 0, 1.0], [0, 0, 0, 0], [3.0, 0, 0, 0]], dtype=np.float32))
    ids, vals = padded_rows(X)
    assert ids.shape == vals.shape == (3, 2)
    assert ids.tolist() == [[1, 3], [0, 0], [0, 0]]
    assert vals.tolist() == [[2.0, 1.0], [0.0, 0.0], [3.0, 0.0]]


def test_k_beyond_the_candidate_depth(ranker_bundle: Path) -> None:
    model = load_model(ranker_bundle)
    res = model.predict_batch([Doc("w_a w_b some text")], k=50)  # n_candidates is 32 in the fixture
    assert res.indices.shape == (1, 50)
    assert len(set(res.indices[0].tolist())) == 50


def test_parts_that_disagree_are_refused(ranker_bundle: Path, hnsw_bundle: Path) -> None:
    model = load_model(ranker_bundle)
    assert isinstance(model, Pipeline) and model.ranker is not None
    ranker = model.ranker
    assert isinstance(ranker, OnnxRanker)
    bigger = replace(ranker.config, n_labels=ranker.config.n_labels + 1)
    with pytest.raises(ValueError, match="label vectors are"):
        OnnxRanker(ranker.encoder, ranker.scorer, bigger, None, ranker.label_vectors, ranker.label_bias)
    assert ranker.label_vectors is not None and ranker.label_bias is not None
    vectors = np.vstack([ranker.label_vectors, ranker.label_vectors[:1]])
    bad = OnnxRanker(ranker.encoder, ranker.scorer, bigger, None, vectors, np.append(ranker.label_bias, 0))
    with pytest.raises(ValueError, match="ranker does not match"):
        Pipeline(model.featurizer, model.shortlister, model.labels, bad)
    hnsw = load_model(hnsw_bundle)
    assert isinstance(hnsw, Pipeline)
    with pytest.raises(ValueError, match="hnsw shortlister needs a ranker"):
        Pipeline(hnsw.featurizer, hnsw.shortlister, hnsw.labels)


def test_large_batches_are_chunked_with_the_same_result(ranker_bundle: Path, corpus, monkeypatch) -> None:
    import xmlc.ranker as ranker_module

    model = load_model(ranker_bundle)
    assert isinstance(model, Pipeline) and isinstance(model.ranker, OnnxRanker)
    ranker = model.ranker
    _, test, _ = corpus
    X = model.featurizer.transform([d.doc for d in test[:40]])
    whole = ranker.encode(X)
    monkeypatch.setattr(ranker_module, "MAX_PADDED_TERMS", 64)  # a few rows per call
    monkeypatch.setattr(ranker_module, "SCORER_CHUNK_DOCS", 7)
    chunked = ranker.encode(X)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
    cand = np.tile(np.arange(10), (40, 1))
    prior = np.full((40, 10), 0.5, np.float32)
    monkeypatch.setattr(ranker_module, "SCORER_CHUNK_DOCS", 512)
    ref = ranker.score(whole, cand, prior)
    monkeypatch.setattr(ranker_module, "SCORER_CHUNK_DOCS", 7)
    np.testing.assert_allclose(ranker.score(whole, cand, prior), ref, rtol=1e-6)
