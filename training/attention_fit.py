"""Fit the AttentionXML-like model from documents already featurized, ready to be written as a bundle."""

from __future__ import annotations

from collections.abc import Sequence

import scipy.sparse as sp

from model_export.attention_export import AttentionWriter
from training.attention_xml import AttentionParams, train_attention, word_map
from training.clustering import cluster_members
from xmlc.attention import AttentionConfig, pad_word_ids
from xmlc.featurizer import TfidfFeaturizer

PARITY_DOCS = 32  # training documents whose scores check the export


def fit_attention(
    texts: Sequence[str],
    featurizer: TfidfFeaturizer,
    X: sp.csr_matrix,
    Y: sp.csr_matrix,
    params: AttentionParams,
    n_jobs: int,
    progress: bool,
) -> AttentionWriter:
    """Word ids from the featurizer's vocabulary, the one-level PIFA tree, then both levels' training."""
    sequences = [featurizer.word_ids(t) for t in texts]
    mapping = word_map(featurizer, sequences, params.max_words)
    word_ids = pad_word_ids(sequences, mapping, params.max_len)
    members = cluster_members(X, Y, params.n_clusters, params.seed)
    n_words = int(mapping.max(initial=0))
    net = train_attention(word_ids, Y, members, n_words, params, n_jobs, progress)
    config = AttentionConfig(
        max_len=params.max_len,
        n_words=n_words,
        n_clusters=members.shape[0],
        n_labels=Y.shape[1],
        beam=params.beam,
    )
    return AttentionWriter(net, mapping, members, config, word_ids[:PARITY_DOCS])
