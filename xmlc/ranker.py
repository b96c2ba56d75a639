"""The ONNX ranker: a document encoder and a candidate scorer, run with onnxruntime (no torch).

``encoder.onnx`` maps a TF-IDF row, given as padded (ids, values) arrays, to a dense document vector;
``scorer.onnx`` maps (document vector, candidate label ids, shortlister scores) to probabilities. The
encoder output also queries the HNSW shortlister, so one document is encoded once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from xmlc.onnx_session import OnnxSession

ENCODER_FILE = "encoder.onnx"
SCORER_FILE = "scorer.onnx"
CONFIG_FILE = "ranker.json"
# Bounds on one onnxruntime call: the encoder gathers (batch x longest row x dim) floats and the scorer
# (batch x candidates x dim), so big batches are cut into chunks of bounded size. 2^14 padded terms of a
# 256-d encoder gather 16 MB: on EURLEX57K batches of 32 to 128 about twice as fast as 2^16, and
# within 15% of 2^12 either way.
MAX_PADDED_TERMS = 1 << 14
SCORER_CHUNK_DOCS = 512


@dataclass(frozen=True)
class RankerConfig:
    """What the exported graphs expect; saved beside them."""

    dim: int
    n_features: int
    n_labels: int
    n_candidates: int = 100  # shortlist depth handed to the scorer
    uses_prior: bool = True


def padded_rows(X: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """CSR rows as (batch x L) int64 ids and float32 values, zero-padded to the longest row (L >= 1)."""
    lengths = np.diff(X.indptr)
    width = max(int(lengths.max()) if len(lengths) else 1, 1)
    ids = np.zeros((X.shape[0], width), dtype=np.int64)
    vals = np.zeros((X.shape[0], width), dtype=np.float32)
    if X.nnz:
        rows = np.repeat(np.arange(X.shape[0]), lengths)
        cols = np.arange(X.nnz) - np.repeat(X.indptr[:-1], lengths)
        ids[rows, cols] = X.indices
        vals[rows, cols] = X.data
    return ids, vals


class OnnxRanker:
    """Encodes documents and scores shortlisted candidates with two onnxruntime sessions."""

    kind = "onnx"

    def __init__(self, encoder: OnnxSession, scorer: OnnxSession, config: RankerConfig) -> None:
        self.encoder = encoder
        self.scorer = scorer
        self.config = config

    @property
    def files(self) -> list[str]:
        return [ENCODER_FILE, SCORER_FILE, CONFIG_FILE]

    def encode(self, X: sp.csr_matrix) -> np.ndarray:
        """(docs x dim) float32 document vectors.

        Rows go to the encoder in order of length, in chunks of at most `MAX_PADDED_TERMS` padded terms:
        every row of a chunk is padded to its longest, so chunks of similar lengths waste little (in
        batches of 32 EURLEX57K documents this halves the encoder's time against chunks in input order).
        """
        n = X.shape[0]
        out = np.empty((n, self.config.dim), dtype=np.float32)
        lengths = np.maximum(np.diff(X.indptr), 1)
        order = np.argsort(lengths, kind="stable")
        start = 0
        while start < n:  # the next rows by length while (rows x longest row) stays under the bound
            end = start + 1
            while end < n and lengths[order[end]] * (end - start + 1) <= MAX_PADDED_TERMS:
                end += 1
            rows = order[start:end]
            ids, vals = padded_rows(X[rows])
            out[rows] = self.encoder.run(feat_ids=ids, feat_vals=vals)
            start = end
        return out

    def score(self, doc_vec: np.ndarray, cand: np.ndarray, prior: np.ndarray) -> np.ndarray:
        """Probabilities (docs x candidates) for the shortlisted labels; -1 candidates (padding) get -1."""
        out = np.zeros(cand.shape, np.float32)
        if cand.size == 0:
            return out
        pad = cand < 0
        if pad.any():
            safe = self.score(doc_vec, np.where(pad, 0, cand), np.where(pad, 1.0, prior))
            return np.where(pad, -1.0, safe).astype(np.float32)
        for start in range(0, cand.shape[0], SCORER_CHUNK_DOCS):
            rows = slice(start, start + SCORER_CHUNK_DOCS)
            out[rows] = self.scorer.run(
                doc_vec=np.ascontiguousarray(doc_vec[rows], dtype=np.float32),
                cand_ids=np.ascontiguousarray(cand[rows], dtype=np.int64),
                cand_prior=np.ascontiguousarray(prior[rows], dtype=np.float32),
            )
        return out

    def warm_up(self) -> None:
        X = sp.csr_matrix(([1.0], ([0], [0])), shape=(1, self.config.n_features), dtype=np.float32)
        h = self.encode(X)
        self.score(h, np.zeros((1, 1), np.int64), np.ones((1, 1), np.float32))

    @staticmethod
    def save_config(folder: Path, config: RankerConfig) -> str:
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2))
        return CONFIG_FILE

    @classmethod
    def load(cls, folder: Path, intra_op_threads: int = 1) -> OnnxRanker:
        config = RankerConfig(**json.loads((folder / CONFIG_FILE).read_text()))
        return cls(
            OnnxSession(folder / ENCODER_FILE, intra_op_threads),
            OnnxSession(folder / SCORER_FILE, intra_op_threads),
            config,
        )
