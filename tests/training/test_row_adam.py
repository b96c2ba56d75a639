"""RowAdam: the term table's Adam, the same updates as torch's SparseAdam over an embedding bag."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from training.ranker_model import bag_tensors
from training.row_adam import RowAdam


def test_row_adam_updates_the_table_as_sparse_adam_does():
    rng = np.random.default_rng(0)
    n_terms, dim = 500, 8
    start = rng.normal(size=(n_terms, dim)).astype(np.float32)
    bag = torch.nn.EmbeddingBag(n_terms, dim, mode="sum", sparse=True)
    bag.weight.data.copy_(torch.from_numpy(start))
    reference = torch.optim.SparseAdam(bag.parameters(), lr=0.01)
    table = start.copy()
    ours = RowAdam(table, lr=0.01)
    for _ in range(5):  # batches of documents that repeat terms, within and across documents
        X = sp.random(16, n_terms, density=0.05, format="csr", dtype=np.float32, random_state=rng)
        X.data[:] = rng.random(X.nnz).astype(np.float32)
        target = torch.from_numpy(rng.normal(size=(16, dim)).astype(np.float32))
        h = bag(*bag_tensors(X, np.arange(16)))
        loss = ((h - target) ** 2).sum()
        reference.zero_grad()
        loss.backward()
        reference.step()
        h_ours = torch.from_numpy(X @ table).requires_grad_()
        ((h_ours - target) ** 2).sum().backward()
        assert h_ours.grad is not None
        ours.step(X, h_ours.grad.numpy())
        assert np.allclose(table, bag.weight.detach().numpy(), atol=1e-6)
    touched = np.unique(np.concatenate([X.indices]))
    assert not np.allclose(table[touched], start[touched])  # it did learn
    untouched = np.setdiff1d(np.arange(n_terms), ours.m.nonzero()[0])
    assert np.array_equal(table[untouched], start[untouched])  # rows no batch touched never move
