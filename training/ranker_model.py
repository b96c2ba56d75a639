"""The ranker network: scores (document, candidate label) pairs on top of a shortlister.

A document is a weighted bag of term embeddings (its TF-IDF row as weights), optionally passed through a
residual MLP; a candidate is a label vector and a bias. The shortlister's own score enters as a learned
multiple of its logarithm, so the ranker corrects the shortlister instead of replacing it.

Label text (ECLARE-style): when the labels' names are known, a label's vector is its free vector plus a
learned multiple of its name's TF-IDF row encoded with the document term table, so a rare label starts
from what its name means. After training, `fold_label_text` adds that part into the free vectors, so the
exported scorer is the same graph with or without label text.

Training encodes documents with ``EmbeddingBag`` (fast, sparse gradients); the exported graph encodes the
same rows from padded (ids, values) arrays with a gather and a sum, which ONNX runs without custom ops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

PRIOR_FLOOR = 1e-6
LABEL_TEXT_MODES = ("none", "shared", "detached", "own")


@dataclass(frozen=True)
class RankerNetParams:
    dim: int = 256
    hidden: int = 0  # width of the residual MLP over the document vector; 0 = none
    use_prior: bool = True  # add a * log(shortlister score)
    # Label names as label features, where names are given: "shared" encodes them with the document
    # term table, "detached" with the same table but without gradients through the label side,
    # "own" with a separate word table (zero at start) that labels sharing name words share; or "none".
    label_text: str = "none"

    def __post_init__(self) -> None:
        if self.label_text not in LABEL_TEXT_MODES:
            raise ValueError(f"label_text must be one of {LABEL_TEXT_MODES}, got {self.label_text!r}")


class RankerNet(nn.Module):
    def __init__(
        self,
        n_features: int,
        n_labels: int,
        params: RankerNetParams,
        label_text: sp.csr_matrix | None = None,
    ) -> None:
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
        self.text: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.text_weight = nn.Parameter(torch.tensor(1.0))
        self.text_table: nn.Embedding | None = None
        if params.label_text != "none" and label_text is not None:
            if label_text.shape != (n_labels, n_features):
                raise ValueError(f"label text is {label_text.shape}, expected {(n_labels, n_features)}")
            lt = label_text.tocsr().astype(np.float32)
            self.text = (
                torch.from_numpy(lt.indptr.astype(np.int64)),
                torch.from_numpy(lt.indices.astype(np.int64)),
                torch.from_numpy(lt.data),
            )
            if params.label_text == "own":
                self.text_table = nn.Embedding(n_features, d, sparse=True)
                nn.init.zeros_(self.text_table.weight)

    def dense_params(self) -> list[nn.Parameter]:
        sparse = {id(p) for p in self.sparse_params()}
        return [p for p in self.parameters() if id(p) not in sparse]

    def sparse_params(self) -> list[nn.Parameter]:
        tables = [self.features, self.labels, self.label_bias]
        if self.text_table is not None:
            tables.append(self.text_table)
        return [p for t in tables for p in t.parameters()]

    def finish(self, h: torch.Tensor) -> torch.Tensor:
        """The optional residual MLP over a summed document vector."""
        return h + self.mlp(h) if self.mlp is not None else h

    def encode_bag(self, ids: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Documents from flat CSR arrays (training)."""
        return self.finish(self.features(ids, offsets, per_sample_weights=values))

    def text_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """Encoded label text of ``ids`` (unique label ids), with gradients into the term table."""
        assert self.text is not None
        indptr, cols, vals = self.text
        starts, lens = indptr[ids], indptr[ids + 1] - indptr[ids]
        offsets = torch.cumsum(lens, 0) - lens
        pos = torch.arange(int(lens.sum())) - torch.repeat_interleave(offsets - starts, lens)
        if self.text_table is not None:
            table = self.text_table.weight
        elif self.params.label_text == "detached":
            table = self.features.weight.detach()
        else:
            table = self.features.weight
        return F.embedding_bag(
            cols[pos], table, offsets, mode="sum", per_sample_weights=vals[pos], sparse=True
        )

    def label_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """Label vectors of ``ids`` (any shape): free vector, plus encoded label text when there is some."""
        v = self.labels(ids)
        if self.text is None:
            return v
        uniq, inverse = torch.unique(ids, return_inverse=True)
        return v + self.text_weight * self.text_vectors(uniq)[inverse]

    @torch.no_grad()
    def fold_label_text(self) -> None:
        """Add the encoded label text into the free label vectors (what the exported scorer stores)."""
        if self.text is None:
            return
        every = torch.arange(self.labels.num_embeddings)
        self.labels.weight.add_(self.text_weight * self.text_vectors(every))
        self.text = None
        self.text_table = None

    def score(self, h: torch.Tensor, cand: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """Logits (batch x candidates)."""
        logit = torch.einsum("bd,bcd->bc", h, self.label_vectors(cand)) + self.label_bias(cand).squeeze(-1)
        if self.params.use_prior:
            logit = logit + self.prior_weight * torch.log(prior.clamp_min(PRIOR_FLOOR))
        return logit + self.offset

    def score_all(self, h: torch.Tensor) -> torch.Tensor:
        """Logits over every label, without the prior (full one-vs-all training)."""
        every = torch.arange(self.labels.num_embeddings)
        return h @ self.label_vectors(every).T + self.label_bias(every).T + self.offset


def _mlp_linears(net: RankerNet) -> tuple[nn.Linear, nn.Linear]:
    """The two linear layers of ``net``'s residual MLP."""
    assert isinstance(net.mlp, nn.Sequential)
    up, down = net.mlp[0], net.mlp[2]
    assert isinstance(up, nn.Linear) and isinstance(down, nn.Linear)
    return up, down


@torch.no_grad()
def merge_rankers(nets: list[RankerNet]) -> RankerNet:
    """One net whose logit is exactly the mean of ``nets``' logits (an ensemble at no serving cost).

    Document vectors are concatenated (dim = sum of dims), label vectors concatenated and divided by the
    number of nets, so the dot product is the mean of the members' dot products; biases, prior weights
    and offsets are averaged; residual MLPs become block-diagonal (GELU acts elementwise, so each block
    still sees only its own member's vector). Label text must already be folded in.
    """
    if not nets:
        raise ValueError("no rankers to merge")
    if len(nets) == 1:
        return nets[0]
    first = nets[0]
    if any(n.text is not None for n in nets):
        raise ValueError("fold label text into the rankers before merging them")
    if any(
        (n.mlp is None) != (first.mlp is None) or n.params.use_prior != first.params.use_prior for n in nets
    ):
        raise ValueError("rankers to merge must agree on hidden layers and prior use")
    k = len(nets)
    dims = [n.params.dim for n in nets]
    hidden = sum(n.params.hidden for n in nets) if first.mlp is not None else 0
    params = RankerNetParams(dim=sum(dims), hidden=hidden, use_prior=first.params.use_prior)
    merged = RankerNet(first.features.num_embeddings, first.labels.num_embeddings, params)
    merged.features.weight.copy_(torch.cat([n.features.weight for n in nets], 1))
    merged.labels.weight.copy_(torch.cat([n.labels.weight for n in nets], 1) / k)
    merged.label_bias.weight.copy_(torch.stack([n.label_bias.weight for n in nets]).mean(0))
    merged.prior_weight.copy_(torch.stack([n.prior_weight for n in nets]).mean())
    merged.offset.copy_(torch.stack([n.offset for n in nets]).mean())
    if merged.mlp is not None:
        layers = [_mlp_linears(n) for n in nets]
        up, down = _mlp_linears(merged)
        up.weight.copy_(torch.block_diag(*[a.weight for a, _ in layers]))
        up.bias.copy_(torch.cat([a.bias for a, _ in layers]))
        down.weight.copy_(torch.block_diag(*[b.weight for _, b in layers]))
        down.bias.copy_(torch.cat([b.bias for _, b in layers]))
    return merged.eval()


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
