"""What a public service owes its visitors: bounded requests, safe headers, no 500s.

- `BodyLimit` rejects a body over MAX_BODY_BYTES with a 413 before the app
  reads it: at once when Content-Length says so, else while it streams in.
- `SecurityHeaders` sends a Content-Security-Policy that lets a page run only
  the app's own scripts and styles, X-Content-Type-Options, Referrer-Policy,
  and frame rules: no page may be framed except in embed mode (`?embed=1`).
- `install()` adds both, the page cache, and the error handlers
  (app/errors.py): what a run can end in is a 422 or 503, never a 500.

Swagger UI (/docs, app/routes/docs.py) is served from the swagger-ui-bundle-v2
package and started by a script file of ours, so it needs neither a CDN nor
an inline script: the same CSP holds there.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import install as install_error_handlers
from app.formats import Format, requested
from app.limits import MAX_BODY_BYTES
from app.pagecache import CachedPages
from app.revalidate import Revalidate

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
EMBED_CSP = CSP.replace("frame-ancestors 'none'", "frame-ancestors *")
HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


def is_embed(scope: Scope) -> bool:
    """Embed mode: the page was asked for with `embed=1`, and may be framed anywhere."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return "1" in query.get("embed", ())


class SecurityHeaders:
    """Adds the CSP and friends to every HTTP response that does not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        embed = is_embed(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [
                    *HEADERS,
                    (b"content-security-policy", (EMBED_CSP if embed else CSP).encode()),
                ]
                if not embed:
                    extra.append((b"x-frame-options", b"DENY"))
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(HTTPException):
    """A request body over MAX_BODY_BYTES (FastAPI re-raises HTTPExceptions from a body read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body too large (limit MAX_BODY_BYTES = {limit} bytes)")


class BodyLimit:
    """413 for a request body over `limit` bytes, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", []):
            if name.lower() == b"content-length":
                declared = value
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size < 0 or size > self.limit:
                await self._refuse(scope, send, BodyTooLarge(self.limit) if size >= 0 else None)
                return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as err:
            if started:
                raise
            await self._refuse(scope, send, err)

    async def _refuse(self, scope: Scope, send: Send, err: BodyTooLarge | None) -> None:
        status, message = (
            (413, str(err.detail)) if err is not None else (400, "malformed Content-Length")
        )
        response: Response
        if requested(scope["path"], Headers(scope=scope)) in (Format.PAGE, Format.FRAGMENT):
            response = HTMLResponse(
                f"<!doctype html><title>{status}</title><h1>{status}</h1><p>{message}</p>",
                status_code=status,
                headers={"Connection": "close"},
            )
        else:
            response = JSONResponse(
                {"detail": message}, status_code=status, headers={"Connection": "close"}
            )

        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, no_body, send)


def install(app: FastAPI) -> None:
    """Add the page cache, revalidation (app/revalidate.py), the body limit, the security
    headers and the error pages to `app`.

    Call it last: the middleware it adds wraps all added before.
    """
    install_error_handlers(app)
    app.add_middleware(CachedPages, cache=app.state.pages, by_origin=not app.state.public_url)
    app.add_middleware(Revalidate)  # outside the page cache: cached pages get their ETag too
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(SecurityHeaders)
