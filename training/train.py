"""Raw labelled documents -> trained pipeline -> bundle: what `xmlc train` runs."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from training.attention_xml import AttentionParams
from training.clustering import ClusterParams
from training.featurizer_fit import FeaturizerParams, fit_featurizer
from training.label_space import KINDS as LABEL_SPACE_KINDS
from training.label_space import LabelSpaceParams
from training.ranker_model import RankerNetParams
from training.ranker_train import RankerTrainParams
from training.tree_train import LinearParams, TreeTrainParams, train_tree_shortlister
from training.xtransformer import XTransformerParams
from xmlc.data import Document, read_documents, read_label_records
from xmlc.hnsw import HnswParams
from xmlc.labels import LabelTable
from xmlc.tree import TreePredParams

# Named tree presets. "tree": XR-Linear-like 16-way balanced tree with small leaves (fast to train) and
# C=2 (measured on EURLEX57K: +0.4 P@1, +0.6 P@5 over C=1 at threshold 0.1);
# "parabel": balanced binary trees, three of them averaged; "bonsai": shallow, wide, unbalanced k-means.
PRESETS: dict[str, TreeTrainParams] = {
    "tree": TreeTrainParams(ClusterParams(branching=16, leaf_size=32), LinearParams(C=2.0), n_trees=1),
    "parabel": TreeTrainParams(ClusterParams(branching=2, leaf_size=100), LinearParams(), n_trees=3),
    "bonsai": TreeTrainParams(
        ClusterParams(branching=64, leaf_size=100, balanced=False), LinearParams(), n_trees=1
    ),
}
# Two-stage methods: the ranker on the shortlists of three "tree" trees (measured on a 90/10 split of
# EURLEX57K train: three trees + ranker P@5 70.09 vs one tree + ranker 69.51), or HNSW over a one-vs-all
# ranker (lr 1e-2: the summed one-vs-all loss learns far too slowly at 1e-3 on small corpora).
TREE_RANKER = RankerTrainParams(lr=2e-3, epochs=4)
HNSW_RANKER = RankerTrainParams(negatives="all", net=RankerNetParams(use_prior=False), lr=1e-2, epochs=4)
TWO_STAGE: dict[str, tuple[TreeTrainParams | None, RankerTrainParams]] = {
    "tree+ranker": (replace(PRESETS["tree"], n_trees=3), TREE_RANKER),
    "hnsw+ranker": (None, HNSW_RANKER),
}
# Compressed sensing (plst, cplst) and linear algebra (svd, leml): label embeddings searched with HNSW.
LABEL_SPACE = {kind: LabelSpaceParams(kind=kind) for kind in LABEL_SPACE_KINDS}
LABEL_SPACE_CANDIDATES = 100
# Deep models that read the text itself: the attention model shortlists and ranks on its own; the
# transformer matcher shortlists label clusters for the ONNX ranker.
DEEP = ("attentionxml", "xtransformer")
METHODS = (*PRESETS, *TWO_STAGE, *LABEL_SPACE, *DEEP)
DEFAULT_METHOD = "tree+ranker"  # the most accurate two-stage bundle (BENCHMARKS.md)


@dataclass
class TrainConfig:
    """Everything `xmlc train` can set; saved in the bundle manifest as ``train_params``."""

    method: str = DEFAULT_METHOD
    featurizer: FeaturizerParams = field(default_factory=FeaturizerParams)
    tree: TreeTrainParams | None = field(default_factory=lambda: PRESETS["tree"])
    predict: TreePredParams = field(default_factory=TreePredParams)
    ranker: RankerTrainParams | None = field(default_factory=lambda: TREE_RANKER)
    hnsw: HnswParams | None = None
    label_space: LabelSpaceParams | None = None
    # Label names (given a labels file) as one extra training document per label for the trees: measured
    # on a 90/10 split of EURLEX57K train, one tree: P@1 +0.31, PSP@1 +0.67, PSP@5 +0.46 (BENCHMARKS.md).
    label_text_docs: bool = True
    attention: AttentionParams | None = None
    xtransformer: XTransformerParams | None = None
    n_jobs: int = field(default_factory=lambda: os.cpu_count() or 1)

    @classmethod
    def for_method(cls, method: str, **overrides: Any) -> TrainConfig:
        if method in PRESETS:
            return cls(method=method, tree=PRESETS[method], ranker=None, **overrides)
        if method in TWO_STAGE:
            tree, ranker = TWO_STAGE[method]
            hnsw = HnswParams() if tree is None else None
            return cls(method=method, tree=tree, ranker=ranker, hnsw=hnsw, **overrides)
        if method in LABEL_SPACE:
            return cls(
                method=method,
                tree=None,
                ranker=None,
                hnsw=HnswParams(),
                label_space=LABEL_SPACE[method],
                **overrides,
            )
        if method == "attentionxml":
            return cls(method=method, tree=None, ranker=None, attention=AttentionParams(), **overrides)
        if method == "xtransformer":
            return cls(
                method=method, tree=None, ranker=TREE_RANKER, xtransformer=XTransformerParams(), **overrides
            )
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")

    def with_label_space(self, rank: int | None = None, epochs: int | None = None) -> TrainConfig:
        """A copy with the label-space rank or epochs changed (ignored by other methods)."""
        if self.label_space is None:
            return self
        ls = self.label_space
        ls = replace(
            ls, rank=rank if rank is not None else ls.rank, epochs=epochs if epochs is not None else ls.epochs
        )
        return replace(self, label_space=ls)

    def with_deep(self, epochs: int | None = None, max_docs: int | None = None) -> TrainConfig:
        """A copy with a deep model's epochs or document budget changed (ignored by other methods)."""
        changes = {k: v for k, v in {"epochs": epochs, "max_docs": max_docs}.items() if v is not None}
        if self.attention is not None:
            return replace(self, attention=replace(self.attention, **changes))
        if self.xtransformer is not None:
            return replace(self, xtransformer=replace(self.xtransformer, **changes))  # type: ignore[arg-type]
        return self

    def with_ranker(
        self, epochs: int | None = None, dim: int | None = None, n_candidates: int | None = None
    ) -> TrainConfig:
        """A copy with some ranker settings changed (ignored by methods without a ranker)."""
        if self.ranker is None:
            return self
        r = self.ranker
        net = replace(r.net, dim=dim) if dim is not None else r.net
        r = replace(
            r,
            net=net,
            epochs=epochs if epochs is not None else r.epochs,
            n_candidates=n_candidates if n_candidates is not None else r.n_candidates,
        )
        return replace(self, ranker=r)

    def with_tree(
        self,
        branching: int | None = None,
        leaf_size: int | None = None,
        n_trees: int | None = None,
        C: float | None = None,
        threshold: float | None = None,
    ) -> TrainConfig:
        """A copy with some tree settings changed (the command-line overrides)."""
        if self.tree is None:
            return self
        cluster, linear = self.tree.cluster, self.tree.linear
        if branching is not None:
            cluster = replace(cluster, branching=branching)
        if leaf_size is not None:
            cluster = replace(cluster, leaf_size=leaf_size)
        if C is not None:
            linear = replace(linear, C=C)
        if threshold is not None:
            linear = replace(linear, threshold=threshold)
        tree = replace(
            self.tree,
            cluster=cluster,
            linear=linear,
            n_trees=n_trees if n_trees is not None else self.tree.n_trees,
        )
        return replace(self, tree=tree)


