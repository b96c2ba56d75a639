"""The runtime contracts of a bundle's parts, and the registry from a manifest's kind to a part class.

A pipeline is a featurizer, a shortlister and optionally a ranker. Each is a `BundlePart`: it saves its
own files into a bundle folder, describes itself for the manifest (`meta`), and loads itself back from
the folder and that description. The manifest names each part's ``kind``; `PARTS` maps it to the class,
so loading never guesses: an unknown kind is refused with the kinds this build knows.

Adding a part: write the class (it satisfies the protocol of its role), and register it once
(`register_part`); nothing else changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

import numpy as np
import scipy.sparse as sp

from xmlc.attention import AttentionShortlister
from xmlc.batch import Batch, DocumentFeaturizer
from xmlc.bundle import BundleError
from xmlc.featurizer import TfidfFeaturizer
from xmlc.given_features import GivenFeatures
from xmlc.hnsw import HnswShortlister
from xmlc.matcher import TransformerMatcher
from xmlc.ranker import OnnxRanker
from xmlc.tree import TreeShortlister

ROLES = ("featurizer", "shortlister", "ranker")


class BundlePart(Protocol):
    """Saves its files into a bundle folder and loads itself back; ``kind`` names it in the manifest."""

    kind: ClassVar[str]
    role: ClassVar[str]  # "featurizer", "shortlister" or "ranker"

    def save(self, folder: Path) -> list[str]:
        """Write the part's files into ``folder``; returns their names (the manifest lists them)."""
        ...

    def meta(self) -> dict[str, Any]:
        """The part's entry in the manifest (its settings and sizes), without ``kind`` and ``files``."""
        ...

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any]) -> Self:
        """The part from ``folder`` and its manifest entry (checksums were already checked)."""
        ...


class Featurizer(DocumentFeaturizer, BundlePart, Protocol):
    """Documents to TF-IDF rows (and word ids) for the parts after it."""

    @property
    def dim(self) -> int: ...


class Shortlister(BundlePart, Protocol):
    """Candidates and their scores for a batch, best first; -1 pads rows with fewer candidates."""

    needs_ranker: ClassVar[bool]  # its scores alone cannot order its candidates (or its queries need one)

    @property
    def n_labels(self) -> int: ...

    @property
    def n_features(self) -> int | None:
        """The TF-IDF width it reads, or None when it reads no TF-IDF rows."""
        ...

    def shortlist(self, batch: Batch, depth: int) -> tuple[np.ndarray, np.ndarray]: ...


class Ranker(BundlePart, Protocol):
    """Scores a shortlist; its document encoder is the batch's dense view (`Batch.vectors`)."""

    @property
    def n_labels(self) -> int: ...

    @property
    def n_features(self) -> int: ...

    @property
    def depth(self) -> int:
        """How many candidates it scores (the shortlist depth it was trained on)."""
        ...

    def encode(self, X: sp.csr_matrix) -> np.ndarray: ...

    def rank(self, batch: Batch, cand: np.ndarray, prior: np.ndarray) -> np.ndarray: ...


class PartRegistry:
    """Part classes by role and kind."""

    def __init__(self) -> None:
        self._classes: dict[str, dict[str, type[Any]]] = {role: {} for role in ROLES}

    def register(self, cls: type[Any]) -> type[Any]:
        """Add a part class under its ``role`` and ``kind``; a kind names one class only."""
        if cls.role not in self._classes:
            raise ValueError(f"{cls.__name__}: role must be one of {ROLES}, got {cls.role!r}")
        known = self._classes[cls.role].get(cls.kind)
        if known is not None and known is not cls:
            raise ValueError(f"{cls.role} kind {cls.kind!r} is taken by {known.__name__}")
        self._classes[cls.role][cls.kind] = cls
        return cls

    def unregister(self, cls: type[Any]) -> None:
        self._classes[cls.role].pop(cls.kind, None)

    def kinds(self, role: str) -> list[str]:
        return sorted(self._classes[role])

    def load(self, role: str, folder: Path, meta: dict[str, Any]) -> Any:
        """Load the ``role`` part that ``meta`` (a manifest entry) describes, by its kind."""
        kind = meta.get("kind")
        cls = self._classes[role].get(str(kind))
        if cls is None:
            raise BundleError(
                f"{folder}: unknown {role} kind {kind!r}; this build reads {', '.join(self.kinds(role))}"
            )
        return cls.load(folder, meta)


PARTS = PartRegistry()
for _cls in (
    TfidfFeaturizer,
    GivenFeatures,
    TreeShortlister,
    HnswShortlister,
    AttentionShortlister,
    TransformerMatcher,
    OnnxRanker,
):
    PARTS.register(_cls)
register_part = PARTS.register


def describe(part: BundlePart, files: list[str]) -> dict[str, Any]:
    """A part's manifest entry: its kind, its own description and the files it wrote."""
    return {"kind": part.kind, **part.meta(), "files": sorted(files)}
