"""The method registry: one recipe per method, the only place that says what a method is.

A recipe is a name, a one-line summary, the method's settings with their defaults (a preset of one of
the structs in `training.params`), how it fits (a `TrainingSet` to a `Model`) and the runtime part
classes its models are made of. The command line's ``--method`` choices, the manifest's ``method`` and
its ``kind`` (from the parts) all come from here; loading comes from the parts' own registry
(`xmlc.parts.PARTS`), which registering a recipe fills. Adding a method: its recipe, its runtime
part(s), one `register` line.

Fitting code is imported when a method trains, not when this module is: the command line lists the
methods without loading torch or scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from training.params import (
    LABEL_SPACE_KINDS,
    AttentionParams,
    ClusterParams,
    EnsembleParams,
    FeaturizerParams,
    HnswRankerParams,
    LabelSpaceParams,
    LinearParams,
    RankerParams,
    TrainParams,
    TreeParams,
    TreeRankerParams,
    XTransformerParams,
    override,
)
from xmlc.attention import AttentionShortlister
from xmlc.ensemble import Ensemble
from xmlc.hnsw import HnswParams, HnswShortlister
from xmlc.matcher import TransformerMatcher
from xmlc.model import Model
from xmlc.parts import register_part
from xmlc.ranker import OnnxRanker
from xmlc.tree import TreeShortlister

if TYPE_CHECKING:
    from training.dataset import TrainingSet


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    params: Any  # the preset: this method's settings with their defaults
    fit: Callable[[TrainingSet, Any], Model]
    parts: tuple[type[Any], ...] = ()  # runtime part classes its models are made of


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add a method (and its runtime parts, so that its bundles load); a name is taken once."""
    if method.name in METHODS and METHODS[method.name] is not method:
        raise ValueError(f"method {method.name!r} is already registered")
    for part in method.parts:
        register_part(part)
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def configure(method: str, settings: dict[str, Any] | None = None, strict: bool = True) -> TrainParams:
    """The method's preset with ``settings`` applied by name (`training.params.override`), to its own
    settings or the featurizer's. With ``strict`` a setting the method does not have is an error."""
    m = get_method(method)
    params = TrainParams(method=method, model=m.params, featurizer=FeaturizerParams())
    for name, value in (settings or {}).items():
        model, hits = override(params.model, name, value)
        featurizer, f_hits = override(params.featurizer, name, value)
        if strict and not hits + f_hits:
            raise ValueError(f"{name} does not apply to method {method!r}")
        params = replace(params, model=model, featurizer=featurizer)
    return params


# ------------------------------------------------------------------------------------------ recipes


def fit_trees(data: TrainingSet, p: TreeParams) -> Model:
    from training.tree_train import train_trees

    return data.pipeline(
        train_trees(*data.tree_data(p.label_docs), p, data.n_jobs, data.progress, data.ray_address)
    )


def fit_tree_ranker(data: TrainingSet, p: TreeRankerParams) -> Model:
    from training.tree_train import train_trees
    from training.two_stage import fit_ranker

    trees = train_trees(
        *data.tree_data(p.tree.label_docs), p.tree, data.n_jobs, data.progress, data.ray_address
    )
    cand, prior = trees.search(data.X, p.ranker.n_candidates, n_jobs=data.n_jobs)
    return data.pipeline(trees, fit_ranker(data, cand, prior, p.ranker))


def fit_hnsw_ranker(data: TrainingSet, p: HnswRankerParams) -> Model:
    from training.ranker_train import train_ranker
    from training.two_stage import index_and_export

    net = train_ranker(data.X, data.Y, None, None, p.ranker, data.n_jobs, data.progress)
    return data.pipeline(*index_and_export(net, data.X, p.ranker.n_candidates, p.hnsw))


def fit_label_space(data: TrainingSet, p: LabelSpaceParams) -> Model:
    from training.label_space import fit_label_space as fit_space
    from training.two_stage import index_and_export

    net = fit_space(data.X, data.Y, p, data.n_jobs, data.progress)
    return data.pipeline(*index_and_export(net, data.X, p.n_candidates, p.hnsw))


