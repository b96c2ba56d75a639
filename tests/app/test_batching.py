"""Micro-batching groups concurrent requests; a full queue answers 429 with Retry-After."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from app.batching import MicroBatcher, Overloaded


def test_concurrent_submissions_share_model_calls():
    calls: list[int] = []

    def run(texts: list[str], k: int) -> list[str]:
        calls.append(len(texts))
        time.sleep(0.01)
        return [t.upper() for t in texts]

    async def main() -> list[list[str]]:
        b = MicroBatcher(run, max_size=16, max_wait_s=0.02, queue_max=100)
        b.start()
        try:
            return await asyncio.gather(*(b.submit([f"t{i}", f"u{i}"], 3) for i in range(10)))
        finally:
            await b.stop()

    results = asyncio.run(main())
    assert results == [[f"T{i}", f"U{i}"] for i in range(10)]
    assert sum(calls) == 20 and len(calls) < 10 and max(calls) <= 16


def test_full_queue_raises_overloaded_and_errors_propagate():
    gate = threading.Event()

    def run(texts: list[str], k: int) -> list[str]:
        gate.wait(5)
        if "boom" in texts:
            raise ValueError("model failed")
        return texts

    async def main() -> None:
        b = MicroBatcher(run, max_size=1, max_wait_s=0, queue_max=2)
        b.start()
        try:
            first = asyncio.ensure_future(b.submit(["a"], 1))
            second = asyncio.ensure_future(b.submit(["b"], 1))
            await asyncio.sleep(0.05)
            with pytest.raises(Overloaded):
                await b.submit(["c"], 1)
            gate.set()
            assert await first == ["a"] and await second == ["b"]
            with pytest.raises(ValueError, match="model failed"):
                await b.submit(["boom"], 1)
        finally:
            gate.set()
            await b.stop()

    asyncio.run(main())


def test_queue_bounds_requests_and_retry_after_follows_the_queue():
    """Many one-document requests fill the request bound long before the document bound; Retry-After is
    the seconds the waiting documents need at the rate the model has been answering."""
    gate = threading.Event()

    def run(texts: list[str], k: int) -> list[str]:
        if "slow" in texts[0]:
            gate.wait(5)
        else:
            time.sleep(0.1)  # 1 document in 0.1 s: 10 documents/s
        return texts

    async def main() -> None:
        b = MicroBatcher(run, max_size=1, max_wait_s=0, queue_max=1000, max_requests=3)
        b.start()
        try:
            assert b.retry_after_s() == 1  # nothing measured yet
            assert await b.submit(["timed"], 1) == ["timed"]
            waiting = [asyncio.ensure_future(b.submit([f"slow{i}"] * 20, 1)) for i in range(3)]
            await asyncio.sleep(0.05)
            with pytest.raises(Overloaded) as e:
                await b.submit(["d"], 1)  # 60 of 1000 documents, but 3 of 3 requests
            assert "3 requests" in str(e.value)
            assert 5 <= e.value.retry_after_s <= 7  # 60 documents at about 10/s
            gate.set()
            assert [len(await w) for w in waiting] == [20, 20, 20]
        finally:
            gate.set()
            await b.stop()

    asyncio.run(main())


def test_api_answers_429_when_overloaded(make_client):
    client = make_client(queue_max=1)
    r = client.post("/predict", json={"documents": [{"text": "a"}, {"text": "b"}]})
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "1" and "overloaded" in r.json()["detail"]
    assert "xmlc_rejected_total 1.0" in client.get("/metrics").text


def test_workers_run_model_calls_side_by_side():
    # Two workers: a second batch starts while the first is still in the model (both wait on a barrier
    # that needs two parties, so one worker at a time would time out on it).
    barrier = threading.Barrier(2, timeout=5)

    def run(texts: list[str], k: int) -> list[str]:
        barrier.wait()
        return texts

    async def main() -> list[list[str]]:
        b = MicroBatcher(run, max_size=1, max_wait_s=0, queue_max=10, workers=2)
        b.start()
        try:
            return await asyncio.gather(b.submit(["a"], 1), b.submit(["b"], 1))
        finally:
            await b.stop()

    assert asyncio.run(main()) == [["a"], ["b"]]
    with pytest.raises(ValueError, match="workers"):
        MicroBatcher(lambda texts, k: texts, max_size=1, max_wait_s=0, queue_max=1, workers=0)
