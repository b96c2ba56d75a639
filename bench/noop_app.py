"""A do-nothing FastAPI app: the baseline (a) of `bench.bench_service`.

POST /predict takes the same JSON body as the real service (parsed and validated by a pydantic model
with ``text``, ``title`` and ``k``) and answers a small fixed JSON; no model, no cache, no middleware.
Run it exactly like the service (one worker, access log off):

    python -m uvicorn bench.noop_app:app --host 127.0.0.1 --port 8001 --workers 1 --no-access-log
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

app = FastAPI(title="noop")

_ANSWER: dict[str, Any] = {"model": "noop", "version": "0", "labels": []}


class NoopRequest(BaseModel):
    text: str
    title: str = ""
    k: int = Field(5, ge=1)


@app.post("/predict")
async def predict(body: NoopRequest) -> dict[str, Any]:
    return _ANSWER


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
