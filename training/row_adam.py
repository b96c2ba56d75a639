"""Adam on the rows of a big embedding table that a step touches, in one compiled pass.

The ranker's term table has a row per feature (263K x 256 on EURLEX57K) and a batch of 187-256
documents touches about 57,000 of them. torch's `SparseAdam` spent 79% of a training step there: it
coalesces the embedding bag's uncoalesced gradient (one row per document term) and updates the moments
through several sparse tensors. Here the batch's gradient is summed per touched row straight from its
TF-IDF rows (the bag is a sum, so d loss / d row = sum over its documents of weight x d loss / d h) and
each touched row's moments and weights are updated in one fused loop: the same arithmetic as
`SparseAdam` (moments decayed only where touched, bias-corrected step; equal to 1e-6 in the tests).
Measured: the update of 57,000 rows x 256 in 16 ms against 216 ms, the ranker's training 5.5x faster
on a generated corpus with the same loss and the same held-out P@1/P@5 (BENCHMARKS.md).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from numba import njit, prange


@njit(cache=True, nogil=True)
def _row_grads(
    indptr: np.ndarray, slot: np.ndarray, data: np.ndarray, grad_h: np.ndarray, out: np.ndarray
) -> None:
    """out[slot[k]] += data[k] * grad_h[doc of k], over the batch's CSR entries."""
    for doc in range(len(indptr) - 1):
        for k in range(indptr[doc], indptr[doc + 1]):
            row, w = slot[k], data[k]
            for j in range(out.shape[1]):
                out[row, j] += w * grad_h[doc, j]


@njit(cache=True, nogil=True, parallel=True)
def _adam_rows(
    W: np.ndarray, M: np.ndarray, V: np.ndarray, rows: np.ndarray, G: np.ndarray,
    step: float, b1: float, b2: float, eps: float,
) -> None:  # fmt: skip
    for i in prange(len(rows)):
        r = rows[i]
        for j in range(W.shape[1]):
            g = G[i, j]
            m = b1 * M[r, j] + (1.0 - b1) * g
            v = b2 * V[r, j] + (1.0 - b2) * g * g
            M[r, j] = m
            V[r, j] = v
            W[r, j] -= step * m / (math.sqrt(v) + eps)


class RowAdam:
    """Adam for a float32 (rows x dim) table whose gradient comes from CSR rows of documents."""

    def __init__(
        self, table: np.ndarray, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ):
        if table.dtype != np.float32 or not table.flags.c_contiguous:
            raise ValueError("RowAdam updates a C-contiguous float32 table in place")
        self.table = table
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m = np.zeros_like(table)
        self.v = np.zeros_like(table)
        self.steps = 0

    def step(self, X: sp.csr_matrix, grad_h: np.ndarray) -> None:
        """One update from the batch's rows ``X`` (documents x features) and d loss / d document vector."""
        rows, slot = np.unique(X.indices, return_inverse=True)
        G = np.zeros((len(rows), self.table.shape[1]), np.float32)
        data, grad_h = X.data.astype(np.float32, copy=False), grad_h.astype(np.float32, copy=False)
        _row_grads(X.indptr, slot.astype(np.int64, copy=False), data, grad_h, G)
        self.steps += 1
        b1, b2 = self.betas
        size = self.lr * math.sqrt(1.0 - b2**self.steps) / (1.0 - b1**self.steps)
        _adam_rows(self.table, self.m, self.v, rows.astype(np.int64, copy=False), G, size, b1, b2, self.eps)
