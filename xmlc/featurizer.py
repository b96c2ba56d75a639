"""TF-IDF featurizer over word n-grams: the first stage of every pipeline.

It is fitted offline (``training.featurizer_fit``) and stored as plain JSON + numpy files, never pickled.
One code path turns token counts into weights (`TfidfFeaturizer.weigh`), used by the batch transform at
training time and by the single-document transform at serving time, so both give the same vector.

A document (`xmlc.doc.Doc`) is read twice: its `body` (title and text) with the text vocabulary, and,
with a title field, its `heading` (the title) again with a vocabulary and idf of its own, weighted and
appended: a title word then counts as title evidence, not only as one more word of a long text
(measured on a split of EURLEX57K train: +1.4 P@1, +0.9 P@5 for the trees, BENCHMARKS.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import scipy.sparse as sp

from xmlc.doc import Doc
from xmlc.term_index import TermIndex

CONFIG_FILE = "featurizer.json"
VOCAB_FILE = "vocabulary.json"
IDF_FILE = "idf.npy"
TITLE_PREFIX = "title_"  # the title field's vocabulary and idf files: title_vocabulary.json, title_idf.npy
DEFAULT_TOKEN_PATTERN = r"(?u)\b\w+\b"

# `word_tokens` tables: ASCII characters that are not word characters become spaces, all else stays
# (bytes from 0x80 on are the UTF-8 of non-ASCII characters). Built from the regex itself.
_WORD = re.compile(r"\w")
_ASCII_TABLE = "".join(chr(c) if _WORD.match(chr(c)) else " " for c in range(128))
_UTF8_TABLE = bytes(c if c >= 0x80 or _WORD.match(chr(c)) else 0x20 for c in range(256))
_NON_ASCII_NON_WORD = re.compile(r"[^\w\x00-\x7f]")


@dataclass(frozen=True)
class FeaturizerConfig:
    """How text becomes terms and terms become weights; saved beside the vocabulary."""

    token_pattern: str = DEFAULT_TOKEN_PATTERN
    lowercase: bool = True
    ngram_max: int = 2
    sublinear_tf: bool = True
    max_chars: int = 200_000  # longer inputs are cut: bounds per-request work
    title_weight: float = 0.0  # weight of the title field (the first line) against the text; 0 = none


def word_tokens(text: str) -> list[str]:
    """Exactly ``re.findall(DEFAULT_TOKEN_PATTERN, text)``, two to three times faster.

    Every character that is not a word character becomes a space, then `str.split`: that gives the
    maximal runs of word characters, which is what the pattern finds, because no word character is
    whitespace (the tests check this over all of Unicode). ASCII text takes `str.translate`'s fast
    path; other text first has its non-ASCII non-word characters (rare) replaced by a regex, then the
    ASCII ones through its UTF-8 bytes (`str.translate` is slow on non-ASCII strings).
    """
    if text.isascii():
        return text.translate(_ASCII_TABLE).split()
    text = _NON_ASCII_NON_WORD.sub(" ", text)
    return (
        text.encode("utf-8", "surrogatepass").translate(_UTF8_TABLE).decode("utf-8", "surrogatepass").split()
    )


class Rows(NamedTuple):
    """CSR arrays of a few rows, without a scipy matrix around them: per-request work stays in numpy
    calls (a scipy matrix costs tens of microseconds to make, a document's features a few)."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    @classmethod
    def of(cls, m: sp.csr_matrix) -> Rows:
        return cls(m.indptr, m.indices, m.data)

    def matrix(self, n_cols: int) -> sp.csr_matrix:
        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=(len(self.indptr) - 1, n_cols))


def join_fields(body: sp.csr_matrix, title: sp.csr_matrix, weight: float) -> sp.csr_matrix:
    """``[body, weight * title]`` with each row scaled back to unit L2 norm (both parts come normalised)."""
    return join_rows(Rows.of(body), Rows.of(title), weight, body.shape[1]).matrix(
        body.shape[1] + title.shape[1]
    )


def join_rows(body: Rows, title: Rows, weight: float, body_dim: int) -> Rows:
    """Row by row, the body's entries then the title's (columns after ``body_dim``, values times
    ``weight``), each row scaled back to unit L2 norm."""
    bp, tp = body.indptr.astype(np.int64), title.indptr.astype(np.int64)
    indptr = bp + tp
    n = int(indptr[-1])
    indices = np.empty(n, np.int32)
    data = np.empty(n, np.float32)
    at_b = np.arange(len(body.data)) + np.repeat(tp[:-1], np.diff(bp))
    at_t = np.arange(len(title.data)) + np.repeat(bp[1:], np.diff(tp))
    indices[at_b], data[at_b] = body.indices, body.data
    indices[at_t], data[at_t] = title.indices + body_dim, title.data * np.float32(weight)
    return Rows(indptr, indices, unit_norm(indptr, data))


