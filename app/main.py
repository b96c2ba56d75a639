"""The app factory: `create_app(settings)` with a lifespan that loads and warms the bundle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.cache import PredictionCache
from app.local_cache import LocalCache, LocalCacheMiddleware
from app.metrics import ServiceMetrics
from app.middleware import BodyLimitMiddleware, MetricsMiddleware
from app.predictor import Predictor
from app.routes import router
from app.settings import Settings
from app.web import mount_web

log = logging.getLogger("xmlc.service")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = ServiceMetrics()
    local_cache = LocalCache(
        settings.local_cache_size, settings.local_cache_bytes, metrics.local_cache_entries.set
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cache = None
        if settings.redis_url:
            cache = PredictionCache(
                settings.redis_url,
                settings.cache_ttl_s,
                settings.cache_timeout_s,
                settings.cache_retry_s,
                metrics,
                pool_size=settings.cache_pool_size,
                pool_wait_s=settings.cache_pool_wait_s,
                breaker_errors=settings.cache_breaker_errors,
            )
        predictor = Predictor(settings, metrics, cache, local_cache)
        app.state.predictor = predictor
        await predictor.start()  # a bundle that does not load stops the start-up, loudly
        previous = drain_on_signals(predictor)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_reload_on_signal(predictor)))
        try:
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            await predictor.stop()

    app = FastAPI(
        title="xmlc-serve",
        summary="Extreme multi-label text classification: top-k labels for a document.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by app.web from local files
        redoc_url=None,
    )
    app.state.settings = settings
    app.include_router(router)
    mount_web(app)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and "json" not in content_type:
            detail = (
                "the body must be JSON sent with 'Content-Type: application/json' "
                f"(this request said {content_type or 'nothing'!r})"
            )
            return JSONResponse({"detail": detail}, status_code=415)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    def loaded_version() -> str | None:
        predictor: Predictor | None = getattr(app.state, "predictor", None)
        model = predictor.model if predictor is not None else None
        return model.version if model is not None else None

    # Outermost last: metrics, then the body limit, then the local answer cache, then FastAPI.
    app.add_middleware(
        LocalCacheMiddleware,
        cache=local_cache,
        metrics=metrics,
        version=loaded_version,
        api_key=settings.api_key,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def drain_on_signals(predictor: Predictor) -> dict[int, Any]:
    """On SIGTERM or SIGINT, mark the replica draining, then let the server's own handler stop it.

    Chained in front of the handler uvicorn installed (one process or each of `xmlc serve --workers`):
    /ready turns 503 and new work gets 503 while the server answers what it holds (app.server). Only the
    main thread may set signal handlers; elsewhere (an app under a test client) nothing is chained.
    Returns the handlers it replaced, to put back on shutdown.
    """
    replaced: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
            if not predictor.draining:
                log.info("signal %s: draining (ready -> 503, finishing the requests in flight)", signum)
                predictor.draining = True
            if callable(previous):
                previous(signum, frame)

        try:
            signal.signal(sig, handler)
        except ValueError:  # not the main thread
            continue
        replaced[sig] = previous
    return replaced


async def _reload_on_signal(predictor: Predictor) -> None:
    try:
        await predictor.reload()
    except Exception as e:  # keep serving the old model
        log.error("SIGHUP reload of %s failed, keeping the current model: %s", predictor.bundle_path, e)


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory app.main:app_from_env` (settings from XMLC_* variables)."""
    logging.basicConfig(level=logging.INFO)
    return create_app(Settings())
