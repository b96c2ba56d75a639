"""A trained ranker network to the runtime `OnnxRanker` (term table + scorer graph), parity-checked.

Opset 17, dynamic batch and candidate axes. The parity check runs at every export on real inputs
(training documents and their shortlists) and refuses a ranker whose document vectors or probabilities
differ from torch's by more than the tolerance. The term table (features x dim) is saved as a float16
array that the runtime's compiled encoder reads (`xmlc.embedding`); the label table (labels x dim) goes
beside the scorer as a float16 array that the runtime gathers by candidate, so no graph grows with the
terms or the labels. Both tables of the torch model are rounded the same way first (`round_tables`):
the model that is checked and served is the rounded one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from model_export.onnx_graph import check_parity, export_record, to_onnx
from xmlc.onnx_session import OnnxSession
from xmlc.ranker import OnnxRanker, RankerConfig


class RankerNetLike(Protocol):
    """What the export needs of the training network (`training.ranker_model.RankerNet`)."""

    dim: int
    use_prior: bool
    features: nn.EmbeddingBag
    labels: nn.Embedding
    label_bias: nn.Embedding

    def encode_csr(self, X: sp.csr_matrix) -> torch.Tensor: ...

    def score(self, h: torch.Tensor, cand: torch.Tensor, prior: torch.Tensor) -> torch.Tensor: ...

    def score_vectors(
        self, h: torch.Tensor, vecs: torch.Tensor, bias: torch.Tensor, prior: torch.Tensor
    ) -> torch.Tensor: ...


class ExportedScorer(nn.Module):
    """Graph ``scorer.onnx``: document vectors + the candidates' vectors and biases + shortlister scores
    -> probabilities."""

    def __init__(self, net: RankerNetLike) -> None:
        super().__init__()
        self.net = net

    def forward(
        self,
        doc_vec: torch.Tensor,
        cand_vecs: torch.Tensor,
        cand_bias: torch.Tensor,
        cand_prior: torch.Tensor,
    ) -> torch.Tensor:
        return torch.sigmoid(self.net.score_vectors(doc_vec, cand_vecs, cand_bias, cand_prior))


@torch.no_grad()
def round_tables(net: RankerNetLike) -> None:
    """Round the term and label tables to float16 precision, in place: what the export stores."""
    for table in (net.features.weight, net.labels.weight):
        table.copy_(table.to(torch.float16).to(torch.float32))


@torch.no_grad()
def export_ranker(
    net: RankerNetLike, n_candidates: int, X: sp.csr_matrix, cand: np.ndarray, prior: np.ndarray
) -> OnnxRanker:
    """The runtime ranker of ``net``, checked on sample documents ``X`` with their shortlists."""
    round_tables(net)
    d = net.dim
    candidates = {0: "batch", 1: "candidates"}
    scorer = to_onnx(
        ExportedScorer(net),
        (
            torch.zeros((2, d), dtype=torch.float32),
            torch.zeros((2, 4, d), dtype=torch.float32),
            torch.zeros((2, 4), dtype=torch.float32),
            torch.ones((2, 4), dtype=torch.float32),
        ),
        {"doc_vec": {0: "batch"}, "cand_vecs": candidates, "cand_bias": candidates, "cand_prior": candidates},
        {"probs": {}},
    )
    config = RankerConfig(
        dim=d,
        n_features=int(net.features.weight.shape[0]),
        n_labels=int(net.labels.num_embeddings),
        n_candidates=n_candidates,
        uses_prior=net.use_prior,
        label_table=True,
        feature_table=True,
    )
    terms = net.features.weight.detach().numpy().astype(np.float16)
    vectors = net.labels.weight.detach().numpy().astype(np.float16)
    bias = net.label_bias.weight.detach().numpy().ravel().astype(np.float32)
    ranker = OnnxRanker(terms, OnnxSession(scorer), config, None, vectors, bias)
    ranker.export_info = export_record(parity_check(net, ranker, X, cand, prior))
    return ranker


@torch.no_grad()
def parity_check(
    net: RankerNetLike, ranker: OnnxRanker, X: sp.csr_matrix, cand: np.ndarray, prior: np.ndarray
) -> float:
    """Max |torch - onnxruntime| over the scored probabilities; `ParityError` above the tolerance.

    Document vectors are compared too, relative to their largest entry: their scale depends on the
    method (a label-space encoder's vectors can be in the hundreds), where float32 sums in another order
    differ by more than 1e-4 in absolute terms without changing any score. Padding candidates (-1) are
    checked as label 0.
    """
    X = X.tocsr().astype(np.float32)
    cand, prior = np.where(cand < 0, 0, cand), np.where(cand < 0, 1.0, prior).astype(np.float32)
    h_torch = net.encode_csr(X)
    p_torch = torch.sigmoid(net.score(h_torch, torch.from_numpy(cand), torch.from_numpy(prior))).numpy()
    h_onnx = ranker.encode(X)
    p_onnx = ranker.score(h_onnx, cand, prior)
    h_ref = h_torch.numpy()
    h_rel = float(np.abs(h_onnx - h_ref).max() / max(1.0, float(np.abs(h_ref).max()))) if h_ref.size else 0.0
    check_parity("ranker's document vectors (relative)", h_rel)
    return check_parity("ranker", float(np.abs(p_onnx - p_torch).max()) if p_torch.size else 0.0)


def with_term_table(ranker: OnnxRanker) -> OnnxRanker:
    """A ranker of a bundle made before the term table (its table inside ``encoder.onnx``) as one that
    reads the table from an array: the same vectors, three times faster, and shared between replicas."""
    import onnx
    from onnx import numpy_helper

    if isinstance(ranker.encoder, np.ndarray):
        return ranker
    source = ranker.encoder.source
    graph = onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(str(source))
    tables = [numpy_helper.to_array(t) for t in graph.graph.initializer if t.name == "table"]
    if len(tables) != 1 or tables[0].dtype != np.float16:
        raise ValueError("this encoder graph holds no float16 term table")
    config = replace(ranker.config, feature_table=True)
    return OnnxRanker(
        tables[0], ranker.scorer, config, ranker.export_info, ranker.label_vectors, ranker.label_bias
    )
