"""Peer XMC libraries (PECOS, Omikuji, napkinXC) run on shared TF-IDF features, as in PEERS.md.

Every peer sees the same scikit-learn TF-IDF matrices, so the numbers differ only by the model.
Each runner reports dev metrics, training time, batch and single-document predict latency, model
size on disk and peak RSS during training. The peers are optional (``pip install .[bench]``) and
are imported lazily, so this module loads without them.
"""

from __future__ import annotations

import gzip
import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import scipy.sparse as sp

from xmlc.metrics import Propensity, evaluate
from xmlc.xc_format import XCData, write_xc

__all__ = [
    "PEERS",
    "PeerResult",
    "TfidfFeatures",
    "read_docs",
    "run_napkinxc",
    "run_omikuji",
    "run_pecos",
    "tfidf_features",
]

KS = (1, 3, 5)
N_SINGLE = 300


@dataclass
class PeerResult:
    """One peer's scores (percent) and costs on the dev split."""

    name: str
    metrics: dict[str, float]
    featurize_s: float
    train_s: float
    batch_ms_per_doc: float
    single_p50_ms: float
    single_p99_ms: float
    model_bytes: int
    peak_rss_mb: float


@dataclass
class TfidfFeatures:
    """Shared inputs: TF-IDF rows, train label matrix over ``label_ids`` and string truths."""

    X_train: sp.csr_matrix
    X_dev: sp.csr_matrix
    label_ids: list[str]
    Y_train: sp.csr_matrix
    dev_truth: list[list[str]]
    train_truth: list[list[str]]
    fit_s: float


