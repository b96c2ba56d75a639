"""A generated corpus with a planted label structure, for tests and the fresh-machine demo.

Labels belong to topics; each label owns a few signature words and each topic a few shared words, so a
model has to separate siblings (same topic) as well as topics, as in a real label tree. Documents draw
one to three labels, mostly from one topic, and mix their words with common filler.
"""

from __future__ import annotations

from collections.abc import Iterator
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


# ------------------------------------------------------------------------- corpora at extreme scale


@dataclass(frozen=True)
class ScaleSpec:
    """A planted-structure corpus with the statistics of extreme label sets (Amazon-670K-like).

    Label popularity follows a power law (``alpha``; most labels end with 1-10 documents), a document
    has about ``labels_per_doc`` labels, mostly from one topic, and 50-150 tokens: each label's three
    signature words, its topic's words, and filler drawn Zipf-like from a ``vocabulary`` of words that
    labels also share, so a label is told by which words occur together, not by a word of its own. The
    title holds a signature word of every label of the document.
    """

    n_labels: int = 10_000
    n_docs: int = 0  # 0: 0.73 * n_labels, as Amazon-670K has
    labels_per_doc: float = 5.0
    topic_size: int = 50  # labels per topic
    vocabulary: int = 100_000
    min_len: int = 50
    max_len: int = 150
    alpha: float = 0.55  # label popularity ~ rank^-alpha
    same_topic: float = 0.8  # chance that a further label comes from the first label's topic
    cover: bool = False  # the first documents carry every label once (topic by topic), then as above
    signal_repeats: float = 3.0  # times each label and topic word occurs in a document (at most half of it)
    titles: bool = True  # a title naming the document's labels (False: no title)
    seed: int = 0

    @property
    def docs(self) -> int:
        return self.n_docs or int(0.73 * self.n_labels)


class ScaleCorpus:
    """Documents of a `ScaleSpec`, generated one at a time: O(labels per document) work each.

    The label tables (signature words, topics) are built once in O(labels); every document then costs
    O(its labels and tokens), never O(all labels). `documents(start, stop, seed)` is reproducible for
    any range, so a training and a held-out set come from disjoint seeds of the same corpus.
    """

    def __init__(self, spec: ScaleSpec) -> None:
        self.spec = spec
        rng = np.random.default_rng(spec.seed)
        L, V = spec.n_labels, spec.vocabulary
        # Label "rank" r has popularity ~ (r + 1)^-alpha; ranks are shuffled over label ids and topics.
        self.rank_to_label = rng.permutation(L)
        self.topic_of = rng.integers(0, max(1, L // spec.topic_size), size=L)
        order = np.argsort(self.topic_of, kind="stable")
        self.topic_members = order
        self.topic_start = np.searchsorted(self.topic_of[order], np.arange(self.topic_of.max() + 2))
        self.signature = rng.integers(0, V, size=(L, 3))
        self.topic_words = rng.integers(0, V, size=(int(self.topic_of.max()) + 1, 4))
        self.words = [_word("v", i) for i in range(V)]

    def _rank(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` label ranks from the power law, by its inverse CDF (continuous approximation)."""
        a = self.spec.alpha
        r = np.floor(self.spec.n_labels * rng.random(n) ** (1.0 / (1.0 - a))).astype(np.int64)
        return np.minimum(r, self.spec.n_labels - 1)

    def _filler(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Zipf-like word ids: a few very common words, a long tail."""
        return np.minimum(rng.zipf(1.3, n) - 1, self.spec.vocabulary - 1)

    def document(self, rng: np.random.Generator, doc_id: str, given: list[int] | None = None) -> Document:
        """One document: its labels drawn as the spec says (or ``given``), then its words."""
        s = self.spec
        if given:
            labels, first = given, given[0]
            topic = self.topic_of[first]
        else:
            k = max(1, min(int(rng.poisson(s.labels_per_doc - 1)) + 1, 4 * int(s.labels_per_doc)))
            first = int(self.rank_to_label[self._rank(rng, 1)[0]])
            labels = [first]
            topic = self.topic_of[first]
            members = self.topic_members[self.topic_start[topic] : self.topic_start[topic + 1]]
            for r in self._rank(rng, k - 1):
                if rng.random() < s.same_topic and len(members) > 1:
                    cand = int(members[rng.integers(len(members))])
                else:
                    cand = int(self.rank_to_label[r])
                if cand not in labels:
                    labels.append(cand)
        n_tokens = int(rng.integers(s.min_len, s.max_len + 1))
        signal = np.concatenate([self.signature[labels].ravel(), self.topic_words[topic]])
        n_signal = min(n_tokens // 2, max(1, round(s.signal_repeats * len(signal))))
        words = np.concatenate([rng.choice(signal, n_signal), self._filler(rng, n_tokens - n_signal)])
        rng.shuffle(words)
        # A title names the whole document, as a product's title does: a signature word of each label
        # (two of the first), a topic word and a filler word.
        picks = self.signature[labels, rng.integers(0, 3, size=len(labels))]
        title = np.concatenate(
            [self.signature[first, :2], picks[1:], self.topic_words[topic, :1], self._filler(rng, 1)]
        )
        rng.shuffle(title)
        word = self.words.__getitem__
        return Document(
            id=doc_id,
            title=" ".join(map(word, title.tolist())) if s.titles else "",
            text=" ".join(map(word, words.tolist())),
            labels=tuple(f"L{lab}" for lab in labels),
        )

    def documents(self, n: int, seed: int, prefix: str = "d") -> Iterator[Document]:
        """``n`` documents from the stream ``seed``; with ``cover``, the first ones carry every label once
        (consecutive labels of a topic together), so that a corpus of few documents has every label."""
        rng = np.random.default_rng([self.spec.seed, seed])
        block = max(1, round(self.spec.labels_per_doc))
        for i in range(n):
            given = None
            if self.spec.cover and i * block < self.spec.n_labels:
                given = self.topic_members[i * block : (i + 1) * block].tolist()
            yield self.document(rng, f"{prefix}{i}", given)

    def label_names(self) -> Iterator[tuple[str, str]]:
        """(id, name) of every label: its first two signature words, as a real label's name would be."""
        for lab in range(self.spec.n_labels):
            yield f"L{lab}", " ".join(self.words[w] for w in self.signature[lab, :2].tolist())
