"""Write a trained pipeline as a bundle folder (components + manifest with checksums)."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from xmlc.bundle import write_bundle
from xmlc.featurizer import TfidfFeaturizer
from xmlc.labels import LabelTable
from xmlc.tree import TreeShortlister


def _plain(obj: Any) -> Any:
    return asdict(obj) if is_dataclass(obj) and not isinstance(obj, type) else obj


def save_tree_bundle(
    out: str | Path,
    featurizer: TfidfFeaturizer,
    shortlister: TreeShortlister,
    labels: LabelTable,
    *,
    method: str,
    name: str,
    train_params: Any,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Featurizer, trees and label table into ``out``; returns the manifest that was written."""

    def write(folder: Path) -> list[str]:
        return featurizer.save(folder) + shortlister.save(folder) + labels.save(folder)

    manifest = {
        "name": name,
        "method": method,
        "n_labels": len(labels),
        "n_features": featurizer.dim,
        "featurizer": {"kind": "tfidf", "ngram_max": featurizer.config.ngram_max},
        "shortlister": {
            "kind": "tree",
            "n_trees": len(shortlister.trees),
            "level_sizes": [len(p) for p in shortlister.trees[0].parents],
        },
        "ranker": None,
        "train_params": _plain(train_params),
        "predict_params": _plain(shortlister.params),
        **(extra or {}),
    }
    return write_bundle(Path(out), write, manifest)
