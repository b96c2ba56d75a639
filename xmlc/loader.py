"""`load_model`: any bundle folder to the `Model` that answers for it, after checking its manifest.

A bundle is a pipeline of parts, or an ensemble of such pipelines; the manifest's ``kind`` says which,
and the parts' own kinds say which classes load them (`xmlc.parts.PARTS`).
"""

from __future__ import annotations

from pathlib import Path

from xmlc.bundle import BundleError, read_manifest
from xmlc.calibration import Calibration
from xmlc.ensemble import Ensemble
from xmlc.model import Model
from xmlc.pipeline import Pipeline


def load_model(folder: str | Path, verify: bool = True) -> Model:
    """The model of the bundle at ``folder``; with ``verify`` every file's checksum is checked first."""
    folder = Path(folder)
    manifest = read_manifest(folder, verify=verify)
    model: Model
    if manifest.get("kind") == "ensemble":
        model = Ensemble.load(folder, manifest)
    else:
        model = Pipeline.load(folder, manifest)
    if "calibration" in manifest:
        try:
            model.calibration = Calibration.load(folder)
        except (OSError, ValueError, KeyError) as e:
            raise BundleError(f"{folder}: calibration unreadable ({e})") from e
    return model
