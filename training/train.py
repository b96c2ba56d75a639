"""Raw labelled documents -> trained model -> bundle: what `xmlc train` runs."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from training.dataset import TrainingSet
from training.methods import configure, get_method
from training.params import TrainParams
from training.report import choose_stages, coverage, held_out_scores
from xmlc.bundle import check_out
from xmlc.data import Document, LabelRecord, read_documents, read_label_records
from xmlc.model import Model


@dataclass
class TrainResult:
    manifest: dict[str, Any]
    timings: dict[str, float]
    n_docs: int
    n_skipped: int
    skipped: list[str]  # the first malformed lines' messages (file and line)
    report: dict[str, Any]  # coverage, held-out scores and the stages kept (training.report)


def fit_model(
    documents: Sequence[Document],
    params: TrainParams,
    records: Sequence[LabelRecord] = (),
    n_jobs: int | None = None,
    progress: bool = True,
    ray_address: str | None = None,
) -> tuple[Model, dict[str, float]]:
    """The method's model trained on in-memory documents, with stage timings.

    ``records`` (label ids with names and alternative names) name the labels and, for the tree
    methods, become extra training documents.
    """
    method = get_method(params.method)
    n_jobs = max(1, n_jobs or os.cpu_count() or 1)
    data = TrainingSet.build(documents, params.featurizer, records, n_jobs, progress)
    data.ray_address = ray_address
    t0 = time.perf_counter()
    model = method.fit(data, params.model)
    model.manifest.update(method=params.method, train_params=asdict(params))
    return model, {**data.timings, params.method: time.perf_counter() - t0}


def train_bundle(
    train_path: str | Path,
    out: str | Path,
    params: TrainParams,
    *,
    labels_path: str | Path | None = None,
    name: str | None = None,
    skip_bad: bool = False,
    n_jobs: int | None = None,
    progress: bool = True,
    ray_address: str | None = None,
    force: bool = False,
    valid_path: str | Path | None = None,
    holdout: float = 0.0,
    seed: int = 0,
) -> TrainResult:
    """Read ``train_path``, fit the method's model, write the bundle to ``out`` (an existing bundle
    there only with ``force``; anything else at ``out`` is refused before any work).

    With held-out documents (``valid_path``, or a seeded ``holdout`` share of the training documents,
    set aside before fitting) the stages built are scored on them and only those that help are kept
    (`training.report.choose_stages`); the report goes into the manifest either way.
    """
    get_method(params.method)  # an unknown method fails before the data is read
    if valid_path is not None and holdout:
        raise ValueError("give --valid or --holdout, not both")
    if not 0.0 <= holdout < 0.5:
        raise ValueError(f"--holdout {holdout}: a share of the training documents in [0, 0.5)")
    check_out(Path(out), force)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    docs, stats = read_documents(train_path, skip_bad=skip_bad)
    if not docs:
        raise ValueError(f"{train_path}: no documents to train on")
    records = read_label_records(labels_path) if labels_path else []
    valid: list[Document] = []
    source = ""
    if valid_path is not None:
        valid, _ = read_documents(valid_path, skip_bad=skip_bad)
        source = str(valid_path)
    elif holdout:
        docs, valid = split_holdout(docs, holdout, seed)
        source = f"{len(valid)} training documents held out (seed {seed}), not fitted on"
    timings["read"] = time.perf_counter() - t0
    title_choice, fitted = None, None
    if valid and params.featurizer.title_weight > 0 and any(d.title.strip() for d in docs):
        t1 = time.perf_counter()
        params, title_choice, fitted = choose_title_weight(docs, valid, params, records, n_jobs)
        timings["choose title"] = time.perf_counter() - t1
    if fitted is None:  # the probe that won is not already the model asked for
        fitted = fit_model(docs, params, records, n_jobs, progress, ray_address)
    model, fit_timings = fitted
    timings.update(fit_timings)
    listed = list(dict.fromkeys([*model.labels.ids, *(r.id for r in records)]))  # the table, then the file's
    report: dict[str, Any] = {"coverage": coverage(docs, listed)}
    if valid:
        t1 = time.perf_counter()
        model, report["choice"] = choose_stages(model, valid)
        report["held_out_source"] = source
        if title_choice is not None:
            report["choice"]["title"] = title_choice
        timings["choose"] = time.perf_counter() - t1
    model.manifest.update(
        name=name or Path(out).name,
        training={"n_docs": len(docs), "n_skipped": stats.n_skipped, "source": str(train_path)},
        report=report,
    )
    t1 = time.perf_counter()
    manifest = model.save(out, force)
    timings["write"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    return TrainResult(manifest, timings, len(docs), stats.n_skipped, stats.skipped, report)


def split_holdout(docs: list[Document], share: float, seed: int) -> tuple[list[Document], list[Document]]:
    """A seeded random ``share`` of the documents (at least one, at most 5,000) set aside."""
    if len(docs) < 2:
        raise ValueError("--holdout needs at least two training documents")
    n = min(5000, max(1, round(share * len(docs))))
    held = set(np.random.default_rng(seed).choice(len(docs), n, replace=False).tolist())
    return [d for i, d in enumerate(docs) if i not in held], [d for i, d in enumerate(docs) if i in held]


def choose_title_weight(
    docs: Sequence[Document],
    valid: Sequence[Document],
    params: TrainParams,
    records: Sequence[LabelRecord],
    n_jobs: int | None,
) -> tuple[TrainParams, dict[str, Any], tuple[Model, dict[str, float]] | None]:
    """Keep the title field only where it helps: a tree is fitted with and without it and scored on
    the held-out documents (P@1 + P@5); ``params`` gets the better weight.

    The probe is the `tree` method itself when that is what is trained (the winner is then the model,
    returned so it is not fitted again), else one tree of the `tree` preset.

    Why: a title that names the document's subject helps (EURLEX57K: +1.4 P@1), one that lists every
    label's keyword can swamp the text (a generated 100K corpus: -13 P@5), and only held-out data tells.
    """
    base = params if params.method == "tree" else configure("tree")
    fits, scores = {}, {}
    for weight in (params.featurizer.title_weight, 0.0):
        probe = replace(base, featurizer=replace(base.featurizer, title_weight=weight))
        fits[weight] = fit_model(docs, probe, records, n_jobs, progress=False)
        scores[weight] = held_out_scores(fits[weight][0], valid)
    best = max(scores, key=lambda w: (scores[w]["P@1"] + scores[w]["P@5"], w))
    featurizer = replace(params.featurizer, title_weight=best)
    kept = "the title field" if best else "no title field"
    choice = {
        "probe": f"{'the method' if base is params else 'one tree of the tree preset'}, fitted with and "
        "without the title field",
        "scores": {str(w): s for w, s in scores.items()},
        "title_weight": best,
        "why": f"{kept}: P@1 + P@5 {scores[best]['P@1'] + scores[best]['P@5']:.2f} against "
        f"{min(s['P@1'] + s['P@5'] for s in scores.values()):.2f}",
    }
    return replace(params, featurizer=featurizer), choice, fits[best] if base is params else None
