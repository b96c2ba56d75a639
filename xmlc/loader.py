"""`load_model`: any bundle folder to the `Model` that answers for it, after checking its manifest.

A bundle is a pipeline of parts, or an ensemble of such pipelines; the manifest's ``kind`` says which,
and the parts' own kinds say which classes load them (`xmlc.parts.PARTS`).
"""

from __future__ import annotations

from pathlib import Path

from xmlc.bundle import read_manifest
from xmlc.ensemble import Ensemble
from xmlc.model import Model
from xmlc.pipeline import Pipeline


def load_model(folder: str | Path, verify: bool = True) -> Model:
    """The model of the bundle at ``folder``; with ``verify`` every file's checksum is checked first."""
    folder = Path(folder)
    manifest = read_manifest(folder, verify=verify)
    if manifest.get("kind") == "ensemble":
        return Ensemble.load(folder, manifest)
    return Pipeline.load(folder, manifest)
