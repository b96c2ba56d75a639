"""Service fixtures: app clients over the session's tree bundle, and real Redis servers."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server on a free port, so a test may stop and restart it."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def second_bundle(tree_bundle: Path, corpus_files: dict[str, Path], tmp_path: Path) -> Path:
    """Another model (name "second", another version) to reload to."""
    from training.methods import configure
    from training.train import train_bundle

    out = tmp_path / "second"
    params = configure("tree", {"branching": 2, "leaf_size": 16})
    train_bundle(corpus_files["train"], out, params, n_jobs=1, progress=False, name="second", holdout=0)
    return out


@pytest.fixture
def make_client(tree_bundle: Path) -> Iterator:
    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        settings = Settings(bundle=tree_bundle, **overrides)  # type: ignore[arg-type]
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    """Until ``url``/ready answers 200; fails if the process exits or the time runs out."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "service did not start"
        time.sleep(0.1)