@dataclass
class TrainResult:
    manifest: dict[str, Any]
    timings: dict[str, float]
    n_docs: int
    n_skipped: int


def train_bundle(
    train_path: str | Path,
    out: str | Path,
    config: TrainConfig,
    *,
    labels_path: str | Path | None = None,
    name: str | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Read ``train_path``, fit featurizer, shortlister and ranker, write the bundle to ``out``."""
    from model_export.bundle_writer import save_bundle

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    docs, stats = read_documents(train_path, skip_bad=skip_bad)
    if not docs:
        raise ValueError(f"{train_path}: no documents to train on")
    records = read_label_records(labels_path) if labels_path else []
    names = {r.id: r.name for r in records} or None
    texts = {r.id: r.text for r in records} or None
    timings["read"] = time.perf_counter() - t0
    fitted = fit_pipeline(docs, config, names, progress, texts)
    timings.update(fitted.timings)
    t1 = time.perf_counter()
    manifest = save_bundle(
        out,
        fitted.featurizer,
        fitted.shortlister,
        fitted.labels,
        method=config.method,
        name=name or Path(out).name,
        train_params=config,
        ranker=fitted.ranker,
        extra={"training": {"n_docs": len(docs), "n_skipped": stats.n_skipped, "source": str(train_path)}},
    )
    timings["write"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    return TrainResult(manifest, timings, len(docs), stats.n_skipped)


def with_label_documents(
    X: sp.csr_matrix, Y: sp.csr_matrix, names_X: sp.csr_matrix
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``X``, ``Y`` plus one document per label that has a featurized name: the name, tagged with it."""
    keep = np.flatnonzero(names_X.getnnz(axis=1))
    eye = sp.identity(Y.shape[1], format="csr", dtype=Y.dtype)[keep]
    return sp.vstack([X, names_X[keep]]).tocsr(), sp.vstack([Y, eye]).tocsr()


@dataclass
class FittedPipeline:
    featurizer: Any
    shortlister: Any
    labels: LabelTable
    ranker: Any  # RankerWriter | None: exports the ranker into the bundle folder
    timings: dict[str, float]


def fit_pipeline(
    docs: list[Document],
    config: TrainConfig,
    names: dict[str, str] | None = None,
    progress: bool = True,
    label_texts: dict[str, str] | None = None,
) -> FittedPipeline:
    """Featurizer, shortlister, ranker and label table from in-memory documents, with stage timings.

    ``label_texts`` (label id -> name and alternative names) become extra training documents of the
    trees (``config.label_text_docs``) and label features of the ranker (``config.ranker.net.label_text``).
    """
    from training.two_stage import fit_hnsw_ranker, fit_tree_ranker

    timings = {}
    t0 = time.perf_counter()
    featurizer, X = fit_featurizer([d.full_text for d in docs], config.featurizer, config.n_jobs, progress)
    timings["featurize"] = time.perf_counter() - t0
    labels = LabelTable.from_documents([d.labels for d in docs], names)
    Y = labels.matrix([d.labels for d in docs])
    tree_docs = config.tree is not None and config.label_text_docs
    ranker_text = config.ranker is not None and config.ranker.net.label_text != "none"
    names_X = None
    if label_texts and (tree_docs or ranker_text):
        names_X = featurizer.transform([label_texts.get(i, "") for i in labels.ids])
    label_text = names_X if ranker_text else None
    ranker = None
    shortlister: Any
    t1 = time.perf_counter()
    if config.tree is not None:
        X_tree, Y_tree = X, Y
        if names_X is not None and tree_docs:
            X_tree, Y_tree = with_label_documents(X, Y, names_X)
        shortlister = train_tree_shortlister(
            X_tree, Y_tree, config.tree, config.predict, config.n_jobs, progress
        )
        timings["tree"] = time.perf_counter() - t1
        if config.ranker is not None:
            t2 = time.perf_counter()
            ranker = fit_tree_ranker(X, Y, shortlister, config.ranker, config.n_jobs, progress, label_text)
            timings["ranker"] = time.perf_counter() - t2
    elif config.label_space is not None and config.hnsw is not None:
        from training.label_space import fit_label_space
        from training.two_stage import index_and_writer

        net = fit_label_space(X, Y, config.label_space, config.n_jobs, progress)
        shortlister, ranker = index_and_writer(net, X, LABEL_SPACE_CANDIDATES, config.hnsw)
        timings[config.label_space.kind] = time.perf_counter() - t1
    elif config.xtransformer is not None and config.ranker is not None:
        from training.xtransformer_fit import fit_xtransformer

        texts = [d.full_text for d in docs]
        shortlister, ranker = fit_xtransformer(
            texts, X, Y, config.xtransformer, config.ranker, config.n_jobs, progress, label_text
        )
        timings["xtransformer"] = time.perf_counter() - t1
    elif config.attention is not None:
        from training.attention_fit import fit_attention

        texts = [d.full_text for d in docs]
        shortlister = fit_attention(texts, featurizer, X, Y, config.attention, config.n_jobs, progress)
        timings["attention"] = time.perf_counter() - t1
    elif config.ranker is not None and config.hnsw is not None:
        shortlister, ranker = fit_hnsw_ranker(
            X, Y, config.ranker, config.hnsw, config.n_jobs, progress, label_text
        )
        timings["ranker+hnsw"] = time.perf_counter() - t1
    else:
        raise ValueError(f"method {config.method!r} needs a tree or a ranker with an HNSW index")
    return FittedPipeline(featurizer, shortlister, labels, ranker, timings)
