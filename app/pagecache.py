"""A cache of rendered step pages: stepping through a scenario costs a dict lookup.

A step page (`/scenarios/<slug>?step=N`, `/play?source=...&step=N`,
`/compare/<slug>?...`, and their htmx fragments and twins) is a pure
function of its URL and of the request headers it varies on: the run comes
from the run cache, and rendering it is the same every time. Rendering a
step still costs milliseconds of Python, so under load (32 connections
stepping at once) the latency would grow with the queue. `PageCache`
keeps the last responses, as sent (compressed or not), keyed by path,
query and those headers, up to MAX_PAGE_CACHE_BYTES.

Only GET answers with status 200 are kept, and only for the paths above.
A short link's page (`/s/<id>`) is kept too: a stored link is written once
and never changed, so its 200 page is the same until the engine changes
(a new process); a link not found (404) or a store away (503) is not kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.limits import MAX_PAGE_CACHE_BYTES, MAX_PAGE_CACHE_ENTRY_BYTES

PREFIXES = ("/scenarios/", "/play", "/compare/", "/s/")
PATHS = ("/", "/index.json")
"""The gallery: a function of the packaged scenarios alone."""
VARY = (b"hx-request", b"hx-history-restore-request")

Key = tuple[str, bytes, bool, tuple[bytes, ...]]


class PageCache:
    """An LRU of whole responses (start message and body) to GETs of step pages."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = MAX_PAGE_CACHE_BYTES,
        max_entry: int = MAX_PAGE_CACHE_ENTRY_BYTES,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_entry = max_entry
        self._pages: OrderedDict[Key, tuple[Message, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0

    def _key(self, scope: Scope) -> Key | None:
        if scope["type"] != "http" or scope["method"] != "GET":
            return None
        path: str = scope["path"]
        if not path.startswith(PREFIXES) and path not in PATHS:
            return None
        gzip = False
        vary = []
        for name, value in scope.get("headers", []):
            name = name.lower()
            if name == b"accept-encoding":
                gzip = b"gzip" in value
            elif name in VARY:
                vary.append(name + b"=" + value)
        return path, scope.get("query_string", b""), gzip, tuple(sorted(vary))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = self._key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        with self._lock:
            hit = self._pages.get(key)
            if hit is not None:
                self._pages.move_to_end(key)
                self.hits += 1
        if hit is not None:
            start, body = hit
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return

        start_message: Message | None = None
        chunks: list[bytes] = []
        size = 0
        keep = True

        async def capture(message: Message) -> None:
            nonlocal start_message, size, keep
            if message["type"] == "http.response.start":
                start_message = message
                keep = message["status"] == 200
            elif message["type"] == "http.response.body" and keep:
                body = message.get("body", b"")
                size += len(body)
                if size > self.max_entry:
                    keep = False
                    chunks.clear()
                else:
                    chunks.append(body)
                if not message.get("more_body", False) and keep and start_message is not None:
                    self._store(key, start_message, b"".join(chunks))
            await send(message)

        await self.app(scope, receive, capture)

    def _store(self, key: Key, start: Message, body: bytes) -> None:
        with self._lock:
            if key in self._pages:
                return
            self._pages[key] = (start, body)
            self._bytes += len(body)
            while self._bytes > self.max_bytes and self._pages:
                self._bytes -= len(self._pages.popitem(last=False)[1][1])

    def __len__(self) -> int:
        return len(self._pages)
