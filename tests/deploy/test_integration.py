"""The compose topology without Docker: Redis, two uvicorn replicas, the nginx gateway, Prometheus.

The gateway config is derived from deploy/nginx.conf (the replicas' DNS name becomes an upstream of local
ports, files under tmp_path, an X-Upstream header), so the deployed proxy settings are the ones exercised.
Everything listens on 127.0.0.1 and is stopped at the end. tests/deploy/test_stack.py runs the real thing
with Docker.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REDIS_PORT = 6379  # used when it answers, else a redis-server of our own on a free port
REDIS_DB = 3
DEADLINE_S = 60.0
DOC = "wa wb wc wd we wf ta tb: a document for the integration test of the gateway and the cache"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_answers(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


@dataclass
class Processes:
    """Started servers, stopped in reverse order: terminate, then kill after a timeout."""

    logs: Path
    procs: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        self.procs.append((name, proc, log))
        return proc

    def check_alive(self) -> None:
        for name, proc, log in self.procs:
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(log)}")

    @staticmethod
    def tail(log: Path, n: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
        return ""

    def report(self) -> str:
        return "\n".join(f"--- {name} ---\n{self.tail(log)}" for name, _, log in self.procs)

    def stop(self, timeout: float = 5.0) -> None:
        for _, proc, _ in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for _, proc, _ in reversed(self.procs):
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)


def _wait_until(what: str, check: Callable[[], bool], deadline: float, procs: Processes) -> None:
    """Poll ``check`` until it is true; fail with the servers' logs at the deadline or on a dead server."""
    while True:
        procs.check_alive()
        with contextlib.suppress(httpx.HTTPError, OSError):
            if check():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{procs.report()}")
        time.sleep(0.2)


