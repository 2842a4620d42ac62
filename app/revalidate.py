"""HTML pages (and their twins) revalidate: an ETag of the body, Cache-Control: no-cache.

A page is a function of its URL, the engine and the store, so a browser
may keep it but must ask again; `Revalidate` hashes each GET answer's body
as sent (after compression, so each encoding has its own tag) and answers
304 with no body when If-None-Match names it. Answers that set their own
ETag or Cache-Control (static files, app/assets.py) pass through unchanged.
"""

from __future__ import annotations

import hashlib

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

KEPT_ON_304 = ("etag", "cache-control", "vary", "content-location", "date")


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 If-None-Match: a weak comparison against a list of tags, or *."""
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags


class Revalidate:
    """ETag and Cache-Control: no-cache on GET 200 answers without their own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        if_none_match = Headers(scope=scope).get("if-none-match")
        start: Message | None = None
        chunks: list[bytes] = []

        async def buffered(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = Headers(raw=message.get("headers", []))
                if message["status"] != 200 or "etag" in headers or "cache-control" in headers:
                    await send(message)
                    return
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            headers = MutableHeaders(raw=list(start.get("headers", [])))
            headers["etag"] = etag
            headers["cache-control"] = "no-cache"
            if if_none_match is not None and _matches(if_none_match, etag):
                kept = [(k, v) for k, v in headers.raw if k.decode("latin-1") in KEPT_ON_304]
                await send({"type": "http.response.start", "status": 304, "headers": kept})
                await send({"type": "http.response.body", "body": b""})
                return
            await send({**start, "headers": headers.raw})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, buffered)
