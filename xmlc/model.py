"""`Model`: what every loaded bundle offers, a pipeline or an ensemble of pipelines.

The command line, the evaluation and the service hold a `Model` and call `predict_batch`, so what is
measured is what is served. Stage timings come back with every result so that the service can feed its
per-stage histograms. A model also writes itself as a bundle (`save`): its parts' files, then a manifest
that describes them and records where the model came from (method, training settings).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xmlc.bundle import RESERVED, write_bundle
from xmlc.calibration import FILE as CALIBRATION_FILE
from xmlc.calibration import Calibration
from xmlc.doc import Doc
from xmlc.labels import LabelTable


@dataclass(frozen=True)
class LabelScore:
    id: str
    name: str
    score: float


UNRECOGNISED = (
    "no word of this document is known to the model: these labels are its fallback, not a reading of the text"
)


@dataclass
class BatchResult:
    """Top-k label indices (-1 pads) and scores per document, and seconds spent in each stage."""

    indices: np.ndarray
    scores: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    recognised: np.ndarray | None = None  # per document: any known word or term (None: not known)


class Model(ABC):
    """A loaded or freshly trained bundle: top-k labels for documents, and the bundle it is saved as.

    ``manifest`` is the loaded bundle's manifest, or for a new model what is known of its origin (name,
    method, training settings); `save` keeps those entries and describes the parts anew.
    """

    labels: LabelTable
    manifest: dict[str, Any]
    calibration: Calibration | None = None  # raw score -> probability; set by `xmlc calibrate`

    @property
    @abstractmethod
    def kind(self) -> str:
        """The manifest's ``kind``: which parts answer (``tree``, ``tree+ranker``, ``ensemble``...)."""

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", "xmlc"))

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "unversioned"))

    @abstractmethod
    def predict_batch(self, docs: Sequence[Doc], k: int = 5) -> BatchResult:
        """Top-``k`` label indices and scores for every document, with per-stage timings."""

    @abstractmethod
    def write_parts(self, folder: Path) -> tuple[list[str], dict[str, Any]]:
        """Write every file but the manifest into ``folder``; returns their names and the manifest
        entries that describe them (kind, sizes, one entry per part)."""

    @property
    def defaults(self) -> dict[str, Any]:
        """The bundle's chosen ``k`` and ``threshold`` (`xmlc optimize`), used when a call gives none."""
        return dict(self.manifest.get("defaults") or {})

    def write(self, folder: Path) -> tuple[list[str], dict[str, Any]]:
        """Files and manifest body: the origin entries of ``manifest``, then the parts' entries."""
        files, entries = self.write_parts(folder)
        origin = {k: v for k, v in self.manifest.items() if k not in RESERVED and k != "calibration"}
        if self.calibration is not None:
            files.append(self.calibration.save(folder))
            entries["calibration"] = {"kind": "isotonic", "file": CALIBRATION_FILE, **self.calibration.info}
        return files, {**origin, **entries}

    def save(self, out: str | Path, force: bool = False) -> dict[str, Any]:
        """Write the model as a bundle at ``out`` (atomically; an existing bundle only with ``force``,
        anything else never); returns the manifest, now its own."""
        self.manifest = write_bundle(Path(out), self.write, force)
        return self.manifest

    def to_labels(
        self, indices: np.ndarray, scores: np.ndarray, threshold: float | None = None
    ) -> list[list[LabelScore]]:
        """Label ids, names and scores (calibrated probabilities when the bundle has a calibration);
        ``threshold`` applies to the score shown."""
        out = []
        ids, names = self.labels.ids, self.labels.names
        if self.calibration is not None:
            scores = self.calibration(scores)
        for row_idx, row_sc in zip(indices.tolist(), scores.tolist(), strict=True):
            out.append(
                [
                    LabelScore(ids[i], names[i], float(s))
                    for i, s in zip(row_idx, row_sc, strict=True)
                    if i >= 0 and (threshold is None or s >= threshold)
                ]
            )
        return out

    def predict(
        self, docs: Sequence[Doc], k: int = 5, threshold: float | None = None
    ) -> list[list[LabelScore]]:
        res = self.predict_batch(docs, k)
        return self.to_labels(res.indices, res.scores, threshold)

    def warm_up(self) -> None:
        """One prediction so that first-request latency does not include lazy initialisation."""
        self.predict([Doc("warm up")], k=1)
