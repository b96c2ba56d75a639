"""Picking the best labels: row-wise top-k, and the shortlist of a one-level label tree (clusters).

Shared by every part that turns scores into a ranked shortlist, so ties are broken the same way
everywhere (by the lower index).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k (indices, values) sorted by descending score, ties broken by lower index."""
    n, m = scores.shape
    k = min(k, m)
    if k == 0 or n == 0:
        return np.zeros((n, k), np.int64), np.zeros((n, k), scores.dtype)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < m else np.tile(np.arange(m), (n, 1))
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(vals, order, axis=1)


def cluster_shortlist(logits: np.ndarray, members: np.ndarray, beam: int) -> tuple[np.ndarray, np.ndarray]:
    """One-level tree: labels of the top ``beam`` clusters per row (-1 pads), each with its cluster's
    probability (sigmoid of the cluster logit). ``members`` is (clusters x largest size), -1 padded."""
    top, best = top_k(logits, min(beam, members.shape[0]))
    cand = members[top].reshape(len(top), -1)
    return cand, np.repeat(expit(best), members.shape[1], axis=1).astype(np.float32)


def label_clusters(members: np.ndarray, n_labels: int) -> np.ndarray:
    """The cluster of every label, from the (clusters x size, -1 padded) member table."""
    out = np.zeros(n_labels, dtype=np.int64)
    for c, row in enumerate(members):
        out[row[row >= 0]] = c
    return out
