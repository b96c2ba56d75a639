"""What `xmlc train` says about the bundle it wrote: the training data's label coverage and, on held-out
documents, the score of each stage it built and which stages it kept.

The report is printed and saved in the manifest (``report``), so `xmlc info` shows it later. Held-out
documents come from ``--valid FILE`` (the model is fitted on every training document) or from
``--holdout SHARE`` (a seeded slice set aside before fitting, by default where there is a choice; the
chosen model is then refitted on every document, or with ``--no-refit`` kept as fitted on the rest).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from xmlc.data import Document
from xmlc.evaluation import evaluate_model
from xmlc.model import Model
from xmlc.parts import Ranker
from xmlc.pipeline import Pipeline

HELD_OUT_METRICS = ("P@1", "P@3", "P@5", "nDCG@5", "PSP@5")
# Weights of the shortlister's score in the served score (`xmlc.ranker.blend`); 0: the ranker as trained.
PRIOR_WEIGHTS = (0.0, 0.25, 0.5, 0.75)


def coverage(docs: Sequence[Document], label_ids: Sequence[str]) -> dict[str, Any]:
    """How well the training documents cover ``label_ids`` (the model's labels and those of the label
    file): a label no training document carries is never predicted."""
    counts = Counter(label for d in docs for label in d.labels)
    per_label = np.array([counts.get(x, 0) for x in label_ids])
    seen = per_label > 0
    unseen = [x for x, c in zip(label_ids, per_label.tolist(), strict=True) if c == 0]
    return {
        "n_docs": len(docs),
        "n_labels": len(label_ids),
        "labels_seen": int(seen.sum()),
        "labels_never_seen": len(unseen),
        "never_seen_examples": unseen[:10],
        "labels_per_doc": round(float(np.mean([len(d.labels) for d in docs])), 2) if docs else 0.0,
        "docs_per_label": {
            "median": float(np.median(per_label[seen])) if seen.any() else 0.0,
            "max": int(per_label.max(initial=0)),
            "share_1_to_10": round(float((seen & (per_label <= 10)).sum() / max(1, seen.sum())), 4),
        },
    }


def held_out_scores(model: Model, docs: Sequence[Document]) -> dict[str, float]:
    """P@k, nDCG@5 and PSP@5 (percent) on labelled documents the model was not fitted on."""
    report, _ = evaluate_model(model, [d.doc for d in docs], [list(d.labels) for d in docs], (1, 3, 5), ())
    return {m: round(float(report.metrics[m]), 2) for m in HELD_OUT_METRICS}


def choose_stages(model: Model, docs: Sequence[Document]) -> tuple[Model, dict[str, Any]]:
    """Keep the ranker, blended with the shortlister's scores at the weight that does best on these
    held-out documents, or drop it where the shortlister alone does better.

    A ranker re-orders the shortlist; on corpora whose documents carry many labels it can re-order
    worse than the shortlister's own scores, and in between a blend of the two can beat both. Each
    blend weight of `PRIOR_WEIGHTS` and the shortlister alone are scored (P@1 + P@5); ties keep the
    earlier, so the ranker as trained wins a tie with a blend, and a blend a tie with no ranker.
    """
    with_all = held_out_scores(model, docs)
    choice: dict[str, Any] = {"held_out": with_all, "stages": {model.kind: with_all}}
    if not isinstance(model, Pipeline) or model.ranker is None or model.shortlister.needs_ranker:
        choice["kept"] = model.kind
        choice["why"] = "nothing to choose: the method has no optional stage"
        return model, choice
    reweigh: Callable[[float], Ranker] | None = getattr(model.ranker, "with_prior_weight", None)
    # (name, prior weight or None for no ranker, model, held-out scores)
    options: list[tuple[str, float | None, Model, dict[str, float]]] = [(model.kind, 0.0, model, with_all)]
    for w in PRIOR_WEIGHTS[1:]:
        if reweigh is None:  # a ranker that cannot blend: on or off only
            break
        mixed = model.with_ranker(reweigh(w))
        options.append((f"{model.kind} blend {w:g}", w, mixed, held_out_scores(mixed, docs)))
    alone = model.with_ranker(None)
    options.append((alone.kind, None, alone, held_out_scores(alone, docs)))
    for name, _, _, scores in options[1:]:
        choice["stages"][name] = scores

    def total(scores: dict[str, float]) -> float:
        return scores["P@1"] + scores["P@5"]

    best = max(range(len(options)), key=lambda i: (total(options[i][3]), -i))
    _, weight, kept, scores = options[best]
    choice.update(held_out=scores, kept=kept.kind, prior_weight=weight)
    if weight is None:
        margin = total(scores) - max(total(o[3]) for o in options[:-1])
        choice["why"] = (
            f"the shortlister alone beats the ranker's best blend by {margin:.2f} P@1 + P@5: dropped"
        )
    else:
        gain = total(scores) - total(options[-1][3])
        blended = f" blended with the shortlister's scores (weight {weight:g})" if weight else ""
        choice["why"] = f"the ranker{blended} adds {gain:+.2f} to P@1 + P@5"
    return kept, choice


def format_report(report: dict[str, Any]) -> str:
    """The report as a few lines for the terminal."""
    cov = report["coverage"]
    dpl = cov["docs_per_label"]
    lines = [
        f"labels   {cov['labels_seen']:,} of {cov['n_labels']:,} seen in {cov['n_docs']:,} training "
        f"documents ({cov['labels_per_doc']} a document; documents a label: median {dpl['median']:g}, "
        f"max {dpl['max']:,}, {100 * dpl['share_1_to_10']:.1f}% of labels with 1-10)",
    ]
    if cov["labels_never_seen"]:
        examples = ", ".join(cov["never_seen_examples"][:5])
        lines.append(
            f"warning  {cov['labels_never_seen']:,} labels have no training document and will rarely or "
            f"never be predicted (e.g. {examples})"
        )
    choice = report.get("choice")
    src = report.get("held_out_source", "")
    if choice:
        lines.append(f"held-out {src}")
        for kind, scores in choice.get("stages", {}).items():
            row = "  ".join(f"{m} {scores[m]:.2f}" for m in HELD_OUT_METRICS)
            lines.append(f"held-out {kind:<24} {row}")
        lines.append(f"kept     {choice['kept']}: {choice['why']}")
        if "title" in choice:
            lines.append(f"title    weight {choice['title']['title_weight']:g}: {choice['title']['why']}")
    elif src:
        lines.append(f"held-out {src}")
    return "\n".join(lines)
