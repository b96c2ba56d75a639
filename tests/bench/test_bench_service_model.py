"""The model-alone ceiling of the service benchmark: the texts it builds and the rate it reports."""

from __future__ import annotations

import json
from pathlib import Path

from bench.service_model import docs_of, model_ceiling
from bench.service_report import model_lines
from xmlc.doc import Doc


def test_docs_are_what_the_service_builds():
    bodies = [json.dumps({"k": 5, "text": "wa wb", "title": " ta  tb "}), json.dumps({"k": 5, "text": "wc"})]
    assert docs_of(bodies) == [Doc("wa wb", " ta  tb "), Doc("wc")]


def test_ceiling_counts_documents_on_each_thread(ranker_bundle: Path, corpus):
    texts = [d.doc for d in corpus[1][:10]]
    one = model_ceiling(ranker_bundle, texts, batch_size=4, workers=1, seconds=0.3)
    two = model_ceiling(ranker_bundle, texts, batch_size=4, workers=2, seconds=0.3)
    for m in (one, two):
        assert m["docs_per_s"] > 0 and m["seconds"] >= 0.3 and m["cores"] > 0
        assert abs(m["docs_per_s"] * m["ms_per_doc"] - 1000) < 1e-6
    assert (one["workers"], two["workers"]) == (1, 2)
    report = {"runs": {"a": {"rps": two["docs_per_s"] * 4}}, "model_alone": [one, two]}
    text = "\n".join(model_lines(report))
    best = max(one["docs_per_s"], two["docs_per_s"])
    assert f"cannot exceed {best:.0f} requests/s, {best / (two['docs_per_s'] * 4):.2f} of (a)" in text
    assert model_lines({"runs": report["runs"]}) == []
