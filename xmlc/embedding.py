"""The ranker's document encoder: a sparse TF-IDF row times a float16 term table, compiled (numba).

Why not the ONNX graph it replaces: onnxruntime has no embedding bag, so the graph gathered a padded
(documents x longest row x dim) block, widened it to float32, weighted and summed it, moving about
50 MB per batch of 32 EURLEX57K documents (0.7 ms a document, the second largest stage). This kernel
walks each document's terms once, adding ``value x row`` into the document's vector, with the rows
read straight from the memory-mapped table (``ranker_feature_table.npy``), so replicas on one host
share it instead of each holding the graph's copy.

float16 is widened exactly: the half's sign, exponent and mantissa bits are moved into float32
position and the result scaled by 2^112, which rebiases the exponent (subnormal halves included); a
table never holds infinities or NaNs (training weights), which this widening would not keep.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit

_REBIAS = np.float32(2.0**112)


@njit(cache=True, nogil=True, inline="always")
def _shift(row: np.ndarray, bits: np.ndarray) -> None:
    """The float16 bits of ``row`` moved to float32 position in ``bits``: read as float32 and times
    `_REBIAS`, each is the half's exact value."""
    for j in range(row.shape[0]):
        h = np.uint32(row[j])
        bits[j] = ((h & np.uint32(0x8000)) << np.uint32(16)) | ((h & np.uint32(0x7FFF)) << np.uint32(13))


@njit(cache=True, nogil=True)
def _embed(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, table: np.ndarray, out: np.ndarray
) -> None:
    """``out[d] = sum_i data[i] * float(table[indices[i]])`` over row ``d``'s entries (uint16 bits)."""
    dim = table.shape[1]
    bits = np.empty(dim, np.uint32)
    wide = bits.view(np.float32)
    touched = 0
    for d in range(indptr.shape[0] - 1):
        lo, hi = indptr[d], indptr[d + 1]
        for i in range(lo, hi):  # every row's first bytes first: the misses overlap (see xmlc.beam)
            touched += table[indices[i], 0]
        acc = out[d]
        acc[:] = 0.0
        for i in range(lo, hi):
            _shift(table[indices[i]], bits)
            v = data[i]
            for j in range(dim):
                acc[j] += v * (wide[j] * _REBIAS)
    out[0, 0] += np.float32(0.0) * np.float32(touched & 1)  # keeps the touching loads


@njit(cache=True, nogil=True)
def _gather(table: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = float(table[rows[i]])`` for every index of ``rows`` (uint16 bits to float32)."""
    dim = table.shape[1]
    flat = rows.ravel()
    bits = out.reshape(flat.shape[0], dim).view(np.uint32)
    wide = out.reshape(flat.shape[0], dim)
    for i in range(flat.shape[0]):
        _shift(table[flat[i]], bits[i])
        for j in range(dim):
            wide[i, j] *= _REBIAS


def gather(table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``table[rows]`` widened to float32 (``table`` float16, ``rows`` an index array of any shape): the
    scorer's candidate vectors, without numpy's slower float16 cast."""
    out = np.empty((*rows.shape, table.shape[1]), np.float32)
    if rows.size:
        _gather(np.asarray(table).view(np.uint16), np.ascontiguousarray(rows, dtype=np.int64), out)
    return out


def embed(X: sp.csr_matrix, table: np.ndarray) -> np.ndarray:
    """(docs x dim) float32 document vectors: ``X @ table`` with ``table`` float16 (features x dim)."""
    out = np.zeros((X.shape[0], table.shape[1]), np.float32)
    if X.shape[0] == 0:
        return out
    _embed(
        X.indptr,
        X.indices,
        X.data.astype(np.float32, copy=False),
        np.asarray(table).view(np.uint16),
        out,
    )
    return out
