"""Two-stage models: a shortlister followed by the ONNX ranker ("tree+ranker", "hnsw+ranker").

tree+ranker: the ranker is trained on the tree's shortlists of the training documents (hard negatives)
with the tree score as an input. hnsw+ranker: the ranker is trained over every label (one-vs-all, no
shortlister score), its label vectors are indexed with HNSW, and at serving time it scores what the index
returns for the document's own vector.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from model_export.bundle_writer import RankerWriter
from model_export.onnx_export import OPSET, export_and_check
from training.ranker_model import RankerNet
from training.ranker_train import RankerTrainParams, bag_tensors, train_ranker
from xmlc.hnsw import HnswParams, HnswShortlister
from xmlc.ranker import RankerConfig
from xmlc.tree import TreeShortlister

PARITY_DOCS = 64  # training documents whose shortlists check the export


def ranker_writer(
    net: RankerNet,
    n_candidates: int,
    X: sp.csr_matrix,
    cand: np.ndarray,
    prior: np.ndarray,
) -> RankerWriter:
    """Export + parity check into the bundle folder, on a sample of real inputs."""
    config = RankerConfig(
        dim=net.params.dim,
        n_features=X.shape[1],
        n_labels=net.labels.num_embeddings,
        n_candidates=n_candidates,
        uses_prior=net.params.use_prior,
    )

    def write(folder: Path) -> tuple[list[str], dict[str, Any]]:
        files, diff = export_and_check(net, folder, config, X, cand, prior)
        meta = {"kind": "onnx", "opset": OPSET, "parity_max_abs_diff": diff, **config.__dict__}
        return files, meta

    return write


def fit_tree_ranker(
    X: sp.csr_matrix,
    Y: sp.csr_matrix,
    tree: TreeShortlister,
    params: RankerTrainParams,
    n_jobs: int,
    progress: bool,
    label_text: sp.csr_matrix | None = None,
) -> RankerWriter:
    """Ranker on the tree's own shortlists of the training documents."""
    cand, prior = tree.shortlist(X, params.n_candidates)
    net = train_ranker(X, Y, cand, prior, params, n_jobs, progress, label_text)
    m = min(PARITY_DOCS, X.shape[0])
    return ranker_writer(net, params.n_candidates, X[:m], cand[:m], prior[:m])


def fit_hnsw_ranker(
    X: sp.csr_matrix,
    Y: sp.csr_matrix,
    params: RankerTrainParams,
    hnsw: HnswParams,
    n_jobs: int,
    progress: bool,
    label_text: sp.csr_matrix | None = None,
) -> tuple[HnswShortlister, RankerWriter]:
    """One-vs-all ranker, HNSW over its label vectors (the bias as an extra coordinate)."""
    net = train_ranker(X, Y, None, None, params, n_jobs, progress, label_text)
    return index_and_writer(net, X, params.n_candidates, hnsw)


def index_and_writer(
    net: RankerNet, X: sp.csr_matrix, n_candidates: int, hnsw: HnswParams
) -> tuple[HnswShortlister, RankerWriter]:
    """HNSW over ``net``'s label vectors (bias as an extra coordinate) and the writer of its graphs."""
    with torch.no_grad():
        vecs = net.labels.weight.numpy().copy()
        bias = net.label_bias.weight.numpy().ravel().copy()
    index = HnswShortlister.build(vecs, bias, hnsw)
    m = min(PARITY_DOCS, X.shape[0])
    sample = X[:m].tocsr().astype(np.float32)
    with torch.no_grad():
        h = net.encode_bag(*bag_tensors(sample, np.arange(m))).numpy()
    cand, prior = index.shortlist(h, n_candidates)
    return index, ranker_writer(net, n_candidates, sample, cand, prior)
