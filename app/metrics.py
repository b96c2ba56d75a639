"""Prometheus metrics of one service instance, on its own registry (so tests can build many apps).

In a container the service is one process (replicas scale out behind the gateway) and owns its
/metrics. Run as several processes on one host (`xmlc serve --workers N`, `app.server`), the processes
share prometheus-client's multiprocess folder (``PROMETHEUS_MULTIPROC_DIR``, set before the workers
start) and /metrics sums them: counters and histograms add up, the gauges of load (in flight, queue,
answers held) are summed over the live processes.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
STAGE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Histogram(
            "xmlc_request_seconds",
            "HTTP request latency",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage = Histogram(
            "xmlc_stage_seconds",
            "Time per pipeline stage (per model call, or per request for the cache)",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "xmlc_batch_size",
            "Documents per model call after micro-batching",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.cache = Counter(
            "xmlc_cache_total",
            "Redis cache lookups, one per document: hit, miss, or skipped (breaker open or Redis failed)",
            ["result"],
            registry=r,
        )
        self.local_cache = Counter(
            "xmlc_local_cache_total",
            "POST /predict lookups in the in-process answer cache, by result (a hit skips the route)",
            ["result"],
            registry=r,
        )
        self.local_cache_entries = Gauge(
            "xmlc_local_cache_entries",
            "Answers held in the in-process answer cache",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.cache_errors = Counter(
            "xmlc_cache_errors_total",
            "Redis errors by operation (get, set; pool_wait: no free connection within the wait); the "
            "request went on uncached",
            ["op"],
            registry=r,
        )
        self.inflight = Gauge(
            "xmlc_inflight_requests",
            "Requests being handled (not probes or scrapes)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.queue_depth = Gauge(
            "xmlc_queue_depth", "Documents waiting for the model", registry=r, multiprocess_mode="livesum"
        )
        self.rejected = Counter("xmlc_rejected_total", "Requests refused with 429 (queue full)", registry=r)
        self.shed = Counter(
            "xmlc_shed_total",
            "Requests answered 503 because their deadline passed before the model",
            registry=r,
        )
        self.model_info = Gauge(
            "xmlc_model_info",
            "Loaded model (value 1)",
            ["name", "version", "method"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.reloads = Counter("xmlc_reloads_total", "Model reloads by result", ["result"], registry=r)

    def set_model(self, name: str, version: str, method: str) -> None:
        self.model_info.clear()
        self.model_info.labels(name=name, version=version, method=method).set(1)

    def render(self) -> tuple[bytes, str]:
        """The text exposition for /metrics: this registry's, or all processes' in multiprocess mode."""
        if os.environ.get(MULTIPROCESS_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
