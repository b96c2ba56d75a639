"""The compose stack for real, with a Docker engine: gateway, N api replicas, Redis, Prometheus.

Under a bounded load through the gateway it scales `api` 2 -> 4 -> 1, kills a replica (`docker kill`),
restarts Redis, and checks that clients saw no failure (connection errors, 5xx), that the cache answers
again within 5 s of Redis's return, and that Prometheus scrapes every live replica. Retries the gateway
made (a request sent to a replica that died or drained before answering) are counted from its log.
Everything is torn down at the end, also on failure.

Needs root (it starts `dockerd` where no engine answers) or a running engine; builds the images with
deploy/build.sh (a local base image where Docker Hub cannot be reached).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.deployment

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [f"wa wb wc wd we wf ta tb document {i}" for i in range(40)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def engine_ready() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def ensure_engine() -> None:
    """A Docker engine, started here (dockerd, as root) when none answers."""
    if shutil.which("docker") is None or shutil.which("docker-compose") is None:
        pytest.skip("needs docker and docker-compose (apt-get install docker.io docker-compose)")
    if engine_ready():
        return
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.skip("no Docker engine answers, and dockerd cannot be started here")
    with open("/tmp/dockerd-test.log", "ab") as log:  # the engine outlives the test: it is shared
        subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not engine_ready():
        assert time.monotonic() < deadline, "dockerd did not start"
        time.sleep(1)


@dataclass
class Stack:
    project: str
    env: dict[str, str]
    gateway: str
    prometheus: str

    def compose(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        out = subprocess.run(
            ["docker-compose", "-p", self.project, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and out.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def api_containers(self) -> list[str]:
        return [c for c in self.compose("ps", "-q", "api").split() if c]

    @staticmethod
    def inspect(cid: str, template: str) -> str:
        """One container's fields, by a `docker inspect` Go template."""
        out = subprocess.run(["docker", "inspect", "-f", template, cid], capture_output=True, text=True)
        return out.stdout.strip()

    def healthy_replicas(self) -> int:
        template = "{{.State.Running}} {{.State.Health.Status}}"
        states = [self.inspect(cid, template) for cid in self.api_containers()]
        return sum(state.split() == ["true", "healthy"] for state in states)

    def scale(self, n: int) -> None:
        self.compose("up", "-d", "--no-build", "--no-recreate", "--scale", f"api={n}", "api")
        wait_until(
            f"{n} healthy replicas", lambda: self.healthy_replicas() == n == len(self.api_containers()), 120
        )


