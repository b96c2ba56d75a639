"""`xmlc serve --workers N`: several processes on one port, one /metrics that sums them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx
import pytest

from tests.app.conftest import free_port, wait_ready


def _value(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.mark.integration
def test_worker_processes_share_the_port_and_their_metrics(tree_bundle, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XMLC_")}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")  # emptied and used by the workers
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_999999.db").write_bytes(b"stale")  # an earlier run's: removed
    cmd = [sys.executable, "-m", "xmlc.cli", "serve", "--bundle", str(tree_bundle), "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--workers", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, 60)
        deadline = time.monotonic() + 30
        loads = 'xmlc_reloads_total{result="ok"}'
        while _value(httpx.get(url + "/metrics").text, loads) < 2:  # each worker loads the bundle once
            assert time.monotonic() < deadline, "the second worker did not start"
            time.sleep(0.2)
        n = 40
        for i in range(n):  # a connection each: the kernel spreads them over the workers
            r = httpx.post(url + "/predict", json={"text": f"document {i} about cats", "k": 2})
            assert r.status_code == 200
        text = httpx.get(url + "/metrics").text
        name = 'xmlc_request_seconds_count{method="POST",route="/predict",status="200"}'
        assert _value(text, name) == n  # summed over the processes
        assert not (tmp_path / "metrics" / "counter_999999.db").exists()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
