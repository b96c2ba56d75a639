"""JSON-lines documents and label files, read strictly so bad data fails loudly with file:line; files of
the Extreme Classification Repository (``N D L`` header, features given) are read as documents too.

Training data is large and hand-assembled; an error that says *where* it is saves hours, and a
silently dropped document skews every metric downstream. Files may be plain or gzip (``.gz``).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
import os
import re
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from xmlc.doc import Doc, FeatureRow

PathLike = str | os.PathLike[str]
MAX_SKIPPED_MESSAGES = 20
XC_HEADER = re.compile(rb"[0-9]+[ \t]+[0-9]+[ \t]+[0-9]+")


class DataError(ValueError):
    """A data file problem; the message starts with ``path:line:`` so editors can jump to it."""

    def __init__(self, path: PathLike, line: int | None, reason: str) -> None:
        self.path, self.line, self.reason = str(path), line, reason
        where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + reason)

    def __reduce__(self) -> tuple[Any, ...]:  # keep picklable across worker processes
        return (type(self), (self.path, self.line, self.reason))


@dataclass(frozen=True, slots=True)
class Document:
    """A labelled document of a data file; `doc` is what the models read of it."""

    id: str
    text: str
    title: str = ""
    labels: tuple[str, ...] = ()
    features: FeatureRow | None = None  # given features (XC files, or "features" in JSON lines)

    @property
    def doc(self) -> Doc:
        return Doc(self.text, self.title, self.features)


@dataclass
class ReadStats:
    """Counts for a read; ``skipped`` keeps the first 20 messages so a report stays readable."""

    n_read: int = 0
    n_skipped: int = 0
    skipped: list[str] = field(default_factory=list)

    def add_skip(self, err: DataError) -> None:
        self.n_skipped += 1
        if len(self.skipped) < MAX_SKIPPED_MESSAGES:
            self.skipped.append(str(err))


def iter_raw_lines(path: PathLike) -> Iterator[tuple[int, bytes]]:
    """Yield ``(1-based line number, raw bytes)``; binary so decode errors can name their line."""
    p = Path(path)
    if not p.exists():
        raise DataError(p, None, "no such file")
    if p.is_dir():
        raise DataError(p, None, "is a directory, expected a file")
    lineno = 0
    try:
        with gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                yield lineno, raw
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(p, None, f"corrupt or truncated gzip after line {lineno}: {exc}") from exc
    except OSError as exc:
        raise DataError(p, None, f"cannot read: {exc}") from exc


def _decode(path: Path, lineno: int, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(path, lineno, f"invalid UTF-8 at byte {exc.start}") from None
    return text.removeprefix("\ufeff") if lineno == 1 else text


def _ident(value: Any, what: str) -> str:
    """Ids may be ints in some dumps; bools are ints in Python but never valid ids."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, str):
        raise ValueError(f"{what} is empty")
    raise ValueError(f"{what} must be a string or int, got {type(value).__name__}")


def _parse_object(text: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def parse_features(value: Any) -> FeatureRow:
    """A JSON object of feature id (a non-negative integer, as a string) -> finite number, by id."""
    if not isinstance(value, dict) or not value:
        raise ValueError('"features" must be a non-empty object of feature id -> value')
    ids, vals = [], []
    for key, v in value.items():
        if not (isinstance(key, str) and key.isdigit() and key.isascii() and len(key) < 10):
            raise ValueError(f"feature id {key!r}: expected a non-negative integer below 10^9")
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"feature {key}: value must be a finite number, got {v!r}")
        ids.append(int(key))
        vals.append(float(v))
    order = sorted(range(len(ids)), key=ids.__getitem__)  # one order: equal vectors, equal cache keys
    return tuple(ids[i] for i in order), tuple(vals[i] for i in order)


def _parse_document(text: str, require_labels: bool) -> Document:
    obj = _parse_object(text)
    if "id" not in obj:
        raise ValueError('missing "id"')
    doc_id = _ident(obj["id"], '"id"')
    features = parse_features(obj["features"]) if "features" in obj else None
    body = obj.get("text", "" if features else None)
    if not isinstance(body, str):
        raise ValueError('"text" missing or not a string')
    title = obj.get("title")
    if title is None:
        title = ""
    elif not isinstance(title, str):
        raise ValueError(f'"title" must be a string, got {type(title).__name__}')
    if not body.strip() and not title.strip() and not features:
        raise ValueError("text and title are both empty")
    raw_labels = obj.get("labels")
    if raw_labels is None:
        raw_labels = []
    elif not isinstance(raw_labels, list):
        raise ValueError(f'"labels" must be a list, got {type(raw_labels).__name__}')
    labels = tuple(dict.fromkeys(_ident(lab, "label") for lab in raw_labels))
    if require_labels and not labels:
        raise ValueError('"labels" missing or empty')
    return Document(id=doc_id, text=body, title=title, labels=labels, features=features)


