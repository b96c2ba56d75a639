"""Running the service under uvicorn, with a graceful drain on SIGTERM.

On the first SIGTERM (or SIGINT) a replica turns ``/ready`` to 503 and answers new ``/predict`` calls with
503 and ``Retry-After`` (the gateway sends them to another replica: the work never started), stops
accepting connections, answers every request it already holds, and exits; uvicorn gives in-flight
requests ``XMLC_SHUTDOWN_GRACE_S`` before it closes them. The timeouts around it agree (deploy/README.md):
the container's stop grace period and Kubernetes' termination grace period are longer than this one,
and the gateway's keep-alive to a replica is shorter than the replica's, so a connection is never
reused by the gateway just as the replica closes it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import uvicorn

from app.main import create_app
from app.metrics import MULTIPROCESS_ENV
from app.settings import Settings

log = logging.getLogger("xmlc.service")
KEEP_ALIVE_S = 75  # longer than ingress-nginx's upstream keep-alive (60 s): the proxy closes first


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve ``settings`` on ``host:port`` until a signal; then drain and exit (one process), or as
    ``settings.workers`` processes sharing the port (`serve_workers`)."""
    if settings.workers > 1:
        serve_workers(settings, host, port)
        return
    logging.basicConfig(level=logging.INFO)
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
    )
    uvicorn.Server(config).run()


def serve_workers(settings: Settings, host: str, port: int) -> None:
    """Several service processes on one port (uvicorn's supervisor restarts one that dies).

    Each worker reads its settings from ``XMLC_*`` variables, so every setting, command-line overrides
    included, is exported first; the workers' metrics go to one multiprocess folder, emptied here, that
    each worker's /metrics sums (`app.metrics`). uvicorn passes SIGTERM on to every worker, and each
    drains as one process does (`app.main.drain_on_signals`).
    """
    logging.basicConfig(level=logging.INFO)
    folder = Path(os.environ.get(MULTIPROCESS_ENV) or tempfile.mkdtemp(prefix="xmlc-metrics-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):  # an earlier run's counts
        stale.unlink()
    os.environ[MULTIPROCESS_ENV] = str(folder)
    for name, value in settings.model_dump(exclude_none=True).items():
        os.environ[f"XMLC_{name.upper()}"] = str(value)
    log.info("%d worker processes, metrics in %s", settings.workers, folder)
    uvicorn.run(
        "app.main:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=settings.workers,
        log_level="info",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
    )
