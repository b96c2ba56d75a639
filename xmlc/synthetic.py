"""A generated corpus with a planted label structure, for tests and the fresh-machine demo.

Labels belong to topics; each label owns a few signature words and each topic a few shared words, so a
model has to separate siblings (same topic) as well as topics, as in a real label tree. Documents draw
one to three labels, mostly from one topic, and mix their words with common filler.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xmlc.data import Document


@dataclass(frozen=True)
class SyntheticSpec:
    n_docs: int = 2000
    n_labels: int = 64
    n_topics: int = 8
    words_per_label: int = 6
    doc_len: int = 60
    noise: float = 0.5  # share of filler words in a document
    seed: int = 0


def _word(prefix: str, i: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = letters[r] + s
    return prefix + s


def _label_words(spec: SyntheticSpec) -> list[list[str]]:
    return [
        [_word("w", lab * spec.words_per_label + j) for j in range(spec.words_per_label)]
        for lab in range(spec.n_labels)
    ]


def label_texts(spec: SyntheticSpec | None = None, n_words: int = 2) -> dict[str, str]:
    """A label text per label: the first of its signature words, as a real label's name would be."""
    spec = spec or SyntheticSpec()
    return {f"L{lab}": " ".join(words[:n_words]) for lab, words in enumerate(_label_words(spec))}


def make_corpus(spec: SyntheticSpec | None = None) -> tuple[list[Document], dict[str, str]]:
    """Documents and a label-name map; the same spec always gives the same corpus."""
    spec = spec or SyntheticSpec()
    rng = np.random.default_rng(spec.seed)
    topic_of = np.arange(spec.n_labels) % spec.n_topics
    label_words = _label_words(spec)
    topic_words = [[_word("t", t * 4 + j) for j in range(4)] for t in range(spec.n_topics)]
    filler = [_word("f", j) for j in range(300)]
    names = {f"L{lab}": f"label {lab} (topic {topic_of[lab]})" for lab in range(spec.n_labels)}
    # Zipf-like label popularity, as in real XMLC data.
    popularity = 1.0 / np.arange(1, spec.n_labels + 1) ** 0.7
    popularity /= popularity.sum()
    docs = []
    for d in range(spec.n_docs):
        first = int(rng.choice(spec.n_labels, p=popularity))
        labels = [first]
        same_topic = np.flatnonzero(topic_of == topic_of[first])
        for _ in range(int(rng.integers(0, 3))):
            pool = same_topic if rng.random() < 0.8 else np.arange(spec.n_labels)
            cand = int(rng.choice(pool))
            if cand not in labels:
                labels.append(cand)
        signal = [w for lab in labels for w in label_words[lab]] + topic_words[topic_of[first]]
        n_signal = max(1, int(spec.doc_len * (1 - spec.noise)))
        words = list(rng.choice(signal, n_signal)) + list(rng.choice(filler, spec.doc_len - n_signal))
        rng.shuffle(words)
        title = " ".join(rng.choice(label_words[first], 3))
        docs.append(
            Document(id=f"d{d}", title=title, text=" ".join(words), labels=tuple(f"L{x}" for x in labels))
        )
    return docs, names
