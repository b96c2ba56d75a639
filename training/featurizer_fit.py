"""Fit the TF-IDF featurizer in one tokenising pass over the corpus, in parallel.

Each worker tokenises a chunk into a local vocabulary and a count matrix; the parent merges the local
vocabularies, picks the final one (min_df, max_df, then the most frequent ``max_features`` terms, as
scikit-learn's TfidfVectorizer does) and weighs the counts with the same function the serving path uses.
The corpus is therefore tokenised once, not twice (fit, then transform). A document's body and its
heading (the title field) are fitted the same way, each with its own vocabulary.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from training.params import FeaturizerParams
from xmlc.doc import Doc
from xmlc.featurizer import FeaturizerConfig, TfidfFeaturizer, join_fields, smooth_idf, tokenize


def _count_chunk(
    args: tuple[Sequence[str], FeaturizerConfig],
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    texts, config = args
    pattern = re.compile(config.token_pattern)
    local: dict[str, int] = {}
    setdefault = local.setdefault
    indptr = np.zeros(len(texts) + 1, dtype=np.int64)
    idx_parts: list[np.ndarray] = []
    cnt_parts: list[np.ndarray] = []
    for r, text in enumerate(texts):
        ids = np.fromiter(
            (setdefault(t, len(local)) for t in tokenize(text, config, pattern)), dtype=np.int32
        )
        cols, cnt = np.unique(ids, return_counts=True)
        idx_parts.append(cols.astype(np.int32))
        cnt_parts.append(cnt.astype(np.int32))
        indptr[r + 1] = indptr[r] + len(cols)
    terms = list(local)  # dicts keep insertion order: position == local id
    empty = np.zeros(0, np.int32)
    return (
        terms,
        indptr,
        np.concatenate(idx_parts) if idx_parts else empty,
        np.concatenate(cnt_parts) if cnt_parts else empty,
    )


def _drop_single_terms(
    vocab: dict[str, int], indptr: list[np.ndarray], idx: list[np.ndarray], cnt: list[np.ndarray]
) -> dict[str, int]:
    """Forget the terms seen in one document so far, renumbering the others in order (in place for the
    counted rows): what bounds the memory of counting a corpus whose n-grams mostly occur once."""
    df = np.bincount(np.concatenate(idx), minlength=len(vocab))
    keep = df >= 2
    new_id = (np.cumsum(keep) - 1).astype(np.int32)
    for j in range(len(idx)):
        kept = keep[idx[j]]
        row_of = np.repeat(np.arange(len(indptr[j]) - 1), np.diff(indptr[j]))
        per_row = np.bincount(row_of[kept], minlength=len(indptr[j]) - 1)
        indptr[j] = np.concatenate([[0], np.cumsum(per_row)]).astype(indptr[j].dtype)
        idx[j] = new_id[idx[j][kept]]
        cnt[j] = cnt[j][kept]
    terms = [t for t, k in zip(vocab, keep.tolist(), strict=True) if k]
    return {t: i for i, t in enumerate(terms)}


def fit_featurizer(
    docs: Sequence[Doc],
    params: FeaturizerParams | None = None,
    n_jobs: int | None = None,
    progress: bool = True,
) -> tuple[TfidfFeaturizer, sp.csr_matrix]:
    """Fit the vocabulary and idf on ``docs`` and return the featurizer with the weighted training matrix.

    With ``params.title_weight > 0`` the documents' headings get a vocabulary and idf of their own (the
    title field, `xmlc.featurizer.join_fields`).
    """
    params = params or FeaturizerParams()
    body, X = fit_field([d.body for d in docs], params, n_jobs, progress)
    if params.title_weight == 0:
        return body, X
    title_params = replace(params, max_features=params.title_max_features)
    title, T = fit_field([d.heading for d in docs], title_params, n_jobs, progress=False)
    config = replace(body.config, title_weight=params.title_weight)
    featurizer = TfidfFeaturizer(body.vocabulary, body.idf, config, title)
    return featurizer, join_fields(X, T, params.title_weight)


def fit_field(
    texts: Sequence[str], params: FeaturizerParams, n_jobs: int | None = None, progress: bool = True
) -> tuple[TfidfFeaturizer, sp.csr_matrix]:
    """One field's vocabulary and idf (no title field of its own), and its weighted rows of ``texts``."""
    config = FeaturizerConfig(ngram_max=params.ngram_max, sublinear_tf=params.sublinear_tf)
    n_jobs = max(1, n_jobs or os.cpu_count() or 1)
    n = len(texts)
    chunk = max(1, min(2000, -(-n // n_jobs)))
    jobs = [(texts[i : i + chunk], config) for i in range(0, n, chunk)]

    vocab: dict[str, int] = {}
    rows_indptr: list[np.ndarray] = []
    rows_idx: list[np.ndarray] = []
    rows_cnt: list[np.ndarray] = []
    bar = tqdm(total=n, desc="tokenise", unit="doc", disable=not progress)
    ctx = mp.get_context("fork") if n_jobs > 1 else None
    pool = ctx.Pool(n_jobs) if ctx else None
    try:
        results = pool.imap(_count_chunk, jobs) if pool else map(_count_chunk, jobs)
        for terms, indptr, idx, cnt in results:
            setdefault = vocab.setdefault
            remap = np.fromiter((setdefault(t, len(vocab)) for t in terms), dtype=np.int32, count=len(terms))
            rows_indptr.append(indptr)
            rows_idx.append(remap[idx])
            rows_cnt.append(cnt)
            bar.update(len(indptr) - 1)
            if len(vocab) > params.max_terms_in_memory:
                vocab = _drop_single_terms(vocab, rows_indptr, rows_idx, rows_cnt)
    finally:
        bar.close()
        if pool:
            pool.close()
            pool.join()

    offsets = np.cumsum([0] + [p[-1] for p in rows_indptr[:-1]])
    indptr = np.concatenate(
        [rows_indptr[0][:1]] + [p[1:] + o for p, o in zip(rows_indptr, offsets, strict=True)]
    )
    counts = sp.csr_matrix(
        (np.concatenate(rows_cnt).astype(np.float32), np.concatenate(rows_idx), indptr), shape=(n, len(vocab))
    )
    all_terms = list(vocab)
    del vocab

    df = np.bincount(counts.indices, minlength=counts.shape[1])
    keep = (df >= params.min_df) & (df <= params.max_df * n)
    candidates = np.flatnonzero(keep)
    if params.max_features and len(candidates) > params.max_features:
        tf = np.bincount(counts.indices, weights=counts.data, minlength=counts.shape[1])[candidates]
        order = np.argsort(-tf, kind="stable")[: params.max_features]
        candidates = np.sort(candidates[order])
    counts = counts[:, candidates].tocsr()
    counts.sort_indices()
    vocabulary = [all_terms[i] for i in candidates]
    featurizer = TfidfFeaturizer(vocabulary, smooth_idf(df[candidates], n), config)
    return featurizer, featurizer.weigh(counts)
