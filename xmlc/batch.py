"""`Batch`: the documents of one model call and what the stages compute from them, each once, timed.

Why: stages need different views of the same documents (TF-IDF rows for a tree, the ranker's dense
document vectors for an HNSW index and the ranker, word ids for the attention model). A shortlister asks
the batch for the view it needs; the batch computes it on first use and keeps it, so a document is
featurized and encoded once whichever part asks first, and each stage's time is its own (time spent
computing a view inside another stage is booked to the view's stage, not to the caller).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from xmlc.doc import Doc


class DocumentFeaturizer(Protocol):
    """What a batch needs of the featurizer: rows for documents, vocabulary ids for words."""

    def transform(self, docs: Sequence[Doc]) -> sp.csr_matrix: ...

    def word_ids(self, text: str) -> np.ndarray: ...


Encoder = Callable[[sp.csr_matrix], np.ndarray]


class Batch:
    """Documents with lazily computed, cached views: `features`, `vectors`, `words`."""

    def __init__(
        self, docs: Sequence[Doc], featurizer: DocumentFeaturizer, encoder: Encoder | None = None
    ) -> None:
        self.docs = list(docs)
        self.featurizer = featurizer
        self.encoder = encoder
        self.timings: dict[str, float] = {}
        self._nested = 0.0  # seconds booked to inner stages while the current stage runs
        self._features: sp.csr_matrix | None = None
        self._vectors: np.ndarray | None = None
        self._words: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.docs)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Book the time of the block to ``name``, less what inner stages booked to themselves."""
        t0 = time.perf_counter()
        outer, self._nested = self._nested, 0.0
        try:
            yield
        finally:
            elapsed = time.perf_counter() - t0
            self.timings[name] = self.timings.get(name, 0.0) + elapsed - self._nested
            self._nested = outer + elapsed

    def features(self) -> sp.csr_matrix:
        """(docs x features) TF-IDF rows."""
        if self._features is None:
            with self.stage("featurize"):
                self._features = self.featurizer.transform(self.docs)
        return self._features

    def vectors(self) -> np.ndarray:
        """(docs x dim) dense document vectors from the pipeline's encoder (the ranker's)."""
        if self._vectors is None:
            if self.encoder is None:
                raise ValueError("this pipeline has no document encoder (a ranker provides one)")
            X = self.features()
            with self.stage("encode"):
                self._vectors = self.encoder(X)
        return self._vectors

    def words(self) -> list[np.ndarray]:
        """Per document, the text vocabulary ids of its known words in text order (sequence models)."""
        if self._words is None:
            with self.stage("featurize"):
                self._words = [self.featurizer.word_ids(d.body) for d in self.docs]
        return self._words

    def recognised(self) -> np.ndarray | None:
        """Per document, whether any of its words or terms is known to the model (None when the parts
        used neither view): a document with none gets the model's fallback labels, not a reading."""
        if self._features is not None:
            return np.diff(self._features.indptr) > 0
        if self._words is not None:
            return np.array([len(w) > 0 for w in self._words], dtype=bool)
        return None

    def bodies(self) -> list[str]:
        """The documents' bodies (title and text) as plain strings, for parts with their own tokenizer."""
        return [d.body for d in self.docs]
