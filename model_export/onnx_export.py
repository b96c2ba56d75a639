"""Export a trained `RankerNet` to ONNX (encoder + scorer) and check torch vs onnxruntime parity.

Opset 17, dynamic batch, document-length and candidate axes. The parity check runs at every export on
real inputs (the training documents and their shortlists) and refuses a graph whose probabilities differ
from torch's by more than ``tolerance``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from training.ranker_model import ExportedEncoder, ExportedScorer, RankerNet, round_table_to_half
from training.ranker_train import bag_tensors
from xmlc.ranker import ENCODER_FILE, SCORER_FILE, OnnxRanker, RankerConfig

OPSET = 17
PARITY_TOLERANCE = 1e-4


class ParityError(RuntimeError):
    """The exported graph does not compute what the torch model computes."""


def export_ranker(net: RankerNet, folder: Path) -> list[str]:
    """Write ``encoder.onnx`` and ``scorer.onnx`` into ``folder``; returns the file names.

    The term table is rounded to float16 first (see `ExportedEncoder`): the model that is checked and
    served is the rounded one.
    """
    net = net.eval()
    round_table_to_half(net)
    d = net.params.dim
    ids = torch.zeros((2, 3), dtype=torch.int64)
    vals = torch.ones((2, 3), dtype=torch.float32)
    h = torch.zeros((2, d), dtype=torch.float32)
    cand = torch.zeros((2, 4), dtype=torch.int64)
    prior = torch.ones((2, 4), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            ExportedEncoder(net),
            (ids, vals),
            str(folder / ENCODER_FILE),
            input_names=["feat_ids", "feat_vals"],
            output_names=["doc_vec"],
            dynamic_axes={"feat_ids": {0: "batch", 1: "terms"}, "feat_vals": {0: "batch", 1: "terms"}},
            opset_version=OPSET,
            dynamo=False,
        )
        torch.onnx.export(
            ExportedScorer(net),
            (h, cand, prior),
            str(folder / SCORER_FILE),
            input_names=["doc_vec", "cand_ids", "cand_prior"],
            output_names=["probs"],
            dynamic_axes={
                "doc_vec": {0: "batch"},
                "cand_ids": {0: "batch", 1: "candidates"},
                "cand_prior": {0: "batch", 1: "candidates"},
            },
            opset_version=OPSET,
            dynamo=False,
        )
    return [ENCODER_FILE, SCORER_FILE]


@torch.no_grad()
def parity_check(
    net: RankerNet,
    ranker: OnnxRanker,
    X: sp.csr_matrix,
    cand: np.ndarray,
    prior: np.ndarray,
    tolerance: float = PARITY_TOLERANCE,
) -> float:
    """Max |torch - onnxruntime| over the scored probabilities; raises `ParityError` above ``tolerance``.

    Document vectors are compared too, relative to their largest entry: their scale depends on the
    method (a label-space encoder's vectors can be in the hundreds), where float32 sums in another order
    differ by more than 1e-4 in absolute terms without changing any score.
    """
    X = X.tocsr().astype(np.float32)
    h_torch = net.encode_bag(*bag_tensors(X, np.arange(X.shape[0])))
    p_torch = torch.sigmoid(net.score(h_torch, torch.from_numpy(cand), torch.from_numpy(prior))).numpy()
    h_onnx = ranker.encode(X)
    p_onnx = ranker.score(h_onnx, cand, prior)
    h_ref = h_torch.numpy()
    h_rel = float(np.abs(h_onnx - h_ref).max() / max(1.0, float(np.abs(h_ref).max()))) if h_ref.size else 0.0
    diff = float(np.abs(p_onnx - p_torch).max()) if p_torch.size else 0.0
    if not (diff <= tolerance and h_rel <= tolerance):
        raise ParityError(
            f"ONNX ranker differs from torch: probabilities by {diff:.3g}, document vectors by {h_rel:.3g} "
            f"relative (tolerance {tolerance:g})"
        )
    return diff


def export_and_check(
    net: RankerNet,
    folder: Path,
    config: RankerConfig,
    X: sp.csr_matrix,
    cand: np.ndarray,
    prior: np.ndarray,
) -> tuple[list[str], float]:
    """Export, reload through the serving wrapper, check parity; returns (files, max abs diff)."""
    files = export_ranker(net, folder)
    files.append(OnnxRanker.save_config(folder, config))
    diff = parity_check(net, OnnxRanker.load(folder), X, cand, prior)
    return files, diff
