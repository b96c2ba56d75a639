"""Compile the serving kernels (term counting, beam search, the ranker's encoder) for the argument types
serving uses, into numba's on-disk cache.

Why: numba compiles on first call, a few seconds per kernel. The serving image runs this once at build
time (``python -m xmlc.warm_kernels`` with ``NUMBA_CACHE_DIR`` set), so replicas start without
compiling, and on a read-only root filesystem. It saves a tiny random tree bundle part and searches it
as loaded (memory-mapped, read-only arrays: a type of their own to numba) with a featurizer's rows.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from xmlc.doc import Doc
from xmlc.embedding import embed, gather
from xmlc.featurizer import FeaturizerConfig, TfidfFeaturizer
from xmlc.tree import Tree, TreePredParams, TreeShortlister


def warm_kernels() -> None:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    featurizer = TfidfFeaturizer(words, np.ones(len(words), np.float32), FeaturizerConfig(ngram_max=1))
    parents = [np.zeros(2, np.int64), np.array([0, 0, 1, 1]), np.repeat(np.arange(4), 2)]
    n_nodes = sum(len(p) for p in parents)
    W = sp.random(len(words), n_nodes, density=0.3, format="csr", random_state=rng, dtype=np.float32)
    tree = Tree.from_csr(parents, np.arange(8), W, np.zeros(n_nodes, np.float32))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shortlister = TreeShortlister([tree, tree], TreePredParams(beam_size=2))
        shortlister.save(folder)
        loaded = TreeShortlister.load(folder, shortlister.meta())
        table = rng.standard_normal((len(words), 4)).astype(np.float16)
        np.save(folder / "table.npy", table)
        mapped = np.asarray(np.load(folder / "table.npy", mmap_mode="r"))  # as a ranker loads it
        for docs in ([Doc("w1 w2 w3")], [Doc("w4 w5", "w6"), Doc("w7")]):
            X = featurizer.transform(docs)
            loaded.search(X, 3)
            shortlister.search(X, 3)
            for t in (table, mapped):
                gather(t, np.array([[0, 1]]))
                embed(X, t)


if __name__ == "__main__":
    warm_kernels()
