"""Tests for xmlc.xc_format: exact float32 round trips and file:line errors for malformed input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from xmlc.data import DataError
from xmlc.xc_format import XCData, read_xc, write_xc


def _write(path: Path, text: str) -> Path:
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _random_data(seed: int = 0, n: int = 40, d: int = 300, n_labels: int = 25) -> XCData:
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=0.05, format="csr", random_state=rng, dtype=np.float64)
    X.data = (X.data * 10 ** rng.uniform(-8, 8, X.data.size)).astype(np.float32)  # awkward magnitudes
    Y = sp.random(n, n_labels, density=0.1, format="csr", random_state=rng)
    Y.data[:] = 1
    keep_y, keep_x = np.ones(n), np.ones(n)
    keep_y[3] = 0  # a document without labels -> line starts with a space
    keep_x[5] = 0  # and one without features
    Y = sp.csr_matrix(sp.diags(keep_y) @ Y, dtype=np.int8)
    X = sp.csr_matrix(sp.diags(keep_x) @ X, dtype=np.float32)
    Y.eliminate_zeros()
    X.eliminate_zeros()
    return XCData(X=X, Y=Y)


@pytest.mark.parametrize("name", ["train.txt", "train.txt.gz"])
def test_round_trip_exact(tmp_path: Path, name: str) -> None:
    data = _random_data()
    path = tmp_path / name
    write_xc(path, data)
    back = read_xc(path)
    assert back.X.dtype == np.float32 and back.X.has_sorted_indices
    assert back.X.shape == data.X.shape and back.Y.shape == data.Y.shape
    assert np.array_equal(back.X.indptr, data.X.indptr)
    assert np.array_equal(back.X.indices, data.X.indices)
    assert np.array_equal(back.X.data, data.X.data)  # bit-exact float32
    assert (back.Y != data.Y).nnz == 0
    assert set(np.unique(back.Y.data)) <= {1}
    assert not list(tmp_path.glob(".*.tmp"))
    lines = (gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()).splitlines()
    assert lines[0] == b"40 300 25"
    assert lines[1 + 3].startswith(b" ")


def test_empty_label_field_and_formats(tmp_path: Path) -> None:
    text = "4 6 5\n 0:0.5 3:1.25\n1,4 2:2\n3\n\t5:1e-3\n"
    data = read_xc(_write(tmp_path / "a.txt", text))
    assert data.n_docs == 4 and data.n_features == 6 and data.n_labels == 5
    assert data.Y.toarray().tolist() == [[0, 0, 0, 0, 0], [0, 1, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]]
    assert data.X[0].toarray().ravel().tolist() == [0.5, 0, 0, 1.25, 0, 0]
    assert data.X[2].nnz == 0
    assert data.X[3, 5] == np.float32(1e-3)


def test_unsorted_features_and_repeated_labels(tmp_path: Path) -> None:
    data = read_xc(_write(tmp_path / "a.txt", "1 5 3\n2,0,2 4:1 1:2\n"))
    assert data.X.has_sorted_indices
    assert data.X.indices.tolist() == [1, 4]
    assert data.Y.indices.tolist() == [0, 2] and data.Y.data.tolist() == [1, 1]


def test_trailing_blank_lines_ignored(tmp_path: Path) -> None:
    data = read_xc(_write(tmp_path / "a.txt", "1 5 3\n0 1:2\n\n\n"))
    assert data.n_docs == 1


@pytest.mark.parametrize("header", ["", "10 20\n", "a b c\n", "1 2 3 4\n", "1 -2 3\n"])
def test_bad_header(tmp_path: Path, header: str) -> None:
    path = _write(tmp_path / "h.txt", header)
    with pytest.raises(DataError, match=r"h\.txt(:1)?: .*header"):
        read_xc(path)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("0 9:1.0", "feature index 9 out of range"),
        ("7 1:1.0", "label index 7 out of range"),
        ("0 1:abc", "non-numeric feature value"),
        ("0 1:1e40", "not finite"),
        ("0 x:1.0", "bad feature field"),
        ("0 1:2:3", "bad feature field"),
        ("0 1:2 3", "bad feature field"),
        ("0 -1:2", "bad feature field"),
        ("a,b 1:2", "bad label field"),
        ("0,,1 1:2", "bad label field"),
    ],
)
def test_bad_line_named(tmp_path: Path, line: str, reason: str) -> None:
    path = _write(tmp_path / "b.txt", f"4 5 3\n0 1:1\n1 2:0.5\n{line}\n2 4:1\n")
    with pytest.raises(DataError) as info:
        read_xc(path)
    assert str(info.value).startswith(f"{path}:4: ")
    assert reason in info.value.reason


@pytest.mark.parametrize(("n", "extra"), [(3, ""), (1, "2 1:1\n")])
def test_doc_count_mismatch(tmp_path: Path, n: int, extra: str) -> None:
    path = _write(tmp_path / "c.txt", f"{n} 5 3\n0 1:1\n{extra}")
    with pytest.raises(DataError, match=r"c\.txt:\d+: .*(declare|more documents)"):
        read_xc(path)


def test_missing_file_and_bad_gzip(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_xc(tmp_path / "none.txt")
    bad = tmp_path / "bad.txt.gz"
    bad.write_bytes(gzip.compress(b"2 5 3\n0 1:1\n1 2:1\n")[:-6])
    with pytest.raises(DataError, match=r"bad\.txt\.gz: .*gzip"):
        read_xc(bad)


def test_write_rejects_mismatched_rows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rows"):
        XCData(X=sp.csr_matrix((2, 3)), Y=sp.csr_matrix((3, 3)))
