"""The Extreme Classification Repository sparse text format (``N D L`` header, then one doc a line).

Each document line is ``l1,l2,... f1:v1 f2:v2 ...`` with 0-based ints; an empty label field makes the
line start with a space. Public benchmarks (EURLex-4K, Wiki10-31K, AmazonCat-13K) ship this way, so
reading must be exact, fast and loud about bad lines. Parsing validates each line with a regex (C
speed) and converts all numbers in one bulk numpy call; only when that fails is the file re-scanned
line by line to name the culprit.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from xmlc.data import DataError, PathLike, atomic_text_writer, iter_raw_lines

_LABELS_RE = re.compile(rb"[0-9]+(?:,[0-9]+)*")
_FEATS_RE = re.compile(rb"\s*(?:[0-9]+:[^\s:]+(?:\s+[0-9]+:[^\s:]+)*)?\s*")
_INT32_MAX = np.iinfo(np.int32).max


@dataclass
class XCData:
    """Features X (N x D, float32, sorted indices) and label indicator Y (N x L), both CSR."""

    X: sp.csr_matrix
    Y: sp.csr_matrix

    def __post_init__(self) -> None:
        x = sp.csr_matrix(self.X, dtype=np.float32)
        self.X = x if x.has_sorted_indices else x.sorted_indices()
        self.Y = sp.csr_matrix(self.Y)
        if self.X.shape[0] != self.Y.shape[0]:
            raise ValueError(f"X has {self.X.shape[0]} rows but Y has {self.Y.shape[0]}")

    @property
    def n_docs(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_labels(self) -> int:
        return int(self.Y.shape[1])


def _parse_numbers(chunk: bytes, expected: int) -> np.ndarray | None:
    """Whitespace-separated numbers -> float64, or None if any token is not a number."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy warns (later raises) on junk
        try:
            out = np.fromstring(chunk, dtype=np.float64, sep=" ")
        except ValueError:
            return None
    return out if out.size == expected else None


def _split_line(line: bytes) -> tuple[bytes, bytes]:
    """Separate the label field from the features; no labels if the line starts with space or i:v."""
    if not line or line[:1].isspace():
        return b"", line
    parts = line.split(None, 1)
    if b":" in parts[0]:
        return b"", line
    return parts[0], parts[1] if len(parts) > 1 else b""


def _parse_header(path: Path, line: bytes | None) -> tuple[int, int, int]:
    if line is None:
        raise DataError(path, None, "empty file: missing 'N D L' header")
    parts = line.split()
    try:
        if len(parts) != 3:
            raise ValueError
        n, d, n_labels = (int(t) for t in parts)
    except ValueError:
        shown = line.decode("utf-8", "replace").strip()[:60]
        raise DataError(path, 1, f"bad header {shown!r}: expected 'N D L' (three ints)") from None
    if min(n, d, n_labels) < 0:
        raise DataError(path, 1, "bad header: N, D and L must be non-negative")
    return n, d, n_labels


def _csr(
    path: Path, chunks: list[bytes], counts: list[int], pairs: bool, n_cols: int, what: str
) -> sp.csr_matrix:
    """Build a CSR from per-doc number chunks; ``pairs`` means chunks hold (index, value) pairs."""
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    width = 2 if pairs else 1
    flat = _parse_numbers(b" ".join(chunks), width * int(indptr[-1]))
    if flat is None:  # slow path: find the first bad line
        for i, chunk in enumerate(chunks):
            if _parse_numbers(chunk, width * counts[i]) is None:
                raise DataError(path, i + 2, f"non-numeric {what} value")
        raise DataError(path, None, f"could not parse {what} values")
    idx = flat[0::width]
    with np.errstate(over="ignore"):  # overflow becomes inf, reported below with its line
        vals = flat[1::2].astype(np.float32) if pairs else np.ones(idx.size, dtype=np.float32)
    bad = np.flatnonzero(idx >= n_cols)
    if bad.size:
        row = int(np.searchsorted(indptr, bad[0], side="right")) - 1
        raise DataError(path, row + 2, f"{what} index {int(idx[bad[0]])} out of range (header says {n_cols})")
    bad = np.flatnonzero(~np.isfinite(vals))
    if bad.size:
        row = int(np.searchsorted(indptr, bad[0], side="right")) - 1
        raise DataError(path, row + 2, f"{what} value is not finite in float32")
    itype = np.int32 if max(n_cols, int(indptr[-1])) <= _INT32_MAX else np.int64
    m = sp.csr_matrix((vals, idx.astype(itype), indptr.astype(itype)), shape=(len(counts), n_cols))
    m.sum_duplicates()  # also sorts indices
    if not pairs:
        m.data[:] = 1.0  # a label repeated on a line is still one label
    return m


