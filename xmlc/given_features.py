"""`GivenFeatures`: a featurizer for documents that arrive as feature vectors, not text.

The Extreme Classification Repository ships its corpora (EURLex-4K, Wiki10-31K, AmazonCat-13K...) as
sparse feature rows, often without the text they came from. A bundle trained on such rows starts its
pipeline at the row: this part only makes each document's given (feature id, value) pairs a row of the
training width, L2-normalised as the TF-IDF rows are (the node classifiers' C and the ranker were tuned
on unit rows). Ids at or past the width (features the training data never had) are dropped, as unknown
words are; a document without features gets an empty row and the model's fallback labels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from xmlc.doc import Doc
from xmlc.featurizer import unit_rows

CONFIG_FILE = "given_features.json"


class GivenFeatures:
    """Rows from the documents' own feature vectors (`Doc.features`), ``dim`` wide."""

    kind: ClassVar[str] = "features"
    role: ClassVar[str] = "featurizer"

    def __init__(self, dim: int, normalize: bool = True) -> None:
        if dim < 1:
            raise ValueError(f"feature width {dim}: at least 1")
        self._dim = int(dim)
        self.normalize = normalize

    @classmethod
    def of(cls, docs: Sequence[Doc], normalize: bool = True) -> GivenFeatures:
        """The featurizer for training documents: as wide as their largest feature id."""
        top = max((max(d.features[0], default=-1) for d in docs if d.features), default=-1)
        if top < 0:
            raise ValueError("no document has a feature vector")
        return cls(top + 1, normalize)

    @property
    def dim(self) -> int:
        return self._dim

    def transform(self, docs: Sequence[Doc]) -> sp.csr_matrix:
        """(docs x dim) rows of the given features; repeated ids add up."""
        ids = [np.asarray(d.features[0] if d.features else (), dtype=np.int64) for d in docs]
        vals = [np.asarray(d.features[1] if d.features else (), dtype=np.float32) for d in docs]
        lengths = np.array([len(i) for i in ids], dtype=np.int64)
        cols = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        data = np.concatenate(vals) if vals else np.zeros(0, np.float32)
        rows = np.repeat(np.arange(len(docs)), lengths)
        keep = (cols >= 0) & (cols < self._dim) & (data != 0) & np.isfinite(data)
        X = sp.csr_matrix(
            (data[keep], (rows[keep], cols[keep])), shape=(len(docs), self._dim), dtype=np.float32
        )
        X.sum_duplicates()
        X.sort_indices()
        return unit_rows(X) if self.normalize else X

    def word_ids(self, text: str) -> np.ndarray:
        """No vocabulary of words: sequence models cannot read these bundles."""
        return np.zeros(0, dtype=np.int64)

    def meta(self) -> dict[str, Any]:
        return {"dim": self._dim, "normalize": self.normalize}

    def save(self, folder: Path) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps(self.meta()))
        return [CONFIG_FILE]

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any] | None = None) -> GivenFeatures:
        config = json.loads((folder / CONFIG_FILE).read_text())
        return cls(int(config["dim"]), bool(config["normalize"]))
