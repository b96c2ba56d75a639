"""API keys: the one way keys are compared (constant time), and the route dependencies that need them.

`/predict` needs ``X-API-Key`` when ``XMLC_API_KEY`` is set; `/admin/*` needs ``XMLC_ADMIN_KEY`` (or the
API key) and is off without one. The in-process answer cache checks the same key with `key_matches`.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Header, HTTPException, Request

from app.settings import Settings


def key_matches(given: str | bytes | None, expected: str | bytes) -> bool:
    """Whether ``given`` is ``expected``, in time that does not depend on where they differ."""
    if given is None:
        return False
    a = given.encode("latin-1") if isinstance(given, str) else given
    b = expected.encode("latin-1") if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


# `async def`: FastAPI runs plain `def` dependencies in a thread pool, a thread hop per call.
async def require_api_key(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> None:
    settings: Settings = request.app.state.settings
    if settings.api_key and not key_matches(x_api_key, settings.api_key):
        raise HTTPException(401, "missing or wrong X-API-Key")


async def require_admin(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> None:
    settings: Settings = request.app.state.settings
    key = settings.admin_key or settings.api_key
    if not key:
        raise HTTPException(403, "admin calls are disabled: set XMLC_ADMIN_KEY")
    if not key_matches(x_api_key, key):
        raise HTTPException(401, "missing or wrong X-API-Key")
