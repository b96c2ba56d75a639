"""Ranking metrics for extreme multi-label classification.

Numbers follow the Extreme Classification Repository conventions (pyxclib), so results can be
compared with published tables: P@k, nDCG@k, propensity-scored PSP@k / PSnDCG@k and shortlist
recall R@k, all reported in percent; F1@k (the top k as a set) as subject-indexing tools report it.

Labels are plain string ids. A truth label never seen in training stays in the truth set and is
simply a miss (dropping it would inflate every metric); it still gets a propensity from the Jain
formula with count 0, so it also raises the best achievable PS score.

Documents with an empty truth set score 0 in every metric and still count in the mean (they are
never excluded, so a data bug shows up as lower numbers instead of silently vanishing).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Propensity", "Report", "evaluate"]


@dataclass(frozen=True)
class Propensity:
    """Jain et al. (2016) label propensity model, p_l = 1 / (1 + C * (N_l + B)^-A).

    Rare labels get small propensities (large inverse), so PS metrics reward getting tail labels
    right. A = 0.55, B = 1.5 are the repository's generic defaults (Amazon uses 0.6/2.6, Wikipedia
    0.5/0.4).
    """

    counts: Mapping[str, int] = field(hash=False)
    n_docs: int
    a: float = 0.55
    b: float = 1.5
    _c: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.n_docs < 1:
            raise ValueError(f"Propensity needs n_docs >= 1, got {self.n_docs}")
        c = (math.log(self.n_docs) - 1.0) * (self.b + 1.0) ** self.a
        object.__setattr__(self, "_c", c)

    @classmethod
    def from_label_lists(
        cls, train_label_lists: Iterable[Iterable[str]], a: float = 0.55, b: float = 1.5
    ) -> Propensity:
        """Count, per label, the training documents containing it (a repeated label counts once)."""
        counts: Counter[str] = Counter()
        n_docs = 0
        for labels in train_label_lists:
            counts.update(set(labels))
            n_docs += 1
        return cls(counts=dict(counts), n_docs=n_docs, a=a, b=b)

    def __call__(self, label: str) -> float:
        """Propensity of `label`; labels never seen in training use count 0."""
        n_l = self.counts.get(label, 0)
        return 1.0 / (1.0 + self._c * math.exp(-self.a * math.log(n_l + self.b)))

    def inverse(self, label: str) -> float:
        """1 / p(label): the weight a correct prediction of `label` earns in PS metrics."""
        return 1.0 / self(label)


@dataclass
class Report:
    """Metric values in percent (0-100), keyed like "P@1", "nDCG@5", "PSP@3", "R@10"."""

    metrics: dict[str, float]
    n_docs: int

    def to_dict(self) -> dict[str, float | int]:
        """Flat dict for JSON logs / result files."""
        out: dict[str, float | int] = dict(self.metrics)
        out["n_docs"] = self.n_docs
        return out

    def format_table(self) -> str:
        """One row per metric family, one column per k, so runs can be eyeballed side by side."""
        rows: dict[str, dict[int, float]] = {}
        for key, value in self.metrics.items():
            name, _, k = key.partition("@")
            rows.setdefault(name, {})[int(k)] = value
        ks = sorted({k for row in rows.values() for k in row})
        name_w = max([len("metric"), *(len(n) for n in rows)])
        col_w = max([7, *(len(f"@{k}") for k in ks)])
        lines = ["metric".ljust(name_w) + "".join(f"@{k}".rjust(col_w + 2) for k in ks)]
        for name, row in rows.items():
            cells = "".join((f"{row[k]:.2f}" if k in row else "-").rjust(col_w + 2) for k in ks)
            lines.append(name.ljust(name_w) + cells)
        lines.append(f"({self.n_docs} docs)")
        return "\n".join(lines)


def _check_ks(ks: Sequence[int], what: str) -> list[int]:
    out = [int(k) for k in ks]
    if any(k < 1 for k in out):
        raise ValueError(f"{what} must all be >= 1, got {list(ks)}")
    return out


def evaluate(
    predictions: Sequence[Sequence[str]],
    truths: Sequence[Iterable[str]],
    ks: Sequence[int] = (1, 3, 5),
    propensity: Propensity | None = None,
    recall_ks: Sequence[int] = (),
) -> Report:
    """Score ranked predictions (best first) against truth label sets, means over documents.

    P@k divides by k even when fewer than k labels were predicted (a short list is not rewarded).
    Duplicate predicted labels count once (first occurrence kept) so a model cannot repeat a sure
    hit. PSP@k and PSnDCG@k are ratios of means against the best ranking achievable for each
    document's truths, exactly as pyxclib computes them; they are produced only with `propensity`.
    """
    if len(predictions) != len(truths):
        raise ValueError(
            f"predictions and truths must have the same length, got {len(predictions)} predictions "
            f"and {len(truths)} truths"
        )
    ks_l = _check_ks(ks, "ks")
    rks_l = _check_ks(recall_ks, "recall_ks")
    n = len(predictions)
    kmax = max([*ks_l, *rks_l], default=1)
    use_ps = propensity is not None
    if n == 0:
        names = [f"{m}@{k}" for m in ("P", "nDCG", "F1") for k in ks_l]
        names += [f"{m}@{k}" for m in ("PSP", "PSnDCG") for k in ks_l] if use_ps else []
        names += [f"R@{k}" for k in rks_l]
        return Report(metrics=dict.fromkeys(names, 0.0), n_docs=0)

    hits = np.zeros((n, kmax), dtype=np.float64)
    n_true = np.zeros(n, dtype=np.int64)
    ps_hits = np.zeros((n, kmax) if use_ps else (0, 0), dtype=np.float64)
    ps_best = np.zeros((n, kmax) if use_ps else (0, 0), dtype=np.float64)
    inv_cache: dict[str, float] = {}

    def inv(label: str) -> float:
        w = inv_cache.get(label)
        if w is None:
            assert propensity is not None
            w = inv_cache[label] = propensity.inverse(label)
        return w

    for i, (pred, truth) in enumerate(zip(predictions, truths, strict=True)):
        tset = set(truth)
        n_true[i] = len(tset)
        top = list(dict.fromkeys(pred))[:kmax]
        for r, label in enumerate(top):
            if label in tset:
                hits[i, r] = 1.0
                if use_ps:
                    ps_hits[i, r] = inv(label)
        if use_ps and tset:
            best = sorted((inv(t) for t in tset), reverse=True)[:kmax]
            ps_best[i, : len(best)] = best

    disc = 1.0 / np.log2(np.arange(2, kmax + 2))
    cum_disc = np.concatenate(([0.0], np.cumsum(disc)))  # cum_disc[j] = IDCG with j relevant labels
    cum_hits = np.cumsum(hits, axis=1)
    dcg = np.cumsum(hits * disc, axis=1)

    metrics: dict[str, float] = {}
    for k in ks_l:
        metrics[f"P@{k}"] = 100.0 * float(np.mean(cum_hits[:, k - 1] / k))
    for k in ks_l:
        idcg = cum_disc[np.minimum(n_true, k)]
        ndcg = np.divide(dcg[:, k - 1], idcg, out=np.zeros(n), where=idcg > 0)
        metrics[f"nDCG@{k}"] = 100.0 * float(np.mean(ndcg))
    for k in ks_l:  # F1 of the top k as a set: 2 hits / (k + |truth|), as subject indexing reports it
        metrics[f"F1@{k}"] = 100.0 * float(np.mean(2.0 * cum_hits[:, k - 1] / (k + n_true)))
    if use_ps:
        ps_cum = np.cumsum(ps_hits, axis=1)
        best_cum = np.cumsum(ps_best, axis=1)
        for k in ks_l:
            metrics[f"PSP@{k}"] = 100.0 * _ratio(np.mean(ps_cum[:, k - 1]), np.mean(best_cum[:, k - 1]))
        ps_dcg = np.cumsum(ps_hits * disc, axis=1)
        best_dcg = np.cumsum(ps_best * disc, axis=1)
        for k in ks_l:
            # pyxclib divides each doc's PSDCG and best PSDCG by its plain IDCG before averaging.
            idcg = cum_disc[np.minimum(n_true, k)]
            scale = np.divide(1.0, idcg, out=np.zeros(n), where=idcg > 0)
            num = np.mean(ps_dcg[:, k - 1] * scale)
            den = np.mean(best_dcg[:, k - 1] * scale)
            metrics[f"PSnDCG@{k}"] = 100.0 * _ratio(num, den)
    for k in rks_l:
        rec = np.divide(cum_hits[:, k - 1], n_true, out=np.zeros(n), where=n_true > 0)
        metrics[f"R@{k}"] = 100.0 * float(np.mean(rec))
    return Report(metrics=metrics, n_docs=n)


def _ratio(num: float | np.floating, den: float | np.floating) -> float:
    """num / den, 0 when nothing was achievable (every truth set empty)."""
    return float(num / den) if den > 0 else 0.0