def gateway_config(tmp: Path, listen: int, replicas: list[int]) -> str:
    """deploy/nginx.conf, with the compose names, paths and balancing swapped for local ones."""
    conf = (ROOT / "deploy" / "nginx.conf").read_text()

    def sub(pattern: str, repl: str, text: str) -> str:
        new, n = re.subn(pattern, repl, text, flags=re.M)
        assert n, f"deploy/nginx.conf changed: {pattern!r} not found; update this test"
        return new

    # The replicas: a local upstream in place of the name Docker's DNS resolves (round-robin, so that
    # consecutive requests alternate replicas).
    servers = "".join(f"        server 127.0.0.1:{p};\n" for p in replicas)
    conf = sub(r"^[ \t]*resolver [^;]+;\n[ \t]*resolver_timeout [^;]+;\n", "", conf)
    conf = sub(r"^http \{\n", "http {\n    upstream xmlc_local {\n" + servers + "    }\n", conf)
    conf = sub(r"^[ \t]*set \$xmlc_api [^;]+;\n", "", conf)
    conf = sub(r"proxy_pass http://\$xmlc_api;", "proxy_pass http://xmlc_local;", conf)
    # As root the workers must be root to reach tmp_path (0700); otherwise `user` is ignored anyway.
    conf = sub(r"^user [^;]+;", "user root;" if os.geteuid() == 0 else "", conf)
    conf = sub(r"^worker_processes [^;]+;", "worker_processes 1;\ndaemon off;", conf)
    conf = sub(r"^pid [^;]+;", f"pid {tmp}/nginx.pid;", conf)
    conf = sub(r"^error_log [^;]+;", f"error_log {tmp}/error.log info;", conf)
    conf = sub(r"access_log /dev/stdout", f"access_log {tmp}/access.log", conf)
    conf = sub(r"listen 8080;", f"listen 127.0.0.1:{listen};", conf)
    temp = "".join(
        f"    {kind}_temp_path {tmp}/{kind}_temp;\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = sub(r"^http \{\n", "http {\n" + temp, conf)
    return sub(r"^([ \t]*)location / \{\n", r"\1add_header X-Upstream $upstream_addr always;\n\g<0>", conf)


@dataclass
class Topology:
    gateway: str
    replicas: list[str]
    prometheus: str
    procs: Processes


@pytest.fixture
def topology(tree_bundle: Path, tmp_path: Path) -> Iterator[Topology]:
    nginx, prometheus = shutil.which("nginx"), shutil.which("prometheus")
    if nginx is None or prometheus is None:
        pytest.skip(
            "integration test needs the nginx and prometheus binaries (apt-get install nginx prometheus)"
        )
    redis_port = REDIS_PORT
    if not _redis_answers(redis_port) and shutil.which("redis-server") is None:
        pytest.skip(f"integration test needs Redis on 127.0.0.1:{REDIS_PORT} or the redis-server binary")

    import redis

    procs = Processes(tmp_path)
    deadline = time.monotonic() + DEADLINE_S
    try:
        if not _redis_answers(redis_port):
            redis_port = _free_port()
            procs.start(
                "redis",
                [
                    *("redis-server", "--port", str(redis_port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--dir", str(tmp_path)),
                ],
            )
            _wait_until("redis", lambda: _redis_answers(redis_port), deadline, procs)
        redis.Redis(host="127.0.0.1", port=redis_port, db=REDIS_DB).flushdb()

        env = {k: v for k, v in os.environ.items() if not k.startswith("XMLC_")}
        env |= {
            "XMLC_BUNDLE": str(tree_bundle),
            "XMLC_REDIS_URL": f"redis://127.0.0.1:{redis_port}/{REDIS_DB}",
            "XMLC_CACHE_TIMEOUT_S": "1.0",  # a loaded CI machine must not turn the cache off
            "PYTHONUNBUFFERED": "1",
        }
        ports = [_free_port(), _free_port()]
        for i, port in enumerate(ports, 1):
            procs.start(
                f"api{i}",
                [
                    *(sys.executable, "-m", "uvicorn", "--factory", "app.main:app_from_env"),
                    *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
                ],
                env,
            )

        gw_port = _free_port()
        (tmp_path / "nginx.conf").write_text(gateway_config(tmp_path, gw_port, ports))
        procs.start(
            "nginx", [nginx, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", "nginx.conf"]
        )

        prom_port = _free_port()
        targets = ", ".join(f'"127.0.0.1:{p}"' for p in ports)
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            f"scrape_configs:\n  - job_name: xmlc-api\n    static_configs:\n      - targets: [{targets}]\n"
        )
        procs.start(
            "prometheus",
            [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
        )

        top = Topology(
            gateway=f"http://127.0.0.1:{gw_port}",
            replicas=[f"127.0.0.1:{p}" for p in ports],
            prometheus=f"http://127.0.0.1:{prom_port}",
            procs=procs,
        )
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            for addr in top.replicas:
                _wait_until(
                    f"replica {addr} /ready",
                    lambda a=addr: client.get(f"http://{a}/ready").status_code == 200,
                    deadline,
                    procs,
                )
            _wait_until(
                "gateway", lambda: client.get(f"{top.gateway}/ready").status_code == 200, deadline, procs
            )
            _wait_until(
                "prometheus",
                lambda: client.get(f"{top.prometheus}/-/ready").status_code == 200,
                deadline,
                procs,
            )
        yield top
    finally:
        procs.stop()


def _predict(client: httpx.Client, gateway: str, **headers: str) -> httpx.Response:
    return client.post(f"{gateway}/predict", json={"text": DOC, "k": 5}, headers=headers)


def test_gateway_replicas_shared_cache_and_prometheus(topology: Topology) -> None:
    top = topology
    deadline = time.monotonic() + DEADLINE_S
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        first = _predict(client, top.gateway, **{"X-Request-ID": "it-first"})
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["version"] and body["model"]
        assert 1 <= len(body["labels"]) <= 5
        assert all({"id", "name", "score"} <= set(label) for label in body["labels"])
        assert first.headers["X-Cache"] == "miss"
        assert first.headers["X-Request-ID"] == "it-first"  # kept and passed through by the gateway
        assert first.headers["X-Upstream"] in top.replicas
        assert _predict(client, top.gateway).headers["X-Request-ID"]  # made up by nginx when absent

        # Round-robin: the same document lands on the other replica, which finds it in the shared cache.
        answered: dict[str, str] = {}
        for _ in range(6):
            again = _predict(client, top.gateway)
            assert again.status_code == 200, again.text
            assert again.json()["labels"] == body["labels"]
            answered.setdefault(again.headers["X-Upstream"], again.headers["X-Cache"])
        assert set(answered) == set(top.replicas), answered
        other = next(r for r in top.replicas if r != first.headers["X-Upstream"])
        assert answered[other] == "hit", answered

        # Gateway limits and routing, as deployed.
        big = client.post(
            f"{top.gateway}/predict", content=b"x" * 1_000_001, headers={"Content-Type": "application/json"}
        )
        assert big.status_code == 413 and "detail" in big.json()
        assert client.get(f"{top.gateway}/metrics").status_code == 404
        assert client.post(f"{top.gateway}/admin/reload").status_code == 404

        # Prometheus scrapes every replica: both report the /predict latency series.
        query = 'xmlc_request_seconds_count{route="/predict"}'
        seen: set[str] = set()

        def both_scraped() -> bool:
            r = client.get(f"{top.prometheus}/api/v1/query", params={"query": query})
            data: dict[str, Any] = r.json()
            assert data["status"] == "success", data
            seen.update(s["metric"]["instance"] for s in data["data"]["result"])
            return seen >= set(top.replicas)

        _wait_until("prometheus to scrape both replicas", both_scraped, deadline, top.procs)
        assert seen == set(top.replicas)
