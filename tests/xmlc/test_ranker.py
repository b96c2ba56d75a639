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


def test_a_blended_ranker_serves_the_weighted_geometric_mean_and_keeps_it(
    ranker_bundle: Path, corpus, tmp_path
):
    from xmlc.ranker import blend

    model = load_model(ranker_bundle)
    assert isinstance(model, Pipeline) and isinstance(model.ranker, OnnxRanker)
    assert model.ranker.config.prior_weight == 0.0  # bundles before the blend serve the ranker as trained
    docs = [d.doc for d in corpus[1][:40]]
    batch = model.batch(docs)
    cand, prior = model.shortlister.shortlist(batch, model.ranker.depth)
    raw = model.ranker.rank(batch, cand, prior)
    mixed = model.ranker.with_prior_weight(0.5)
    got = mixed.rank(model.batch(docs), cand, prior)
    ok = raw >= 0
    assert np.allclose(got[ok], np.sqrt(raw[ok] * np.clip(prior[ok], 1e-12, 1)), rtol=1e-4)
    assert (got[~ok] == -1).all()
    assert np.allclose(blend(raw, prior, 0.0)[ok], raw[ok], rtol=1e-5)
    saved = Pipeline(model.featurizer, model.shortlister, model.labels, mixed, model.manifest)
    saved.save(tmp_path / "b")
    again = load_model(tmp_path / "b")
    assert again.ranker.config.prior_weight == 0.5  # type: ignore[union-attr]
    assert np.array_equal(again.predict_batch(docs, 5).indices, saved.predict_batch(docs, 5).indices)
    with pytest.raises(ValueError, match="drop the ranker"):
        model.ranker.with_prior_weight(1.0)
