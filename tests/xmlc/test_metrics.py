"""Hand-computed checks for xmlc.metrics (numbers in percent)."""

import math

import pytest

from xmlc.metrics import Propensity, evaluate

# 100 training docs: "a" in 50, "b" in 5, "c" in 50; "z" never seen.
TRAIN = [["a", "b"]] * 5 + [["a"]] * 45 + [["c"]] * 50


@pytest.fixture
def prop() -> Propensity:
    return Propensity.from_label_lists(TRAIN)


def test_precision_at_1_and_3() -> None:
    preds = [["a", "b", "c"], ["x", "a", "b"], ["c"]]
    truths = [{"a", "c"}, {"b"}, ["c", "d"]]
    r = evaluate(preds, truths, ks=(1, 3))
    # P@1: hits 1, 0, 1 -> 2/3.  P@3: (2/3 + 1/3 + 1/3) / 3 = 4/9 (k stays 3 for the short list).
    assert r.metrics["P@1"] == pytest.approx(200 / 3)
    assert r.metrics["P@3"] == pytest.approx(400 / 9)
    assert r.n_docs == 3
    assert set(r.metrics) == {"P@1", "P@3", "nDCG@1", "nDCG@3", "F1@1", "F1@3"}
    # F1@3: 2 hits / (3 + |truth|): 2*2/(3+2), 2*1/(3+1), 2*1/(3+2) -> (0.8 + 0.5 + 0.4) / 3
    assert r.metrics["F1@3"] == pytest.approx(100 * 1.7 / 3)
    assert r.metrics["F1@1"] == pytest.approx(100 * (2 / 3 + 0 + 2 / 3) / 3)


def test_ndcg_fewer_truths_than_k() -> None:
    # doc 1: single truth at rank 2 -> DCG = 1/log2(3), IDCG = 1.
    # doc 2: truths at ranks 1 and 3 -> DCG = 1 + 1/2, IDCG = 1 + 1/log2(3).
    r = evaluate([["x", "a", "y", "z", "w"], ["a", "x", "b"]], [{"a"}, {"a", "b"}], ks=(5,))
    d1 = 1 / math.log2(3)
    d2 = 1.5 / (1 + 1 / math.log2(3))
    assert r.metrics["nDCG@5"] == pytest.approx(100 * (d1 + d2) / 2)


def test_propensity_formula(prop: Propensity) -> None:
    assert prop.n_docs == 100
    assert prop.counts == {"a": 50, "b": 5, "c": 50}
    c = (math.log(100) - 1) * (1.5 + 1) ** 0.55
    for label, n_l in [("a", 50), ("b", 5), ("z", 0)]:
        expected = 1 / (1 + c * math.exp(-0.55 * math.log(n_l + 1.5)))
        assert prop(label) == pytest.approx(expected)
        assert prop.inverse(label) == pytest.approx(1 / expected)
    assert prop.inverse("z") == pytest.approx(5.774661450557821)  # rarer label -> larger weight
    # Explicit constructor, non-default A/B; a label repeated within a doc counts once.
    p = Propensity.from_label_lists([["q", "q"], ["r"]] * 500, a=0.6, b=2.6)
    c2 = (math.log(1000) - 1) * 3.6**0.6
    assert p("q") == pytest.approx(1 / (1 + c2 * (500 + 2.6) ** -0.6))


def test_unseen_truth_label_is_a_miss_not_dropped(prop: Propensity) -> None:
    r = evaluate([["a", "x", "y"]], [{"a", "z"}], ks=(1, 3), propensity=prop)
    assert r.metrics["P@1"] == pytest.approx(100.0)
    assert r.metrics["P@3"] == pytest.approx(100 / 3)
    # "z" stays in the truth set: IDCG@3 counts 2 relevant labels.
    assert r.metrics["nDCG@3"] == pytest.approx(100 / (1 + 1 / math.log2(3)))
    # and its (count-0) propensity sets the best achievable PSP@1.
    assert r.metrics["PSP@1"] == pytest.approx(100 * prop.inverse("a") / prop.inverse("z"))