def iter_documents(
    path: PathLike,
    *,
    require_labels: bool = True,
    skip_bad: bool = False,
    stats: ReadStats | None = None,
) -> Iterator[Document]:
    """Stream documents; with ``skip_bad`` bad lines are counted in ``stats`` instead of raising.

    A corrupt gzip always raises: a truncated file is not a bad line, it is missing data.
    """
    p = Path(path)
    st = stats if stats is not None else ReadStats()
    if is_xc_file(p):
        yield from _iter_xc(p, require_labels, skip_bad, st)
        return
    for lineno, raw in iter_raw_lines(p):
        if not raw.strip():
            continue
        try:
            text = _decode(p, lineno, raw)
            try:
                doc = _parse_document(text, require_labels)
            except ValueError as exc:
                raise DataError(p, lineno, str(exc)) from None
        except DataError as err:
            if not skip_bad:
                raise
            st.add_skip(err)
            continue
        st.n_read += 1
        yield doc


def is_xc_file(path: Path) -> bool:
    """Whether ``path`` starts with the Extreme Classification Repository's ``N D L`` header (a JSON
    line never does)."""
    for _, raw in iter_raw_lines(path):
        return XC_HEADER.fullmatch(raw.strip()) is not None
    return False


def _iter_xc(p: Path, require_labels: bool, skip_bad: bool, st: ReadStats) -> Iterator[Document]:
    """The documents of an XC file: id = row number (0-based), label ids = the file's label indices."""
    from xmlc.xc_format import read_xc  # it reads lines with this module's helpers

    data = read_xc(p)
    X, Y = data.X, data.Y
    for i in range(data.n_docs):
        labels = tuple(str(j) for j in Y.indices[Y.indptr[i] : Y.indptr[i + 1]].tolist())
        if require_labels and not labels:
            err = DataError(p, i + 2, "no labels")
            if not skip_bad:
                raise err
            st.add_skip(err)
            continue
        start, end = X.indptr[i], X.indptr[i + 1]
        features = (tuple(X.indices[start:end].tolist()), tuple(X.data[start:end].tolist()))
        st.n_read += 1
        yield Document(id=str(i), text="", labels=labels, features=features)


def read_documents(
    path: PathLike, *, require_labels: bool = True, skip_bad: bool = False
) -> tuple[list[Document], ReadStats]:
    """Read a whole file; returns the stats too so callers can report what was skipped."""
    stats = ReadStats()
    docs = list(iter_documents(path, require_labels=require_labels, skip_bad=skip_bad, stats=stats))
    return docs, stats


@contextlib.contextmanager
def atomic_text_writer(path: PathLike) -> Iterator[TextIO]:
    """Write UTF-8 text to a temp file then ``os.replace`` it, so readers never see half a file."""
    p = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if p.suffix == ".gz":
            with open(tmp, "wb") as raw:
                gz = gzip.GzipFile(filename=p.name[:-3], mode="wb", fileobj=raw, mtime=0)
                with gz, io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as fh:
                    yield fh
                raw.flush()
                os.fsync(raw.fileno())
        else:
            with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, p.stat().st_mode & 0o777 if p.exists() else 0o644)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_documents(path: PathLike, docs: Iterable[Document]) -> int:
    """Write documents as JSON lines (title omitted when empty); returns how many were written."""
    n = 0
    with atomic_text_writer(path) as fh:
        for doc in docs:
            obj: dict[str, Any] = {"id": doc.id}
            if doc.title:
                obj["title"] = doc.title
            obj["text"] = doc.text
            obj["labels"] = list(doc.labels)
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
            n += 1
    return n


@dataclass(frozen=True)
class LabelRecord:
    """One line of a labels file: the display name, and the alternative names used as label text."""

    id: str
    name: str
    alt_names: tuple[str, ...] = ()

    @property
    def doc(self) -> Doc:
        """The name as the title and the alternative names as the text: how label text is featurized."""
        return Doc("\n".join(self.alt_names), self.name)


def read_label_records(path: PathLike) -> list[LabelRecord]:
    """Every label of a labels file; a duplicate id is an error because one name would be lost."""
    p = Path(path)
    records: list[LabelRecord] = []
    first_seen: dict[str, int] = {}
    for lineno, raw in iter_raw_lines(p):
        if not raw.strip():
            continue
        text = _decode(p, lineno, raw)
        try:
            obj = _parse_object(text)
            if "id" not in obj:
                raise ValueError('missing "id"')
            label_id = _ident(obj["id"], '"id"')
            name = obj.get("name")
            if not isinstance(name, str):
                raise ValueError('"name" missing or not a string')
            alt = obj.get("alt_names") or []
            if not isinstance(alt, list) or not all(isinstance(a, str) for a in alt):
                raise ValueError('"alt_names" must be a list of strings')
        except ValueError as exc:
            raise DataError(p, lineno, str(exc)) from None
        if label_id in first_seen:
            raise DataError(
                p, lineno, f"duplicate label id {label_id!r} (first on line {first_seen[label_id]})"
            )
        records.append(LabelRecord(label_id, name, tuple(alt)))
        first_seen[label_id] = lineno
    return records


def read_label_names(path: PathLike) -> dict[str, str]:
    """Map label id -> display name."""
    return {r.id: r.name for r in read_label_records(path)}


def read_labelled(path: str | Path, skip_bad: bool = False) -> tuple[list[Doc], list[set[str]]]:
    """The documents of a labelled file and their label sets (held-out data for calibrate, optimize)."""
    docs, _ = read_documents(path, skip_bad=skip_bad)
    if not docs:
        raise ValueError(f"{path}: no labelled documents")
    return [d.doc for d in docs], [set(d.labels) for d in docs]
