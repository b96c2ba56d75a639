# ruff: noqa: RUF001  (real text in other scripts: look-alike letters are the point)
import itertools
import random
import re
import sys

import numpy as np
import pytest

from training.featurizer_fit import fit_featurizer
from training.params import FeaturizerParams
from xmlc.doc import Doc
from xmlc.featurizer import (
    DEFAULT_TOKEN_PATTERN,
    FeaturizerConfig,
    TfidfFeaturizer,
    tokenize,
    word_tokens,
)

TEXTS = [
    Doc("The Council adopted the regulation on fisheries."),
    Doc("Fisheries quotas: the council regulation sets quotas."),
    Doc("Customs duties on imports of steel products."),
    Doc("The regulation on customs duties and steel imports."),
    Doc("Agricultural aid for milk products in the Community."),
]


def test_tokenize_unigrams_then_bigrams():
    terms = tokenize("A b, C!", FeaturizerConfig(ngram_max=2))
    assert terms == ["a", "b", "c", "a b", "b c"]
    assert tokenize("x y z", FeaturizerConfig(ngram_max=1)) == ["x", "y", "z"]


@pytest.mark.parametrize("n_jobs,title_weight", [(1, 0.0), (2, 0.0), (2, 0.7)])
def test_fit_matches_serving_transform(n_jobs, title_weight, corpus):
    """The training matrix and the per-request transform give the same vectors (train/serve parity)."""
    texts = [Doc(d.text, f"title {i % 7} {d.title}") for i, d in enumerate(corpus[0][:300])]
    params = FeaturizerParams(min_df=2, max_features=500, title_weight=title_weight)
    featurizer, X = fit_featurizer(texts, params, n_jobs=n_jobs, progress=False)
    assert X.shape == (300, featurizer.dim) and len(featurizer.vocabulary) <= 500
    assert (featurizer.title is not None) == (title_weight > 0)
    for i in (0, 7, 299):
        row = featurizer.transform([texts[i]])
        assert np.array_equal(row.indices, X[i].indices)
        np.testing.assert_allclose(row.data, X[i].data, rtol=1e-6)
    batch = featurizer.transform(texts[:50])
    assert abs(batch - X[:50]).max() < 1e-6


def test_weights_are_sublinear_tfidf_and_unit_norm():
    featurizer, X = fit_featurizer(
        TEXTS,
        FeaturizerParams(min_df=1, max_df=1.0, max_features=0, title_weight=0),
        n_jobs=1,
        progress=False,
    )
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    # "quotas" occurs twice in doc 1 and in one doc: weight ~ (1 + ln 2) * (ln(6/2) + 1) before norm.
    j = featurizer.vocabulary.index("quotas")
    k = featurizer.vocabulary.index("sets")
    ratio = X[1, j] / X[1, k]
    assert ratio == pytest.approx(1 + np.log(2), rel=1e-5)


def test_vocabulary_selection_min_df_max_df_max_features():
    featurizer, _ = fit_featurizer(
        TEXTS,
        FeaturizerParams(min_df=2, max_df=0.5, max_features=0, title_weight=0),
        n_jobs=1,
        progress=False,
    )
    vocab = set(featurizer.vocabulary)
    assert "council" in vocab and "customs duties" in vocab  # df 2 of 5
    assert "regulation" not in vocab and "the" not in vocab  # df 3 and 4 of 5: above max_df
    assert "milk" not in vocab  # df 1: below min_df
    capped, _ = fit_featurizer(
        TEXTS,
        FeaturizerParams(min_df=1, max_df=1.0, max_features=3, title_weight=0),
        n_jobs=1,
        progress=False,
    )
    assert capped.dim == 3 and "the" in capped.vocabulary


