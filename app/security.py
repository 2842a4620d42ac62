"""What a public service owes its visitors: bounded requests, safe headers, no 500s.

- `BodyLimit` rejects a body over MAX_BODY_BYTES with a 413 before the app
  reads it: at once when Content-Length says so, else while it streams in.
- `SecurityHeaders` sends a Content-Security-Policy that lets a page run only
  the app's own scripts and styles, X-Content-Type-Options, Referrer-Policy,
  and frame rules: no page may be framed except in embed mode (`?embed=1`).
- `install()` adds both, and turns what a run can end in (app.guard's
  RunFailed, a ScenarioError or LimitExceeded that escaped a route) into a
  422 or 503 page, JSON or text naming the limit, the line or the
  statement, never a 500.

Swagger UI (/docs) is not served: it loads its script and styles from a
CDN and starts itself with an inline script, which this CSP forbids, and a
public page should neither send its visitors to a third party nor depend on
one being reachable. /docs redirects to the OpenAPI document, /openapi.json.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.guard import EngineFailure, RunFailed
from app.limits import MAX_BODY_BYTES
from app.pagecache import PageCache
from app.templating import templates
from engine.scenario.errors import ScenarioError
from engine.sim.limits import LimitExceeded

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


def wants(path: str, accept: str) -> str:
    """ "json", "text" or "html": the kind of answer a request at `path` expects."""
    if path.endswith(".json") or path.startswith("/api/") or path.startswith("/openapi"):
        return "json"
    if path.endswith(".txt"):
        return "text"
    if "text/html" not in accept and "application/json" in accept:
        return "json"
    return "html"


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
        accept = ""
        for name, value in scope.get("headers", []):
            if name.lower() == b"accept":
                accept = value.decode("latin-1")
        response: Response
        if wants(scope["path"], accept) == "html":
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


# --- errors of a run ----------------------------------------------------------------


def _error_response(request: Request, status: int, title: str, detail: dict[str, Any]) -> Response:
    kind = wants(request.url.path, request.headers.get("accept", ""))
    if kind == "json":
        return JSONResponse({"detail": [detail]}, status_code=status)
    if kind == "text":
        where = f"line {detail['line']}: " if detail.get("line") else ""
        return PlainTextResponse(f"{title}: {where}{detail['msg']}\n", status_code=status)
    return templates.TemplateResponse(
        request,
        "error.html",
        {"title": title, "detail": detail, "status": status, "oob": False},
        status_code=status,
        headers={"Vary": "HX-Request"},
    )


def _run_failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RunFailed)
    if isinstance(exc, EngineFailure):
        title = "The simulator failed on this scenario"
    elif exc.status == 503:
        title = "The simulator is busy"
    else:
        title = "This scenario is over a limit"
    response = _error_response(request, exc.status, title, exc.detail())
    if exc.status == 503:
        response.headers["Retry-After"] = "5"
    return response


def _scenario_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ScenarioError)
    detail = {
        "type": "scenario_error",
        "loc": ["body", "source"],
        "line": exc.line,
        "col": exc.col,
        "msg": exc.message,
    }
    return _error_response(request, 422, "This scenario does not parse", detail)


def _limit_exceeded(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LimitExceeded)
    detail = {"type": "limit_exceeded", "msg": str(exc), "limit": exc.name}
    return _error_response(request, 422, "This scenario is over a limit", detail)


def _validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's 422, but ASCII JSON: an echoed lone surrogate (\\ud800) cannot be UTF-8."""
    assert isinstance(exc, RequestValidationError)
    body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
    return Response(body, status_code=422, media_type="application/json")


def install(app: FastAPI) -> None:
    """Add the page cache, the body limit, the security headers and the error pages to `app`.

    Call it last: the middleware it adds wraps all added before.
    """
    app.add_exception_handler(RunFailed, _run_failed)
    app.add_exception_handler(ScenarioError, _scenario_error)
    app.add_exception_handler(LimitExceeded, _limit_exceeded)
    app.add_exception_handler(RequestValidationError, _validation_error)

    @app.get("/docs", include_in_schema=False)
    def docs() -> RedirectResponse:
        """Swagger UI needs a CDN and inline scripts; the document it shows is here."""
        return RedirectResponse("/openapi.json")

    app.add_middleware(PageCache)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(SecurityHeaders)
