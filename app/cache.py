"""Redis prediction cache that fails open: a down, slow or restarting Redis never fails a request.

Keys hash the model version with the normalised input, k and threshold, so a new model never serves an
old model's answers. The connection pool is bounded and *waits* (up to ``pool_wait_s``) for a free
connection rather than refusing the next request: at peak, lookups queue for a moment instead of
failing. A breaker skips the cache for ``retry_s`` only on an outage (no connection can be made, or
``breaker_errors`` operations in a row failed), so one slow reply from a starved CPU does not turn the
cache off at peak; it is tried again after ``retry_s`` and resumes by itself when Redis returns.

Lookups and stores are coalesced: the lookups of every request that reaches the cache in one turn of the
event loop go to Redis as one MGET, and the answers computed meanwhile as one pipeline of SETs, sent
after the responses (a request never waits for its answer to be stored). At peak, when requests come in
waves, this is one round trip per wave instead of two per request (the Redis client's Python was a
quarter of the event loop's time under load, BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
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
    if doc.features is not None:  # given features: ids and values as exact numbers
        h.update(b"|features|" + repr(doc.features).encode())
    return "xmlc:pred:" + h.hexdigest()


POOL_EMPTY = "No connection available."  # redis-py's BlockingConnectionPool, after its wait


class PredictionCache:
    def __init__(
        self,
        url: str,
        ttl_s: int,
        timeout_s: float,
        retry_s: float,
        metrics: ServiceMetrics,
        pool_size: int = 32,
        pool_wait_s: float = 0.5,
        breaker_errors: int = 3,
    ) -> None:
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.metrics = metrics
        self.breaker_errors = breaker_errors
        self._down_until = 0.0
        self._errors_in_a_row = 0
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=pool_size,
            timeout=pool_wait_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )
        self.client = aioredis.Redis(connection_pool=pool)
        self._gets: list[tuple[list[str], asyncio.Future[list[Any | None] | None]]] = []
        self._sets: dict[str, Any] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # An operation's bound: waiting for a connection, then the round trip.
        self._op_timeout_s = pool_wait_s + 2 * timeout_s

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _ok(self) -> None:
        self._errors_in_a_row = 0

    def _failed(self, op: str, err: BaseException) -> None:
        """Counts the error; opens the breaker on an outage: refused connections, or errors in a row."""
        pool_wait = isinstance(err, RedisConnectionError) and str(err) == POOL_EMPTY
        self.metrics.cache_errors.labels(op="pool_wait" if pool_wait else op).inc()
        if pool_wait:  # every connection busy past the wait: this request goes uncached, Redis is fine
            return
        self._errors_in_a_row += 1
        # redis-py: "Error 111 connecting to host:port. ..." (refused, no route, unknown name)
        unreachable = isinstance(err, RedisConnectionError) and "connecting to" in str(err)
        if not (unreachable or self._errors_in_a_row >= self.breaker_errors):
            return
        if self.available:
            log.warning("redis %s failed (%s); serving uncached for %.1fs", op, err, self.retry_s)
        self._down_until = time.monotonic() + self.retry_s

    async def get_many(self, keys: list[str]) -> list[Any | None] | None:
        """Cached values (decoded JSON) or None per key; None when the lookup was skipped (the breaker
        is open or Redis failed). Lookups made in the same turn of the event loop share one MGET."""
        if not keys:
            return []
        if not self.available:
            return None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any | None] | None] = loop.create_future()
        if not self._gets:
            loop.call_soon(self._spawn, self._fetch)
        self._gets.append((keys, future))
        return await future

    def store(self, items: dict[str, Any]) -> None:
        """Store ``items`` soon, without waiting: the stores of one turn of the loop go as one pipeline."""
        if not items or not self.available:
            return
        if not self._sets:
            asyncio.get_running_loop().call_soon(self._spawn, self._flush)
        self._sets.update(items)

    def _spawn(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        task = asyncio.get_running_loop().create_task(work())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch(self) -> None:
        batch, self._gets = self._gets, []
        values = await self._mget([k for keys, _ in batch for k in keys])
        at = 0
        for keys, future in batch:
            if not future.done():  # a request that went away no longer waits
                future.set_result(None if values is None else values[at : at + len(keys)])
            at += len(keys)

    async def _flush(self) -> None:
        items, self._sets = self._sets, {}
        await self.set_many(items)

    async def _mget(self, keys: list[str]) -> list[Any | None] | None:
        try:
            raw = await asyncio.wait_for(self.client.mget(keys), self._op_timeout_s)
        except (TimeoutError, RedisError, OSError) as e:
            self._failed("get", e)
            return None
        self._ok()
        out = []
        for value in raw:
            try:
                out.append(orjson.loads(value) if value is not None else None)
            except (ValueError, UnicodeDecodeError):
                out.append(None)  # a foreign or damaged value is a miss, never an error
        return out

    async def set_many(self, items: dict[str, Any]) -> None:
        if not items or not self.available:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, value in items.items():
                pipe.set(key, orjson.dumps(value), ex=self.ttl_s)
            await asyncio.wait_for(pipe.execute(), self._op_timeout_s)
        except (TimeoutError, RedisError, OSError) as e:
            self._failed("set", e)
            return
        self._ok()

    async def ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.client.ping(), self._op_timeout_s))
        except (TimeoutError, RedisError, OSError):
            return False

    async def close(self) -> None:
        """Finish the lookups and stores under way, then close the connections."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(RedisError, OSError):
            await self.client.aclose()
