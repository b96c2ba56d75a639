"""The ranker network: scores (document, candidate label) pairs on top of a shortlister.

A document is a weighted bag of term embeddings (its TF-IDF row as weights), optionally passed through a
residual MLP; a candidate is a label vector and a bias. The shortlister's own score enters as a learned
multiple of its logarithm, so the ranker corrects the shortlister instead of replacing it.

Training encodes documents with ``EmbeddingBag`` (fast, sparse gradients); the exported graph encodes the
same rows from padded (ids, values) arrays with a gather and a sum, which ONNX runs without custom ops.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

PRIOR_FLOOR = 1e-6


@dataclass(frozen=True)
class RankerNetParams:
    dim: int = 256
    hidden: int = 0  # width of the residual MLP over the document vector; 0 = none
    use_prior: bool = True  # add a * log(shortlister score)


class RankerNet(nn.Module):
    def __init__(self, n_features: int, n_labels: int, params: RankerNetParams) -> None:
        super().__init__()
        self.params = params
        d = params.dim
        self.features = nn.EmbeddingBag(n_features, d, mode="sum", sparse=True)
        self.labels = nn.Embedding(n_labels, d, sparse=True)
        self.label_bias = nn.Embedding(n_labels, 1, sparse=True)
        nn.init.normal_(self.features.weight, std=0.05)
        nn.init.normal_(self.labels.weight, std=0.05)
        nn.init.zeros_(self.label_bias.weight)
        self.mlp: nn.Module | None = None
        if params.hidden:
            self.mlp = nn.Sequential(nn.Linear(d, params.hidden), nn.GELU(), nn.Linear(params.hidden, d))
        self.prior_weight = nn.Parameter(torch.tensor(1.0 if params.use_prior else 0.0))
        self.offset = nn.Parameter(torch.tensor(0.0))

    def dense_params(self) -> list[nn.Parameter]:
        sparse = {id(p) for m in (self.features, self.labels, self.label_bias) for p in m.parameters()}
        return [p for p in self.parameters() if id(p) not in sparse]

    def sparse_params(self) -> list[nn.Parameter]:
        return [*self.features.parameters(), *self.labels.parameters(), *self.label_bias.parameters()]

    def finish(self, h: torch.Tensor) -> torch.Tensor:
        """The optional residual MLP over a summed document vector."""
        return h + self.mlp(h) if self.mlp is not None else h

    def encode_bag(self, ids: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Documents from flat CSR arrays (training)."""
        return self.finish(self.features(ids, offsets, per_sample_weights=values))

    def score(self, h: torch.Tensor, cand: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """Logits (batch x candidates)."""
        logit = torch.einsum("bd,bcd->bc", h, self.labels(cand)) + self.label_bias(cand).squeeze(-1)
        if self.params.use_prior:
            logit = logit + self.prior_weight * torch.log(prior.clamp_min(PRIOR_FLOOR))
        return logit + self.offset

    def score_all(self, h: torch.Tensor) -> torch.Tensor:
        """Logits over every label, without the prior (full one-vs-all training)."""
        every = torch.arange(self.labels.num_embeddings)
        return h @ self.labels(every).T + self.label_bias(every).T + self.offset


class ExportedEncoder(nn.Module):
    """Graph ``encoder.onnx``: padded document arrays -> document vectors.

    The term table (features x dim, by far the largest tensor) is stored as float16 and widened after the
    gather: half the bundle size. `round_table_to_half` makes the torch model use the same values, so the
    parity check compares like with like.
    """

    table: torch.Tensor

    def __init__(self, net: RankerNet) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("table", net.features.weight.detach().to(torch.float16))

    def forward(self, feat_ids: torch.Tensor, feat_vals: torch.Tensor) -> torch.Tensor:
        rows = self.table[feat_ids].to(torch.float32)
        return self.net.finish((rows * feat_vals.unsqueeze(-1)).sum(1))


@torch.no_grad()
def round_table_to_half(net: RankerNet) -> None:
    """Round the term table to float16 precision in place (what the exported encoder stores)."""
    w = net.features.weight
    w.copy_(w.to(torch.float16).to(torch.float32))


class ExportedScorer(nn.Module):
    """Graph ``scorer.onnx``: document vectors + candidates + shortlister scores -> probabilities."""

    def __init__(self, net: RankerNet) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, doc_vec: torch.Tensor, cand_ids: torch.Tensor, cand_prior: torch.Tensor
    ) -> torch.Tensor:
        return torch.sigmoid(self.net.score(doc_vec, cand_ids, cand_prior))
