"""What `xmlc train` says about the bundle it wrote: the training data's label coverage and, on held-out
documents, the score of each stage it built and which stages it kept.

The report is printed and saved in the manifest (``report``), so `xmlc info` shows it later. Held-out
documents come from ``--valid FILE`` (the model is fitted on every training document) or from
``--holdout FRACTION`` (a seeded slice set aside before fitting; the bundle is fitted on the rest).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from xmlc.data import Document
from xmlc.evaluation import evaluate_model
from xmlc.model import Model
from xmlc.pipeline import Pipeline

HELD_OUT_METRICS = ("P@1", "P@3", "P@5", "nDCG@5", "PSP@5")


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
    """Keep the ranker only where it helps on these held-out documents.

    A ranker re-orders the shortlist; on corpora whose documents carry many labels it can re-order
    worse than the shortlister's own scores. Both are scored here; the ranker stays when P@1 + P@5 with
    it is at least that without it, else the bundle is written without it (the shortlister alone).
    """
    with_all = held_out_scores(model, docs)
    choice: dict[str, Any] = {"held_out": with_all, "stages": {model.kind: with_all}}
    if not isinstance(model, Pipeline) or model.ranker is None or model.shortlister.needs_ranker:
        choice["kept"] = model.kind
        choice["why"] = "nothing to choose: the method has no optional stage"
        return model, choice
    alone = Pipeline(model.featurizer, model.shortlister, model.labels, None, model.manifest)
    without = held_out_scores(alone, docs)
    choice["stages"][alone.kind] = without
    gain = (with_all["P@1"] + with_all["P@5"]) - (without["P@1"] + without["P@5"])
    if gain >= 0:
        choice["kept"], choice["why"] = model.kind, f"the ranker adds {gain:+.2f} to P@1 + P@5"
        return model, choice
    choice["kept"], choice["why"] = alone.kind, f"the ranker costs {-gain:.2f} of P@1 + P@5: dropped"
    choice["held_out"] = without
    return alone, choice


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
    if choice:
        src = report.get("held_out_source", "held-out documents")
        for kind, scores in choice["stages"].items():
            row = "  ".join(f"{m} {scores[m]:.2f}" for m in HELD_OUT_METRICS)
            lines.append(f"held-out {kind:<14} {row}   ({src})")
        lines.append(f"kept     {choice['kept']}: {choice['why']}")
        if "title" in choice:
            lines.append(f"title    weight {choice['title']['title_weight']:g}: {choice['title']['why']}")
    return "\n".join(lines)
