"""Ensembles: several bundles of the same label set answer together (weighted mean of their scores).

An ensemble bundle holds its members as complete bundles under ``members/NAME/`` (each with its own
manifest, all files also listed, with checksums, in the ensemble's manifest). Each member returns its
top ``depth`` labels; a label's ensemble score is the weighted sum of the members' scores, a member that
did not return the label counting 0. Members must share the label table (same ids, same order), which
holds for bundles trained on the same documents.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xmlc.bundle import MANIFEST, BundleError, read_manifest, write_bundle
from xmlc.tree import top_k

MEMBERS_DIR = "members"
DEFAULT_DEPTH = 50


def merge_top_k(
    results: Sequence[tuple[np.ndarray, np.ndarray]], weights: Sequence[float], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted sum of several (indices, scores) top lists per row, then the top ``k`` (-1 pads)."""
    n = results[0][0].shape[0]
    idx_out = np.full((n, k), -1, dtype=np.int64)
    sc_out = np.zeros((n, k), dtype=np.float32)
    for r in range(n):
        ids = np.concatenate([idx[r] for idx, _ in results])
        scores = np.concatenate(
            [w * np.maximum(sc[r], 0.0) for (_, sc), w in zip(results, weights, strict=True)]
        )
        keep = ids >= 0
        uniq, inverse = np.unique(ids[keep], return_inverse=True)
        total = np.bincount(inverse, weights=scores[keep], minlength=len(uniq)).astype(np.float32)
        order, best = top_k(total[None, :], min(k, len(uniq)))
        idx_out[r, : order.shape[1]] = uniq[order[0]]
        sc_out[r, : order.shape[1]] = best[0]
    return idx_out, sc_out


def write_ensemble(
    out: str | Path,
    members: Sequence[str | Path],
    weights: Sequence[float] | None = None,
    name: str | None = None,
    depth: int = DEFAULT_DEPTH,
) -> dict[str, Any]:
    """Copy verified member bundles into a new ensemble bundle at ``out``; returns its manifest."""
    if len(members) < 2:
        raise ValueError("an ensemble needs at least two member bundles")
    weights = list(weights) if weights is not None else [1.0 / len(members)] * len(members)
    if len(weights) != len(members) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError("give one non-negative weight per member, not all zero")
    manifests = [read_manifest(Path(m)) for m in members]
    if len({m["n_labels"] for m in manifests}) != 1:
        raise ValueError("members have different label counts: they were not trained on the same labels")
    names = [f"{i}-{m['method']}" for i, m in enumerate(manifests)]

    def write(folder: Path) -> list[str]:
        files = []
        for src, sub, manifest in zip(members, names, manifests, strict=True):
            dest = folder / MEMBERS_DIR / sub
            dest.mkdir(parents=True)
            for f in [MANIFEST, *manifest["files"]]:
                (dest / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(src) / f, dest / f)
                files.append(f"{MEMBERS_DIR}/{sub}/{f}")
        return files

    manifest = {
        "name": name or Path(out).name,
        "method": "ensemble",
        "kind": "ensemble",
        "n_labels": manifests[0]["n_labels"],
        "n_features": manifests[0].get("n_features"),
        "shortlister": {"kind": "ensemble", "members": len(members)},
        "members": [
            {"path": f"{MEMBERS_DIR}/{sub}", "method": m["method"], "version": m["version"], "weight": w}
            for sub, m, w in zip(names, manifests, weights, strict=True)
        ],
        "depth": depth,
    }
    return write_bundle(Path(out), write, manifest)


def member_paths(folder: Path, manifest: dict[str, Any]) -> list[tuple[Path, float]]:
    members = manifest.get("members")
    if not isinstance(members, list) or len(members) < 2:
        raise BundleError(f"{folder}: an ensemble manifest needs at least two members")
    out = []
    for m in members:
        path = Path(str(m.get("path", "")))
        if path.is_absolute() or ".." in path.parts:
            raise BundleError(f"{folder}: member path {str(path)!r} escapes the bundle")
        out.append((folder / path, float(m.get("weight", 1.0))))
    return out


def timed_merge(
    member_results: Sequence[Any], weights: Sequence[float], k: int
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Merge members' `BatchResult`s; stage timings are summed over the members, plus the merge."""
    timings: dict[str, float] = {}
    for res in member_results:
        for stage, s in res.timings.items():
            timings[stage] = timings.get(stage, 0.0) + s
    t0 = time.perf_counter()
    idx, scores = merge_top_k([(r.indices, r.scores) for r in member_results], weights, k)
    timings["rank"] = timings.get("rank", 0.0) + time.perf_counter() - t0
    return idx, scores, timings
