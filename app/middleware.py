"""Pure ASGI middleware: request metrics and the body size limit (413 before the body is parsed).

The in-process answer cache is a middleware too, in `app.local_cache`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import ServiceMetrics


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes``: by Content-Length up front, else while reading a chunked body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await _send_json(send, 413, f"request body over {self.max_bytes} bytes")
                    return
        has_length = any(name == b"content-length" for name, _ in scope.get("headers", []))
        if has_length:
            await self.app(scope, receive, send)
            return
        # Chunked body: read it up to the limit before the app sees it, then replay it.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await _send_json(send, 413, f"request body over {self.max_bytes} bytes")
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, replay_body(b"".join(chunks), receive), send)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app a body already read, in one message, then the real channel."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# Probes and scrapes are not load: counted in flight, a scrape would read itself (one request a replica
# at idle), which bends the autoscaler's metric away from request rate x latency.
NOT_LOAD = frozenset({"/metrics", "/health", "/ready"})


class MetricsMiddleware:
    """Latency histogram by route template, method and status; the in-flight gauge (work requests only:
    the autoscaler's metric, deploy/README.md)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        t0 = time.perf_counter()

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        load = scope["path"] not in NOT_LOAD
        if load:
            self.metrics.inflight.inc()
        try:
            await self.app(scope, receive, tracking_send)
        finally:
            if load:
                self.metrics.inflight.dec()
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(route=path, method=scope["method"], status=str(status)).observe(
                time.perf_counter() - t0
            )


async def _send_json(send: Send, status: int, detail: Any) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
