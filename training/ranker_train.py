"""Train the ranker on the shortlists a shortlister returns for the training documents.

Each training document brings its shortlist (the hard negatives and, almost always, its true labels) and
the shortlister's scores; the loss is binary cross-entropy over those candidates. With ``negatives="all"``
the loss instead covers every label (cheap when labels number in the thousands), and the shortlist is only
used at prediction time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp
import torch
from torch.nn import functional as F
from tqdm import tqdm

from training.ranker_model import RankerNet, RankerNetParams, merge_rankers

MIN_STEPS_PER_EPOCH = 64


@dataclass(frozen=True)
class RankerTrainParams:
    net: RankerNetParams = field(default_factory=RankerNetParams)
    negatives: str = "shortlist"  # "shortlist" (hard negatives) or "all"
    n_candidates: int = 100
    epochs: int = 6
    batch_size: int = 256
    lr: float = 1e-3
    loss: str = "bce"  # "bce" per candidate, or "bce+softmax" (adds a listwise term over the shortlist)
    feature_dropout: float = 0.0  # drop each (document, term) weight with this probability while training
    # Nets trained with seeds seed, seed+1, ... and merged into one exported net whose logit is their mean.
    n_models: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.negatives not in ("shortlist", "all"):
            raise ValueError(f"negatives must be 'shortlist' or 'all', got {self.negatives!r}")
        if self.loss not in ("bce", "bce+softmax"):
            raise ValueError(f"loss must be 'bce' or 'bce+softmax', got {self.loss!r}")
        if not 0.0 <= self.feature_dropout < 1.0:
            raise ValueError(f"feature_dropout must be in [0, 1), got {self.feature_dropout}")
        if min(self.epochs, self.batch_size, self.n_candidates, self.n_models) < 1:
            raise ValueError("epochs, batch_size, n_candidates and n_models must be >= 1")


def candidate_targets(Y: sp.csr_matrix, cand: np.ndarray) -> np.ndarray:
    """0/1 matrix: is ``cand[i, j]`` a true label of document i."""
    Y = Y.tocsr()
    out = np.zeros(cand.shape, dtype=np.float32)
    for i in range(cand.shape[0]):
        pos = Y.indices[Y.indptr[i] : Y.indptr[i + 1]]
        if len(pos):
            out[i] = np.isin(cand[i], pos)
    return out


def bag_tensors(X: sp.csr_matrix, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of a CSR matrix as EmbeddingBag inputs (ids, offsets, per-sample weights)."""
    sub = X[rows]
    return (
        torch.from_numpy(sub.indices.astype(np.int64)),
        torch.from_numpy(sub.indptr[:-1].astype(np.int64)),
        torch.from_numpy(sub.data.astype(np.float32)),
    )


def train_ranker(
    X: sp.csr_matrix,
    Y: sp.csr_matrix,
    cand: np.ndarray | None,
    prior: np.ndarray | None,
    params: RankerTrainParams,
    n_threads: int = 0,
    progress: bool = True,
    label_text: sp.csr_matrix | None = None,
) -> RankerNet:
    """Fit a `RankerNet` on (documents, candidate lists, shortlister scores).

    With ``negatives="all"`` no candidates are needed and the loss is summed over labels (a mean over
    thousands of mostly negative labels would shrink the positives' gradient to nothing).
    ``label_text`` (labels x features, the featurized label names) adds label text to the label vectors;
    it is folded into them before the net is returned. With ``n_models > 1`` that many nets are trained
    (seeds ``seed``, ``seed + 1``, ...) and merged into one (`merge_rankers`).
    """
    if params.n_models > 1:
        nets = [
            train_ranker(
                X,
                Y,
                cand,
                prior,
                replace(params, n_models=1, seed=params.seed + i),
                n_threads,
                progress,
                label_text,
            )
            for i in range(params.n_models)
        ]
        return merge_rankers(nets)
    if params.negatives == "shortlist" and (cand is None or prior is None):
        raise ValueError("shortlist negatives need candidates and shortlister scores")
    if n_threads:
        torch.set_num_threads(n_threads)
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    X = X.tocsr().astype(np.float32)
    Y = Y.tocsr()
    net = RankerNet(X.shape[1], Y.shape[1], params.net, label_text)
    sparse_opt = torch.optim.SparseAdam(net.sparse_params(), lr=params.lr)
    dense_opt = torch.optim.Adam(net.dense_params(), lr=params.lr)
    targets = candidate_targets(Y, cand) if cand is not None and params.negatives == "shortlist" else None
    # Candidates of -1 pad shortlists of uneven width: scored as label 0 and left out of the loss.
    valid = None
    if targets is not None and cand is not None and prior is not None and (cand < 0).any():
        valid = (cand >= 0).astype(np.float32)
        cand, prior = np.where(cand < 0, 0, cand), np.where(cand < 0, 1.0, prior).astype(np.float32)
    n = X.shape[0]
    # Small corpora get smaller batches, so that every epoch still takes enough optimizer steps.
    batch_size = min(params.batch_size, max(16, n // MIN_STEPS_PER_EPOCH))
    steps = params.epochs * ((n + batch_size - 1) // batch_size)
    bar = tqdm(total=steps, desc="ranker", unit="batch", disable=not progress)
    for _ in range(params.epochs):
        order = rng.permutation(n)
        t0, total = time.perf_counter(), 0.0
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            ids, offsets, values = bag_tensors(X, rows)
            if params.feature_dropout:
                keep = torch.rand(values.shape) >= params.feature_dropout
                values = values * keep / (1.0 - params.feature_dropout)
            h = net.encode_bag(ids, offsets, values)
            if targets is None:
                logits = net.score_all(h)
                target = torch.from_numpy(np.asarray(Y[rows].todense(), dtype=np.float32))
                loss = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / len(rows)
            else:
                assert cand is not None and prior is not None
                logits = net.score(h, torch.from_numpy(cand[rows]), torch.from_numpy(prior[rows]))
                target = torch.from_numpy(targets[rows])
                weight = torch.from_numpy(valid[rows]) if valid is not None else None
                loss = F.binary_cross_entropy_with_logits(logits, target, weight=weight)
                if params.loss == "bce+softmax":
                    n_pos = target.sum(1).clamp_min(1.0)
                    listwise = -(F.log_softmax(logits, dim=1) * target).sum(1) / n_pos
                    loss = loss + listwise.mean()
            sparse_opt.zero_grad()
            dense_opt.zero_grad()
            loss.backward()
            sparse_opt.step()
            dense_opt.step()
            total += float(loss.detach()) * len(rows)
            bar.update(1)
        bar.set_postfix(loss=f"{total / n:.4f}", epoch_s=f"{time.perf_counter() - t0:.0f}")
    bar.close()
    net.fold_label_text()
    net.eval()
    return net
