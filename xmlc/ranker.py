"""The ONNX ranker: a document encoder and a candidate scorer, run with onnxruntime (no torch).

The encoder maps a TF-IDF row to a dense document vector: the row times a float16 term table
(``ranker_feature_table.npy``, memory-mapped), summed by a compiled kernel (`xmlc.embedding`, three
times faster than the graph it replaced). Bundles before it hold the table in ``encoder.onnx``, a graph
that takes the row as padded (ids, values) arrays; they still load. ``scorer.onnx`` maps (document
vector, the candidates' label vectors and biases, shortlister scores) to probabilities. The label table
(float16 vectors, float32 biases) sits beside the graphs as ``.npy`` files, memory-mapped and gathered
by the candidates: it grows with the labels, and a graph holding it would pass protobuf's 2 GiB limit
near two million labels. (Bundles before this layout kept the table inside ``scorer.onnx``, which took
candidate ids; they still load.) The encoder output also queries the HNSW shortlister: both read it
from the batch (`Batch.vectors`), so a document is encoded once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from xmlc.batch import Batch
from xmlc.embedding import embed, gather
from xmlc.onnx_session import OnnxSession, export_info_of

ENCODER_FILE = "encoder.onnx"
SCORER_FILE = "scorer.onnx"
CONFIG_FILE = "ranker.json"
LABEL_VECTORS_FILE = "ranker_label_vectors.npy"
LABEL_BIAS_FILE = "ranker_label_bias.npy"
FEATURE_TABLE_FILE = "ranker_feature_table.npy"
# Bounds on one onnxruntime call: an encoder graph (bundles before the term table) gathers (batch x
# longest row x dim) floats and the scorer (batch x candidates x dim), so big batches are cut into chunks.
# 2^14 padded terms of a 256-d encoder gather 16 MB: on EURLEX57K batches of 32 to 128 about twice as fast
# as 2^16, and within 15% of 2^12 either way.
MAX_PADDED_TERMS = 1 << 14
SCORER_CHUNK_DOCS = 128  # (docs x candidates x dim) gathered label vectors per scorer call: 13 MB at 256


@dataclass(frozen=True)
class RankerConfig:
    """What the exported graphs expect; saved beside them."""

    dim: int
    n_features: int
    n_labels: int
    n_candidates: int = 100  # shortlist depth handed to the scorer
    uses_prior: bool = True
    label_table: bool = False  # the label vectors are files beside the scorer (False: inside it)
    feature_table: bool = False  # the term table is a file, encoded by `xmlc.embedding` (False: encoder.onnx)
    # Served score = ranker^(1-w) * shortlister^w: chosen on held-out documents by `xmlc train`
    # (training.report.choose_stages); 0 serves the ranker's own probability.
    prior_weight: float = 0.0


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
    """Encodes documents and scores shortlisted candidates with two onnxruntime sessions.

    ``export_info`` (ONNX opset, the torch-vs-onnxruntime difference measured at export) travels with
    the part into the manifest.
    """

    kind: ClassVar[str] = "onnx"
    role: ClassVar[str] = "ranker"

    def __init__(
        self,
        encoder: OnnxSession | np.ndarray,
        scorer: OnnxSession,
        config: RankerConfig,
        export_info: dict[str, Any] | None = None,
        label_vectors: np.ndarray | None = None,
        label_bias: np.ndarray | None = None,
    ) -> None:
        if config.label_table and (label_vectors is None or label_bias is None):
            raise ValueError("this ranker's scorer reads a label table: give its vectors and biases")
        if config.feature_table != isinstance(encoder, np.ndarray):
            raise ValueError("give the term table (float16 array) exactly when the config says feature_table")
        if isinstance(encoder, np.ndarray) and (
            encoder.shape != (config.n_features, config.dim) or encoder.dtype != np.float16
        ):
            want = (config.n_features, config.dim)
            raise ValueError(f"term table is {encoder.dtype} {encoder.shape}, expected float16 {want}")
        if label_vectors is not None and label_vectors.shape != (config.n_labels, config.dim):
            raise ValueError(
                f"label vectors are {label_vectors.shape}, expected {(config.n_labels, config.dim)}"
            )
        self.encoder = encoder
        self.scorer = scorer
        self.config = config
        self.export_info = dict(export_info or {})
        self.label_vectors = label_vectors  # (labels x dim) float16
        self.label_bias = label_bias  # (labels,) float32

    @property
    def n_labels(self) -> int:
        return self.config.n_labels

    @property
    def n_features(self) -> int:
        return self.config.n_features

    @property
    def depth(self) -> int:
        """Shortlist depth the scorer is given (what it was trained on)."""
        return self.config.n_candidates

    def rank(self, batch: Batch, cand: np.ndarray, prior: np.ndarray) -> np.ndarray:
        """Probabilities of the shortlisted candidates of a batch (the `Ranker` contract), blended with
        the shortlister's own scores where the bundle chose so (`RankerConfig.prior_weight`)."""
        scores = self.score(batch.vectors(), cand, prior)
        return blend(scores, prior, self.config.prior_weight) if self.config.prior_weight else scores

    def with_prior_weight(self, weight: float) -> OnnxRanker:
        """The same ranker serving ``scores^(1-weight) * shortlister^weight`` (tables shared)."""
        if not 0.0 <= weight < 1.0:
            raise ValueError(
                f"prior weight {weight}: in [0, 1) (1 is the shortlister alone: drop the ranker)"
            )
        config = replace(self.config, prior_weight=float(weight))
        return OnnxRanker(
            self.encoder, self.scorer, config, self.export_info, self.label_vectors, self.label_bias
        )

    def encode(self, X: sp.csr_matrix) -> np.ndarray:
        """(docs x dim) float32 document vectors.

        With a term table, one kernel call (`xmlc.embedding.embed`). With an encoder graph, rows go to it
        in order of length, in chunks of at most `MAX_PADDED_TERMS` padded terms: every row of a chunk is
        padded to its longest, so chunks of similar lengths waste little.
        """
        if isinstance(self.encoder, np.ndarray):
            return embed(X, self.encoder)
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
            feeds = {
                "doc_vec": np.ascontiguousarray(doc_vec[rows], dtype=np.float32),
                "cand_prior": np.ascontiguousarray(prior[rows], dtype=np.float32),
            }
            if self.label_vectors is not None and self.label_bias is not None:
                feeds["cand_vecs"] = gather(self.label_vectors, cand[rows])
                feeds["cand_bias"] = np.ascontiguousarray(self.label_bias[cand[rows]], dtype=np.float32)
            else:
                feeds["cand_ids"] = np.ascontiguousarray(cand[rows], dtype=np.int64)
            out[rows] = self.scorer.run(**feeds)
        return out

    def save(self, folder: Path) -> list[str]:
        if isinstance(self.encoder, np.ndarray):
            np.save(folder / FEATURE_TABLE_FILE, self.encoder, allow_pickle=False)
            files = [FEATURE_TABLE_FILE]
        else:
            self.encoder.save(folder / ENCODER_FILE)
            files = [ENCODER_FILE]
        self.scorer.save(folder / SCORER_FILE)
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))
        files += [SCORER_FILE, CONFIG_FILE]
        if self.label_vectors is not None and self.label_bias is not None:
            np.save(folder / LABEL_VECTORS_FILE, self.label_vectors, allow_pickle=False)
            np.save(folder / LABEL_BIAS_FILE, self.label_bias, allow_pickle=False)
            files += [LABEL_VECTORS_FILE, LABEL_BIAS_FILE]
        return files

    def meta(self) -> dict[str, Any]:
        return {**self.export_info, **asdict(self.config)}

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any] | None = None) -> OnnxRanker:
        config = RankerConfig(**json.loads((folder / CONFIG_FILE).read_text()))
        # Tables are memory-mapped: replicas on one host share the pages.
        encoder = (
            _mapped(folder / FEATURE_TABLE_FILE)
            if config.feature_table
            else OnnxSession(folder / ENCODER_FILE)
        )
        scorer = OnnxSession(folder / SCORER_FILE)
        vectors = bias = None
        if config.label_table:
            vectors, bias = _mapped(folder / LABEL_VECTORS_FILE), _mapped(folder / LABEL_BIAS_FILE)
        return cls(encoder, scorer, config, export_info_of(meta), vectors, bias)


def blend(scores: np.ndarray, prior: np.ndarray, weight: float) -> np.ndarray:
    """``scores^(1-weight) * prior^weight`` (a weighted geometric mean of two probabilities); padding
    candidates (score -1) stay -1, so they still sort last."""
    eps = np.float32(1e-12)
    out = np.exp(
        (1.0 - weight) * np.log(np.maximum(scores, eps)) + weight * np.log(np.clip(prior, eps, 1.0))
    ).astype(np.float32)
    return np.where(scores < 0, np.float32(-1.0), out)


def _mapped(path: Path) -> np.ndarray:
    return np.asarray(np.load(path, mmap_mode="r", allow_pickle=False))