def read_docs(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """First ``limit`` JSON-lines documents of a (gzipped) file, as dicts."""
    p = Path(path)
    out: list[dict[str, Any]] = []
    with gzip.open(p, "rt", encoding="utf-8") if p.suffix == ".gz" else open(p, encoding="utf-8") as fh:
        for line in fh:
            if limit is not None and len(out) >= limit:
                break
            if line.strip():
                out.append(json.loads(line))
    return out


def _get(doc: Any, name: str) -> Any:
    """Field of a dict document or attribute of an object (e.g. ``xmlc.data.Document``)."""
    return doc[name] if isinstance(doc, Mapping) else getattr(doc, name)


def tfidf_features(
    train_docs: Sequence[Any], dev_docs: Sequence[Any], max_features: int = 200_000
) -> TfidfFeatures:
    """Fit the PEERS.md vectorizer on train; ``fit_s`` covers fit_transform(train) + transform(dev)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    def texts(docs: Sequence[Any]) -> list[str]:
        return [f"{_get(d, 'title') or ''}\n{_get(d, 'text') or ''}" for d in docs]

    vec = TfidfVectorizer(
        ngram_range=(1, 2),
        min_df=2,
        max_df=0.5,
        max_features=max_features,
        sublinear_tf=True,
        dtype=np.float32,
        token_pattern=r"(?u)\b\w+\b",
    )
    train_texts, dev_texts = texts(train_docs), texts(dev_docs)
    t0 = time.perf_counter()
    X_train = sp.csr_matrix(vec.fit_transform(train_texts), dtype=np.float32)
    X_dev = sp.csr_matrix(vec.transform(dev_texts), dtype=np.float32)
    fit_s = time.perf_counter() - t0

    train_truth = [[str(x) for x in _get(d, "labels")] for d in train_docs]
    dev_truth = [[str(x) for x in _get(d, "labels")] for d in dev_docs]
    label_ids = sorted({lab for labs in train_truth for lab in labs})
    index = {lab: j for j, lab in enumerate(label_ids)}
    rows = [sorted({index[lab] for lab in labs}) for labs in train_truth]
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=indptr[1:])
    cols = np.fromiter((j for r in rows for j in r), dtype=np.int64, count=int(indptr[-1]))
    Y = sp.csr_matrix(
        (np.ones(cols.size, dtype=np.float32), cols.astype(np.int32), indptr.astype(np.int32)),
        shape=(len(rows), len(label_ids)),
    )
    return TfidfFeatures(X_train, X_dev, label_ids, Y, dev_truth, train_truth, fit_s)


class _PeakRss:
    """Peak absolute RSS of this process, sampled every 5 ms by a psutil thread while active."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self._proc = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self.peak = 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> _PeakRss:
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def dir_bytes(path: Path) -> int:
    """Bytes on disk of every file below ``path`` (model size)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _rows(X: sp.csr_matrix, n: int) -> list[sp.csr_matrix]:
    return [X[i] for i in range(min(n, X.shape[0]))]


def _single_latency(predict_one: Callable[[Any], object], rows: Iterable[Any]) -> tuple[float, float]:
    """Median and p99 in ms of ``predict_one`` over prepared rows, one call each."""
    times = []
    for row in rows:
        t0 = time.perf_counter()
        predict_one(row)
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def _result(
    name: str,
    f: TfidfFeatures,
    prop: Propensity,
    pred_idx: Sequence[Sequence[int]],
    *,
    train_s: float,
    batch_s: float,
    single: tuple[float, float],
    model_bytes: int,
    peak_rss: int,
) -> PeerResult:
    preds = [[f.label_ids[j] for j in row] for row in pred_idx]
    report = evaluate(preds, f.dev_truth, ks=KS, propensity=prop)
    return PeerResult(
        name=name,
        metrics=report.metrics,
        featurize_s=f.fit_s,
        train_s=train_s,
        batch_ms_per_doc=batch_s / max(1, f.X_dev.shape[0]) * 1000.0,
        single_p50_ms=single[0],
        single_p99_ms=single[1],
        model_bytes=model_bytes,
        peak_rss_mb=peak_rss / 2**20,
    )


def _ranked(Y_pred: sp.csr_matrix) -> list[list[int]]:
    """Label indices of each row of a score matrix, best score first."""
    Y_pred = sp.csr_matrix(Y_pred)
    out = []
    for i in range(Y_pred.shape[0]):
        s, e = Y_pred.indptr[i], Y_pred.indptr[i + 1]
        order = np.argsort(-Y_pred.data[s:e], kind="stable")
        out.append(Y_pred.indices[s:e][order].tolist())
    return out


def run_pecos(f: TfidfFeatures, prop: Propensity) -> PeerResult:
    """PECOS XR-Linear: PIFA embedding, 16-way hierarchical k-means, threshold 0.1, beam 10, top 10.

    ``train_s`` covers embedding, indexing and training; ``peak_rss_mb`` is the peak process RSS.
    """
    from pecos.xmc import Indexer, LabelEmbeddingFactory
    from pecos.xmc.xlinear.model import XLinearModel

    with _PeakRss() as mem:
        t0 = time.perf_counter()
        emb = LabelEmbeddingFactory.create(f.Y_train, f.X_train, method="pifa")
        tree = Indexer.gen(emb, indexer_type="hierarchicalkmeans", nr_splits=16)
        model = XLinearModel.train(f.X_train, f.Y_train, C=tree, threshold=0.1)
        train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    Y_pred = model.predict(f.X_dev, beam_size=10, only_topk=10)
    batch_s = time.perf_counter() - t0
    single = _single_latency(lambda r: model.predict(r, beam_size=10, only_topk=10), _rows(f.X_dev, N_SINGLE))
    with tempfile.TemporaryDirectory() as tmp:
        model.save(str(Path(tmp) / "model"))
        size = dir_bytes(Path(tmp))
    return _result(
        "PECOS XR-Linear",
        f,
        prop,
        _ranked(Y_pred),
        train_s=train_s,
        batch_s=batch_s,
        single=single,
        model_bytes=size,
        peak_rss=mem.peak,
    )


def run_omikuji(f: TfidfFeatures, prop: Propensity, bonsai: bool) -> PeerResult:
    """Omikuji defaults (Parabel-like) or Bonsai-like (unbalanced 100-way, depth 3); beam 10, top 5.

    Data go through an XC-format temp file (writing it is not timed; Omikuji's own parse is, as
    part of ``train_on_data``). Predict takes (feature, value) pairs, so the csr-row -> pairs
    conversion is timed with each predict; the batch is a loop of single predicts (no batch API).
    """
    import omikuji

    hp = omikuji.Model.default_hyper_param()
    if bonsai:
        hp.cluster_balanced, hp.cluster_k, hp.max_depth = False, 100, 3
    name = "Omikuji (Bonsai-like)" if bonsai else "Omikuji (Parabel-like)"

    def predict(row: sp.csr_matrix) -> list[int]:
        pairs = list(zip(row.indices.tolist(), row.data.tolist(), strict=True))
        return [j for j, _ in model.predict(pairs, beam_size=10, top_k=5)]

    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "train.txt"
        write_xc(data_path, XCData(f.X_train, f.Y_train))
        with _PeakRss() as mem:
            t0 = time.perf_counter()
            model = omikuji.Model.train_on_data(str(data_path), hp)
            train_s = time.perf_counter() - t0
        data_path.unlink()
        rows = _rows(f.X_dev, f.X_dev.shape[0])
        t0 = time.perf_counter()
        pred_idx = [predict(r) for r in rows]
        batch_s = time.perf_counter() - t0
        single = _single_latency(predict, rows[:N_SINGLE])
        model_dir = Path(tmp) / "model"
        model_dir.mkdir()
        model.save(str(model_dir))
        size = dir_bytes(model_dir)
    return _result(
        name,
        f,
        prop,
        pred_idx,
        train_s=train_s,
        batch_s=batch_s,
        single=single,
        model_bytes=size,
        peak_rss=mem.peak,
    )


def run_napkinxc(f: TfidfFeatures, prop: Propensity) -> PeerResult:
    """napkinXC PLT(threads=2) with defaults, top 10. PLT writes its model to ``output`` during
    fit, so ``train_s`` includes that write and ``model_bytes`` is the size of that folder."""
    from napkinxc.models import PLT

    Y_lists = [
        f.Y_train.indices[f.Y_train.indptr[i] : f.Y_train.indptr[i + 1]].tolist()
        for i in range(f.Y_train.shape[0])
    ]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "plt"
        model = PLT(str(out), threads=2)
        with _PeakRss() as mem:
            t0 = time.perf_counter()
            model.fit(f.X_train, Y_lists)
            train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred_idx = model.predict(f.X_dev, top_k=10)
        batch_s = time.perf_counter() - t0
        single = _single_latency(lambda r: model.predict(r, top_k=10), _rows(f.X_dev, N_SINGLE))
        size = dir_bytes(out)
    return _result(
        "napkinXC PLT",
        f,
        prop,
        pred_idx,
        train_s=train_s,
        batch_s=batch_s,
        single=single,
        model_bytes=size,
        peak_rss=mem.peak,
    )


PEERS: dict[str, Callable[[TfidfFeatures, Propensity], PeerResult]] = {
    "pecos": run_pecos,
    "omikuji-parabel": lambda f, prop: run_omikuji(f, prop, bonsai=False),
    "omikuji-bonsai": lambda f, prop: run_omikuji(f, prop, bonsai=True),
    "napkinxc": run_napkinxc,
}
