"""Tests for xmlc.data: round trips, and that every malformed line is reported as file:line."""

from __future__ import annotations

import gzip
import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from xmlc.data import (
    DataError,
    Document,
    ReadStats,
    iter_documents,
    read_documents,
    read_label_names,
    write_documents,
)
from xmlc.doc import Doc

DOCS = [
    Document(id="d1", text="first body", title="First", labels=("a", "b")),
    Document(id="d2", text="second body ünïcode", labels=("c",)),
    Document(id="d3", text="", title="only a title", labels=("a",)),
]


def _write_lines(path: Path, lines: list[str | bytes]) -> Path:
    data = b"".join((ln if isinstance(ln, bytes) else ln.encode("utf-8")) + b"\n" for ln in lines)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _good(i: int) -> str:
    return json.dumps({"id": f"d{i}", "text": f"text {i}", "labels": ["x"]})


@pytest.mark.parametrize("name", ["docs.jsonl", "docs.jsonl.gz"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert write_documents(path, DOCS) == len(DOCS)
    docs, stats = read_documents(path)
    assert docs == DOCS
    assert (stats.n_read, stats.n_skipped) == (3, 0)
    assert not list(tmp_path.glob(".*.tmp"))  # the temp file was renamed, not left behind
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if name.endswith(".gz") else raw).decode("utf-8")
    assert list(json.loads(text.splitlines()[0])) == ["id", "title", "text", "labels"]


def test_title_omitted_when_empty(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    write_documents(path, DOCS[1:2])
    assert "title" not in json.loads(path.read_text(encoding="utf-8"))


def test_title_optional_and_doc(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "d.jsonl",
        [
            json.dumps({"id": "a", "text": "body", "labels": ["x"]}),
            json.dumps({"id": "b", "title": None, "text": "body", "labels": ["x"]}),
            json.dumps({"id": "c", "title": "T", "text": "body", "labels": ["x"]}),
        ],
    )
    docs, _ = read_documents(path)
    assert [d.title for d in docs] == ["", "", "T"]
    assert [d.doc for d in docs] == [Doc("body"), Doc("body"), Doc("body", "T")]
    assert [d.doc.body for d in docs] == ["body", "body", "T\nbody"]


def test_int_ids_converted_and_labels_deduplicated(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "d.jsonl", [json.dumps({"id": 7, "text": "t", "labels": [3, "b", 3, "b", 1]})]
    )
    (doc,), _ = read_documents(path)
    assert doc.id == "7"
    assert doc.labels == ("3", "b", "1")


def test_blank_lines_skipped_silently(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "d.jsonl", [_good(1), "", "   ", _good(2)])
    docs, stats = read_documents(path)
    assert [d.id for d in docs] == ["d1", "d2"]
    assert stats.n_skipped == 0


BAD_LINES: list[tuple[str, str | bytes, str]] = [
    ("bad_json", '{"id": "x", "text": ', "invalid JSON"),
    ("array", '["id", "text"]', "expected a JSON object"),
    ("missing_text", '{"id": "x", "labels": ["a"]}', '"text"'),
    ("labels_not_list", '{"id": "x", "text": "t", "labels": "a"}', '"labels" must be a list'),
    ("empty_labels", '{"id": "x", "text": "t", "labels": []}', "missing or empty"),
    ("non_utf8", b'{"id": "x", "text": "caf\xe9", "labels": ["a"]}', "UTF-8"),
    ("title_wrong_type", '{"id": "x", "title": 5, "text": "t", "labels": ["a"]}', '"title"'),
    ("missing_id", '{"text": "t", "labels": ["a"]}', '"id"'),
    ("empty_id", '{"id": "", "text": "t", "labels": ["a"]}', "empty"),
    ("bool_id", '{"id": true, "text": "t", "labels": ["a"]}', "string or int"),
    ("label_wrong_type", '{"id": "x", "text": "t", "labels": [1.5]}', "label"),
    ("empty_text_and_title", '{"id": "x", "title": " ", "text": "", "labels": ["a"]}', "both empty"),
]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
@pytest.mark.parametrize(("case", "bad", "reason"), BAD_LINES, ids=[c[0] for c in BAD_LINES])
def test_malformed_line_names_file_and_line(
    tmp_path: Path, suffix: str, case: str, bad: str, reason: str
) -> None:
    path = _write_lines(tmp_path / f"{case}{suffix}", [_good(1), "", _good(2), bad, _good(3)])
    with pytest.raises(DataError) as info:
        read_documents(path)
    err = info.value
    assert str(err).startswith(f"{path}:4: ")
    assert (err.path, err.line) == (str(path), 4)
    assert reason in err.reason


def test_skip_bad_skips_and_counts(tmp_path: Path) -> None:
    lines = [_good(1)] + [b for _, b, _ in BAD_LINES] + [_good(2)]
    path = _write_lines(tmp_path / "d.jsonl", lines)
    docs, stats = read_documents(path, skip_bad=True)
    assert [d.id for d in docs] == ["d1", "d2"]
    assert stats.n_read == 2
    assert stats.n_skipped == len(BAD_LINES)
    assert stats.skipped[0].startswith(f"{path}:2: ")
    many = _write_lines(tmp_path / "many.jsonl", ["[]"] * 30)
    _, stats = read_documents(many, skip_bad=True)
    assert stats.n_skipped == 30 and len(stats.skipped) == 20


def test_iter_documents_fills_given_stats(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "d.jsonl", [_good(1), "nope", _good(2)])
    stats = ReadStats()
    assert len(list(iter_documents(path, skip_bad=True, stats=stats))) == 2
    assert (stats.n_read, stats.n_skipped) == (2, 1)


def test_require_labels_false(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "d.jsonl",
        [
            json.dumps({"id": "a", "text": "t"}),
            json.dumps({"id": "b", "text": "t", "labels": []}),
            json.dumps({"id": "c", "text": "t", "labels": ["z"]}),
        ],
    )
    docs, _ = read_documents(path, require_labels=False)
    assert [d.labels for d in docs] == [(), (), ("z",)]
    with pytest.raises(DataError, match=r":1: "):
        read_documents(path)


@pytest.mark.parametrize("name", ["labels.jsonl", "labels.jsonl.gz"])
def test_read_label_names(tmp_path: Path, name: str) -> None:
    path = _write_lines(
        tmp_path / name,
        [
            json.dumps({"id": "192", "name": "nuclear safety", "alt_names": ["x"], "parents": ["1"]}),
            "",
            json.dumps({"id": 7, "name": "fisheries"}),
        ],
    )
    assert read_label_names(path) == {"192": "nuclear safety", "7": "fisheries"}


def test_read_label_names_errors(tmp_path: Path) -> None:
    dup = _write_lines(
        tmp_path / "dup.jsonl",
        ['{"id": "a", "name": "x"}', '{"id": "b", "name": "y"}', '{"id": "a", "name": "z"}'],
    )
    with pytest.raises(DataError, match=r"dup\.jsonl:3: duplicate label id 'a' \(first on line 1\)"):
        read_label_names(dup)
    no_name = _write_lines(tmp_path / "noname.jsonl", ['{"id": "a"}'])
    with pytest.raises(DataError, match=r"noname\.jsonl:1: .*name"):
        read_label_names(no_name)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    with pytest.raises(DataError) as info:
        read_documents(path)
    assert (info.value.line, info.value.reason) == (None, "no such file")
    assert str(info.value) == f"{path}: no such file"
    with pytest.raises(DataError, match="no such file"):
        read_label_names(path)


def test_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress("\n".join(_good(i) for i in range(200)).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.jsonl\.gz: .*gzip"):
        read_documents(path)
    with pytest.raises(DataError, match="gzip"):  # a truncated file is never "skippable"
        read_documents(path, skip_bad=True)
    garbage = tmp_path / "garbage.jsonl.gz"
    garbage.write_bytes(b"this is not gzip at all\n")
    with pytest.raises(DataError, match=r"garbage\.jsonl\.gz: "):
        read_documents(garbage)


def test_data_error_is_value_error_and_picklable() -> None:
    err = DataError("f.jsonl", 3, "boom")
    assert isinstance(err, ValueError)
    again = pickle.loads(pickle.dumps(err))
    assert (str(again), again.path, again.line, again.reason) == ("f.jsonl:3: boom", "f.jsonl", 3, "boom")


def test_failed_write_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    write_documents(path, DOCS)

    def broken() -> Iterator[Document]:
        yield DOCS[0]
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_documents(path, broken())
    assert read_documents(path)[0] == DOCS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"]
