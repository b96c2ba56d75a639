"""TF-IDF featurizer over word n-grams: the first stage of every pipeline.

It is fitted offline (``training.featurizer_fit``) and stored as plain JSON + numpy files, never pickled.
One code path turns token counts into weights (`TfidfFeaturizer.weigh`), used by the batch transform at
training time and by the single-document transform at serving time, so both give the same vector.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

CONFIG_FILE = "featurizer.json"
VOCAB_FILE = "vocabulary.json"
IDF_FILE = "idf.npy"


@dataclass(frozen=True)
class FeaturizerConfig:
    """How text becomes terms and terms become weights; saved beside the vocabulary."""

    token_pattern: str = r"(?u)\b\w+\b"
    lowercase: bool = True
    ngram_max: int = 2
    sublinear_tf: bool = True
    max_chars: int = 200_000  # longer inputs are cut: bounds per-request work


def tokenize(text: str, config: FeaturizerConfig, pattern: re.Pattern[str] | None = None) -> list[str]:
    """Unigrams followed by the n-grams up to ``config.ngram_max`` (joined by one space)."""
    pat = pattern or re.compile(config.token_pattern)
    if len(text) > config.max_chars:
        text = text[: config.max_chars]
    tokens = pat.findall(text.lower() if config.lowercase else text)
    terms = list(tokens)
    for n in range(2, config.ngram_max + 1):
        terms.extend(map(" ".join, zip(*(tokens[i:] for i in range(n)), strict=False)))
    return terms


class TfidfFeaturizer:
    """Maps raw text to an L2-normalised sparse TF-IDF row over a fixed vocabulary."""

    def __init__(self, vocabulary: Sequence[str], idf: np.ndarray, config: FeaturizerConfig) -> None:
        if len(vocabulary) != len(idf):
            raise ValueError(f"vocabulary has {len(vocabulary)} terms but idf has {len(idf)} values")
        self.config = config
        self.vocabulary = list(vocabulary)
        self.idf = np.asarray(idf, dtype=np.float32)
        self._index = {term: i for i, term in enumerate(self.vocabulary)}
        self._pattern = re.compile(config.token_pattern)

    @property
    def dim(self) -> int:
        return len(self.vocabulary)

    def term_ids(self, text: str) -> np.ndarray:
        """Vocabulary ids of every known term occurrence in ``text`` (with repeats)."""
        get = self._index.get
        ids = [i for i in map(get, tokenize(text, self.config, self._pattern)) if i is not None]
        return np.asarray(ids, dtype=np.int32)

    def counts(self, texts: Iterable[str]) -> sp.csr_matrix:
        """Raw term counts, one row a text, sorted column indices."""
        indptr = [0]
        indices: list[np.ndarray] = []
        data: list[np.ndarray] = []
        for text in texts:
            cols, cnt = np.unique(self.term_ids(text), return_counts=True)
            indices.append(cols.astype(np.int32))
            data.append(cnt.astype(np.float32))
            indptr.append(indptr[-1] + len(cols))
        return sp.csr_matrix(
            (
                np.concatenate(data) if data else np.zeros(0, np.float32),
                np.concatenate(indices) if indices else np.zeros(0, np.int32),
                np.asarray(indptr, dtype=np.int64),
            ),
            shape=(len(indptr) - 1, self.dim),
        )

    def weigh(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """Counts -> sublinear tf * idf, each row scaled to unit L2 norm (rows with no terms stay empty)."""
        return weigh_counts(counts, self.idf, self.config.sublinear_tf)

    def transform(self, texts: Iterable[str]) -> sp.csr_matrix:
        return self.weigh(self.counts(texts))

    def transform_one(self, text: str) -> sp.csr_matrix:
        """The per-request path: one text to a 1 x dim row."""
        return self.weigh(self.counts((text,)))

    def save(self, folder: Path) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))
        (folder / VOCAB_FILE).write_text(json.dumps(self.vocabulary, ensure_ascii=False))
        np.save(folder / IDF_FILE, self.idf, allow_pickle=False)
        return [CONFIG_FILE, VOCAB_FILE, IDF_FILE]

    @classmethod
    def load(cls, folder: Path) -> TfidfFeaturizer:
        config = FeaturizerConfig(**json.loads((folder / CONFIG_FILE).read_text()))
        vocabulary = json.loads((folder / VOCAB_FILE).read_text())
        idf = np.load(folder / IDF_FILE, allow_pickle=False)
        return cls(vocabulary, idf, config)


def weigh_counts(counts: sp.csr_matrix, idf: np.ndarray, sublinear_tf: bool) -> sp.csr_matrix:
    """The one weighting function shared by training and serving."""
    out = counts.astype(np.float32, copy=True)
    if sublinear_tf:
        np.log(out.data, out=out.data)
        out.data += np.float32(1.0)
    out.data *= idf[out.indices]
    sq = np.zeros(out.shape[0], dtype=np.float32)
    nonempty = np.diff(out.indptr) > 0
    if out.nnz:
        sq[nonempty] = np.add.reduceat(out.data * out.data, out.indptr[:-1][nonempty])
    norms = np.sqrt(sq)
    norms[norms == 0] = 1.0
    out.data /= np.repeat(norms, np.diff(out.indptr))
    return out


def smooth_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """scikit-learn's smoothed idf: ln((1 + N) / (1 + df)) + 1."""
    return (np.log((1.0 + n_docs) / (1.0 + df.astype(np.float64))) + 1.0).astype(np.float32)


__all__ = ["FeaturizerConfig", "TfidfFeaturizer", "smooth_idf", "tokenize", "weigh_counts"]
