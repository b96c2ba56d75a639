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
from training.params import AttentionParams, TrainParams, TreeRankerParams, XTransformerParams
from training.report import choose_stages, coverage, held_out_scores
from xmlc.bundle import check_out
from xmlc.data import Document, LabelRecord, read_documents, read_label_records
from xmlc.model import Model
from xmlc.pipeline import Pipeline

# Held out by default (seeded, at most 5,000 documents) to choose the title field and the ranker's
# blend, then refitted on every document: on EURLEX57K (the choice keeps the defaults) the bundle scores
# on dev exactly as the default fitted without a choice, at 2.65x the time of its final fit (BENCHMARKS.md).
AUTO_HOLDOUT = 0.1
AUTO_HOLDOUT_MIN_DOCS = 1000
# Refit by default only where the held-out share is over this: past it, fitting on all but 2% of the
# documents costs a second fit (at 670K labels, hours on 2 cores) for what 2% more documents bring.
REFIT_MIN_SHARE = 0.02
TEXT_ONLY = (AttentionParams, XTransformerParams)  # methods that read words, not feature rows


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
    if isinstance(params.model, TEXT_ONLY) and any(d.features for d in documents):
        raise ValueError(f"method {params.method!r} reads raw text; these documents give feature vectors")
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
    holdout: float | None = None,
    refit: bool | None = None,
    seed: int = 0,
) -> TrainResult:
    """Read ``train_path``, fit the method's model, write the bundle to ``out`` (an existing bundle
    there only with ``force``; anything else at ``out`` is refused before any work).

    Choices are made on held-out documents: ``valid_path``, or a seeded ``holdout`` share of the
    training documents (``None``: `AUTO_HOLDOUT` where there is something to choose and at least
    `AUTO_HOLDOUT_MIN_DOCS` documents; 0: none). The title field is kept only where it helps, and the
    ranker is blended or dropped (`training.report.choose_stages`). With a held-out share and ``refit``
    the chosen model is then fitted again on every training document, so the choice costs no data
    (``None``: where the share held out is over `REFIT_MIN_SHARE` of the documents, that is below
    250,000 documents, the held-out share being at most 5,000).
    """
    get_method(params.method)  # an unknown method fails before the data is read
    if valid_path is not None and holdout:
        raise ValueError("give --valid or --holdout, not both")
    if holdout is not None and not 0.0 <= holdout < 0.5:
        raise ValueError(f"--holdout {holdout}: a share of the training documents in [0, 0.5)")
    check_out(Path(out), force)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    docs, stats = read_documents(train_path, skip_bad=skip_bad)
    if not docs:
        raise ValueError(f"{train_path}: no documents to train on")
    records = read_label_records(labels_path) if labels_path else []
    if holdout is None:
        auto = valid_path is None and len(docs) >= AUTO_HOLDOUT_MIN_DOCS and has_choice(params, docs)
        holdout = AUTO_HOLDOUT if auto else 0.0
    fit_docs, source = docs, ""
    valid: list[Document] = []
    if valid_path is not None:
        valid, _ = read_documents(valid_path, skip_bad=skip_bad)
        source = str(valid_path)
    elif holdout:
        fit_docs, valid = split_holdout(docs, holdout, seed)
        if refit is None:  # the fit on the rest is as good where little was held out, and a fit cheaper
            refit = len(valid) > REFIT_MIN_SHARE * len(docs)
        source = f"{len(valid)} training documents held out (seed {seed})"
        source += f", then refitted on all {len(docs)}" if refit else ", not fitted on"
    refit = bool(refit) and fit_docs is not docs
    timings["read"] = time.perf_counter() - t0
    title_choice, fitted, stage_choice = None, None, None
    if valid and params.featurizer.title_weight > 0 and any(d.title.strip() for d in docs):
        t1 = time.perf_counter()
        params, title_choice, fitted = choose_title_weight(fit_docs, valid, params, records, n_jobs)
        timings["choose title"] = time.perf_counter() - t1
    if valid and (not refit or isinstance(params.model, TreeRankerParams)):
        t1 = time.perf_counter()
        if fitted is None:  # the probe that won is not already the model asked for
            fitted = fit_model(fit_docs, params, records, n_jobs, progress, ray_address)
        model, stage_choice = choose_stages(fitted[0], valid)
        fitted = (model, fitted[1])
        timings["choose stages" if refit else "fit and choose"] = time.perf_counter() - t1
    if refit or fitted is None:
        params = chosen_params(params, stage_choice)
        fitted = fit_model(docs, params, records, n_jobs, progress, ray_address)
        if stage_choice is not None and stage_choice.get("prior_weight"):
            fitted = (with_prior_weight(fitted[0], stage_choice["prior_weight"]), fitted[1])
    model, fit_timings = fitted
    timings.update(fit_timings)
    listed = list(dict.fromkeys([*model.labels.ids, *(r.id for r in records)]))  # the table, then the file's
    report: dict[str, Any] = {"coverage": coverage(docs if refit else fit_docs, listed)}
    if valid:
        report["held_out_source"] = source
        report["choice"] = stage_choice or {"kept": model.kind, "why": "the method has no optional stage"}
        if title_choice is not None:
            report["choice"]["title"] = title_choice
    else:
        report["held_out_source"] = holdout_skipped(docs, params)
    n_fitted = len(docs) if refit else len(fit_docs)
    model.manifest.update(
        name=name or Path(out).name,
        training={"n_docs": n_fitted, "n_skipped": stats.n_skipped, "source": str(train_path)},
        report=report,
    )
    t1 = time.perf_counter()
    manifest = model.save(out, force)
    timings["write"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    return TrainResult(manifest, timings, n_fitted, stats.n_skipped, stats.skipped, report)


def has_choice(params: TrainParams, docs: Sequence[Document]) -> bool:
    """Whether held-out documents would choose anything: the title field (documents with titles) or
    the ranker of a tree+ranker model."""
    titles = params.featurizer.title_weight > 0 and any(d.title.strip() for d in docs)
    return titles or isinstance(params.model, TreeRankerParams)


def holdout_skipped(docs: Sequence[Document], params: TrainParams) -> str:
    """Why no choice was made on held-out documents (said in the report)."""
    if not has_choice(params, docs):
        return "none: the method has nothing to choose on held-out documents"
    if len(docs) < AUTO_HOLDOUT_MIN_DOCS:
        return f"none: fewer than {AUTO_HOLDOUT_MIN_DOCS:,} documents (give --valid FILE or --holdout SHARE)"
    return "none: --holdout 0"


def chosen_params(params: TrainParams, stage_choice: dict[str, Any] | None) -> TrainParams:
    """What to refit: a tree+ranker whose ranker was dropped on held-out data refits its trees only."""
    dropped = stage_choice is not None and stage_choice.get("prior_weight", 0.0) is None
    if dropped and isinstance(params.model, TreeRankerParams):
        return replace(params, method="tree", model=params.model.tree)
    return params


def with_prior_weight(model: Model, weight: float) -> Model:
    """``model`` serving its ranker blended with the shortlister's scores (`xmlc.ranker.blend`)."""
    if not isinstance(model, Pipeline) or model.ranker is None:
        raise ValueError("only a pipeline with a ranker blends the shortlister's scores")
    return model.with_ranker(model.ranker.with_prior_weight(weight))  # type: ignore[attr-defined]


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
