"""Train the ranker on the shortlists a shortlister returns for the training documents.

Each training document brings its shortlist (the hard negatives and, almost always, its true labels) and
the shortlister's scores; the loss is binary cross-entropy over those candidates. With
``negatives="sampled"`` the loss is one-vs-all instead: over every label while they number at most
``n_negatives``, beyond that over the batch's positives and a uniform sample of labels weighted to stand
for all the others (`sampled_labels`), so a step never costs O(labels).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch.nn import functional as F
from tqdm import tqdm

from training.params import RankerParams
from training.ranker_model import RankerNet, bag_tensors
from training.row_adam import RowAdam

MIN_STEPS_PER_EPOCH = 64


def candidate_targets(Y: sp.csr_matrix, cand: np.ndarray) -> np.ndarray:
    """0/1 matrix: is ``cand[i, j]`` a true label of document i."""
    Y = Y.tocsr()
    out = np.zeros(cand.shape, dtype=np.float32)
    for i in range(cand.shape[0]):
        pos = Y.indices[Y.indptr[i] : Y.indptr[i + 1]]
        if len(pos):
            out[i] = np.isin(cand[i], pos)
    return out


def sampled_labels(
    Y_rows: sp.csr_matrix, n_negatives: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray] | None:
    """Labels a one-vs-all step scores, and each one's loss weight; None: score every label.

    The batch's positives count once each (for the other documents they are in-batch negatives); labels
    drawn uniformly beyond them stand for every other label, so their weight is the number of labels they
    represent over the number drawn: the weighted sum estimates the sum over all labels.
    """
    n_labels = Y_rows.shape[1]
    if n_labels <= n_negatives:
        return None
    pos = np.unique(Y_rows.indices)
    drawn = np.setdiff1d(np.unique(rng.integers(0, n_labels, n_negatives)), pos)
    ids = np.concatenate([pos, drawn])
    weight = np.ones(len(ids), np.float32)
    weight[len(pos) :] = (n_labels - len(pos)) / max(len(drawn), 1)
    return ids, weight


def one_vs_all_loss(
    logits_of: Callable[[torch.Tensor | None], torch.Tensor],
    Y_rows: sp.csr_matrix,
    n_negatives: int,
    rng: np.random.Generator,
) -> torch.Tensor:
    """Binary cross-entropy summed over labels (every one, or a weighted sample), mean over documents.

    ``logits_of(ids)`` scores the labels ``ids`` (None: all of them) for the batch's documents.
    """
    sample = sampled_labels(Y_rows, n_negatives, rng)
    if sample is None:
        target = torch.from_numpy(np.asarray(Y_rows.todense(), dtype=np.float32))
        return F.binary_cross_entropy_with_logits(logits_of(None), target, reduction="sum") / Y_rows.shape[0]
    ids, weight = sample
    target = torch.from_numpy(np.asarray(Y_rows[:, ids].todense(), dtype=np.float32))
    logits = logits_of(torch.from_numpy(ids))
    w = torch.from_numpy(weight).expand_as(target)
    return F.binary_cross_entropy_with_logits(logits, target, weight=w, reduction="sum") / Y_rows.shape[0]


def batch_size_for(n_docs: int, wanted: int) -> int:
    """Small corpora get smaller batches, so that every epoch still takes enough optimizer steps."""
    return min(wanted, max(16, n_docs // MIN_STEPS_PER_EPOCH))


def train_ranker(
    X: sp.csr_matrix,
    Y: sp.csr_matrix,
    cand: np.ndarray | None,
    prior: np.ndarray | None,
    params: RankerParams,
    n_threads: int = 0,
    progress: bool = True,
) -> RankerNet:
    """Fit a `RankerNet` on (documents, candidate lists, shortlister scores).

    With ``negatives="sampled"`` no candidates are needed and the loss is summed over labels (a mean over
    thousands of mostly negative labels would shrink the positives' gradient to nothing).
    """
    if params.negatives == "shortlist" and (cand is None or prior is None):
        raise ValueError("shortlist negatives need candidates and shortlister scores")
    if n_threads:
        torch.set_num_threads(n_threads)
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    X = X.tocsr().astype(np.float32)
    Y = Y.tocsr()
    net = RankerNet(X.shape[1], Y.shape[1], params.dim, params.use_prior)
    terms = RowAdam(net.features.weight.data.numpy(), lr=params.lr)  # the term table (`training.row_adam`)
    sparse_opt = torch.optim.SparseAdam(net.label_params(), lr=params.lr)
    dense_opt = torch.optim.Adam(net.dense_params(), lr=params.lr)
    targets = candidate_targets(Y, cand) if cand is not None and params.negatives == "shortlist" else None
    # Candidates of -1 pad shortlists of uneven width: scored as label 0 and left out of the loss.
    valid = None
    if targets is not None and cand is not None and prior is not None and (cand < 0).any():
        valid = (cand >= 0).astype(np.float32)
        cand, prior = np.where(cand < 0, 0, cand), np.where(cand < 0, 1.0, prior).astype(np.float32)
    n = X.shape[0]
    batch_size = batch_size_for(n, params.batch_size)
    steps = params.epochs * ((n + batch_size - 1) // batch_size)
    bar = tqdm(total=steps, desc="ranker", unit="batch", disable=not progress)
    for _ in range(params.epochs):
        order = rng.permutation(n)
        t0, total = time.perf_counter(), 0.0
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            sub = X[rows]
            with torch.no_grad():  # the term table learns through `terms`, from h's gradient
                h = net.encode_bag(*bag_tensors(sub, np.arange(len(rows))))
            h.requires_grad_()
            if targets is None:

                def logits_of(ids: torch.Tensor | None, h: torch.Tensor = h) -> torch.Tensor:
                    return net.score_all(h) if ids is None else net.score_some(h, ids)

                loss = one_vs_all_loss(logits_of, Y[rows], params.n_negatives, rng)
            else:
                assert cand is not None and prior is not None
                logits = net.score(h, torch.from_numpy(cand[rows]), torch.from_numpy(prior[rows]))
                target = torch.from_numpy(targets[rows])
                weight = torch.from_numpy(valid[rows]) if valid is not None else None
                loss = F.binary_cross_entropy_with_logits(logits, target, weight=weight)
            sparse_opt.zero_grad()
            dense_opt.zero_grad()
            loss.backward()
            assert h.grad is not None
            terms.step(sub, h.grad.numpy())
            sparse_opt.step()
            dense_opt.step()
            total += float(loss.detach()) * len(rows)
            bar.update(1)
        bar.set_postfix(loss=f"{total / n:.4f}", epoch_s=f"{time.perf_counter() - t0:.0f}")
    bar.close()
    net.eval()
    return net
