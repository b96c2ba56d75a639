"""Deadlines and shutdown: late work is shed before the model, and SIGTERM drains a replica."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from app.batching import DeadlineExceeded, MicroBatcher
from tests.app.conftest import free_port, wait_ready
from xmlc.doc import Doc

DOC = {"text": "wa wb wc wd", "k": 3}


def test_a_request_past_its_deadline_is_shed_with_503(make_client):
    client = make_client()
    late = client.post("/predict", json=DOC, headers={"X-Request-Start": f"t={time.time() - 60:.3f}"})
    assert late.status_code == 503 and late.headers["Retry-After"] == "1"
    assert "deadline" in late.json()["detail"]
    on_time = client.post("/predict", json=DOC, headers={"X-Request-Start": f"t={time.time():.3f}"})
    assert on_time.status_code == 200
    assert client.post("/predict", json=DOC, headers={"X-Request-Start": "garbage"}).status_code == 200
    assert "xmlc_shed_total 1.0" in client.get("/metrics").text


def test_queued_work_past_its_deadline_never_reaches_the_model():
    seen: list[str] = []
    gate = threading.Event()

    def run(docs: list[Doc], k: int) -> list[str]:
        seen.extend(d.text for d in docs)
        gate.wait(5)
        return [d.text for d in docs]

    async def main() -> tuple[list[str], BaseException | None]:
        b = MicroBatcher(run, max_size=1, max_wait_s=0, queue_max=10)
        b.start()
        try:
            first = asyncio.ensure_future(b.submit([Doc("first")], 1, 5.0))
            await asyncio.sleep(0.05)  # the model is busy with it
            late = asyncio.ensure_future(b.submit([Doc("late")], 1, 0.1))
            await asyncio.sleep(0.3)
            gate.set()
            error = None
            try:
                await late
            except DeadlineExceeded as e:
                error = e
            return await first, error
        finally:
            await b.stop()

    answer, error = asyncio.run(main())
    assert answer == ["first"] and isinstance(error, DeadlineExceeded)
    assert seen == ["first"]  # the late job was dropped, not computed


def test_a_draining_replica_is_not_ready_and_sends_new_work_away(make_client):
    client = make_client()
    client.app.state.predictor.draining = True
    assert client.get("/ready").status_code == 503
    r = client.post("/predict", json=DOC)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1" and "draining" in r.json()["detail"]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_answers_what_the_replica_holds_then_exits(tree_bundle, workers):
    """A request held in the batcher when SIGTERM arrives is answered; the process exits soon after
    (one process, or the workers of `xmlc serve --workers 2`, to which uvicorn passes the signal)."""
    port = free_port()
    env = {**os.environ, "XMLC_BATCH_MAX_WAIT_MS": "1500", "XMLC_BATCH_MAX_SIZE": "64"}
    cmd = [sys.executable, "-m", "xmlc.cli", "serve", "--bundle", str(tree_bundle), "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, 60)
        results: list[httpx.Response] = []
        held = threading.Thread(
            target=lambda: results.append(httpx.post(url + "/predict", json=DOC, timeout=10))
        )
        held.start()
        time.sleep(0.4)  # the request waits in the batcher (1.5 s batching window)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        held.join(10)
        assert results and results[0].status_code == 200 and results[0].json()["labels"]
        assert proc.wait(15) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it is done
        assert time.monotonic() - t0 < 15
        assert "draining" in proc.stderr.read()
        with pytest.raises(httpx.TransportError):
            httpx.post(url + "/predict", json=DOC, timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
