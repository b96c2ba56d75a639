"""The cache at peak: a pool that waits for a connection, a breaker that opens on outages only, and the
hit/miss/skipped accounting. Against a real redis-server (and a socket that never answers)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

from app.cache import PredictionCache
from app.metrics import ServiceMetrics


def counter(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def test_more_lookups_than_connections_wait_instead_of_failing(redis_server):
    """Both connections are busy for 0.3 s; lookups made meanwhile (in many turns of the loop) wait for
    one and all succeed."""
    metrics = ServiceMetrics()

    async def run() -> list:
        cache = PredictionCache(redis_server.url, 60, 1.0, 1.0, metrics, pool_size=2, pool_wait_s=5.0)
        await cache.set_many({f"k{i}": [i] for i in range(200)})
        busy = [asyncio.create_task(cache.client.blpop([f"empty{j}"], timeout=0.3)) for j in range(2)]
        await asyncio.sleep(0.05)

        async def lookup(i: int) -> list:
            for _ in range(i % 7):  # spread over several turns of the event loop
                await asyncio.sleep(0)
            return await cache.get_many([f"k{i}", "absent"])

        try:
            return await asyncio.gather(*(lookup(i) for i in range(200)))
        finally:
            await asyncio.gather(*busy)
            await cache.close()

    results = asyncio.run(run())
    assert results == [[[i], None] for i in range(200)]
    assert counter(metrics, "xmlc_cache_errors_total", op="get") == 0
    assert counter(metrics, "xmlc_cache_errors_total", op="pool_wait") == 0


def test_lookups_and_stores_of_one_turn_share_one_round_trip(redis_server):
    metrics = ServiceMetrics()
    calls = {"mget": 0, "execute": 0}

    async def run() -> tuple[list, list]:
        cache = PredictionCache(redis_server.url, 60, 1.0, 1.0, metrics)
        mget, pipeline = cache.client.mget, cache.client.pipeline

        async def counted_mget(*args, **kw):
            calls["mget"] += 1
            return await mget(*args, **kw)

        def counted_pipeline(*args, **kw):
            pipe = pipeline(*args, **kw)
            execute = pipe.execute

            async def counted_execute(*a, **k):
                calls["execute"] += 1
                return await execute(*a, **k)

            pipe.execute = counted_execute
            return pipe

        cache.client.mget, cache.client.pipeline = counted_mget, counted_pipeline
        for i in range(30):
            cache.store({f"s{i}": {"n": i}})  # 30 stores in one turn, none awaited
        await asyncio.sleep(0.2)
        try:
            first = await asyncio.gather(*(cache.get_many([f"s{i}"]) for i in range(30)))
            second = await asyncio.gather(*(cache.get_many([f"s{i}", "nope"]) for i in range(3)))
            return first, second
        finally:
            await cache.close()

    first, second = asyncio.run(run())
    assert first == [[{"n": i}] for i in range(30)]
    assert second == [[{"n": i}, None] for i in range(3)]
    assert calls == {"mget": 2, "execute": 1}


def test_a_pool_that_stays_busy_past_the_wait_skips_without_opening_the_breaker(redis_server):
    metrics = ServiceMetrics()

    async def run() -> tuple[list, bool]:
        cache = PredictionCache(redis_server.url, 60, 2.0, 1.0, metrics, pool_size=1, pool_wait_s=0.01)
        slow = asyncio.create_task(cache.client.blpop(["an-empty-list"], timeout=1))
        await asyncio.sleep(0.05)  # the one connection is busy for a second
        out = await cache.get_many(["a"])
        await slow
        try:
            return [out, await cache.get_many(["a"])], cache.available
        finally:
            await cache.close()

    (skipped, after), available = asyncio.run(run())
    assert skipped is None and after == [None]  # skipped once, then a normal miss
    assert available  # a busy pool is not an outage
    assert counter(metrics, "xmlc_cache_errors_total", op="pool_wait") == 1


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: every Redis call times out."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join(2)
    for s in held:
        s.close()
    srv.close()


def test_breaker_opens_after_errors_in_a_row_not_on_one_slow_reply(silent_port: int):
    metrics = ServiceMetrics()

    async def run() -> list[bool]:
        url = f"redis://127.0.0.1:{silent_port}/0"
        cache = PredictionCache(url, 60, 0.05, 30.0, metrics, pool_wait_s=0.1, breaker_errors=3)
        seen = []
        for _ in range(3):
            assert await cache.get_many(["a"]) is None
            seen.append(cache.available)
        await cache.close()
        return seen

    assert asyncio.run(run()) == [True, True, False]
    assert counter(metrics, "xmlc_cache_errors_total", op="get") == 3


def test_refused_connection_opens_the_breaker_at_once():
    metrics = ServiceMetrics()

    async def run() -> bool:
        cache = PredictionCache("redis://127.0.0.1:1/0", 60, 0.2, 30.0, metrics, breaker_errors=5)
        assert await cache.get_many(["a"]) is None
        available = cache.available
        await cache.close()
        return available

    assert asyncio.run(run()) is False


def test_skipped_lookups_are_counted_apart_from_misses(make_client, redis_server):
    client = make_client(redis_url=redis_server.url, local_cache_size=0, cache_retry_s=30)
    doc = {"text": "wa wb wc", "k": 3}
    assert client.post("/predict", json=doc).headers["X-Cache"] == "miss"
    assert client.post("/predict", json=doc).headers["X-Cache"] == "hit"
    redis_server.stop()
    r = client.post("/predict", json=doc)
    assert r.status_code == 200 and r.headers["X-Cache"] == "skipped"
    assert client.post("/predict", json=doc).headers["X-Cache"] == "skipped"  # breaker open

    def value(result: str) -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith(f'xmlc_cache_total{{result="{result}"}} '):
                return float(line.split()[-1])
        return 0.0

    assert (value("hit"), value("miss"), value("skipped")) == (1, 1, 2)