def tokens_of(text: str, config: FeaturizerConfig, pattern: re.Pattern[str] | None = None) -> list[str]:
    """The tokens of ``text`` (cut to ``config.max_chars``, lowercased if configured), before n-grams."""
    if len(text) > config.max_chars:
        text = text[: config.max_chars]
    if config.lowercase:
        text = text.lower()
    if config.token_pattern == DEFAULT_TOKEN_PATTERN and (
        pattern is None or pattern.pattern == DEFAULT_TOKEN_PATTERN
    ):
        return word_tokens(text)
    return (pattern or re.compile(config.token_pattern)).findall(text)


def tokenize(text: str, config: FeaturizerConfig, pattern: re.Pattern[str] | None = None) -> list[str]:
    """Unigrams followed by the n-grams up to ``config.ngram_max`` (joined by one space)."""
    tokens = tokens_of(text, config, pattern)
    terms = list(tokens)
    for n in range(2, config.ngram_max + 1):
        terms.extend(map(" ".join, zip(*(tokens[i:] for i in range(n)), strict=False)))
    return terms


class TfidfFeaturizer:
    """Maps documents to L2-normalised sparse TF-IDF rows over a fixed vocabulary (a bundle part).

    With a ``title`` featurizer (and ``config.title_weight > 0``) the row is the body's terms followed by
    the heading's terms in the title vocabulary (`join_fields`); term and word ids (`term_ids`,
    `word_ids`, `counts`, `weigh`) always refer to the text vocabulary, which comes first.
    """

    kind: ClassVar[str] = "tfidf"
    role: ClassVar[str] = "featurizer"

    def __init__(
        self,
        vocabulary: Sequence[str],
        idf: np.ndarray,
        config: FeaturizerConfig,
        title: TfidfFeaturizer | None = None,
    ) -> None:
        if len(vocabulary) != len(idf):
            raise ValueError(f"vocabulary has {len(vocabulary)} terms but idf has {len(idf)} values")
        if (title is not None) != (config.title_weight > 0):
            raise ValueError("a title field needs title_weight > 0, and title_weight > 0 needs a title field")
        if title is not None and title.title is not None:
            raise ValueError("the title field cannot have a title field of its own")
        self.config = config
        self.title: TfidfFeaturizer | None = title
        self.vocabulary = list(vocabulary)
        self.idf = np.asarray(idf, dtype=np.float32)
        self._index = {term: i for i, term in enumerate(self.vocabulary)}
        self._pattern = re.compile(config.token_pattern)
        self._fast: TermIndex | None = None
        if config.token_pattern == DEFAULT_TOKEN_PATTERN and config.ngram_max <= 2:
            self._fast = TermIndex(self._index, config.ngram_max, config.max_chars, config.lowercase)

    @property
    def dim(self) -> int:
        """Feature count: the text vocabulary, plus the title vocabulary when there is a title field."""
        return len(self.vocabulary) + (self.title.dim if self.title is not None else 0)

    def term_ids(self, text: str) -> np.ndarray:
        """Vocabulary ids of every known term occurrence in ``text`` (with repeats).

        The unigram ids in text order, then the bigram ids in text order: the terms of `tokenize` that
        are in the vocabulary. With the default token pattern and n-grams up to 2 (every bundle so far)
        compiled code finds them (`xmlc.term_index`); otherwise n-gram strings are looked up.
        """
        if self._fast is not None:
            return self._fast.term_ids(text)
        get = self._index.get
        ids = [i for i in map(get, tokenize(text, self.config, self._pattern)) if i is not None]
        return np.asarray(ids, dtype=np.int32)

    def word_ids(self, text: str) -> np.ndarray:
        """Vocabulary ids of the known single words of ``text``, in text order (sequence models)."""
        get = self._index.get
        ids = [i for i in map(get, tokens_of(text, self.config, self._pattern)) if i is not None]
        return np.asarray(ids, dtype=np.int64)

    def count_rows(self, texts: Iterable[str]) -> Rows:
        """Raw counts of the text vocabulary's terms, one row a text, sorted column indices."""
        if self._fast is not None:
            return Rows(*self._fast.counts(list(texts)))
        indptr = [0]
        indices: list[np.ndarray] = []
        data: list[np.ndarray] = []
        for text in texts:
            cols, cnt = np.unique(self.term_ids(text), return_counts=True)
            indices.append(cols.astype(np.int32))
            data.append(cnt.astype(np.float32))
            indptr.append(indptr[-1] + len(cols))
        return Rows(
            np.asarray(indptr, dtype=np.int64),
            np.concatenate(indices) if indices else np.zeros(0, np.int32),
            np.concatenate(data) if data else np.zeros(0, np.float32),
        )

    def counts(self, texts: Iterable[str]) -> sp.csr_matrix:
        return self.count_rows(texts).matrix(len(self.vocabulary))

    def weigh(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """Counts -> sublinear tf * idf, each row scaled to unit L2 norm (rows with no terms stay empty)."""
        return weigh_counts(counts, self.idf, self.config.sublinear_tf)

    def weigh_rows(self, counts: Rows) -> Rows:
        return Rows(counts.indptr, counts.indices, weigh_data(counts, self.idf, self.config.sublinear_tf))

    def rows(self, texts: Iterable[str]) -> sp.csr_matrix:
        """Plain texts -> weighted rows of the text vocabulary alone (no title field)."""
        return self.weigh_rows(self.count_rows(texts)).matrix(len(self.vocabulary))

    def transform(self, docs: Sequence[Doc]) -> sp.csr_matrix:
        """Documents -> (docs x dim) rows: the training, batch and per-request path alike."""
        body = self.weigh_rows(self.count_rows(d.body for d in docs))
        if self.title is None:
            return body.matrix(self.dim)
        title = self.title.weigh_rows(self.title.count_rows(d.heading for d in docs))
        return join_rows(body, title, self.config.title_weight, len(self.vocabulary)).matrix(self.dim)

    def meta(self) -> dict[str, Any]:
        return {"ngram_max": self.config.ngram_max, "title_weight": self.config.title_weight}

    def save(self, folder: Path) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))
        files = [CONFIG_FILE, *self._save_vocabulary(folder, "")]
        if self.title is not None:
            files += self.title._save_vocabulary(folder, TITLE_PREFIX)
        return files

    def _save_vocabulary(self, folder: Path, prefix: str) -> list[str]:
        (folder / (prefix + VOCAB_FILE)).write_text(json.dumps(self.vocabulary, ensure_ascii=False))
        np.save(folder / (prefix + IDF_FILE), self.idf, allow_pickle=False)
        return [prefix + VOCAB_FILE, prefix + IDF_FILE]

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any] | None = None) -> TfidfFeaturizer:
        """From the files of ``folder`` (they describe themselves; ``meta`` is the manifest's entry)."""
        config = FeaturizerConfig(**json.loads((folder / CONFIG_FILE).read_text()))
        title = None
        if config.title_weight > 0:
            title = cls._load_vocabulary(folder, TITLE_PREFIX, replace(config, title_weight=0.0), None)
        return cls._load_vocabulary(folder, "", config, title)

    @classmethod
    def _load_vocabulary(
        cls, folder: Path, prefix: str, config: FeaturizerConfig, title: TfidfFeaturizer | None
    ) -> TfidfFeaturizer:
        vocabulary = json.loads((folder / (prefix + VOCAB_FILE)).read_text())
        idf = np.load(folder / (prefix + IDF_FILE), allow_pickle=False)
        return cls(vocabulary, idf, config, title)


