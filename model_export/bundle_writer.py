"""Write a trained pipeline as a bundle folder (components + manifest with checksums)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from xmlc.bundle import write_bundle
from xmlc.featurizer import TfidfFeaturizer
from xmlc.hnsw import HnswShortlister
from xmlc.labels import LabelTable

# Writes the ranker's files into the bundle folder; returns (file names, manifest "ranker" entry).
RankerWriter = Callable[[Path], tuple[list[str], dict[str, Any]]]


def _plain(obj: Any) -> Any:
    return asdict(obj) if is_dataclass(obj) and not isinstance(obj, type) else obj


def shortlister_meta(shortlister: Any) -> dict[str, Any]:
    if hasattr(shortlister, "meta"):  # a writer that describes itself (the attention model)
        return shortlister.meta  # the same dict: filled in while the files are written
    if isinstance(shortlister, HnswShortlister):
        return {"kind": "hnsw", "dim": shortlister.dim, **asdict(shortlister.params)}
    return {
        "kind": "tree",
        "n_trees": len(shortlister.trees),
        "level_sizes": [len(p) for p in shortlister.trees[0].parents],
    }


def save_bundle(
    out: str | Path,
    featurizer: TfidfFeaturizer,
    shortlister: Any,  # TreeShortlister | HnswShortlister | a writer with kind, n_labels, meta, save()
    labels: LabelTable,
    *,
    method: str,
    name: str,
    train_params: Any,
    ranker: RankerWriter | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Featurizer, shortlister, optional ranker and label table into ``out``; returns the manifest."""
    manifest: dict[str, Any] = {
        "name": name,
        "method": method,
        "kind": shortlister.kind + ("+ranker" if ranker else ""),
        "n_labels": len(labels),
        "n_features": featurizer.dim,
        "featurizer": {
            "kind": "tfidf",
            "ngram_max": featurizer.config.ngram_max,
            "title_weight": featurizer.config.title_weight,
        },
        "shortlister": shortlister_meta(shortlister),
        "ranker": None,
        "train_params": _plain(train_params),
        "predict_params": _plain(getattr(shortlister, "params", None)),
        **(extra or {}),
    }

    def write(folder: Path) -> list[str]:
        files = featurizer.save(folder) + shortlister.save(folder) + labels.save(folder)
        if ranker is not None:
            ranker_files, manifest["ranker"] = ranker(folder)
            files += ranker_files
        return files

    return write_bundle(Path(out), write, manifest)