def read_xc(path: PathLike) -> XCData:
    """Read an XC-format file (plain or .gz); any malformed line raises DataError with file:line."""
    p = Path(path)
    lines = iter_raw_lines(p)
    first = next(lines, None)
    n, d, n_labels = _parse_header(p, first[1] if first else None)
    feat_chunks: list[bytes] = []
    feat_counts: list[int] = []
    lab_chunks: list[bytes] = []
    lab_counts: list[int] = []
    for lineno, raw in lines:
        line = raw.rstrip(b"\r\n")
        if len(feat_counts) >= n:
            if line.strip():
                raise DataError(p, lineno, f"more documents than the {n} declared in the header")
            continue
        labels, feats = _split_line(line)
        if labels and not _LABELS_RE.fullmatch(labels):
            raise DataError(p, lineno, f"bad label field {labels[:40]!r}: expected comma-separated ints")
        if not _FEATS_RE.fullmatch(feats):
            raise DataError(p, lineno, "bad feature field: expected space-separated index:value pairs")
        feat_chunks.append(feats.replace(b":", b" "))
        feat_counts.append(feats.count(b":"))
        lab_chunks.append(labels.replace(b",", b" "))
        lab_counts.append(labels.count(b",") + 1 if labels else 0)
    if len(feat_counts) != n:
        raise DataError(p, 1, f"header declares {n} documents but the file has {len(feat_counts)}")
    X = _csr(p, feat_chunks, feat_counts, True, d, "feature")
    Y = _csr(p, lab_chunks, lab_counts, False, n_labels, "label")
    return XCData(X=X, Y=Y)


def write_xc(path: PathLike, data: XCData) -> None:
    """Write atomically; values use numpy's shortest float32 repr, so a re-read is bit-exact."""
    X = sp.csr_matrix(data.X, dtype=np.float32)
    if not X.has_sorted_indices:
        X = X.sorted_indices()
    Y = sp.csr_matrix(data.Y)
    Y = Y.sorted_indices() if not Y.has_sorted_indices else Y
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but Y has {Y.shape[0]}")
    if not np.isfinite(X.data).all():
        raise ValueError("X has non-finite values; the XC format cannot represent them")
    x_idx = X.indices.tolist()
    x_val = [str(v) for v in X.data]  # np.float32.__str__ is the shortest exact repr
    y_idx, y_nz = Y.indices.tolist(), (Y.data != 0).tolist()
    with atomic_text_writer(path) as fh:
        fh.write(f"{X.shape[0]} {X.shape[1]} {Y.shape[1]}\n")
        for i in range(X.shape[0]):
            ys, ye = Y.indptr[i], Y.indptr[i + 1]
            labels = ",".join(str(j) for j, nz in zip(y_idx[ys:ye], y_nz[ys:ye], strict=True) if nz)
            xs, xe = X.indptr[i], X.indptr[i + 1]
            feats = " ".join(f"{j}:{v}" for j, v in zip(x_idx[xs:xe], x_val[xs:xe], strict=True))
            fh.write(f"{labels} {feats}\n" if feats else f"{labels}\n")