@pytest.mark.parametrize("title_weight", [0.0, 1.0])
def test_save_load_round_trip(tmp_path, title_weight):
    featurizer, _ = fit_featurizer(
        TEXTS, FeaturizerParams(min_df=1, max_features=0, title_weight=title_weight), n_jobs=1, progress=False
    )
    files = featurizer.save(tmp_path)
    assert ("title_vocabulary.json" in files) == (title_weight > 0)
    again = TfidfFeaturizer.load(tmp_path)
    assert again.vocabulary == featurizer.vocabulary and again.dim == featurizer.dim
    assert abs(again.transform(TEXTS) - featurizer.transform(TEXTS)).max() == 0


def test_title_field_is_the_heading_with_its_own_vocabulary_and_weight():
    texts = [Doc(t.text, t.text.split()[-1]) for t in TEXTS]  # title: the text's last word
    featurizer, X = fit_featurizer(
        texts,
        FeaturizerParams(min_df=1, max_df=1.0, max_features=0, title_weight=0.5),
        n_jobs=1,
        progress=False,
    )
    assert featurizer.title is not None
    n_body = len(featurizer.vocabulary)
    assert featurizer.dim == n_body + featurizer.title.dim
    assert "fisheries" in featurizer.title.vocabulary and "council" not in featurizer.title.vocabulary
    pair = [Doc("the council", "fisheries."), Doc("fisheries.", "the council")]
    for row in featurizer.transform(pair):
        body, title = row[:, :n_body], row[:, n_body:]
        np.testing.assert_allclose(body.multiply(body).sum() + title.multiply(title).sum(), 1.0, rtol=1e-5)
        if title.nnz:  # only the first document has a known word in its title
            np.testing.assert_allclose(np.sqrt(title.multiply(title).sum() / body.multiply(body).sum()), 0.5)
    rows = featurizer.transform(pair)
    assert rows[0, n_body:].nnz == 1 and rows[1, n_body:].nnz == 0
    # A text without a title: its first line is the title field.
    np.testing.assert_allclose(
        rows[0].toarray(), featurizer.transform([Doc("fisheries.\nthe council")]).toarray()
    )
    np.testing.assert_allclose(X[0].toarray(), featurizer.transform(texts[:1]).toarray(), rtol=1e-6)
    with pytest.raises(ValueError, match="title_weight"):
        FeaturizerParams(title_weight=-1)
    with pytest.raises(ValueError, match="title field"):
        TfidfFeaturizer(featurizer.vocabulary, featurizer.idf, featurizer.config)  # weight, no field


def test_unknown_and_empty_text_give_empty_rows():
    featurizer, _ = fit_featurizer(
        TEXTS, FeaturizerParams(min_df=1, max_features=0), n_jobs=1, progress=False
    )
    assert featurizer.transform([Doc("zzz qqq")]).nnz == 0
    assert featurizer.transform([Doc("")]).nnz == 0


# ------------------------------------------- the fast serving path against the plain string algorithm

ALPHABET = "abcxyz ABC_09 \t\n.,;-'\"()/€\u2019\u2013éÉßİ\u0131ǅ中٣\u0301\u00a0\u2028\u200b\x1c"
WORDS = ["a", "b", "c", "ab", "x", "y", "z", "é", "straße", "中", "٣", "a_b", "09", "ǆ", "i̇"]


def _reference_term_ids(featurizer: TfidfFeaturizer, text: str) -> np.ndarray:
    """The original algorithm: regex tokens, n-gram strings, one dict lookup per term."""
    config = featurizer.config
    text = text[: config.max_chars]
    tokens = re.findall(config.token_pattern, text.lower() if config.lowercase else text)
    terms = list(tokens)
    for n in range(2, config.ngram_max + 1):
        terms.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    index = {term: i for i, term in enumerate(featurizer.vocabulary)}
    return np.asarray([index[t] for t in terms if t in index], dtype=np.int32)


def _random_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 60)):
        if rng.random() < 0.6:
            word = rng.choice(WORDS)
            parts.append(word.upper() if rng.random() < 0.2 else word)
        else:
            parts.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 4))))
        parts.append(rng.choice([" ", " ", ", ", ".\n", "\t", "", "-"]))
    return "".join(parts)


