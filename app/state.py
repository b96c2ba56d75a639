"""What the service holds while it runs: the current pipeline (swapped atomically), cache, batcher."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.batching import MicroBatcher
from app.cache import PredictionCache
from app.local_cache import LocalCache
from app.metrics import ServiceMetrics
from app.settings import Settings
from xmlc.pipeline import LabelScore, Pipeline

log = logging.getLogger("xmlc.service")


@dataclass
class ServiceState:
    settings: Settings
    metrics: ServiceMetrics
    pipeline: Pipeline | None = None
    bundle_path: Path | None = None
    cache: PredictionCache | None = None
    batcher: MicroBatcher | None = None
    local_cache: LocalCache | None = None
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def run_model(self, texts: list[str], k: int) -> list[tuple[Pipeline, list[LabelScore]]]:
        """Called in the model thread with a micro-batch; reads the pipeline once, so a swap is atomic.

        Each result carries the pipeline that made it, so a request that straddles a reload reports and
        caches its answer under the version that really computed it.
        """
        pipeline = self.pipeline
        if pipeline is None:
            raise RuntimeError("no model loaded")
        res = pipeline.predict_batch(texts, k)
        for stage, seconds in res.timings.items():
            self.metrics.stage.labels(stage=stage).observe(seconds)
        self.metrics.batch_size.observe(len(texts))
        return [(pipeline, labels) for labels in pipeline.to_labels(res.indices, res.scores)]

    def install(self, pipeline: Pipeline, path: Path) -> None:
        self.pipeline = pipeline
        self.bundle_path = path
        if self.local_cache is not None:
            self.local_cache.clear()  # keys hold the version, so this only frees the old model's answers
        m = pipeline.manifest
        self.metrics.set_model(pipeline.name, pipeline.version, str(m.get("method", "?")))

    async def reload(self, path: Path) -> Pipeline:
        """Load and warm a bundle beside the current one, then swap; on any error the old one stays."""
        async with self.reload_lock:
            t0 = time.perf_counter()
            try:
                pipeline = await asyncio.to_thread(_load_warm, path)
            except Exception:
                self.metrics.reloads.labels(result="error").inc()
                raise
            self.install(pipeline, path)
            self.metrics.reloads.labels(result="ok").inc()
            log.info("loaded %s version %s in %.2fs", path, pipeline.version, time.perf_counter() - t0)
            return pipeline

    def model_summary(self) -> dict[str, Any]:
        assert self.pipeline is not None
        m = self.pipeline.manifest
        return {
            "name": self.pipeline.name,
            "version": self.pipeline.version,
            "method": m.get("method", "?"),
            "n_labels": m.get("n_labels", 0),
            "n_features": m.get("n_features", 0),
            "shortlister": m.get("shortlister", {}),
            "ranker": m.get("ranker"),
            "created_at": m.get("created_at"),
            "bundle": str(self.bundle_path),
        }


def _load_warm(path: Path) -> Pipeline:
    pipeline = Pipeline.load(path)
    pipeline.warm_up()
    return pipeline