def wait_until(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError, ValueError, KeyError):
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@dataclass
class Load:
    """Clients sending /predict through the gateway, a bounded rate each, recording every outcome."""

    url: str
    clients: int = 4
    interval_s: float = 0.05
    outcomes: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    failures: list[str] = field(default_factory=list)

    def run(self, i: int) -> None:
        with httpx.Client(timeout=15, trust_env=False) as client:
            n = 0
            while not self.stop.is_set():
                body = {"text": TEXTS[(i * 7 + n) % len(TEXTS)], "k": 3}
                n += 1
                try:
                    r = client.post(f"{self.url}/predict", json=body)
                    key = str(r.status_code)
                    if r.status_code >= 500:
                        self.failures.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as e:
                    key = type(e).__name__
                    self.failures.append(repr(e))
                self.outcomes[key] += 1
                time.sleep(self.interval_s)

    def __enter__(self) -> Load:
        self.threads = [
            threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(self.clients)
        ]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, corpus_files: dict[str, Path]) -> Iterator[Stack]:
    ensure_engine()
    t0 = time.monotonic()
    build = subprocess.run(
        ["bash", "deploy/build.sh"], cwd=ROOT, capture_output=True, text=True, timeout=1800
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    print(f"\nimages built in {time.monotonic() - t0:.0f} s\n{build.stdout.splitlines()[-6:]}")
    # A bundle readable by the containers' user (uid 10001): the session's tree bundle, copied.
    bundles = tmp_path_factory.mktemp("bundles")
    from tests.conftest import train_small

    train_small(corpus_files, bundles / "current", "tree", branching=4, leaf_size=8)
    os.chmod(bundles, 0o755)
    for p in bundles.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    gw, prom = _free_port(), _free_port()
    env = {
        **os.environ,
        "XMLC_BUNDLES_DIR": str(bundles),
        "XMLC_GATEWAY_BIND": "127.0.0.1",
        "XMLC_GATEWAY_PORT": str(gw),
        "XMLC_PROMETHEUS_PORT": str(prom),
        "XMLC_BASE_IMAGE": build_env(build.stdout, "XMLC_BASE_IMAGE"),
        "XMLC_OS_IMAGE": build_env(build.stdout, "XMLC_OS_IMAGE"),
        "COMPOSE_DOCKER_CLI_BUILD": "0",
        "DOCKER_BUILDKIT": "0",
    }
    s = Stack(f"xmlctest{os.getpid()}", env, f"http://127.0.0.1:{gw}", f"http://127.0.0.1:{prom}")
    try:
        s.compose("up", "-d", "--no-build", "--scale", "api=2", timeout=600)
        wait_until("2 healthy replicas", lambda: s.healthy_replicas() == 2, 180)
        wait_until("the gateway", lambda: httpx.get(f"{s.gateway}/ready", timeout=2).status_code == 200, 60)
        yield s
    finally:
        logs = s.compose("logs", "--no-color", "--tail", "60", check=False, timeout=60)
        (tmp_path_factory.getbasetemp() / "stack.log").write_text(logs)
        s.compose("down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=300)


def build_env(output: str, name: str) -> str:
    """The base images deploy/build.sh used (it prints them), so compose builds nothing new."""
    for line in output.splitlines():
        if line.startswith("built in") and " on " in line:
            base, os_image = line.split(" on ", 1)[1].rstrip(":").split(" / ")
            return base if name == "XMLC_BASE_IMAGE" else os_image
    return ""


def retried(stack: Stack, since: str, until: str = "9999") -> Counter[str]:
    """Requests the gateway sent to a second replica (its log's upstream lists two addresses), by the
    statuses of the tries ("503, 200": a draining replica, then another; "504, 200": a connect timeout
    to a replica that just left; "502, 200": refused or reset)."""
    out = stack.compose("logs", "--no-color", "gateway", check=False)
    n: Counter[str] = Counter()
    for line in out.splitlines():
        brace = line.find("{")
        if brace < 0:
            continue
        try:
            entry = json.loads(line[brace:])
        except ValueError:
            continue
        if (
            entry.get("uri") == "/predict"
            and since <= entry.get("time", "") < until
            and "," in entry.get("upstream", "")
        ):
            n[entry.get("upstream_status", "")] += 1
    return n


def live_targets(stack: Stack) -> set[str]:
    r = httpx.get(f"{stack.prometheus}/api/v1/targets", timeout=5).json()
    return {
        t["labels"]["replica"]
        for t in r["data"]["activeTargets"]
        if t["labels"].get("job") == "xmlc-api" and t["health"] == "up"
    }


def replica_addresses(stack: Stack) -> set[str]:
    template = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    return {f"{stack.inspect(cid, template)}:8000" for cid in stack.api_containers()}


def test_scaling_killing_and_a_redis_restart_under_load(stack: Stack) -> None:
    report: dict[str, object] = {}

    def now() -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S")  # the gateway log's clock (UTC in both)

    marks = [now()]
    with Load(stack.gateway) as load:
        time.sleep(3)
        for n in (4, 1):
            stack.scale(n)
            time.sleep(3)
        report["scaling"] = dict(load.outcomes)
        assert load.failures == [], load.failures[:5]

        stack.scale(2)
        marks.append(now())
        victim = stack.api_containers()[0]
        subprocess.run(["docker", "kill", victim], check=True, capture_output=True)
        time.sleep(5)
        report["kill"] = dict(load.outcomes)
        assert load.failures == [], load.failures[:5]

        marks.append(now())
        stack.compose("restart", "-t", "1", "redis")
        back = time.monotonic()

        def cache_answers() -> bool:
            with httpx.Client(timeout=5, trust_env=False) as c:
                body = {"text": "a document for the cache after the restart", "k": 3}
                c.post(f"{stack.gateway}/predict", json=body)
                return c.post(f"{stack.gateway}/predict", json=body).headers.get("X-Cache") == "hit"

        wait_until("the cache to answer again", cache_answers, 30)
        report["cache_back_s"] = round(time.monotonic() - back, 1)
        time.sleep(2)
    report["outcomes"] = dict(load.outcomes)
    marks.append("9999")
    report["retried_by_gateway"] = {
        phase: dict(retried(stack, a, b))
        for phase, a, b in zip(("scaling", "kill", "redis"), marks[:-1], marks[1:], strict=True)
    }
    print("\n" + json.dumps(report))
    assert load.failures == [], load.failures[:5]
    assert load.outcomes["200"] > 100
    assert report["cache_back_s"] <= 5  # type: ignore[operator]
    stack.scale(2)
    wait_until(
        "Prometheus to scrape every live replica", lambda: live_targets(stack) == replica_addresses(stack), 60
    )