def weigh_counts(counts: sp.csr_matrix, idf: np.ndarray, sublinear_tf: bool) -> sp.csr_matrix:
    """The one weighting function shared by training and serving (see `weigh_data`)."""
    counts = counts.tocsr()
    data = weigh_data(Rows.of(counts), idf, sublinear_tf)
    return sp.csr_matrix((data, counts.indices.copy(), counts.indptr.copy()), shape=counts.shape)


def weigh_data(counts: Rows, idf: np.ndarray, sublinear_tf: bool) -> np.ndarray:
    """Counts -> sublinear tf * idf, each row scaled to unit L2 norm (a new array; empty rows stay so)."""
    data = counts.data.astype(np.float32, copy=True)
    if sublinear_tf:
        np.log(data, out=data)
        data += np.float32(1.0)
    data *= idf[counts.indices]
    return unit_norm(counts.indptr, data)


def unit_rows(out: sp.csr_matrix) -> sp.csr_matrix:
    """Scale each row of a float32 CSR matrix to unit L2 norm, in place (empty rows stay empty)."""
    unit_norm(out.indptr, out.data)
    return out


def unit_norm(indptr: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Scale each row's values (``data`` between ``indptr`` bounds) to unit L2 norm, in place."""
    n = len(indptr) - 1
    sq = np.zeros(n, dtype=np.float32)
    lengths = np.diff(indptr)
    nonempty = lengths > 0
    if len(data):
        sq[nonempty] = np.add.reduceat(data * data, indptr[:-1][nonempty])
    norms = np.sqrt(sq)
    norms[norms == 0] = 1.0
    data /= np.repeat(norms, lengths)
    return data


def smooth_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """scikit-learn's smoothed idf: ln((1 + N) / (1 + df)) + 1."""
    return (np.log((1.0 + n_docs) / (1.0 + df.astype(np.float64))) + 1.0).astype(np.float32)


__all__ = [
    "FeaturizerConfig",
    "TfidfFeaturizer",
    "join_fields",
    "smooth_idf",
    "tokenize",
    "tokens_of",
    "unit_rows",
    "weigh_counts",
    "word_tokens",
]