def test_word_tokens_is_the_default_pattern():
    pattern = re.compile(DEFAULT_TOKEN_PATTERN)
    rng = random.Random(0)
    for _ in range(3000):
        text = _random_text(rng)
        assert word_tokens(text) == pattern.findall(text), text
        assert word_tokens(text.lower()) == pattern.findall(text.lower()), text
    for _ in range(300):  # any code points, lone surrogates included
        text = "".join(chr(rng.randrange(sys.maxunicode + 1)) for _ in range(rng.randint(0, 40)))
        assert word_tokens(text) == pattern.findall(text)


def test_no_word_character_is_whitespace():
    """What makes `word_tokens` exact: `str.split` never cuts inside a run of word characters."""
    word = re.compile(r"\w")
    spaces = [c for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    assert spaces and not [c for c in spaces if word.match(chr(c))]


VOCAB = [
    *WORDS,
    "a b",
    "b a",
    "ab x",
    "x y",
    "é straße",
    "中 ٣",
    "q r",  # a bigram whose words are not unigram terms
    "a b c",  # three words: only with ngram_max >= 3
    "a  b",  # never produced: two spaces
    " a",
    "a ",
    "A",  # upper case: only without lowercasing
    "A B",
    "a-b",  # not a token
    "a",  # a repeat: the last id wins, as in a dict
]


@pytest.mark.parametrize(
    "config",
    [
        FeaturizerConfig(),
        FeaturizerConfig(lowercase=False),
        FeaturizerConfig(ngram_max=1),
        FeaturizerConfig(ngram_max=3),  # the string path
        FeaturizerConfig(token_pattern=r"[a-z]+"),  # the string path
        FeaturizerConfig(max_chars=25),
    ],
    ids=["default", "cased", "unigrams", "trigrams", "pattern", "max-chars"],
)
def test_term_ids_match_the_string_algorithm(config):
    featurizer = TfidfFeaturizer(VOCAB, np.ones(len(VOCAB), np.float32), config)
    rng = random.Random(1)
    texts = [_random_text(rng) for _ in range(2000)]
    texts += ["", "a", "a b", "q r", "A B a b", "x y " * 50]
    for text in texts:
        got = featurizer.term_ids(text)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, _reference_term_ids(featurizer, text), err_msg=text)


def test_term_ids_order_and_repeats():
    featurizer = TfidfFeaturizer(VOCAB, np.ones(len(VOCAB), np.float32), FeaturizerConfig())
    last_a, b, a_b = len(VOCAB) - 1, VOCAB.index("b"), VOCAB.index("a b")
    assert featurizer.term_ids("A b, a b").tolist() == [last_a, b, last_a, b, a_b, VOCAB.index("b a"), a_b]
    assert featurizer.term_ids("q r").tolist() == [VOCAB.index("q r")]
    assert featurizer.term_ids("").tolist() == []


def test_tokenize_keeps_its_output():
    rng = random.Random(2)
    config = FeaturizerConfig()
    for _ in range(500):
        text = _random_text(rng)
        tokens = re.findall(DEFAULT_TOKEN_PATTERN, text.lower())
        assert tokenize(text, config) == tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]


def test_unknown_token_never_pairs():
    """Token ids p=0, q=1, z=2: "q <unknown>" must not be read as the pair code of "p z"."""
    featurizer = TfidfFeaturizer(["p", "q", "p z"], np.ones(3, np.float32), FeaturizerConfig())
    assert featurizer.term_ids("q nope").tolist() == [1]
    assert featurizer.term_ids("nope z p z").tolist() == [0, 2]


