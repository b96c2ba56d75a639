"""Beam search over a label tree, scoring only the children of the nodes in the beam (compiled, numba).

Why compiled: the work per document is a few thousand sparse dot products between the document and
the children of the beam's nodes; in numpy it would take dozens of calls per level, here it is one
call per batch whose cost does not grow with the number of labels.

Each level's weights are stored by feature (a CSR matrix, features x the level's nodes, node ids
sorted in each row), and a node's children are contiguous, so the beam's candidates are a few node
ranges. For each feature of the document the kernel walks that feature's row once: a short row entry by
entry, looking each node up in a table of the candidates' slots; a long one (the top levels, common
words) galloping to each range of the beam in turn, about ``beam x log(row / beam)`` steps. Nothing
costs the whole level, and the row is one contiguous stretch of memory, so the walk stays in cache
(searching each parent's own small matrix instead, as MSCM does, costs a cache miss per step at this
scale).

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
SCAN_RATIO = 16  # a feature's row of at most this many nodes per beam node is scanned, not galloped


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
def _fetch_rows(
    x_idx: np.ndarray, x_lo: int, x_hi: int, level_ptr: np.ndarray, level_node: np.ndarray,
    level_val: np.ndarray, row_lo: np.ndarray, row_hi: np.ndarray, touched: np.ndarray,
) -> None:  # fmt: skip
    """Read the bounds of the document's rows at every level, then the first entry of each row.

    Why: the walk below meets each row with a cache miss, one after another (a few hundred nanoseconds
    a feature and level). These loops issue the same loads back to back and independent of each other,
    so the CPU keeps many in flight at once and the walk finds the rows in cache: one EURLEX57K tree
    took 630-720 µs a document against 745-880 without (BENCHMARKS.md). ``touched`` keeps the loaded
    values alive for the compiler.
    """
    n_levels = level_ptr.shape[0]
    for level in range(n_levels):
        for i in range(x_lo, x_hi):
            row_lo[level, i - x_lo] = level_ptr[level, x_idx[i]]
            row_hi[level, i - x_lo] = level_ptr[level, x_idx[i] + 1]
    t = 0
    for level in range(n_levels):
        for i in range(x_hi - x_lo):
            if row_hi[level, i] > row_lo[level, i]:
                t += level_node[row_lo[level, i]] + level_val[row_lo[level, i]]
    touched[0] += t


@njit(cache=True, nogil=True)
def search_tree(
    x_ptr: np.ndarray,
    x_idx: np.ndarray,
    x_val: np.ndarray,
    child_ptr: np.ndarray,
    level_ptr: np.ndarray,
    level_node: np.ndarray,
    level_val: np.ndarray,
    bias: np.ndarray,
    level_first: np.ndarray,
    label_of_leaf: np.ndarray,
    beam: int,
    post: int,
    slot: np.ndarray,
    out_label: np.ndarray,
    out_score: np.ndarray,
) -> None:
    """Beam search of one tree for every row of a CSR batch; writes each row's leaf candidates.

    Nodes are numbered over all levels (level ``l`` from ``level_first[l]``). Chunk 0 is the root, the
    chunk of node ``n`` is ``n + 1``; a chunk's children are nodes ``child_ptr[c]:child_ptr[c + 1]``.
    Level ``l``'s weights of feature ``f`` are ``level_val[level_ptr[l, f]:level_ptr[l, f + 1]]`` for the
    nodes ``level_node[...]`` (offsets in the level, ascending). A path score is the product of its
    nodes' `_post` factors; at each level but the last the best ``beam`` nodes are kept (all of them
    when there are no more). ``out_*`` rows are pre-filled with -1 / 0 and receive the last level's
    candidates. ``slot`` is the caller's scratch of the largest level's size, all -1 (it is again on
    return): where each candidate node sits in the level's accumulator, for rows short enough to scan.
    """
    n_levels = level_first.shape[0] - 1
    leaf_first = level_first[n_levels - 1]
    width = 1
    for c in range(child_ptr.shape[0] - 1):
        width = max(width, child_ptr[c + 1] - child_ptr[c])
    cap = max(beam, 1) * width
    acc = np.zeros(cap, np.float32)
    touched = np.zeros(1, np.int64)
    cand_node = np.empty(cap, np.int64)
    cand_score = np.empty(cap, np.float32)
    beam_chunk = np.empty(max(beam, 1), np.int64)
    beam_score = np.empty(max(beam, 1), np.float32)
    start = np.empty(max(beam, 1), np.int64)  # a beam node's children as offsets in the next level
    stop = np.empty(max(beam, 1), np.int64)
    offset = np.empty(max(beam, 1), np.int64)  # where they sit in ``acc``
    longest = 1
    for d in range(x_ptr.shape[0] - 1):
        longest = max(longest, x_ptr[d + 1] - x_ptr[d])
    row_lo = np.empty((n_levels, longest), np.int64)  # the document's rows of every level
    row_hi = np.empty((n_levels, longest), np.int64)
    for d in range(x_ptr.shape[0] - 1):
        x_lo, x_hi = x_ptr[d], x_ptr[d + 1]
        _fetch_rows(x_idx, x_lo, x_hi, level_ptr, level_node, level_val, row_lo, row_hi, touched)
        n_beam = 1
        beam_chunk[0] = 0
        beam_score[0] = 1.0
        for level in range(n_levels):
            n_cand = 0
            for b in range(n_beam):  # beam chunks ascend, so their children's ranges do too
                c = beam_chunk[b]
                start[b] = child_ptr[c] - level_first[level]
                stop[b] = child_ptr[c + 1] - level_first[level]
                offset[b] = n_cand
                n_cand += stop[b] - start[b]
            acc[:n_cand] = 0.0
            for b in range(n_beam):
                for j in range(stop[b] - start[b]):
                    slot[start[b] + j] = offset[b] + j
            for i in range(x_lo, x_hi):
                v = x_val[i]
                lo, hi = row_lo[level, i - x_lo], row_hi[level, i - x_lo]
                if hi - lo <= SCAN_RATIO * n_beam:  # a short row: look every node's slot up
                    for e in range(lo, hi):
                        p = slot[level_node[e]]
                        if p >= 0:
                            acc[p] += v * HALF_TO_FLOAT[level_val[e]]
                    continue
                for b in range(n_beam):  # a long row: gallop to each range of the beam
                    lo = _gallop(level_node, lo, hi, start[b])
                    while lo < hi and level_node[lo] < stop[b]:
                        acc[offset[b] + level_node[lo] - start[b]] += v * HALF_TO_FLOAT[level_val[lo]]
                        lo += 1
            for b in range(n_beam):
                slot[start[b] : stop[b]] = -1
            for b in range(n_beam):
                first = level_first[level] + start[b]
                for j in range(stop[b] - start[b]):
                    node = first + j
                    cand_node[offset[b] + j] = node
                    cand_score[offset[b] + j] = beam_score[b] * _post(acc[offset[b] + j] + bias[node], post)
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
                keep = np.sort(np.argsort(-cand_score[:n_cand], kind="mergesort")[:beam])  # in node order
                n_beam = beam
                for j in range(beam):
                    beam_chunk[j] = cand_node[keep[j]] + 1
                    beam_score[j] = cand_score[keep[j]]


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