def fit_attention(data: TrainingSet, p: AttentionParams) -> Model:
    from training.attention_xml import fit_attention as fit

    return data.pipeline(fit(data, p))


def fit_xtransformer(data: TrainingSet, p: XTransformerParams) -> Model:
    from training.xtransformer import fit_xtransformer as fit

    return data.pipeline(*fit(data, p))


def fit_ensemble(data: TrainingSet, p: EnsembleParams) -> Model:
    """Each member method with its own defaults, on the same documents, one after the other."""
    members = []
    for name in p.members:
        member = get_method(name)
        if member.name == "ensemble":
            raise ValueError("an ensemble cannot be a member of an ensemble")
        model = member.fit(data, member.params)
        model.manifest.update(method=name, train_params={"method": name, "model": asdict(member.params)})
        members.append(model)
    return Ensemble(members, p.weights, p.depth)


# ----------------------------------------------------------------------------------------- registry

# "tree": XR-Linear-like 16-way balanced tree with small leaves (fast to train) and C=2 (measured on
# EURLEX57K: +0.4 P@1, +0.6 P@5 over C=1 at threshold 0.1); "parabel": balanced binary trees, three of
# them averaged; "bonsai": shallow, wide, unbalanced k-means.
TREE = TreeParams(ClusterParams(branching=16, leaf_size=32), LinearParams(C=2.0), n_trees=1)
# Two-stage: the ranker on the shortlists of three "tree" trees (measured on a 90/10 split of EURLEX57K
# train: three trees + ranker P@5 70.09 vs one tree + ranker 69.51), or HNSW over a one-vs-all ranker
# (lr 1e-2: the summed one-vs-all loss learns far too slowly at 1e-3 on small corpora).
TREE_RANKER = RankerParams(lr=2e-3, epochs=4)
DEFAULT_METHOD = "tree+ranker"  # the most accurate bundle (BENCHMARKS.md)

register(
    Method(
        "tree+ranker",
        "three XR-Linear-like trees, then the ONNX ranker on their shortlists (the default)",
        TreeRankerParams(replace(TREE, n_trees=3), TREE_RANKER),
        fit_tree_ranker,
        (TreeShortlister, OnnxRanker),
    )
)
register(
    Method(
        "hnsw+ranker",
        "one-vs-all ONNX ranker, HNSW over its label vectors",
        HnswRankerParams(RankerParams(negatives="sampled", use_prior=False, lr=1e-2, epochs=4), HnswParams()),
        fit_hnsw_ranker,
        (HnswShortlister, OnnxRanker),
    )
)
register(
    Method("tree", "XR-Linear-like label tree (PIFA, 16-way k-means)", TREE, fit_trees, (TreeShortlister,))
)
register(
    Method(
        "parabel",
        "three balanced binary trees (Parabel-like)",
        TreeParams(ClusterParams(branching=2, leaf_size=100), LinearParams(), n_trees=3),
        fit_trees,
        (TreeShortlister,),
    )
)
register(
    Method(
        "bonsai",
        "a shallow, wide, unbalanced k-means tree (Bonsai-like)",
        TreeParams(ClusterParams(branching=64, leaf_size=100, balanced=False), LinearParams(), n_trees=1),
        fit_trees,
        (TreeShortlister,),
    )
)
for _kind in LABEL_SPACE_KINDS:
    register(
        Method(
            _kind,
            f"{_kind.upper()}: a linear label space searched with HNSW",
            LabelSpaceParams(kind=_kind),
            fit_label_space,
            (HnswShortlister, OnnxRanker),
        )
    )
register(
    Method(
        "attentionxml",
        "AttentionXML-like BiLSTM with label-wise attention over a one-level label tree",
        AttentionParams(),
        fit_attention,
        (AttentionShortlister,),
    )
)
register(
    Method(
        "xtransformer",
        "X-Transformer-like: a fine-tuned sentence encoder picks label clusters, the ONNX ranker orders them",
        XTransformerParams(ranker=TREE_RANKER),
        fit_xtransformer,
        (TransformerMatcher, OnnxRanker),
    )
)
register(
    Method(
        "ensemble",
        "several methods trained on the same documents, scores merged",
        EnsembleParams(),
        fit_ensemble,
    )
)
