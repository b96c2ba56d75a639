"""Label text (names and alternative names) as extra training documents for the trees."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("torch")

from training.dataset import with_label_documents
from training.methods import configure
from training.train import fit_model
from xmlc.data import LabelRecord
from xmlc.evaluation import evaluate_model
from xmlc.synthetic import SyntheticSpec, label_texts, make_corpus


def test_label_documents_are_appended_for_labels_with_a_name() -> None:
    X = sp.csr_matrix(np.array([[1.0, 0, 0], [0, 1.0, 0]], np.float32))
    Y = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 1]], np.float32))
    names = sp.csr_matrix(np.array([[0, 0, 1.0], [0, 0, 0], [0.6, 0.8, 0]], np.float32))  # label 1: none
    X2, Y2 = with_label_documents(X, Y, names)
    assert X2.shape == (4, 3) and Y2.shape == (4, 3)
    np.testing.assert_array_equal(X2.toarray()[2:], names.toarray()[[0, 2]])
    np.testing.assert_array_equal(Y2.toarray()[2:], [[1, 0, 0], [0, 0, 1]])


def test_label_text_lifts_tail_labels_of_the_tree() -> None:
    """Few documents per label: the names' documents lift PSP@5 (propensity-scored) of a tree."""
    spec = SyntheticSpec(n_docs=900, n_labels=300, n_topics=10, seed=0, noise=0.8)
    docs, names = make_corpus(spec)
    train, test = docs[:500], docs[500:]
    texts = label_texts(spec)
    records = [LabelRecord(i, texts[i]) for i in names]
    psp = {}
    for on in (False, True):
        model, _ = fit_model(train, configure("tree", {"label_docs": on}), records, n_jobs=1, progress=False)
        report, _ = evaluate_model(model, [d.doc for d in test], [list(d.labels) for d in test], (1, 3, 5))
        psp[on] = report.metrics["PSP@5"]
    assert psp[True] >= psp[False] + 1.0, psp
