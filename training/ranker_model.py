"""The ranker network: scores (document, candidate label) pairs on top of a shortlister.

A document is a weighted bag of term embeddings (its TF-IDF row as weights); a candidate is a label
vector and a bias. The shortlister's own score enters as a learned multiple of its logarithm, so the
ranker corrects the shortlister instead of replacing it. The label-space methods (`training.label_space`)
use the same network without the shortlister's score.

Training encodes documents with ``EmbeddingBag`` (fast, sparse gradients); the exported graph
(`model_export.ranker_export`) encodes the same rows from padded (ids, values) arrays with a gather and
a sum, which ONNX runs without custom ops.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

PRIOR_FLOOR = 1e-6


def bag_tensors(X: sp.csr_matrix, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of a CSR matrix as EmbeddingBag inputs (ids, offsets, per-sample weights)."""
    sub = X[rows]
    return (
        torch.from_numpy(sub.indices.astype(np.int64)),
        torch.from_numpy(sub.indptr[:-1].astype(np.int64)),
        torch.from_numpy(sub.data.astype(np.float32)),
    )


class RankerNet(nn.Module):
    def __init__(self, n_features: int, n_labels: int, dim: int, use_prior: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.use_prior = use_prior
        self.features = nn.EmbeddingBag(n_features, dim, mode="sum", sparse=True)
        self.labels = nn.Embedding(n_labels, dim, sparse=True)
        self.label_bias = nn.Embedding(n_labels, 1, sparse=True)
        nn.init.normal_(self.features.weight, std=0.05)
        nn.init.normal_(self.labels.weight, std=0.05)
        nn.init.zeros_(self.label_bias.weight)
        self.prior_weight = nn.Parameter(torch.tensor(1.0 if use_prior else 0.0))
        self.offset = nn.Parameter(torch.tensor(0.0))

    def sparse_params(self) -> list[nn.Parameter]:
        return [*self.features.parameters(), *self.label_params()]

    def label_params(self) -> list[nn.Parameter]:
        return [*self.labels.parameters(), *self.label_bias.parameters()]

    def dense_params(self) -> list[nn.Parameter]:
        return [self.prior_weight, self.offset]

    def encode_bag(self, ids: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Documents from flat CSR arrays (training)."""
        return self.features(ids, offsets, per_sample_weights=values)

    def encode_csr(self, X: sp.csr_matrix) -> torch.Tensor:
        """Every row of ``X`` the way training encodes it (the reference of the export's parity check)."""
        return self.encode_bag(*bag_tensors(X.tocsr().astype(np.float32), np.arange(X.shape[0])))

    def score(self, h: torch.Tensor, cand: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """Logits (batch x candidates)."""
        return self.score_vectors(h, self.labels(cand), self.label_bias(cand).squeeze(-1), prior)

    def score_vectors(
        self, h: torch.Tensor, vecs: torch.Tensor, bias: torch.Tensor, prior: torch.Tensor
    ) -> torch.Tensor:
        """Logits from the candidates' vectors and biases, gathered already (what the exported scorer
        computes: the label table stays outside the graph)."""
        logit = torch.einsum("bd,bcd->bc", h, vecs) + bias
        if self.use_prior:
            logit = logit + self.prior_weight * torch.log(prior.clamp_min(PRIOR_FLOOR))
        return logit + self.offset

    def score_some(self, h: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Logits over the labels ``ids`` (1-d), the same for every document, without the prior."""
        return h @ self.labels(ids).T + self.label_bias(ids).T + self.offset

    def score_all(self, h: torch.Tensor) -> torch.Tensor:
        """Logits over every label, without the prior (lookups keep gradients sparse)."""
        return self.score_some(h, torch.arange(self.labels.num_embeddings))