def test_counting_with_a_term_budget_keeps_the_frequent_terms_exact(corpus):
    docs = [Doc(d.text, d.title) for d in corpus[0][:400]]
    # Four chunks of 100 documents: the budget is checked after each.
    exact, _ = fit_featurizer(docs, FeaturizerParams(title_weight=0), n_jobs=4, progress=False)
    small, _ = fit_featurizer(
        docs, FeaturizerParams(title_weight=0, max_terms_in_memory=2000), n_jobs=4, progress=False
    )
    # Counting forgot rare terms on the way (the budget is far below the corpus's distinct terms)...
    assert set(small.vocabulary) < set(exact.vocabulary)
    # ...but a term in an eighth of the documents or more is never forgotten: same document frequency.
    index = {t: j for j, t in enumerate(small.vocabulary)}
    common = [(i, t) for i, t in enumerate(exact.vocabulary) if exact.idf[i] < 3.0]  # df >= n / 8
    assert len(common) >= 10
    for i, term in common:
        assert small.idf[index[term]] == exact.idf[i], term


# Real sentences in several scripts, as user documents carry them (curly quotes, dashes, accents,
# decomposed accents, ligatures, Greek final sigma, Turkish dotted I, Arabic digits, CJK, emoji, NUL).
REAL_TEXT = [
    "Council Regulation (EC) No 2371/2002 of 20 December 2002 on the conservation and sustainable "
    "exploitation of fisheries resources under the Common Fisheries Policy \u2014 "
    "\u2018total allowable catches\u2019",
    "Verordnung (EG) Nr. 1234/2007 des Rates über eine gemeinsame Organisation der Agrarmärkte; Straße, ǅ",
    "Règlement du Conseil relatif à la protection des eaux contre la pollution par les nitrates",
    "ΚΑΝΟΝΙΣΜΟΣ ΤΟΥ ΣΥΜΒΟΥΛΙΟΥ για την αλιεία ΑΛΙΕΙΑΣ Σ",
    "İSTANBUL ılık İi Iı \u0130\u0307 cafe\u0301 café ﬁsheries",
    "لائحة المجلس رقم ٢٣٧١ بشأن مصايد الأسماك 中华人民共和国 渔业 🐟🐟 fish\x00quota \ud800 end",
    "",
    "   \t\n ",
]


def test_compiled_counts_match_the_string_path_on_real_text(corpus):
    """The compiled term lookup (`xmlc.term_index`) gives the string path's rows, weights included, for
    a batch: documents in several scripts beside generated ones (the batch boundaries matter too)."""
    docs = [Doc(d.text, d.title) for d in corpus[0][:300]]
    featurizer, _ = fit_featurizer(docs, FeaturizerParams(title_weight=0.5), n_jobs=1, progress=False)
    vocab = featurizer.vocabulary + [w.lower() for t in REAL_TEXT for w in re.findall(r"\w+", t)]
    vocab += [" ".join(p) for t in REAL_TEXT for p in itertools.pairwise(re.findall(r"\w+", t.lower()))]
    vocab = list(dict.fromkeys(vocab))
    fast = TfidfFeaturizer(vocab, np.linspace(1, 3, len(vocab)).astype(np.float32), FeaturizerConfig())
    slow = TfidfFeaturizer(vocab, fast.idf, FeaturizerConfig())
    slow._fast = None  # the string path: regex tokens, n-gram strings, dict lookups
    rng = random.Random(3)
    texts = [*REAL_TEXT, *(d.body for d in docs[:100]), *(_random_text(rng) for _ in range(200))]
    rng.shuffle(texts)
    for a, b in ((fast.counts(texts), slow.counts(texts)), (fast.rows(texts), slow.rows(texts))):
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.data, b.data)
    assert fast.counts(REAL_TEXT[:6]).getnnz(axis=1).min() > 5  # the real sentences found their words
    # the title field too: a fitted featurizer against a copy of it on the string path
    title = featurizer.title
    assert title is not None
    slow_title = TfidfFeaturizer(title.vocabulary, title.idf, title.config)
    slow_fitted = TfidfFeaturizer(featurizer.vocabulary, featurizer.idf, featurizer.config, slow_title)
    slow_title._fast = slow_fitted._fast = None
    docs_in = [Doc(t, h) for t, h in zip(texts, reversed(texts), strict=True)]
    got, want = featurizer.transform(docs_in), slow_fitted.transform(docs_in)
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)
