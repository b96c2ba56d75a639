"""HTTP routes: /predict, /health, /ready, /model, /metrics and /admin/reload."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request, Response

from app.auth import require_admin, require_api_key
from app.batching import DeadlineExceeded, Overloaded
from app.local_cache import ANSWERED_BY
from app.predictor import NotReady, Predictor
from app.schemas import ErrorResponse, ModelInfo, PredictRequest, PredictResponse, ReloadRequest
from app.settings import Settings
from xmlc.bundle import BundleError
from xmlc.model import UNRECOGNISED

router = APIRouter()


# `async def`: FastAPI runs plain `def` dependencies in a thread pool, a thread hop per call.
async def get_predictor(request: Request) -> Predictor:
    predictor: Predictor = request.app.state.predictor
    return predictor


PredictorDep = Annotated[Predictor, Depends(get_predictor)]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong X-API-Key."},
    413: {"model": ErrorResponse, "description": "Body over the size limit."},
    422: {
        "model": ErrorResponse,
        "description": "Invalid input (types, empty text, k or batch out of range).",
    },
    429: {"model": ErrorResponse, "description": "Overloaded: retry after the Retry-After seconds."},
    503: {
        "model": ErrorResponse,
        "description": "No model loaded yet, the replica is draining, or the request's deadline passed "
        "before the model got to it (shed); retry after the Retry-After seconds.",
    },
}


@router.post(
    "/predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    responses=ERRORS,
    dependencies=[Depends(require_api_key)],
)
async def predict(body: PredictRequest, predictor: PredictorDep, request: Request) -> Response:
    """Top-k labels (id, name, score) for one document or a batch."""
    s = predictor.settings
    docs = body.docs()
    defaults = predictor.model.defaults if predictor.model is not None else {}
    k = body.k if body.k is not None else int(defaults.get("k", 5))
    threshold = body.threshold if body.threshold is not None else defaults.get("threshold")
    if k > s.max_k:
        raise HTTPException(422, f"k must be at most {s.max_k}")
    if len(docs) > s.max_batch_docs:
        raise HTTPException(422, f"at most {s.max_batch_docs} documents per request, got {len(docs)}")
    if any(len(d.body) > s.max_text_chars for d in docs):
        raise HTTPException(422, f"a document is longer than {s.max_text_chars} characters")
    try:
        answer = await predictor.predict(docs, k, threshold, request_deadline(request, s))
    except NotReady as e:
        raise HTTPException(503, str(e), headers={"Retry-After": "1"}) from e
    except DeadlineExceeded as e:
        raise HTTPException(503, str(e), headers={"Retry-After": "1"}) from e
    except Overloaded as e:
        retry = {"Retry-After": str(e.retry_after_s)}
        raise HTTPException(429, f"overloaded: {e}; retry in {e.retry_after_s} s", headers=retry) from e
    out: dict[str, Any] = {"model": answer.name, "version": answer.version}
    unknown = set(answer.unrecognised)
    if body.documents is None:
        out["labels"] = answer.results[0]
        if unknown:
            out["warning"] = UNRECOGNISED
    else:
        out["results"] = [
            {"labels": r, **({"warning": UNRECOGNISED} if i in unknown else {})}
            for i, r in enumerate(answer.results)
        ]
    request.scope[ANSWERED_BY] = answer.version  # the local answer cache stores it only under this version
    headers = {"X-Cache": answer.cache} if answer.cache else {}
    # Built by us and documented by response_model: skip FastAPI's second validation on the hot path.
    return Response(orjson.dumps(out), media_type="application/json", headers=headers)


def request_deadline(request: Request, settings: Settings) -> float:
    """Epoch seconds by which the answer is due: ``XMLC_REQUEST_TIMEOUT_S`` after the gateway got the
    request (its ``X-Request-Start: t=SECONDS``), or after this replica did when no gateway said."""
    start = time.time()
    header = request.headers.get("x-request-start", "")
    if header.startswith("t="):
        with contextlib.suppress(ValueError):
            start = min(start, float(header[2:]))  # a clock ahead of ours never extends the budget
    return start + settings.request_timeout_s


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready", responses={503: ERRORS[503]})
async def ready(predictor: PredictorDep) -> dict[str, Any]:
    """Readiness: 503 until the bundle is loaded and warmed, and again once the replica drains."""
    if predictor.draining:
        raise HTTPException(503, "draining")
    if predictor.model is None:
        raise HTTPException(503, "model not loaded yet")
    cache = None if predictor.cache is None else await predictor.cache.ping()
    return {"status": "ready", "version": predictor.model.version, "cache": cache}


@router.get("/model", response_model=ModelInfo, responses={503: ERRORS[503]})
async def model(predictor: PredictorDep) -> dict[str, Any]:
    """The loaded model: name, version, method, sizes (from its manifest)."""
    try:
        return predictor.summary()
    except NotReady as e:
        raise HTTPException(503, str(e)) from e


@router.get("/metrics", include_in_schema=False)
async def metrics(predictor: PredictorDep) -> Response:
    body, media_type = predictor.metrics.render()
    return Response(body, media_type=media_type)


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
async def reload(predictor: PredictorDep, body: ReloadRequest | None = None) -> dict[str, Any]:
    """Load a bundle beside the current model and swap atomically; a broken bundle leaves the old one."""
    try:
        await predictor.reload(Path(body.bundle) if body and body.bundle else None)
    except (BundleError, OSError, ValueError) as e:
        version = predictor.model.version if predictor.model else None
        raise HTTPException(409, f"reload failed, still serving version {version}: {e}") from e
    return predictor.summary()
