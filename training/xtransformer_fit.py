"""Fit the X-Transformer-like model: clusters, fine-tuned matcher, its shortlists, then the ranker."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from model_export.bundle_writer import RankerWriter
from model_export.matcher_export import MatcherWriter
from training.clustering import cluster_members
from training.ranker_train import RankerTrainParams, train_ranker
from training.two_stage import PARITY_DOCS, ranker_writer
from training.xtransformer import (
    XTransformerParams,
    cluster_targets,
    encoder_folder,
    fine_tune,
    load_matcher,
    matcher_logits,
)
from xmlc.matcher import MatcherConfig, encode_texts, load_tokenizer
from xmlc.tree import cluster_shortlist


def fit_xtransformer(
    texts: Sequence[str],
    X: sp.csr_matrix,
    Y: sp.csr_matrix,
    p: XTransformerParams,
    ranker_params: RankerTrainParams,
    n_jobs: int,
    progress: bool,
    label_text: sp.csr_matrix | None = None,
) -> tuple[MatcherWriter, RankerWriter]:
    """The matcher (fine-tuned on at most ``p.max_docs`` documents) and the ranker on its shortlists."""
    if n_jobs:
        torch.set_num_threads(n_jobs)
    folder = encoder_folder(p.encoder)
    members = cluster_members(X, Y, p.n_clusters, p.seed)
    config = MatcherConfig(max_len=p.max_len, n_clusters=members.shape[0], n_labels=Y.shape[1], beam=p.beam)
    tokenizer = load_tokenizer(folder / "tokenizer.json", p.max_len, config.pad_id)
    ids, mask = encode_texts(tokenizer, texts)
    net = load_matcher(folder, members.shape[0])
    fine_tune(net, ids, mask, cluster_targets(Y, members), p, progress)
    cand, prior = cluster_shortlist(matcher_logits(net, ids, mask, progress=progress), members, p.beam)
    ranker = train_ranker(X, Y, cand, prior, ranker_params, n_jobs, progress, label_text)
    m = min(PARITY_DOCS, X.shape[0])
    safe = np.where(cand[:m] < 0, 0, cand[:m])
    writer = ranker_writer(ranker, cand.shape[1], X[:m], safe, prior[:m])
    sample = list(texts[: min(8, len(texts))])
    return MatcherWriter(net, folder / "tokenizer.json", members, config, sample), writer
