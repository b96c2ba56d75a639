"""In-process LRU of whole POST /predict answers, served before FastAPI routing and pydantic validation.

Why: a Redis hit still pays routing, request validation, a Redis round trip and JSON encoding, several
times what a do-nothing endpoint costs. Services see the same request bodies again and again (retries,
popular documents), so this pure ASGI middleware keeps the exact bytes of recent 200 answers keyed by
sha256(model version, content type, raw body) and answers a repeat with a hash and a dict lookup.
Redis stays the shared cache behind it: a local miss goes on to the route as before.

It stays correct because:

- the API key (``X-API-Key``, when configured) is checked before a hit is served; anything doubtful goes
  on to the route, which answers 401 itself;
- the key holds the loaded model's version, and an answer is stored only when the route reports (in the
  ASGI scope, under `ANSWERED_BY`) that this same version computed it, so a reload never serves an old
  model's answer (the service also clears the cache when it installs a model, to free the memory);
- only 200 answers are stored, and the whole body is stored or nothing;
- it sits inside the body size limit and the request metrics middleware, so both still apply; hits are
  labelled with the /predict route in the latency histogram and counted in ``xmlc_local_cache_total``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import key_matches
from app.metrics import ServiceMetrics
from app.middleware import replay_body

# Scope key the route sets to the model version its answer reports (see module docstring).
ANSWERED_BY = "xmlc.answered_by"
# Rough per-entry bookkeeping (dict slot, key, tuple, bytes objects) counted against the byte budget.
ENTRY_OVERHEAD = 200

Headers = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True)
class RouteLabel:
    """Stands in for the Starlette route in ``scope["route"]``: the metrics middleware reads its path."""

    path: str


def request_key(version: str, content_type: bytes, body: bytes) -> bytes:
    """sha256 over the length-prefixed version and content type, then the raw body: unambiguous."""
    h = hashlib.sha256()
    for part in (version.encode(), content_type):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    h.update(body)
    return h.digest()


class LocalCache:
    """A bounded LRU of answers (headers, body): at most ``max_entries`` and about ``max_bytes``."""

    def __init__(
        self, max_entries: int, max_bytes: int, on_size: Callable[[int], None] | None = None
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._entries: OrderedDict[bytes, tuple[Headers, bytes]] = OrderedDict()
        self.on_size = on_size or (lambda n: None)  # told the entry count after every change (a gauge)

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _size(key: bytes, headers: Headers, body: bytes) -> int:
        return ENTRY_OVERHEAD + len(key) + len(body) + sum(len(n) + len(v) for n, v in headers)

    def get(self, key: bytes) -> tuple[Headers, bytes] | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: bytes, headers: Headers, body: bytes) -> None:
        """Store (or refresh) an answer, then drop the least recently used ones beyond the bounds."""
        size = self._size(key, headers, body)
        if not self.enabled or size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.nbytes -= self._size(key, *old)
        self._entries[key] = (headers, body)
        self.nbytes += size
        while len(self._entries) > self.max_entries or self.nbytes > self.max_bytes:
            dropped_key, dropped = self._entries.popitem(last=False)
            self.nbytes -= self._size(dropped_key, *dropped)
        self.on_size(len(self._entries))

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0
        self.on_size(0)


class LocalCacheMiddleware:
    """Answers a repeated POST ``path`` from `LocalCache`; everything else goes to the app unchanged."""

    def __init__(
        self,
        app: ASGIApp,
        cache: LocalCache,
        metrics: ServiceMetrics,
        version: Callable[[], str | None],
        api_key: str | None,
        path: str = "/predict",
    ) -> None:
        self.app = app
        self.cache = cache
        self.version = version
        self.api_key = api_key.encode("latin-1") if api_key else None
        self.path = path
        self.route = RouteLabel(path)
        self.hits = metrics.local_cache.labels(result="hit")
        self.misses = metrics.local_cache.labels(result="miss")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != self.path
            or not self.cache.enabled
        ):
            await self.app(scope, receive, send)
            return
        version = self.version()
        content_type, authorised = self._inspect(scope)
        if version is None or not authorised:
            await self.app(scope, receive, send)  # not loaded yet, or the route answers 401
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        key = request_key(version, content_type, body)
        entry = self.cache.get(key)
        if entry is not None:
            self.hits.inc()
            scope["route"] = self.route
            headers, answer = entry
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": answer})
            return
        self.misses.inc()
        await self.app(scope, replay_body(body, receive), self._recorder(scope, send, key, version))

    def _inspect(self, scope: Scope) -> tuple[bytes, bool]:
        """The content type(s), and whether the request carries exactly one, right API key (if one is set)."""
        types: list[bytes] = []
        keys: list[bytes] = []
        for name, value in scope["headers"]:
            if name == b"content-type":
                types.append(value)
            elif name == b"x-api-key":
                keys.append(value)
        content_type = types[0] if len(types) == 1 else b"\n".join(types)  # header values hold no newline
        if self.api_key is None:
            return content_type, True
        return content_type, len(keys) == 1 and key_matches(keys[0], self.api_key)

    def _recorder(self, scope: Scope, send: Send, key: bytes, version: str) -> Send:
        """A ``send`` that passes everything on and stores a whole 200 answer of ``version``."""
        headers: Headers | None = None
        chunks: list[bytes] = []

        async def record(message: Message) -> None:
            nonlocal headers
            await send(message)
            if message["type"] == "http.response.start":
                if message["status"] == 200:
                    headers = _hit_headers(message.get("headers", ()))
            elif message["type"] == "http.response.body" and headers is not None:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False) and scope.get(ANSWERED_BY) == version:
                    self.cache.put(key, headers, b"".join(chunks))

        return record


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body (its size is already bounded by the body limit middleware outside)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _hit_headers(raw: Iterable[tuple[bytes, bytes]]) -> Headers:
    """The answer's headers with ``x-cache: hit`` in place of whatever the first answer said."""
    kept = tuple((bytes(n), bytes(v)) for n, v in raw if bytes(n).lower() != b"x-cache")
    return (*kept, (b"x-cache", b"hit"))
