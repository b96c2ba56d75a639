"""The in-process answer cache in front of /predict: same bytes as the route, and never a wrong answer."""

from __future__ import annotations

import asyncio
from typing import Any

from app.local_cache import ANSWERED_BY, LocalCache, LocalCacheMiddleware, request_key
from app.metrics import ServiceMetrics

DOC = {"text": "wa wb wc wd we", "k": 3}
BATCH = {"documents": [{"text": "wa wb"}, {"title": "t", "text": "xa xb xc"}], "k": 4, "threshold": 0.01}
ADMIN = {"X-API-Key": "admin-key"}


def _metric(client, series: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def _local(client, result: str) -> float:
    return _metric(client, f'xmlc_local_cache_total{{result="{result}"}}')


def test_repeat_is_a_local_hit_with_the_same_bytes(make_client, redis_server):
    client = make_client(redis_url=redis_server.url)
    first = client.post("/predict", json=DOC)
    second = client.post("/predict", json=DOC)
    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    assert first.headers["X-Cache"] == "miss" and second.headers["X-Cache"] == "hit"
    assert second.headers["content-type"] == first.headers["content-type"]
    assert int(second.headers["content-length"]) == len(second.content)
    assert (_local(client, "hit"), _local(client, "miss")) == (1, 1)
    assert _metric(client, 'xmlc_cache_total{result="hit"}') == 0  # Redis was not asked the second time
    assert _metric(client, "xmlc_local_cache_entries") == 1
    # Latency histogram: both requests, under the /predict route.
    series = 'xmlc_request_seconds_count{method="POST",route="/predict",status="200"}'
    assert _metric(client, series) == 2


def test_same_answers_as_uncached(make_client):
    cached, uncached = make_client(), make_client(local_cache_size=0)
    for payload in (DOC, BATCH, {**DOC, "title": "ta"}):
        for _ in range(2):
            a, b = cached.post("/predict", json=payload), uncached.post("/predict", json=payload)
            assert a.status_code == b.status_code == 200
            assert a.content == b.content
    assert _local(cached, "hit") == 3
    assert _local(uncached, "hit") == _local(uncached, "miss") == 0  # disabled: never looked up


def test_key_is_the_exact_body_and_content_type(make_client):
    client = make_client()
    raw = b'{"text": "wa wb wc", "k": 2}'
    for body in (raw, raw + b" ", raw.replace(b": ", b":")):  # same request, other bytes: other keys
        assert client.post("/predict", content=body, headers={"content-type": "application/json"}).is_success
    assert (_local(client, "hit"), _local(client, "miss")) == (0, 3)
    client.post("/predict", content=raw, headers={"content-type": "application/json; charset=utf-8"})
    assert _local(client, "hit") == 0
    client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert _local(client, "hit") == 1


def test_api_key_is_checked_before_a_hit(make_client):
    client = make_client(api_key="s3cret")
    good = {"X-API-Key": "s3cret"}
    answer = client.post("/predict", json=DOC, headers=good)
    assert answer.status_code == 200
    assert client.post("/predict", json=DOC).status_code == 401
    assert client.post("/predict", json=DOC, headers={"X-API-Key": "wrong"}).status_code == 401
    two = [("X-API-Key", "wrong"), ("X-API-Key", "s3cret")]
    assert client.post("/predict", json=DOC, headers=two).status_code == 401
    assert _local(client, "hit") == 0
    again = client.post("/predict", json=DOC, headers=good)
    assert again.content == answer.content and _local(client, "hit") == 1


def test_only_200_answers_are_stored(make_client):
    client = make_client()
    for _ in range(2):
        assert client.post("/predict", json={"text": "a", "k": 0}).status_code == 422
        broken = client.post("/predict", content=b'{"text": ', headers={"content-type": "application/json"})
        assert broken.status_code == 422
    assert _local(client, "hit") == 0 and _metric(client, "xmlc_local_cache_entries") == 0


def test_body_limit_still_applies(make_client):
    client = make_client(max_body_bytes=2048)
    big = {"text": "wa " * 1000}
    assert [client.post("/predict", json=big).status_code for _ in range(2)] == [413, 413]
    assert _local(client, "miss") == 0


def test_reload_invalidates(make_client, tree_bundle, second_bundle):
    client = make_client(admin_key="admin-key")
    first = client.post("/predict", json=DOC)
    assert client.post("/predict", json=DOC).content == first.content
    assert _local(client, "hit") == 1
    r = client.post("/admin/reload", json={"bundle": str(second_bundle)}, headers=ADMIN)
    assert r.status_code == 200
    assert _metric(client, "xmlc_local_cache_entries") == 0
    after = client.post("/predict", json=DOC)
    assert after.json()["model"] == "second" and after.json()["version"] != first.json()["version"]
    assert _local(client, "hit") == 1  # a miss: the new model answered
    assert client.post("/predict", json=DOC).json()["model"] == "second"
    assert _local(client, "hit") == 2
    client.post("/admin/reload", json={"bundle": str(tree_bundle)}, headers=ADMIN)
    assert client.post("/predict", json=DOC).content == first.content
    assert _local(client, "hit") == 2


def test_size_bound(make_client):
    client = make_client(local_cache_size=3)
    docs = [{"text": f"wa wb w{c}", "k": 2} for c in "abcde"]
    for d in docs:
        assert client.post("/predict", json=d).status_code == 200
    assert _metric(client, "xmlc_local_cache_entries") == 3
    client.post("/predict", json=docs[-1])
    assert _local(client, "hit") == 1
    client.post("/predict", json=docs[0])  # evicted: a miss
    assert _local(client, "hit") == 1


def test_disabled_with_size_zero(make_client):
    client = make_client(local_cache_size=0)
    for _ in range(3):
        r = client.post("/predict", json=DOC)
        assert r.status_code == 200 and "X-Cache" not in r.headers  # no Redis, no local cache
    assert _local(client, "hit") == _local(client, "miss") == 0
    assert _metric(client, "xmlc_local_cache_entries") == 0


# ----------------------------------------------------------------------------- the parts on their own


def test_lru_order_and_byte_bound():
    cache = LocalCache(max_entries=3, max_bytes=10_000)
    h: tuple[tuple[bytes, bytes], ...] = ()
    for key in (b"a", b"b", b"c"):
        cache.put(key, h, b"x")
    assert cache.get(b"a") is not None  # now the most recent
    cache.put(b"d", h, b"x")
    assert cache.get(b"b") is None and len(cache) == 3
    cache.put(b"e", h, b"y" * 20_000)  # over the whole budget: not stored, nothing dropped
    assert cache.get(b"e") is None and len(cache) == 3
    cache.put(b"f", h, b"y" * 9_700)  # fits alone: the others go
    assert len(cache) == 1 and cache.nbytes <= cache.max_bytes
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0
    assert not LocalCache(0, 10_000).enabled


def test_request_key_is_unambiguous():
    assert request_key("v1", b"application/json", b"{}") != request_key("v2", b"application/json", b"{}")
    assert request_key("v1", b"a", b"b{}") != request_key("v1", b"ab", b"{}")


def _run(app: Any, body: bytes) -> list[dict[str, Any]]:
    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": []}
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_answer_from_another_version_is_not_stored():
    """A reload that lands while a request waits: the answer is not stored under the old version."""
    calls = []

    async def route(scope, receive, send) -> None:
        calls.append((await receive())["body"])
        scope[ANSWERED_BY] = "v2"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    cache = LocalCache(10, 10_000)
    app = LocalCacheMiddleware(route, cache, ServiceMetrics(), version=lambda: "v1", api_key=None)
    for _ in range(2):
        assert _run(app, b"body")[0]["status"] == 200
    assert calls == [b"body", b"body"] and len(cache) == 0
