"""HTTP routes: /predict, /health, /ready, /model, /metrics and /admin/reload."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.batching import Overloaded
from app.cache import cache_key
from app.local_cache import ANSWERED_BY
from app.schemas import ErrorResponse, ModelInfo, PredictRequest, PredictResponse, ReloadRequest
from app.state import ServiceState
from xmlc.bundle import BundleError

router = APIRouter()

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong X-API-Key."},
    413: {"model": ErrorResponse, "description": "Body over the size limit."},
    422: {
        "model": ErrorResponse,
        "description": "Invalid input (types, empty text, k or batch out of range).",
    },
    429: {"model": ErrorResponse, "description": "Overloaded: retry after the Retry-After seconds."},
    503: {"model": ErrorResponse, "description": "No model loaded yet."},
}


# Dependencies are `async def`: FastAPI runs plain `def` ones in a thread pool, a thread hop per call.
async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.xmlc
    return state


State = Annotated[ServiceState, Depends(get_state)]


async def require_api_key(state: State, x_api_key: Annotated[str | None, Header()] = None) -> None:
    key = state.settings.api_key
    if key and x_api_key != key:
        raise HTTPException(401, "missing or wrong X-API-Key")


async def require_admin(state: State, x_api_key: Annotated[str | None, Header()] = None) -> None:
    key = state.settings.admin_key or state.settings.api_key
    if not key:
        raise HTTPException(403, "admin calls are disabled: set XMLC_ADMIN_KEY")
    if x_api_key != key:
        raise HTTPException(401, "missing or wrong X-API-Key")


@router.post(
    "/predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    responses=ERRORS,
    dependencies=[Depends(require_api_key)],
)
async def predict(body: PredictRequest, state: State, request: Request) -> Response:
    """Top-k labels (id, name, score) for one document or a batch."""
    s = state.settings
    docs = body.docs()
    if body.k > s.max_k:
        raise HTTPException(422, f"k must be at most {s.max_k}")
    if len(docs) > s.max_batch_docs:
        raise HTTPException(422, f"at most {s.max_batch_docs} documents per request, got {len(docs)}")
    texts = [d.full_text for d in docs]
    if any(len(t) > s.max_text_chars for t in texts):
        raise HTTPException(422, f"a document is longer than {s.max_text_chars} characters")
    pipeline = state.pipeline
    if pipeline is None or state.batcher is None:
        raise HTTPException(503, "model not loaded yet")
    version = pipeline.version
    results: list[list[dict[str, Any]] | None] = [None] * len(texts)
    keys_version = version
    keys = [cache_key(version, t, body.k, body.threshold) for t in texts]
    headers: dict[str, str] = {}
    if state.cache:
        t0 = time.perf_counter()
        cached = await state.cache.get_many(keys)
        state.metrics.stage.labels(stage="cache_lookup").observe(time.perf_counter() - t0)
        for i, value in enumerate(cached):
            if isinstance(value, list):
                results[i] = value
        hits = sum(r is not None for r in results)
        state.metrics.cache.labels(result="hit").inc(hits)
        state.metrics.cache.labels(result="miss").inc(len(texts) - hits)
        headers["X-Cache"] = "hit" if hits == len(texts) else ("partial" if hits else "miss")
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        try:
            predicted = await state.batcher.submit([texts[i] for i in missing], body.k)
        except Overloaded as e:
            state.metrics.rejected.inc()
            raise HTTPException(429, f"overloaded: {e}; retry shortly", headers={"Retry-After": "1"}) from e
        fresh = {}
        for i, (used, labels) in zip(missing, predicted, strict=True):
            rows = [
                {"id": x.id, "name": x.name, "score": round(x.score, 6)}
                for x in labels[: body.k]
                if body.threshold is None or x.score >= body.threshold
            ]
            results[i] = rows
            if used is not pipeline:  # a reload landed while this request waited
                pipeline, version = used, used.version
            same = used.version == keys_version
            fresh[keys[i] if same else cache_key(used.version, texts[i], body.k, body.threshold)] = rows
        if state.cache:
            await state.cache.set_many(fresh)
    out: dict[str, Any] = {"model": pipeline.name, "version": version}
    if body.documents is None:
        out["labels"] = results[0]
    else:
        out["results"] = [{"labels": r} for r in results]
    request.scope[ANSWERED_BY] = version  # the local answer cache stores it only under this version
    # Built by us and documented by response_model: skip FastAPI's second validation on the hot path.
    return JSONResponse(out, headers=headers)


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready", responses={503: ERRORS[503]})
async def ready(state: State) -> dict[str, Any]:
    """Readiness: 503 until the bundle is loaded and warmed."""
    if state.pipeline is None:
        raise HTTPException(503, "model not loaded yet")
    cache = None if state.cache is None else await state.cache.ping()
    return {"status": "ready", "version": state.pipeline.version, "cache": cache}


@router.get("/model", response_model=ModelInfo, responses={503: ERRORS[503]})
async def model(state: State) -> dict[str, Any]:
    """The loaded model: name, version, method, sizes (from its manifest)."""
    if state.pipeline is None:
        raise HTTPException(503, "model not loaded yet")
    return state.model_summary()


@router.get("/metrics", include_in_schema=False)
async def metrics(state: State) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.post(
    "/admin/reload",
    response_model=ModelInfo,
    dependencies=[Depends(require_admin)],
    responses={
        401: ERRORS[401],
        403: {"model": ErrorResponse, "description": "Admin disabled."},
        409: {
            "model": ErrorResponse,
            "description": "The new bundle failed to load; the old model keeps serving.",
        },
    },
)
async def reload(state: State, body: ReloadRequest | None = None) -> dict[str, Any]:
    """Load a bundle beside the current model and swap atomically; a broken bundle leaves the old one."""
    path = Path(body.bundle) if body and body.bundle else (state.bundle_path or state.settings.bundle)
    try:
        await state.reload(path)
    except (BundleError, OSError, ValueError) as e:
        raise HTTPException(
            409,
            f"reload failed, still serving version {state.pipeline.version if state.pipeline else None}: {e}",
        ) from e
    return state.model_summary()
