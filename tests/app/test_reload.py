"""Model reload: authenticated, atomic, and a corrupt bundle leaves the old model serving."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import httpx

from tests.app.conftest import free_port, wait_ready

DOC = {"text": "wa wb wc wd", "k": 3}
ADMIN = {"X-API-Key": "admin-key"}


def test_admin_needs_key(make_client, tree_bundle):
    assert make_client().post("/admin/reload").status_code == 403  # no admin key configured
    client = make_client(admin_key="admin-key")
    assert client.post("/admin/reload").status_code == 401
    assert client.post("/admin/reload", headers={"X-API-Key": "nope"}).status_code == 401
    assert client.post("/admin/reload", headers=ADMIN).status_code == 200


def test_reload_swaps_model_and_keeps_old_on_corrupt(make_client, second_bundle, tmp_path):
    client = make_client(admin_key="admin-key")
    old = client.get("/model").json()
    r = client.post("/admin/reload", json={"bundle": str(second_bundle)}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["name"] == "second"
    assert client.post("/predict", json=DOC).json()["model"] == "second"

    broken = tmp_path / "broken"
    shutil.copytree(second_bundle, broken)
    (broken / "tree0.level_val.npy").write_bytes(b"garbage")
    r = client.post("/admin/reload", json={"bundle": str(broken)}, headers=ADMIN)
    assert r.status_code == 409 and "checksum mismatch" in r.json()["detail"]
    assert client.get("/model").json()["name"] == "second"
    assert client.post("/predict", json=DOC).status_code == 200
    r = client.post("/admin/reload", json={"bundle": str(tmp_path / "missing")}, headers=ADMIN)
    assert r.status_code == 409
    assert old["version"] != client.get("/model").json()["version"]
    text = client.get("/metrics").text
    assert 'xmlc_reloads_total{result="error"} 2.0' in text


def test_no_request_fails_during_reloads(make_client, tree_bundle, second_bundle):
    client = make_client(admin_key="admin-key")
    failures: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            r = client.post("/predict", json=DOC)
            if r.status_code != 200 or not r.json()["labels"]:
                failures.append(r.status_code)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(6):
            bundle = second_bundle if i % 2 == 0 else tree_bundle
            assert (
                client.post("/admin/reload", json={"bundle": str(bundle)}, headers=ADMIN).status_code == 200
            )
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []


def test_sighup_reloads_the_current_bundle(tree_bundle):
    """Under a real uvicorn process (signal handlers live in the main thread)."""
    port = free_port()
    env = {**os.environ, "XMLC_BUNDLE": str(tree_bundle)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "app.main:app_from_env",
            "--port",
            str(port),
            "--no-access-log",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, 30)
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while 'xmlc_reloads_total{result="ok"} 2.0' not in httpx.get(url + "/metrics").text:
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.1)
        assert httpx.post(url + "/predict", json=DOC).status_code == 200
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(10)
