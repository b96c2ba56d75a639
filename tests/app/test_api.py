"""The HTTP API: answers, and a clear 4xx (never a 5xx) for each kind of bad input."""

from __future__ import annotations

import pytest

DOC = {"text": "wa wb wc wd we wf ta tb", "title": "wa wb"}


def test_predict_one_document(client):
    r = client.post("/predict", json={**DOC, "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "tree" and len(body["version"]) == 12
    assert body["labels"][0]["id"] == "L0"
    assert len(body["labels"]) == 3
    assert all(set(x) == {"id", "name", "score"} for x in body["labels"])
    scores = [x["score"] for x in body["labels"]]
    assert scores == sorted(scores, reverse=True)


def test_predict_batch_keeps_order_and_threshold(client):
    docs = [{"text": "wa wb wc wd"}, {"text": "xa xb xc xd"}, {"text": "wa wb wc wd", "title": "t"}]
    r = client.post("/predict", json={"documents": docs, "k": 4, "threshold": 0.5})
    assert r.status_code == 200
    results = r.json()["results"]
    assert len(results) == 3
    assert results[0]["labels"][0]["id"] == "L0"
    assert all(x["score"] >= 0.5 for res in results for x in res["labels"])


def test_health_ready_model_metrics(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["cache"] is None
    info = client.get("/model").json()
    assert info["method"] == "tree" and info["n_labels"] == 64
    client.post("/predict", json=DOC)
    text = client.get("/metrics").text
    assert 'xmlc_request_seconds_count{method="POST",route="/predict",status="200"} 1.0' in text
    for series in (
        "xmlc_stage_seconds_bucket",
        "xmlc_batch_size_bucket",
        "xmlc_inflight_requests",
        "xmlc_model_info{",
    ):
        assert series in text
    # The scrape reading the gauge is not load: nothing else in flight reads 0 (the autoscaler's metric).
    assert "\nxmlc_inflight_requests 0.0\n" in text


BAD_JSON = [
    ("malformed json", b'{"text": "abc",', 422),
    ("not an object", b'["text"]', 422),
    ("non-utf8 bytes", b'{"text": "\xff\xfe"}', 400),
]


@pytest.mark.parametrize("name,raw,status", BAD_JSON, ids=[b[0] for b in BAD_JSON])
def test_bad_bodies(client, name, raw, status):
    r = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["detail"]


BAD_INPUT = [
    ("missing text", {"k": 3}, "nothing to label: give 'text' and/or 'title'"),
    ("text and documents", {"text": "a", "documents": [{"text": "b"}]}, "not both"),
    ("title and documents", {"title": "a", "documents": [{"text": "b"}]}, "not both"),
    ("text wrong type", {"text": 5}, "string"),
    ("empty text", {"text": ""}, "no words"),
    ("whitespace text", {"text": "  \n\t "}, "no words"),
    ("blank title alone", {"title": " "}, "no words"),
    ("k zero", {"text": "a", "k": 0}, "greater than or equal to 1"),
    ("k too large", {"text": "a", "k": 101}, "at most 100"),
    ("k not int", {"text": "a", "k": "five"}, "integer"),
    ("threshold wrong type", {"text": "a", "threshold": "x"}, "number"),
    ("threshold above 1", {"text": "a", "threshold": 2}, "less than or equal to 1"),
    ("threshold huge", {"text": "a", "threshold": 1e300}, "less than or equal to 1"),
    ("threshold negative", {"text": "a", "threshold": -0.5}, "greater than or equal to 0"),
    ("unknown field", {"text": "a", "colour": "red"}, "Extra inputs"),
    ("empty batch", {"documents": []}, "empty"),
    ("batch too large", {"documents": [{"text": "a"}] * 65}, "at most 64"),
    ("blank document in batch", {"documents": [{"text": "a"}, {"text": " "}]}, "no words"),
    ("text too long", {"text": "a" * 200_001}, "longer than"),
]


@pytest.mark.parametrize("name,payload,message", BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_input_is_422_with_message(make_client, name, payload, message):
    client = make_client(max_body_bytes=1_000_000)
    r = client.post("/predict", json=payload)
    assert r.status_code == 422, r.text
    assert message in r.text


def test_nan_threshold_is_422(client):
    raw = b'{"text": "a", "threshold": NaN}'  # Python's json reads NaN; the API refuses it
    r = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "finite number" in r.text


def test_a_title_alone_is_a_document(client):
    r = client.post("/predict", json={"title": "wa wb wc", "k": 2})
    assert r.status_code == 200 and len(r.json()["labels"]) == 2
    r = client.post("/predict", json={"documents": [{"title": "wa wb"}, {"text": "wc"}], "k": 2})
    assert r.status_code == 200 and len(r.json()["results"]) == 2


def test_a_body_that_is_not_json_gets_415_saying_so(client):
    r = client.post("/predict", content=b"text=fishing+quotas")  # curl -d without a Content-Type
    assert r.status_code == 415
    assert "Content-Type: application/json" in r.json()["detail"]
    r = client.post("/predict", data={"text": "fishing"})  # a form
    assert r.status_code == 415 and "application/x-www-form-urlencoded" in r.json()["detail"]


def test_body_over_limit_is_413(make_client):
    client = make_client(max_body_bytes=2048)
    r = client.post("/predict", json={"text": "a " * 5000})
    assert r.status_code == 413 and "2048" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit holds while streaming too
        for _ in range(10):
            yield b" " * 1000

    r = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_wrong_method_and_route(client):
    assert client.get("/predict").status_code == 405
    assert client.post("/nowhere", json=DOC).status_code == 404


def test_api_key(make_client):
    client = make_client(api_key="s3cret")
    assert client.post("/predict", json=DOC).status_code == 401
    assert client.post("/predict", json=DOC, headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.post("/predict", json=DOC, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert client.get("/health").status_code == 200  # probes need no key


def test_openapi_documents_error_codes(client):
    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/predict"]["post"]["responses"]
    assert {"200", "401", "413", "422", "429", "503"} <= set(responses)
