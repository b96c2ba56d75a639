"""The label table: index <-> id <-> name, with the training counts that propensities need."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from xmlc.metrics import Propensity

LABELS_FILE = "labels.json"


@dataclass
class LabelTable:
    """Labels seen in training, in model index order; names fall back to the id."""

    ids: list[str]
    names: list[str]
    counts: list[int]
    n_train_docs: int

    def __post_init__(self) -> None:
        if not len(self.ids) == len(self.names) == len(self.counts):
            raise ValueError("label ids, names and counts differ in length")
        self.index = {label: i for i, label in enumerate(self.ids)}
        if len(self.index) != len(self.ids):
            raise ValueError("duplicate label ids in the label table")

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_documents(
        cls, label_lists: Sequence[Iterable[str]], names: Mapping[str, str] | None = None
    ) -> LabelTable:
        """Every label that occurs in ``label_lists``, most frequent first (ties by id)."""
        counts = Counter(label for labels in label_lists for label in set(labels))
        ids = sorted(counts, key=lambda label: (-counts[label], label))
        names = names or {}
        return cls(ids, [names.get(i, i) for i in ids], [counts[i] for i in ids], len(label_lists))

    def matrix(self, label_lists: Sequence[Iterable[str]]) -> sp.csr_matrix:
        """0/1 (docs x labels) matrix; labels not in the table are left out (they stay in the truth)."""
        rows, cols = [], []
        for r, labels in enumerate(label_lists):
            for label in labels:
                c = self.index.get(label)
                if c is not None:
                    rows.append(r)
                    cols.append(c)
        data = np.ones(len(rows), dtype=np.float32)
        Y = sp.csr_matrix((data, (rows, cols)), shape=(len(label_lists), len(self)))
        Y.sum_duplicates()
        Y.data[:] = 1.0
        return Y

    def propensity(self, a: float = 0.55, b: float = 1.5) -> Propensity:
        return Propensity(dict(zip(self.ids, self.counts, strict=True)), self.n_train_docs, a, b)

    def save(self, folder: Path) -> list[str]:
        payload = {
            "n_train_docs": self.n_train_docs,
            "labels": [
                {"id": i, "name": n, "count": c}
                for i, n, c in zip(self.ids, self.names, self.counts, strict=True)
            ],
        }
        (folder / LABELS_FILE).write_text(json.dumps(payload, ensure_ascii=False))
        return [LABELS_FILE]

    @classmethod
    def load(cls, folder: Path) -> LabelTable:
        payload = json.loads((folder / LABELS_FILE).read_text())
        rows = payload["labels"]
        return cls(
            [r["id"] for r in rows],
            [r["name"] for r in rows],
            [int(r["count"]) for r in rows],
            int(payload["n_train_docs"]),
        )
