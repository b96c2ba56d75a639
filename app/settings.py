"""Service settings: one pydantic-settings class, read from ``XMLC_*`` environment variables."""

from __future__ import annotations

import math
import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, bounded by a cgroup v2 CPU quota (a container's
    CPU limit), at least one."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, n)


class Settings(BaseSettings):
    """Everything the service can be told; every field is settable as ``XMLC_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="XMLC_", env_file=None, extra="ignore")

    bundle: Path = Field(Path("bundles/default"), description="Bundle folder to serve.")
    redis_url: str | None = Field(None, description="redis://host:port/db; unset disables the cache.")
    cache_ttl_s: int = Field(3600, ge=1, description="Cache entry lifetime.")
    cache_timeout_s: float = Field(0.25, gt=0, description="Redis socket timeout: a slow cache is skipped.")
    cache_retry_s: float = Field(1.0, ge=0, description="On a Redis outage, skip the cache this long.")
    cache_pool_size: int = Field(
        32, ge=1, description="Redis connections a replica holds at most; requests beyond wait for one."
    )
    cache_pool_wait_s: float = Field(
        0.5, ge=0, description="How long a lookup waits for a free connection before going uncached."
    )
    cache_breaker_errors: int = Field(
        3, ge=1, description="Failed Redis operations in a row that count as an outage (refused: at once)."
    )
    local_cache_size: int = Field(
        10_000, ge=0, description="In-process LRU of whole /predict answers (entries); 0 disables it."
    )
    local_cache_bytes: int = Field(
        64_000_000, ge=0, description="Memory bound of that LRU (answers, keys, headers), in bytes."
    )
    max_k: int = Field(100, ge=1, description="Largest k a request may ask for.")
    max_batch_docs: int = Field(64, ge=1, description="Most documents in one request.")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Larger bodies get 413.")
    max_text_chars: int = Field(200_000, ge=1, description="Longer texts get 422.")
    batch_max_size: int = Field(32, ge=1, description="Micro-batching: most documents in one model call.")
    batch_max_wait_ms: float = Field(2.0, ge=0, description="Micro-batching: wait for more documents.")
    workers: int = Field(
        default_factory=available_cores,
        ge=1,
        description="Service processes of `xmlc serve` (default: one per available core; each has its "
        "own event loop, model and batcher: on 2 cores two processes answered 1.4x the cache misses of "
        "one process with two model threads, BENCHMARKS.md). The container image sets 1: replicas scale.",
    )
    batch_workers: int = Field(
        1, ge=1, description="Model calls running at once in a process (threads; the model releases the GIL)."
    )
    queue_max: int = Field(512, ge=1, description="Documents waiting for the model; beyond it, 429.")
    queue_max_requests: int = Field(
        256, ge=1, description="Requests waiting for the model (whatever their documents); beyond it, 429."
    )
    request_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A request's deadline, from when the gateway got it (X-Request-Start) or else "
        "from when the replica did; work past it is shed with 503.",
    )
    shutdown_grace_s: float = Field(
        20.0, ge=0, description="On SIGTERM, how long requests in flight may take before the process exits."
    )
    api_key: str | None = Field(None, description="When set, /predict needs X-API-Key.")
    admin_key: str | None = Field(None, description="X-API-Key for /admin calls (falls back to api_key).")
