"""Beam search over a label tree, scoring only the children of the nodes in the beam (compiled, numba).

Why compiled: the work per document is a few thousand sparse dot products between the document and
the children of the beam's nodes; in numpy it would take dozens of calls per level, here it is one
call per batch whose cost does not grow with the number of labels. The layout is PECOS's MSCM idea:
each parent's children are one *chunk*, a small sparse matrix whose rows are the features any child
uses (sorted) and whose entries are (child, weight). A document meets a chunk in the cheaper of two
ways (as MSCM chooses among its variants): a chunk with few rows for the document's length is scanned,
each row looking its feature up in the dense document; otherwise the two sorted lists meet by
galloping, ``len(doc) * log(rows / len(doc))`` steps. The top levels of a tree are small but their
chunks use most features; there a whole level is stored by feature (a CSR matrix, features x the
level's nodes) and the document's features are looked up once for all its nodes: as cheap as it gets
for long documents, and bounded because those levels are.

Weights are float16 on disk and in memory (half the size, memory-mapped as they are); the kernels read
their bits and widen them through a 65,536-entry table, as numba has no float16 arithmetic.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# float16 bit pattern -> float32 value, for every pattern
HALF_TO_FLOAT = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
POST_L3_HINGE = 0
POST_SIGMOID = 1


@njit(cache=True, nogil=True, inline="always")
def _gallop(arr: np.ndarray, lo: int, hi: int, target: int) -> int:
    """First index in ``arr[lo:hi]`` (sorted) whose value is >= ``target``; ``hi`` when none."""
    step = 1
    bound = lo
    while bound < hi and arr[bound] < target:
        lo = bound + 1
        bound = lo + step
        step *= 2
    if bound > hi:
        bound = hi
    while lo < bound:
        mid = (lo + bound) // 2
        if arr[mid] < target:
            lo = mid + 1
        else:
            bound = mid
    return lo


SCAN_RATIO = 8  # scan a chunk's rows when it has at most this many per document feature


@njit(cache=True, nogil=True)
def _score_chunk(
    x_idx: np.ndarray,
    x_val: np.ndarray,
    x_lo: int,
    x_hi: int,
    x_dense: np.ndarray,
    c: int,
    row_ptr: np.ndarray,
    row_feat: np.ndarray,
    entry_ptr: np.ndarray,
    entry_child: np.ndarray,
    entry_val: np.ndarray,
    acc: np.ndarray,
) -> None:
    """``acc[j] += x . w_j`` for the children j of chunk ``c`` (``acc`` zeroed by the caller).

    ``x_dense`` holds the document densely (zero elsewhere).
    """
    r, r_hi = row_ptr[c], row_ptr[c + 1]
    i = x_lo
    if r_hi - r <= SCAN_RATIO * (x_hi - x_lo):  # few rows: scan them, looking the document up
        for row in range(r, r_hi):
            v = x_dense[row_feat[row]]
            if v != 0.0:
                for e in range(entry_ptr[row], entry_ptr[row + 1]):
                    acc[entry_child[e]] += v * HALF_TO_FLOAT[entry_val[e]]
    elif r_hi - r > x_hi - x_lo:  # fewer document features: gallop through the chunk's rows
        while i < x_hi and r < r_hi:
            r = _gallop(row_feat, r, r_hi, x_idx[i])
            if r < r_hi and row_feat[r] == x_idx[i]:
                v = x_val[i]
                for e in range(entry_ptr[r], entry_ptr[r + 1]):
                    acc[entry_child[e]] += v * HALF_TO_FLOAT[entry_val[e]]
                r += 1
            i += 1
    else:  # fewer chunk rows (never reached while SCAN_RATIO >= 1; kept for a ratio below 1)
        while r < r_hi and i < x_hi:
            i = _gallop(x_idx, i, x_hi, row_feat[r])
            if i < x_hi and x_idx[i] == row_feat[r]:
                v = x_val[i]
                for e in range(entry_ptr[r], entry_ptr[r + 1]):
                    acc[entry_child[e]] += v * HALF_TO_FLOAT[entry_val[e]]
                i += 1
            r += 1


@njit(cache=True, nogil=True, inline="always")
def _post(z: np.float32, post: int) -> np.float32:
    """Margin -> (0, 1] factor of a path score: l3-hinge exp(-max(0, 1 - z)^3) or sigmoid (float32)."""
    one = np.float32(1.0)
    if post == POST_SIGMOID:
        return one / (one + np.exp(-z))
    h = one - z
    if h <= np.float32(0.0):
        return one
    return np.exp(-(h * h * h))


@njit(cache=True, nogil=True)
def search_tree(
    x_ptr: np.ndarray,
    x_idx: np.ndarray,
    x_val: np.ndarray,
    child_ptr: np.ndarray,
    row_ptr: np.ndarray,
    row_feat: np.ndarray,
    entry_ptr: np.ndarray,
    entry_child: np.ndarray,
    entry_val: np.ndarray,
    full_ptr: np.ndarray,
    full_node: np.ndarray,
    full_val: np.ndarray,
    bias: np.ndarray,
    level_first: np.ndarray,
    label_of_leaf: np.ndarray,
    beam: int,
    post: int,
    x_dense: np.ndarray,
    out_label: np.ndarray,
    out_score: np.ndarray,
) -> None:
    """Beam search of one tree for every row of a CSR batch; writes each row's leaf candidates.

    Chunk 0 is the root; the chunk of node ``n`` (global id over all levels, level ``l`` starting at
    ``level_first[l]``) is ``n + 1``, and its children are nodes ``child_ptr[chunk]:child_ptr[chunk +
    1]``. The first ``len(full_ptr)`` levels are stored by feature instead: level ``l``'s nodes that
    feature ``f`` weighs are ``full_node[full_ptr[l, f]:full_ptr[l, f + 1]]`` (offsets in the level).
    A path score is the product of its nodes' `_post` factors; at each level but the last the best
    ``beam`` nodes are kept (all of them when there are no more). ``out_*`` rows are pre-filled with
    -1 / 0 and receive the last level's candidates. ``x_dense`` is a zeroed scratch vector of the
    feature count (the caller's, kept between calls: zeroing it per call would cost O(features)); it is
    zero again on return.
    """
    n_levels = level_first.shape[0] - 1
    n_full = full_ptr.shape[0]
    leaf_first = level_first[n_levels - 1]
    width = 1
    for c in range(child_ptr.shape[0] - 1):
        width = max(width, child_ptr[c + 1] - child_ptr[c])
    full_width = 1
    for level in range(n_full):
        full_width = max(full_width, level_first[level + 1] - level_first[level])
    acc = np.zeros(width, np.float32)
    level_acc = np.zeros(full_width, np.float32)
    cap = beam * width
    cand_node = np.empty(cap, np.int64)
    cand_score = np.empty(cap, np.float32)
    beam_chunk = np.empty(max(beam, 1), np.int64)
    beam_score = np.empty(max(beam, 1), np.float32)
    for d in range(x_ptr.shape[0] - 1):
        x_lo, x_hi = x_ptr[d], x_ptr[d + 1]
        for i in range(x_lo, x_hi):
            x_dense[x_idx[i]] = x_val[i]
        n_beam = 1
        beam_chunk[0] = 0
        beam_score[0] = 1.0
        for level in range(n_levels):
            n_cand = 0
            if level < n_full:  # the whole level at once, by the document's features
                lo = level_first[level]
                level_acc[: level_first[level + 1] - lo] = 0.0
                for i in range(x_lo, x_hi):
                    v = x_val[i]
                    f = x_idx[i]
                    for e in range(full_ptr[level, f], full_ptr[level, f + 1]):
                        level_acc[full_node[e]] += v * HALF_TO_FLOAT[full_val[e]]
            for b in range(n_beam):
                c = beam_chunk[b]
                first = child_ptr[c]
                n_child = child_ptr[c + 1] - first
                if level < n_full:
                    for j in range(n_child):
                        acc[j] = level_acc[first + j - level_first[level]]
                else:
                    acc[:n_child] = 0.0
                    _score_chunk(
                        x_idx, x_val, x_lo, x_hi, x_dense, c, row_ptr, row_feat, entry_ptr, entry_child,
                        entry_val, acc,
                    )  # fmt: skip
                for j in range(n_child):
                    cand_node[n_cand] = first + j
                    cand_score[n_cand] = beam_score[b] * _post(acc[j] + bias[first + j], post)
                    n_cand += 1
            if level == n_levels - 1:
                for j in range(min(n_cand, out_label.shape[1])):
                    out_label[d, j] = label_of_leaf[cand_node[j] - leaf_first]
                    out_score[d, j] = cand_score[j]
                break
            if n_cand <= beam:
                n_beam = n_cand
                for j in range(n_cand):
                    beam_chunk[j] = cand_node[j] + 1
                    beam_score[j] = cand_score[j]
            else:
                keep = np.argsort(-cand_score[:n_cand], kind="mergesort")[:beam]
                n_beam = beam
                for j in range(beam):
                    beam_chunk[j] = cand_node[keep[j]] + 1
                    beam_score[j] = cand_score[keep[j]]
        for i in range(x_lo, x_hi):
            x_dense[x_idx[i]] = 0.0


@njit(cache=True, nogil=True)
def merge_trees(
    labels: np.ndarray, scores: np.ndarray, n_trees: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the mean over ``n_trees`` of each label's scores (0 where a tree did not reach it), then
    the top ``k`` by score, ties by lower label; -1 / 0 pad rows with fewer labels."""
    n, m = labels.shape
    out_label = np.full((n, k), -1, np.int64)
    out_score = np.zeros((n, k), np.float32)
    for d in range(n):
        order = np.argsort(labels[d], kind="mergesort")  # trees in order within a label: sums as before
        uniq = np.empty(m, np.int64)
        total = np.zeros(m, np.float32)
        n_uniq = 0
        for j in order:
            lab = labels[d, j]
            if lab < 0:
                continue
            if n_uniq == 0 or uniq[n_uniq - 1] != lab:
                uniq[n_uniq] = lab
                n_uniq += 1
            total[n_uniq - 1] += scores[d, j]
        if n_trees > 1:
            for j in range(n_uniq):
                total[j] /= n_trees
        best = np.argsort(-total[:n_uniq], kind="mergesort")  # stable: ties keep the lower label
        for j in range(min(k, n_uniq)):
            out_label[d, j] = uniq[best[j]]
            out_score[d, j] = total[best[j]]
    return out_label, out_score
