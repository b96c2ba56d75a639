"""The compiled encoder: a sparse row times a float16 table, exact to float32 rounding."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from xmlc.embedding import embed, gather


def test_embed_is_the_sparse_product_with_every_half_widened_exactly():
    rng = np.random.default_rng(0)
    # every float16 bit pattern but infinities and NaNs: zeros, subnormals, normals, both signs
    halves = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    finite = halves[np.isfinite(halves)]
    table = rng.choice(finite, size=(500, 24)).astype(np.float16)
    table[:3] = finite[:72].reshape(3, 24)  # the smallest patterns (zero and subnormals) for certain
    X = sp.random(40, 500, density=0.05, format="lil", random_state=1, dtype=np.float32)
    X[5, :] = 0  # an empty document
    X[7, 0:3] = [0.5, -2.0, 1.0]
    X = X.tocsr()
    X.eliminate_zeros()
    got = embed(X, table)
    want = X.astype(np.float64) @ table.astype(np.float64)
    assert got.dtype == np.float32 and got.shape == (40, 24)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    assert not got[5].any()
    # one term: exactly its (widened) row times the value
    one = sp.csr_matrix((np.array([2.0], np.float32), np.array([1]), np.array([0, 1])), shape=(1, 500))
    np.testing.assert_array_equal(embed(one, table)[0], 2.0 * table[1].astype(np.float32))
    assert embed(X[:0], table).shape == (0, 24)


def test_gather_widens_the_rows_asked_for():
    rng = np.random.default_rng(2)
    table = rng.standard_normal((50, 8)).astype(np.float16)
    table[0, :4] = [0.0, -0.0, 6e-8, -6e-5]  # zeros and subnormals
    rows = rng.integers(0, 50, size=(3, 7))
    rows[0, 0] = 0
    got = gather(table, rows)
    assert got.shape == (3, 7, 8) and got.dtype == np.float32
    np.testing.assert_array_equal(got, table[rows].astype(np.float32))
    assert gather(table, rows[:0]).shape == (0, 7, 8)
