"""The label table: index <-> id <-> name, with the training counts that propensities need.

Stored as numpy files (the ids and names as one UTF-8 byte string each with offsets, the counts as
integers) and memory-mapped on load: a million-label table opens at once, and a label's id or name is
decoded only when an answer needs it. The id -> index map is built on first use (training, evaluation).
Bundles written before this layout keep the table in one ``labels.json``, which still loads.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import overload

import numpy as np
import scipy.sparse as sp

from xmlc.metrics import Propensity

LABELS_FILE = "labels.json"
ARRAYS = ("label_ids", "label_id_offsets", "label_names", "label_name_offsets", "label_counts")


class Strings(Sequence[str]):
    """An immutable list of strings kept as one UTF-8 byte array and ``n + 1`` offsets."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray) -> None:
        self.blob = blob
        self.offsets = offsets

    @classmethod
    def of(cls, items: Iterable[str]) -> Strings:
        encoded = [s.encode("utf-8", "surrogatepass") for s in items]
        offsets = np.zeros(len(encoded) + 1, np.int64)
        offsets[1:] = np.cumsum([len(b) for b in encoded])
        return cls(np.frombuffer(b"".join(encoded), np.uint8).copy(), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return bytes(self.blob[self.offsets[i] : self.offsets[i + 1]]).decode("utf-8", "surrogatepass")

    def __iter__(self) -> Iterator[str]:
        data = bytes(self.blob)
        offsets = self.offsets.tolist()
        for a, b in pairwise(offsets):
            yield data[a:b].decode("utf-8", "surrogatepass")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Strings):
            return np.array_equal(self.offsets, other.offsets) and np.array_equal(self.blob, other.blob)
        if isinstance(other, Sequence):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-looking sequence semantics, as list


class LabelTable:
    """Labels seen in training, in model index order; names fall back to the id."""

    def __init__(
        self,
        ids: Sequence[str],
        names: Sequence[str],
        counts: Sequence[int] | np.ndarray,
        n_train_docs: int,
    ) -> None:
        self.ids = ids if isinstance(ids, Strings) else Strings.of(ids)
        self.names = names if isinstance(names, Strings) else Strings.of(names)
        self.counts = np.asarray(counts, dtype=np.int64)
        self.n_train_docs = int(n_train_docs)
        if not len(self.ids) == len(self.names) == len(self.counts):
            raise ValueError("label ids, names and counts differ in length")

    @cached_property
    def index(self) -> dict[str, int]:
        """Label id -> model index (built on first use; serving never needs it)."""
        index = {label: i for i, label in enumerate(self.ids)}
        if len(index) != len(self.ids):
            raise ValueError("duplicate label ids in the label table")
        return index

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
        index = self.index
        rows, cols = [], []
        for r, labels in enumerate(label_lists):
            for label in labels:
                c = index.get(label)
                if c is not None:
                    rows.append(r)
                    cols.append(c)
        data = np.ones(len(rows), dtype=np.float32)
        Y = sp.csr_matrix((data, (rows, cols)), shape=(len(label_lists), len(self)))
        Y.sum_duplicates()
        Y.data[:] = 1.0
        return Y

    def propensity(self, a: float = 0.55, b: float = 1.5) -> Propensity:
        return Propensity(dict(zip(self.ids, self.counts.tolist(), strict=True)), self.n_train_docs, a, b)

    def save(self, folder: Path) -> list[str]:
        arrays = {
            "label_ids": self.ids.blob,
            "label_id_offsets": self.ids.offsets,
            "label_names": self.names.blob,
            "label_name_offsets": self.names.offsets,
            "label_counts": self.counts,
        }
        for name, arr in arrays.items():
            np.save(folder / f"{name}.npy", arr, allow_pickle=False)
        meta = {"n_labels": len(self), "n_train_docs": self.n_train_docs, "layout": "npy"}
        (folder / LABELS_FILE).write_text(json.dumps(meta))
        return [LABELS_FILE, *(f"{name}.npy" for name in ARRAYS)]

    @classmethod
    def load(cls, folder: Path) -> LabelTable:
        meta = json.loads((folder / LABELS_FILE).read_text())
        if "labels" in meta:  # the one-document layout of earlier bundles
            rows = meta["labels"]
            return cls(
                [r["id"] for r in rows],
                [r["name"] for r in rows],
                [int(r["count"]) for r in rows],
                int(meta["n_train_docs"]),
            )
        arrays = {
            name: np.asarray(np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False))
            for name in ARRAYS
        }
        table = cls(
            Strings(arrays["label_ids"], arrays["label_id_offsets"]),
            Strings(arrays["label_names"], arrays["label_name_offsets"]),
            arrays["label_counts"],
            int(meta["n_train_docs"]),
        )
        if len(table) != meta["n_labels"]:
            raise ValueError(f"{LABELS_FILE} says {meta['n_labels']} labels, the arrays hold {len(table)}")
        return table
