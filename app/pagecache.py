"""A cache of rendered step pages: stepping through a scenario costs a dict lookup.

A step page (`/scenarios/<slug>?step=N`, `/play?source=...&step=N`,
`/compare/<slug>?...`, and their htmx fragments and twins) is a pure
function of its URL and of the request headers it varies on: the run comes
from the run cache, and rendering it is the same every time. Rendering a
step still costs milliseconds of Python, so under load (32 connections
stepping at once) the latency would grow with the queue. `PageCache`
keeps the last responses, as sent (compressed or not), keyed by path,
query and those headers, up to MAX_PAGE_CACHE_BYTES; `CachedPages` is the
middleware that answers from it and fills it. The warm-up (app/warmup.py)
fills it at start through the same middleware.

Only GET answers with status 200 are kept, and only for the paths above.
A short link's page (`/s/<id>`) is kept too: a stored link is written once
and never changed, so its 200 page is the same until the engine changes
(a new process); a link not found (404) or a store away (503) is not kept.
A `.txt` twin names the origin it was asked on (its `Link:` line), so its
key holds the scheme and Host too, unless the server has one public origin
(MREMAP_VIZ_PUBLIC_URL, app/config.py).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.limits import MAX_PAGE_CACHE_BYTES, MAX_PAGE_CACHE_ENTRY_BYTES

PREFIXES = ("/scenarios/", "/play", "/compare/", "/s/")
PATHS = ("/", "/index.json", "/index.txt")
"""The gallery: a function of the packaged scenarios alone."""
VARY = (b"hx-request", b"hx-history-restore-request")
ORIGIN_DEPENDENT = (".txt",)
"""Paths whose body names the origin the request was made to."""

Key = tuple[str, bytes, bool, tuple[bytes, ...]]
Page = tuple[Message, bytes]
"""A response as sent: its http.response.start message and its whole body."""


def page_key(scope: Scope, by_origin: bool = True) -> Key | None:
    """The cache key of a request, or None if its answer is never cached; with
    `by_origin`, a `.txt` twin's key holds the origin asked for."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return None
    path: str = scope["path"]
    if not path.startswith(PREFIXES) and path not in PATHS:
        return None
    by_origin = by_origin and path.endswith(ORIGIN_DEPENDENT)
    gzip = False
    vary = []
    for name, value in scope.get("headers", []):
        name = name.lower()
        if name == b"accept-encoding":
            gzip = b"gzip" in value
        elif name in VARY or (name == b"host" and by_origin):
            vary.append(name + b"=" + value)
    if by_origin:
        vary.append(b"scheme=" + str(scope.get("scheme", "http")).encode())
    return path, scope.get("query_string", b""), gzip, tuple(sorted(vary))


class PageCache:
    """An LRU of whole responses, at most `max_bytes` of bodies, none over
    `max_entry`; safe across threads."""

    def __init__(
        self, max_bytes: int = MAX_PAGE_CACHE_BYTES, max_entry: int = MAX_PAGE_CACHE_ENTRY_BYTES
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entry = max_entry
        self._pages: OrderedDict[Key, Page] = OrderedDict()
        self.bytes = 0
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: Key) -> Page | None:
        with self._lock:
            hit = self._pages.get(key)
            if hit is not None:
                self._pages.move_to_end(key)
                self.hits += 1
            return hit

    def holds(self, key: Key) -> bool:
        """Whether `key` is cached (not counted as a hit)."""
        with self._lock:
            return key in self._pages

    def room_for(self, size: int) -> bool:
        """Whether a body of `size` bytes fits without pushing another page out."""
        with self._lock:
            return self.bytes + size <= self.max_bytes

    def put(self, key: Key, start: Message, body: bytes) -> None:
        with self._lock:
            if key in self._pages:
                return
            self._pages[key] = (start, body)
            self.bytes += len(body)
            while self.bytes > self.max_bytes and self._pages:
                self.bytes -= len(self._pages.popitem(last=False)[1][1])

    def __len__(self) -> int:
        return len(self._pages)


class CachedPages:
    """The middleware: answers a cached GET from `cache`, keeps a new 200 answer.
    `by_origin`: the server has no one public origin (see page_key)."""

    def __init__(self, app: ASGIApp, cache: PageCache, by_origin: bool = True) -> None:
        self.app = app
        self.cache = cache
        self.by_origin = by_origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = page_key(scope, self.by_origin)
        if key is None:
            await self.app(scope, receive, send)
            return
        hit = self.cache.get(key)
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
                if size > self.cache.max_entry:
                    keep = False
                    chunks.clear()
                else:
                    chunks.append(body)
                if not message.get("more_body", False) and keep and start_message is not None:
                    self.cache.put(key, start_message, b"".join(chunks))
            await send(message)

        await self.app(scope, receive, capture)
