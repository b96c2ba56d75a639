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
from types import FrameType

import uvicorn
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings

log = logging.getLogger("xmlc.service")
KEEP_ALIVE_S = 75  # longer than ingress-nginx's upstream keep-alive (60 s): the proxy closes first


class DrainingServer(uvicorn.Server):
    """A uvicorn server that tells the app it is draining before it stops taking connections."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        predictor = getattr(self.app.state, "predictor", None)
        if predictor is not None and not predictor.draining:
            log.info("signal %s: draining (ready -> 503, finishing the requests in flight)", sig)
            predictor.draining = True
        super().handle_exit(sig, frame)


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve ``settings`` on ``host:port`` until a signal; then drain and exit."""
    logging.basicConfig(level=logging.INFO)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
    )
    DrainingServer(config, app).run()
