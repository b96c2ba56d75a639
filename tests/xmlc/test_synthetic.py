"""The generated corpora: planted structure for tests, and extreme-scale statistics for benchmarks."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np

from xmlc.synthetic import ScaleCorpus, ScaleSpec


def test_scale_corpus_has_the_statistics_of_extreme_label_sets() -> None:
    spec = ScaleSpec(n_labels=20_000, seed=3)
    docs = list(ScaleCorpus(spec).documents(spec.docs, seed=1))
    assert len(docs) == spec.docs == 14_600  # 0.73 documents a label, as Amazon-670K
    per_label = np.array(list(Counter(lab for d in docs for lab in d.labels).values()))
    # Power law: most labels have 1-10 documents, a few have hundreds.
    assert np.mean((per_label >= 1) & (per_label <= 10)) > 0.9
    assert per_label.max() > 50 * np.median(per_label)
    labels_per_doc = np.mean([len(d.labels) for d in docs])
    assert 4.0 <= labels_per_doc <= 6.0
    lengths = np.array([len(d.text.split()) for d in docs])
    assert lengths.min() >= 50 and lengths.max() <= 150
    words = Counter(w for d in docs for w in d.text.split())
    assert len(words) > 20_000  # a large vocabulary, Zipf-like: the top word is far above the median
    assert words.most_common(1)[0][1] > 100 * np.median(list(words.values()))
    # Planted: a document's title holds a signature word of each of its labels.
    corpus = ScaleCorpus(spec)
    for doc in docs[:50]:
        title = set(doc.title.split())
        for label in doc.labels:
            assert title & {corpus.words[w] for w in corpus.signature[int(label[1:])]}, (doc, label)


def test_generation_is_seeded() -> None:
    a = list(ScaleCorpus(ScaleSpec(n_labels=5000, seed=1)).documents(50, seed=2))
    b = list(ScaleCorpus(ScaleSpec(n_labels=5000, seed=1)).documents(50, seed=2))
    assert a == b
    assert a != list(ScaleCorpus(ScaleSpec(n_labels=5000, seed=1)).documents(50, seed=3))


def test_cover_gives_every_label_a_document() -> None:
    spec = ScaleSpec(n_labels=3000, n_docs=700, cover=True)
    docs = list(ScaleCorpus(spec).documents(spec.docs, seed=1))
    assert {lab for d in docs for lab in d.labels} == {f"L{i}" for i in range(3000)}


def test_weaker_signal_and_no_titles_for_other_corpus_shapes() -> None:
    def signal_share(spec: ScaleSpec) -> float:
        corpus = ScaleCorpus(spec)
        docs = list(corpus.documents(200, seed=1))
        signal = {corpus.words[w] for d in docs for lab in d.labels for w in corpus.signature[int(lab[1:])]}
        words = [w for d in docs for w in d.text.split()]
        return sum(w in signal for w in words) / len(words)

    base = ScaleSpec(n_labels=2000, min_len=300, max_len=600, seed=4)
    assert signal_share(replace(base, signal_repeats=1.0)) < 0.75 * signal_share(base)
    docs = list(ScaleCorpus(replace(base, titles=False)).documents(20, seed=1))
    assert all(d.title == "" and d.text for d in docs)
    # The defaults are the corpora measured before these settings existed.
    assert ScaleCorpus(base).document(np.random.default_rng(0), "x") == ScaleCorpus(
        replace(base, signal_repeats=3.0, titles=True)
    ).document(np.random.default_rng(0), "x")
