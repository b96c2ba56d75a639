"""The second stage: an ONNX ranker over a shortlister, and HNSW over a network's label vectors.

``tree+ranker`` and ``xtransformer``: the ranker is trained on the shortlister's own shortlists of the
training documents (hard negatives) with the shortlister's score as an input. ``hnsw+ranker`` and the
label-space methods: a network scores every label, its label vectors are indexed with HNSW, and at
serving time it scores what the index returns for the document's own vector.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from model_export.ranker_export import export_ranker, round_tables
from training.dataset import TrainingSet
from training.params import RankerParams
from training.ranker_model import RankerNet
from training.ranker_train import train_ranker
from xmlc.hnsw import HnswParams, HnswShortlister
from xmlc.ranker import OnnxRanker

PARITY_DOCS = 64  # training documents whose shortlists check the export


def fit_ranker(data: TrainingSet, cand: np.ndarray, prior: np.ndarray, params: RankerParams) -> OnnxRanker:
    """The runtime ranker trained on the shortlists (``cand``, ``prior``) of the training documents."""
    net = train_ranker(data.X, data.Y, cand, prior, params, data.n_jobs, data.progress)
    m = min(PARITY_DOCS, data.X.shape[0])
    return export_ranker(net, cand.shape[1], data.X[:m], cand[:m], prior[:m])


def index_and_export(
    net: RankerNet, X: sp.csr_matrix, n_candidates: int, hnsw: HnswParams
) -> tuple[HnswShortlister, OnnxRanker]:
    """HNSW over ``net``'s label vectors (bias as an extra coordinate) and the runtime ranker."""
    round_tables(net)  # the index holds the vectors the exported ranker scores with
    with torch.no_grad():
        vecs = net.labels.weight.numpy().copy()
        bias = net.label_bias.weight.numpy().ravel().copy()
    index = HnswShortlister.build(vecs, bias, hnsw)
    m = min(PARITY_DOCS, X.shape[0])
    sample = X[:m].tocsr().astype(np.float32)
    with torch.no_grad():
        h = net.encode_csr(sample).numpy()
    cand, prior = index.search(h, n_candidates)
    return index, export_ranker(net, n_candidates, sample, cand, prior)
