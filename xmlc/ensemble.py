"""Ensembles: several pipelines over the same labels answer together (weighted sum of their scores).

An ensemble bundle holds its members as complete bundles under ``members/NAME/`` (each with its own
manifest; all their files are also listed, with checksums, in the ensemble's manifest). Each member
returns its top ``depth`` labels; a label's ensemble score is the weighted sum of the members' scores, a
member that did not return the label counting 0. Members must share the label table (same ids, same
order), which holds for bundles trained on the same documents.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from xmlc.bundle import MANIFEST, BundleError, finish_manifest, read_manifest
from xmlc.doc import Doc
from xmlc.model import BatchResult, Model
from xmlc.pipeline import Pipeline
from xmlc.topk import top_k

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


class Ensemble(Model):
    """Member pipelines over the same labels, answering with the weighted sum of their scores."""

    def __init__(
        self,
        members: Sequence[Model],
        weights: Sequence[float] | None = None,
        depth: int = DEFAULT_DEPTH,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two member bundles")
        if any(m.kind == "ensemble" for m in members):
            raise ValueError("an ensemble's members are pipelines, not ensembles")
        weights = list(weights) if weights else [1.0 / len(members)] * len(members)
        if len(weights) != len(members) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError("give one non-negative weight per member, not all zero")
        first = members[0]
        if any(m.labels.ids != first.labels.ids for m in members[1:]):
            raise ValueError("members have different label tables: they were not trained on the same labels")
        self.members = list(members)
        self.weights = weights
        self.depth = depth
        self.labels = first.labels
        self.manifest = dict(manifest or {})
        # Members run side by side: their onnxruntime and numpy work releases the GIL, so a request
        # waits for the slowest member rather than for the sum.
        self._pool = ThreadPoolExecutor(max_workers=len(self.members), thread_name_prefix="member")

    @property
    def kind(self) -> str:
        return "ensemble"

    def predict_batch(self, docs: Sequence[Doc], k: int = 5) -> BatchResult:
        depth = max(k, self.depth)
        results = list(self._pool.map(lambda m: m.predict_batch(docs, depth), self.members))
        timings: dict[str, float] = {}
        for res in results:  # stage timings are summed over the members, plus the merge
            for stage, s in res.timings.items():
                timings[stage] = timings.get(stage, 0.0) + s
        t0 = time.perf_counter()
        idx, scores = merge_top_k([(r.indices, r.scores) for r in results], self.weights, k)
        timings["rank"] = timings.get("rank", 0.0) + time.perf_counter() - t0
        known = [r.recognised for r in results if r.recognised is not None]
        return BatchResult(idx, scores, timings, np.logical_or.reduce(known) if known else None)

    def member_names(self) -> list[str]:
        return [f"{i}-{m.manifest.get('method', m.kind)}" for i, m in enumerate(self.members)]

    def write_parts(self, folder: Path) -> tuple[list[str], dict[str, Any]]:
        files: list[str] = []
        entries = []
        for name, member, weight in zip(self.member_names(), self.members, self.weights, strict=True):
            sub = folder / MEMBERS_DIR / name
            sub.mkdir(parents=True)
            names, body = member.write(sub)
            member.manifest = finish_manifest(sub, names, body)
            files += [f"{MEMBERS_DIR}/{name}/{f}" for f in [*names, MANIFEST]]
            entries.append(
                {
                    "path": f"{MEMBERS_DIR}/{name}",
                    "method": member.manifest.get("method"),
                    "version": member.manifest["version"],
                    "weight": weight,
                }
            )
        return files, {
            "method": "ensemble",
            "kind": "ensemble",
            "n_labels": len(self.labels),
            "n_features": self.members[0].manifest.get("n_features"),
            "shortlister": {"kind": "ensemble", "members": len(self.members)},
            "members": entries,
            "depth": self.depth,
        }

    @classmethod
    def load(cls, folder: str | Path, manifest: dict[str, Any] | None = None) -> Ensemble:
        """The members (already checked by the ensemble's own manifest) and their weights."""
        folder = Path(folder)
        manifest = manifest if manifest is not None else read_manifest(folder)
        paths = member_paths(folder, manifest)
        try:
            members = [Pipeline.load(path, read_manifest(path, verify=False)) for path, _ in paths]
            weights = [w for _, w in paths]
            return cls(members, weights, int(manifest.get("depth", DEFAULT_DEPTH)), manifest)
        except ValueError as e:
            raise BundleError(f"{folder}: cannot load ensemble: {e}") from e


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