def test_psp_normalisation(prop: Propensity) -> None:
    truths = [{"a", "z"}, {"b"}]
    perfect = evaluate([["z", "a"], ["b"]], truths, ks=(1, 2), propensity=prop)
    assert perfect.metrics["PSP@1"] == pytest.approx(100.0)
    assert perfect.metrics["PSP@2"] == pytest.approx(100.0)
    assert perfect.metrics["PSnDCG@1"] == pytest.approx(100.0)
    assert perfect.metrics["PSnDCG@2"] == pytest.approx(100.0)
    # Non-perfect: doc 1 predicts "a" first instead of the rarer "z".
    # 1/p: a = 1.68281, b = 3.13152, z = 5.77466 (N=100, counts 50 / 5 / 0).
    # PSP@1 = mean(1.68281, 3.13152) / mean(best 5.77466, 3.13152)
    #       = 4.81433 / 8.90619 = 0.540561 -> 54.0561 (ratio of means, pyxclib style).
    r = evaluate([["a", "z"], ["b"]], truths, ks=(1, 2), propensity=prop)
    assert r.metrics["PSP@1"] == pytest.approx(54.05605796206905)
    assert r.metrics["P@2"] == pytest.approx(75.0)
    # PSP@2: both docs found every truth -> numerator equals the best -> 100.
    assert r.metrics["PSP@2"] == pytest.approx(100.0)
    # PSnDCG@2: doc 1 (IDCG 1.63093) has DCG a + z/log2(3) vs best z + a/log2(3); doc 2 (IDCG 1) b vs b.
    ia, ib, iz, idcg = prop.inverse("a"), prop.inverse("b"), prop.inverse("z"), 1 + 1 / math.log2(3)
    num = (ia + iz / math.log2(3)) / idcg + ib
    den = (iz + ia / math.log2(3)) / idcg + ib
    assert r.metrics["PSnDCG@2"] == pytest.approx(100 * num / den)
    assert r.metrics["PSnDCG@2"] < 100.0


def test_duplicate_predictions_count_once() -> None:
    r = evaluate([["a", "a", "b"]], [{"a"}], ks=(1, 2))
    # deduped ranking is [a, b]: P@2 = 1/2, not 2/2.
    assert r.metrics["P@2"] == pytest.approx(50.0)
    assert r.metrics["nDCG@2"] == pytest.approx(100.0)


def test_recall_at_k() -> None:
    preds = [["a", "x", "b", "y"], []]
    truths = [{"a", "b", "c", "d"}, {"e"}]
    r = evaluate(preds, truths, ks=(1,), recall_ks=(1, 2, 4))
    assert r.metrics["R@1"] == pytest.approx(100 * (1 / 4) / 2)
    assert r.metrics["R@2"] == pytest.approx(100 * (1 / 4) / 2)
    assert r.metrics["R@4"] == pytest.approx(100 * (2 / 4) / 2)


def test_empty_truth_counts_as_zero(prop: Propensity) -> None:
    r = evaluate([["a"], ["a"]], [{"a"}, set()], ks=(1,), propensity=prop, recall_ks=(1,))
    for key in ("P@1", "nDCG@1", "R@1"):
        assert r.metrics[key] == pytest.approx(50.0)
    assert r.metrics["PSP@1"] == pytest.approx(100.0)  # zero on both sides of the ratio of means
    assert r.n_docs == 2


def test_validation() -> None:
    with pytest.raises(ValueError, match="same length"):
        evaluate([["a"]], [{"a"}, {"b"}])
    with pytest.raises(ValueError, match=">= 1"):
        evaluate([["a"]], [{"a"}], ks=(0,))
    with pytest.raises(ValueError, match=">= 1"):
        evaluate([["a"]], [{"a"}], recall_ks=(0,))


def test_report_output() -> None:
    r = evaluate([["a", "b"]], [{"b"}], ks=(1, 2), recall_ks=(2,))
    d = r.to_dict()
    assert d["n_docs"] == 1 and d["P@2"] == pytest.approx(50.0)
    table = r.format_table()
    assert "nDCG" in table and "50.00" in table and "1 docs" in table
    assert len({len(line) for line in table.splitlines()[:-1]}) == 1  # aligned rows
