"""Redis prediction cache that fails open: a down, slow or restarting Redis never fails a request.

Keys hash the model version with the normalised input, k and threshold, so a new model never serves an
old model's answers. After an error the cache is skipped for ``retry_s`` (no timeout paid per request
while Redis is down) and then tried again, so it resumes by itself when Redis returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.metrics import ServiceMetrics
from xmlc.doc import Doc

log = logging.getLogger("xmlc.cache")


def cache_key(version: str, doc: Doc, k: int, threshold: float | None) -> str:
    """What the model reads of ``doc`` (`Doc.normalised`: heading and body, whitespace made one space),
    nothing else: same answer, same key.

    The heading stays apart from the body: the featurizer reads it a second time as the title field, so
    a word moved between title and text changes the answer and must change the key. Built from
    length-prefixed parts (no JSON encoding of the text): this runs on the event loop for every request.
    """
    heading, body = doc.normalised()
    head = f"{len(version)}:{version}|{k}|{threshold!r}|{len(heading)}:"
    h = hashlib.sha256(head.encode())
    h.update(heading.encode("utf-8", "surrogatepass"))
    h.update(b"|")
    h.update(body.encode("utf-8", "surrogatepass"))
    return "xmlc:pred:" + h.hexdigest()


class PredictionCache:
    def __init__(
        self, url: str, ttl_s: int, timeout_s: float, retry_s: float, metrics: ServiceMetrics
    ) -> None:
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.metrics = metrics
        self._down_until = 0.0
        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            max_connections=64,
            health_check_interval=30,
        )

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, op: str, err: BaseException) -> None:
        self.metrics.cache_errors.labels(op=op).inc()
        if self.available:
            log.warning("redis %s failed (%s); serving uncached for %.1fs", op, err, self.retry_s)
        self._down_until = time.monotonic() + self.retry_s

    async def get_many(self, keys: list[str]) -> list[Any | None]:
        """Cached values (decoded JSON) or None per key; all None when Redis is unavailable."""
        if not keys or not self.available:
            return [None] * len(keys)
        try:
            raw = await asyncio.wait_for(self.client.mget(keys), self.timeout_s * 2)
        except (TimeoutError, RedisError, OSError) as e:
            self._failed("get", e)
            return [None] * len(keys)
        out = []
        for value in raw:
            try:
                out.append(json.loads(value) if value is not None else None)
            except (ValueError, UnicodeDecodeError):
                out.append(None)  # a foreign or damaged value is a miss, never an error
        return out

    async def set_many(self, items: dict[str, Any]) -> None:
        if not items or not self.available:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, value in items.items():
                pipe.set(key, json.dumps(value, separators=(",", ":")), ex=self.ttl_s)
            await asyncio.wait_for(pipe.execute(), self.timeout_s * 2)
        except (TimeoutError, RedisError, OSError) as e:
            self._failed("set", e)

    async def ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.client.ping(), self.timeout_s * 2))
        except (TimeoutError, RedisError, OSError):
            return False

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.client.aclose()
