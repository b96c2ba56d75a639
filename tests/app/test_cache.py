"""The Redis cache against a real redis-server, including one killed and restarted mid-test.

The in-process answer cache in front of it is tested in test_local_cache.py.
"""

from __future__ import annotations

import time

import redis

from app.cache import cache_key
from xmlc.doc import Doc

DOC = {"text": "wa wb wc wd we", "k": 3}


def _metric(client, series: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_miss_then_hit_with_same_answer(make_client, redis_server):
    client = make_client(redis_url=redis_server.url)
    first = client.post("/predict", json=DOC)
    second = client.post("/predict", json={**DOC, "text": "  wa wb\t wc  wd we "})  # same after normalising
    assert first.headers["X-Cache"] == "miss" and second.headers["X-Cache"] == "hit"
    assert first.json() == second.json()
    assert client.post("/predict", json={**DOC, "k": 4}).headers["X-Cache"] == "miss"  # k is in the key
    assert _metric(client, 'xmlc_cache_total{result="hit"}') == 1
    assert _metric(client, 'xmlc_cache_total{result="miss"}') == 2
    r = redis.Redis(port=redis_server.port)
    keys = r.keys("xmlc:pred:*")
    assert len(keys) == 2 and 0 < r.ttl(keys[0]) <= 3600


def test_title_line_is_part_of_the_key(make_client, redis_server):
    # The first line is the title field: the same words with a title are another input, never a hit.
    client = make_client(redis_url=redis_server.url, local_cache_size=0)
    plain = client.post("/predict", json=DOC)
    titled = client.post("/predict", json={**DOC, "title": "wa", "text": "wb wc wd we"})
    assert plain.headers["X-Cache"] == "miss" and titled.headers["X-Cache"] == "miss"
    again = client.post("/predict", json={**DOC, "title": " wa ", "text": "wb  wc wd\nwe"})
    assert again.headers["X-Cache"] == "hit" and again.json() == titled.json()


def test_batch_partial_hits(make_client, redis_server):
    client = make_client(redis_url=redis_server.url)
    client.post("/predict", json={"text": "wa wb"})
    r = client.post("/predict", json={"documents": [{"text": "wa wb"}, {"text": "wc wd"}]})
    assert r.status_code == 200 and r.headers["X-Cache"] == "partial"


def key(version: str, text: str, k: int = 5, threshold: float | None = None, title: str = "") -> str:
    return cache_key(version, Doc(text, title), k, threshold)


def test_key_depends_on_model_version_and_options():
    base = key("v1", "some text")
    assert base == key("v1", " some   text ") == key("v1", "some text\n \n")
    # The title field (the title, or a text's first line) stays apart from the rest: moving words
    # between them changes the key; a title and the same first line of text are one input.
    assert key("v1", "a\nb c") == key("v1", " a \n\n b\tc") == key("v1", "b c", title=" a ")
    assert len({key("v1", t) for t in ("a b c", "a\nb c", "a b\nc", "\na b c")}) == 4
    assert key("v1", "b c", title="a") != key("v1", "a b c") != key("v1", "c", title="a b")
    variants = {base, key("v2", "some text"), key("v1", "some text", 6), key("v1", "some text", 5, 0.5)}
    assert len(variants | {key("v1", "Some text")}) == 5


def test_redis_down_fails_open_and_recovers(make_client, redis_server):
    # The same body again and again: the in-process answer cache would hide Redis, so it is off here.
    client = make_client(
        redis_url=redis_server.url, cache_retry_s=0.2, cache_timeout_s=0.05, local_cache_size=0
    )
    assert client.post("/predict", json=DOC).headers["X-Cache"] == "miss"
    assert client.post("/predict", json=DOC).headers["X-Cache"] == "hit"

    redis_server.stop()  # killed mid-test
    for _ in range(5):
        r = client.post("/predict", json=DOC)
        assert r.status_code == 200 and r.json()["labels"]  # answered, uncached
    assert _metric(client, 'xmlc_cache_errors_total{op="get"}') >= 1
    assert client.get("/ready").json()["cache"] is False

    redis_server.start()  # same port, empty
    time.sleep(0.3)
    statuses = []
    for _ in range(10):
        r = client.post("/predict", json=DOC)
        assert r.status_code == 200
        statuses.append(r.headers["X-Cache"])
        time.sleep(0.05)
    assert statuses[-1] == "hit", statuses  # the cache resumed by itself
    assert client.get("/ready").json()["cache"] is True


def test_unreachable_redis_at_start(make_client):
    client = make_client(redis_url="redis://127.0.0.1:1/0", cache_timeout_s=0.05)
    r = client.post("/predict", json=DOC)
    assert r.status_code == 200 and r.json()["labels"]


def test_garbage_in_cache_is_a_miss(make_client, redis_server):
    client = make_client(redis_url=redis_server.url)
    version = client.get("/model").json()["version"]
    redis.Redis(port=redis_server.port).set(key(version, DOC["text"], 3), b"\xff not json")
    r = client.post("/predict", json=DOC)
    assert r.status_code == 200 and r.headers["X-Cache"] == "miss"


def test_a_document_of_no_known_word_is_flagged_and_never_cached(make_client, redis_server):
    client = make_client(redis_url=redis_server.url, local_cache_size=0)
    for text in ("🙂🙂 🎉", "\x00\x00", "zzzunknown qqqnever"):
        for _ in range(2):
            r = client.post("/predict", json={"text": text, "k": 3})
            assert r.status_code == 200 and "no word" in r.json()["warning"]
            assert r.headers["X-Cache"] == "miss"  # the fallback is not stored: the second is a miss too
    r = client.post("/predict", json={"documents": [{"text": "🙂"}, {"text": "wa wb"}], "k": 3})
    results = r.json()["results"]
    assert "no word" in results[0]["warning"] and "warning" not in results[1]
    known = client.post("/predict", json=DOC)
    assert "warning" not in known.json()
    assert len(redis.Redis(port=redis_server.port).keys("xmlc:pred:*")) == 2  # "wa wb" and DOC
