import numpy as np
import pytest

from training.featurizer_fit import FeaturizerParams, fit_featurizer
from xmlc.featurizer import FeaturizerConfig, TfidfFeaturizer, tokenize

TEXTS = [
    "The Council adopted the regulation on fisheries.",
    "Fisheries quotas: the council regulation sets quotas.",
    "Customs duties on imports of steel products.",
    "The regulation on customs duties and steel imports.",
    "Agricultural aid for milk products in the Community.",
]


def test_tokenize_unigrams_then_bigrams():
    terms = tokenize("A b, C!", FeaturizerConfig(ngram_max=2))
    assert terms == ["a", "b", "c", "a b", "b c"]
    assert tokenize("x y z", FeaturizerConfig(ngram_max=1)) == ["x", "y", "z"]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_fit_matches_serving_transform(n_jobs, corpus):
    """The training matrix and the per-request transform give the same vectors (train/serve parity)."""
    texts = [d.full_text for d in corpus[0][:300]]
    featurizer, X = fit_featurizer(
        texts, FeaturizerParams(min_df=2, max_features=500), n_jobs=n_jobs, progress=False
    )
    assert X.shape == (300, featurizer.dim) and featurizer.dim <= 500
    for i in (0, 7, 299):
        row = featurizer.transform_one(texts[i])
        assert np.array_equal(row.indices, X[i].indices)
        np.testing.assert_allclose(row.data, X[i].data, rtol=1e-6)
    batch = featurizer.transform(texts[:50])
    assert abs(batch - X[:50]).max() < 1e-6


def test_weights_are_sublinear_tfidf_and_unit_norm():
    featurizer, X = fit_featurizer(
        TEXTS, FeaturizerParams(min_df=1, max_df=1.0, max_features=0), n_jobs=1, progress=False
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
        TEXTS, FeaturizerParams(min_df=2, max_df=0.5, max_features=0), n_jobs=1, progress=False
    )
    vocab = set(featurizer.vocabulary)
    assert "council" in vocab and "customs duties" in vocab  # df 2 of 5
    assert "regulation" not in vocab and "the" not in vocab  # df 3 and 4 of 5: above max_df
    assert "milk" not in vocab  # df 1: below min_df
    capped, _ = fit_featurizer(
        TEXTS, FeaturizerParams(min_df=1, max_df=1.0, max_features=3), n_jobs=1, progress=False
    )
    assert capped.dim == 3 and "the" in capped.vocabulary


def test_save_load_round_trip(tmp_path):
    featurizer, _ = fit_featurizer(
        TEXTS, FeaturizerParams(min_df=1, max_features=0), n_jobs=1, progress=False
    )
    featurizer.save(tmp_path)
    again = TfidfFeaturizer.load(tmp_path)
    assert again.vocabulary == featurizer.vocabulary
    assert abs(again.transform(TEXTS) - featurizer.transform(TEXTS)).max() == 0


def test_unknown_and_empty_text_give_empty_rows():
    featurizer, _ = fit_featurizer(
        TEXTS, FeaturizerParams(min_df=1, max_features=0), n_jobs=1, progress=False
    )
    assert featurizer.transform_one("zzz qqq").nnz == 0
    assert featurizer.transform_one("").nnz == 0
