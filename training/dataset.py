"""`TrainingSet`: labelled documents made ready for every method (features, label matrix, label text).

Every method starts from the same things, computed once: the fitted featurizer and its training rows,
the label table in model order with the documents' 0/1 label matrix, and, where a labels file names the
labels, their names featurized like documents. A method's recipe takes a `TrainingSet` and returns a
model (`xmlc.model.Model`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from training.featurizer_fit import fit_featurizer
from training.params import FeaturizerParams
from xmlc.data import Document, LabelRecord
from xmlc.doc import Doc
from xmlc.given_features import GivenFeatures
from xmlc.labels import LabelTable
from xmlc.parts import Featurizer, Ranker, Shortlister
from xmlc.pipeline import Pipeline


@dataclass
class TrainingSet:
    docs: list[Doc]
    featurizer: Featurizer  # TF-IDF fitted on the texts, or the documents' given features
    X: sp.csr_matrix  # (docs x features) TF-IDF (or given, unit-length) rows
    labels: LabelTable
    Y: sp.csr_matrix  # (docs x labels) 0/1
    label_records: dict[str, LabelRecord] = field(default_factory=dict)
    n_jobs: int = 1
    progress: bool = True
    timings: dict[str, float] = field(default_factory=dict)
    ray_address: str | None = None  # where label trees train as sub-trees (`training.distributed`)

    @classmethod
    def build(
        cls,
        documents: Sequence[Document],
        params: FeaturizerParams,
        records: Sequence[LabelRecord] = (),
        n_jobs: int = 1,
        progress: bool = True,
    ) -> TrainingSet:
        """Fit the featurizer on ``documents`` and build the label table (names from ``records``)."""
        t0 = time.perf_counter()
        docs = [d.doc for d in documents]
        featurizer: Featurizer
        if any(d.features for d in docs):  # given features (an XC file): no vocabulary to fit
            if not all(d.features for d in docs):
                raise ValueError("some training documents give features and some do not: give all or none")
            featurizer = GivenFeatures.of(docs)
            X = featurizer.transform(docs)
        else:
            featurizer, X = fit_featurizer(docs, params, n_jobs, progress)
        names = {r.id: r.name for r in records} or None
        labels = LabelTable.from_documents([d.labels for d in documents], names)
        Y = labels.matrix([d.labels for d in documents])
        timings = {"featurize": time.perf_counter() - t0}
        return cls(docs, featurizer, X, labels, Y, {r.id: r for r in records}, n_jobs, progress, timings)

    @cached_property
    def label_X(self) -> sp.csr_matrix | None:
        """(labels x features) rows of the labels' names, empty where a label has none; None without."""
        if not self.label_records:
            return None
        empty = Doc("")
        docs = [self.label_records[i].doc if i in self.label_records else empty for i in self.labels.ids]
        return self.featurizer.transform(docs)

    def tree_data(self, label_docs: bool) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(X, Y) for the trees: with ``label_docs``, plus one document per named label."""
        if not label_docs or self.label_X is None:
            return self.X, self.Y
        return with_label_documents(self.X, self.Y, self.label_X)

    def pipeline(self, shortlister: Shortlister, ranker: Ranker | None = None) -> Pipeline:
        """The trained parts with this set's featurizer and label table."""
        return Pipeline(self.featurizer, shortlister, self.labels, ranker)


def with_label_documents(
    X: sp.csr_matrix, Y: sp.csr_matrix, names_X: sp.csr_matrix
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``X``, ``Y`` plus one document per label that has a featurized name: the name, tagged with it."""
    keep = np.flatnonzero(names_X.getnnz(axis=1))
    eye = sp.identity(Y.shape[1], format="csr", dtype=Y.dtype)[keep]
    return sp.vstack([X, names_X[keep]]).tocsr(), sp.vstack([Y, eye]).tocsr()
