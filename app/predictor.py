"""`Predictor`: from validated documents to answers, owning the model, the caches' keys and the batcher.

The route validates a request and hands its documents here. The predictor looks them up in Redis (one
key a document, from the model version and what the model reads of it), sends the misses to the
micro-batcher, caches the fresh answers, and re-keys an answer when a reload landed while it waited, so
it is stored under the version that computed it. It also owns the current model and swaps it atomically
on reload.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.batching import DeadlineExceeded, MicroBatcher, Overloaded
from app.cache import PredictionCache, cache_key
from app.local_cache import LocalCache
from app.metrics import ServiceMetrics
from app.settings import Settings
from xmlc.doc import Doc
from xmlc.loader import load_model
from xmlc.model import LabelScore, Model

log = logging.getLogger("xmlc.service")

Rows = list[dict[str, Any]]


class NotReady(Exception):
    """No model is loaded yet, or the replica is draining: another replica should answer."""


@dataclass
class Answer:
    """Labels per document, with the model (name, version) that computed them and the cache's say."""

    name: str
    version: str
    results: list[Rows]
    cache: str | None  # "hit", "partial", "miss", "skipped" (Redis out); None without a Redis cache
    unrecognised: list[int] = field(default_factory=list)  # documents with no word the model knows


class Predictor:
    def __init__(
        self,
        settings: Settings,
        metrics: ServiceMetrics,
        cache: PredictionCache | None = None,
        local_cache: LocalCache | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.cache = cache
        self.local_cache = local_cache
        self.model: Model | None = None
        self.bundle_path: Path | None = None
        self.draining = False  # set on SIGTERM (app.server): new work goes to other replicas
        self.batcher = MicroBatcher(
            self.run_model,
            settings.batch_max_size,
            settings.batch_max_wait_ms / 1000,
            settings.queue_max,
            metrics.queue_depth.set,
            settings.batch_workers,
            settings.queue_max_requests,
        )
        self._reload_lock = asyncio.Lock()

    async def start(self) -> None:
        """Start the batcher and load the configured bundle (a bundle that does not load stops start-up)."""
        self.batcher.start()
        await self.reload(self.settings.bundle)

    async def stop(self) -> None:
        await self.batcher.stop()
        if self.cache:
            await self.cache.close()

    # ------------------------------------------------------------------------------------ predicting

    async def predict(
        self, docs: list[Doc], k: int, threshold: float | None, deadline: float = float("inf")
    ) -> Answer:
        """Labels for ``docs`` by ``deadline`` (epoch seconds); raises `NotReady` before a model is loaded
        or while draining, `Overloaded` when the queue is full, `DeadlineExceeded` when too late."""
        model = self.model
        if self.draining:
            raise NotReady("draining: this replica is shutting down")
        if model is None:
            raise NotReady("model not loaded yet")
        version = model.version
        keys = [cache_key(version, d, k, threshold) for d in docs]
        results: list[Rows | None] = [None] * len(docs)
        unrecognised: list[int] = []
        status = None
        if self.cache:
            status = await self._lookup(keys, results)
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            budget = deadline - time.time()
            try:
                if budget <= 0:
                    raise DeadlineExceeded("shed: the deadline passed before the request reached the model")
                predicted = await self.batcher.submit([docs[i] for i in missing], k, budget)
            except Overloaded:
                self.metrics.rejected.inc()
                raise
            except DeadlineExceeded:
                self.metrics.shed.inc()
                raise
            fresh = {}
            for i, (used, labels, known) in zip(missing, predicted, strict=True):
                rows = [
                    {"id": x.id, "name": x.name, "score": round(x.score, 6)}
                    for x in labels[:k]
                    if threshold is None or x.score >= threshold
                ]
                results[i] = rows
                if used is not model:  # a reload landed while this request waited: answer as it
                    model = used
                if not known:  # the model's fallback: said in the answer, never cached
                    unrecognised.append(i)
                    continue
                key = keys[i] if used.version == version else cache_key(used.version, docs[i], k, threshold)
                fresh[key] = rows
            if self.cache:
                self.cache.store(fresh)  # sent after the response, with the other requests' answers
        return Answer(model.name, model.version, [r or [] for r in results], status, unrecognised)

    async def _lookup(self, keys: list[str], results: list[Rows | None]) -> str:
        assert self.cache is not None
        t0 = time.perf_counter()
        cached = await self.cache.get_many(keys)
        self.metrics.stage.labels(stage="cache_lookup").observe(time.perf_counter() - t0)
        if cached is None:  # breaker open or Redis failed: neither a hit nor a miss
            self.metrics.cache.labels(result="skipped").inc(len(keys))
            return "skipped"
        for i, value in enumerate(cached):
            if isinstance(value, list):
                results[i] = value
        hits = sum(r is not None for r in results)
        self.metrics.cache.labels(result="hit").inc(hits)
        self.metrics.cache.labels(result="miss").inc(len(keys) - hits)
        return "hit" if hits == len(keys) else ("partial" if hits else "miss")

    def run_model(self, docs: list[Doc], k: int) -> list[tuple[Model, list[LabelScore], bool]]:
        """Called in a model thread with a micro-batch; reads the model once, so a swap is atomic.

        Each result carries the model that made it, so a request that straddles a reload reports and
        caches its answer under the version that really computed it.
        """
        model = self.model
        if model is None:
            raise RuntimeError("no model loaded")
        res = model.predict_batch(docs, k)
        for stage, seconds in res.timings.items():
            self.metrics.stage.labels(stage=stage).observe(seconds)
        self.metrics.batch_size.observe(len(docs))
        known = res.recognised if res.recognised is not None else [True] * len(docs)
        labels = model.to_labels(res.indices, res.scores)
        return [(model, x, bool(r)) for x, r in zip(labels, known, strict=True)]

    # ------------------------------------------------------------------------------------- reloading

    def install(self, model: Model, path: Path) -> None:
        self.model = model
        self.bundle_path = path
        if self.local_cache is not None:
            self.local_cache.clear()  # keys hold the version, so this only frees the old model's answers
        self.metrics.set_model(model.name, model.version, str(model.manifest.get("method", "?")))

    async def reload(self, path: Path | None = None) -> Model:
        """Load and warm a bundle (default: the current one) beside the current model, then swap; on any
        error the old one stays."""
        path = Path(path or self.bundle_path or self.settings.bundle)
        async with self._reload_lock:
            t0 = time.perf_counter()
            try:
                model = await asyncio.to_thread(_load_warm, path)
            except Exception:
                self.metrics.reloads.labels(result="error").inc()
                raise
            self.install(model, path)
            self.metrics.reloads.labels(result="ok").inc()
            log.info("loaded %s version %s in %.2fs", path, model.version, time.perf_counter() - t0)
            return model

    def summary(self) -> dict[str, Any]:
        """The loaded model as `/model` shows it (from its manifest)."""
        if self.model is None:
            raise NotReady("model not loaded yet")
        m = self.model.manifest
        return {
            "name": self.model.name,
            "version": self.model.version,
            "method": m.get("method", "?"),
            "n_labels": m.get("n_labels", 0),
            "n_features": m.get("n_features", 0),
            "shortlister": m.get("shortlister", {}),
            "ranker": m.get("ranker"),
            "created_at": m.get("created_at"),
            "bundle": str(self.bundle_path),
        }


def _load_warm(path: Path) -> Model:
    model = load_model(path)
    model.warm_up()
    return model
