"""Servers for `bench.bench_service`: start uvicorn on a free port, watch its CPU and log, talk to Redis."""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process and its live child processes (a server's workers), all
    their threads (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError, ValueError):
            children += [int(c) for c in task.read_text().split()]
    return own + sum(proc_cpu_s(c) or 0.0 for c in children)


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    command: str
    log_path: Path
    log_lines: tuple[str, ...] = ()  # warnings and errors from its whole log, once stopped
    ready_s: float = 0.0  # from the process's start to its first ready answer

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cpu_s(self) -> float | None:
        return proc_cpu_s(self.proc.pid)

    def cache_errors(self) -> float | None:
        """The service's ``xmlc_cache_errors_total`` (Redis errors); None where there is no such metric."""
        import httpx

        try:
            text = httpx.get(self.url + "/metrics", timeout=10).text
        except httpx.HTTPError:
            return None
        values = [
            float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith("xmlc_cache_errors_total")
        ]
        return sum(values) if values else (0.0 if "xmlc_cache_total" in text else None)

    def mark(self) -> tuple[int, float | None]:
        """Where the log and the Redis error count stand now (see `since`)."""
        return self.log_path.stat().st_size, self.cache_errors()

    def since(self, mark: tuple[int, float | None]) -> dict[str, Any]:
        """Warning and error lines logged, and Redis errors counted, since ``mark``."""
        offset, errors0 = mark
        with self.log_path.open("rb") as f:
            f.seek(offset)
            problems = _problems(f.read().decode(errors="replace"))
        errors1 = self.cache_errors()
        return {
            "server_log_problems": len(problems),
            "server_log_sample": problems[:5],
            "redis_errors": None if errors0 is None or errors1 is None else int(errors1 - errors0),
        }


def _problems(text: str) -> list[str]:
    marks = ("WARNING", "ERROR", "Traceback", "CRITICAL")
    return [line for line in text.splitlines() if any(m in line for m in marks)]


def uvicorn_command(target: str, port: int, factory: bool, workers: int = 1) -> list[str]:
    cmd = [sys.executable, "-m", "uvicorn", target]
    if factory:
        cmd.append("--factory")
    return [*cmd, "--host", HOST, "--port", str(port), "--workers", str(workers), "--no-access-log"]


@contextlib.contextmanager
def start_server(
    name: str,
    target: str,
    env: dict[str, str],
    ready_path: str,
    log_dir: Path,
    factory: bool = False,
    cpus: str | None = None,
    workers: int = 1,
) -> Iterator[Server]:
    """A uvicorn server on a free port, ready; ``cpus`` pins it (``taskset -c``), as a CPU limit would;
    ``workers`` processes share the port and one prometheus-client multiprocess folder (as `xmlc serve
    --workers` runs them)."""
    import httpx

    port = free_port()
    cmd = uvicorn_command(target, port, factory, workers)
    if workers > 1:
        metrics_dir = log_dir / f"{name}-metrics"
        metrics_dir.mkdir(exist_ok=True)
        env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    log_path = log_dir / f"{name}.log"
    shown_env = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    shown = (shown_env + " " if shown_env else "") + shlex.join(
        [("python" if c == sys.executable else c) for c in cmd]
    )
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=log)
    server = Server(name, port, proc, shown, log_path)
    started = time.monotonic()
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{_tail(log_path)}")
            try:
                if httpx.get(server.url + ready_path, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after 600 s:\n{_tail(log_path)}")
            time.sleep(0.2)
        server.ready_s = time.monotonic() - started
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with contextlib.suppress(OSError):
            server.log_lines = tuple(_problems(log_path.read_text(errors="replace")))


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def redis_problem(url: str) -> str | None:
    try:
        import redis
    except ImportError:
        return "the redis package is not installed (pip install -e '.[serve]')"
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as e:  # any failure means: no usable Redis
        return f"no Redis at {url} ({e})"
    finally:
        client.close()
    return None


def check_predict(server: Server, body: str) -> str | None:
    """One request, then the same again: returns the second answer's X-Cache (checks the service works)."""
    import httpx

    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(2):
            r = client.post("/predict", content=body, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"/predict answered {r.status_code}: {r.text[:500]}")
        return r.headers.get("x-cache")


def prewarm(server: Server, bodies: list[str]) -> Counter[str]:
    """Send each body twice; returns the X-Cache values of the second round (all "hit" when it worked)."""
    import httpx

    headers = {"Content-Type": "application/json"}
    seen: Counter[str] = Counter()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for round_ in range(2):
            for body in bodies:
                r = client.post("/predict", content=body, headers=headers)
                if round_:
                    seen[r.headers.get("x-cache", "none")] += 1
    return seen
