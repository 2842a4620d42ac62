"""What a request that cannot be answered gets: never a 500, always in its format.

One handler per kind of failure, each answering as app.formats.requested
says the request asked: the error page, JSON, or text (an SVG's error is
text). A run's failures (app.guard's RunFailed, a ScenarioError, a
LimitExceeded) name the limit, the line or the statement; a link that
cannot be followed (app.share.BadLink) says why; a client over a rate limit
(app.ratelimit) gets a 429 naming it, and a store that cannot take a new
link (app.store.StoreRefused) a 507 (full) or 503 (away).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.formats import Format, requested
from app.guard import EngineFailure, RunFailed
from app.models import ScenarioErrorDetail
from app.ratelimit import RateLimited
from app.share import BadLink
from app.store import StoreRefused
from app.templating import templates
from engine.scenario.errors import ScenarioError
from engine.sim.limits import LimitExceeded


def answer_kind(request: Request) -> Format:
    """PAGE, JSON or TEXT: how to answer an error to this request.

    A page's error is the site's error page, unless the client asks for
    JSON and not HTML (Accept): an API client keeps JSON, as under /api/.
    """
    fmt = requested(request.url.path, request.headers)
    if fmt in (Format.PAGE, Format.FRAGMENT):
        accept = request.headers.get("accept", "")
        wants_json = "application/json" in accept and "text/html" not in accept
        return Format.JSON if wants_json else Format.PAGE
    return Format.JSON if fmt == Format.JSON else Format.TEXT


HTTP_TITLES = {
    404: "There is no such page",
    405: "This page cannot be asked for that way",
    413: "That request is too large",
    422: "This request has a field the page cannot use",
    429: "Too many requests: slow down a little",
    503: "The simulator is busy",
}


def _error_response(request: Request, status: int, title: str, detail: dict[str, Any]) -> Response:
    kind = answer_kind(request)
    if kind == Format.JSON:
        return JSONResponse({"detail": [detail]}, status_code=status)
    if kind == Format.TEXT:
        where = f"line {detail['line']}: " if detail.get("line") else ""
        if detail.get("col"):
            where = f"line {detail['line']}, column {detail['col']}: "
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
    """A scenario that does not parse: 422 at its line and column."""
    assert isinstance(exc, ScenarioError)
    detail = ScenarioErrorDetail(line=exc.line, col=exc.col, msg=exc.message)
    return _error_response(request, 422, "This scenario does not parse", detail.model_dump())


def _limit_exceeded(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LimitExceeded)
    detail = {"type": "limit_exceeded", "msg": str(exc), "limit": exc.name}
    return _error_response(request, 422, "This scenario is over a limit", detail)


def _bad_link(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadLink)
    kind = answer_kind(request)
    if kind == Format.JSON:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)
    if kind == Format.TEXT:
        return PlainTextResponse(f"This link does not work: {exc}\n", status_code=exc.status)
    return templates.TemplateResponse(
        request, "bad_link.html", {"message": str(exc), "oob": False}, status_code=exc.status
    )


def _rate_limited(request: Request, exc: Exception) -> Response:
    """Over a per-client limit: 429, Retry-After, the limit's name."""
    assert isinstance(exc, RateLimited)
    detail = {"type": "rate_limited", "msg": str(exc), "limit": exc.limit.name}
    response = _error_response(request, 429, "Too many requests from your address", detail)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _store_refused(request: Request, exc: Exception) -> Response:
    """The store is full (507: no new links; stored ones still open) or away (503)."""
    assert isinstance(exc, StoreRefused)
    title = (
        "No room for new links: links already made still work"
        if exc.status == 507
        else "The link store is unavailable: try again shortly"
    )
    detail = {"type": "store_refused", "msg": str(exc), "limit": exc.limit}
    response = _error_response(request, exc.status, title, detail)
    if exc.status == 503:
        response.headers["Retry-After"] = "5"
    return response


def _validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 (a page for a browser, naming the fields), but ASCII JSON:
    an echoed lone surrogate (\\ud800) cannot be UTF-8."""
    assert isinstance(exc, RequestValidationError)
    if answer_kind(request) == Format.PAGE:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return _error_response(request, 422, HTTP_TITLES[422], {"msg": fields})
    body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
    return Response(body, status_code=422, media_type="application/json")


def _http_error(request: Request, exc: Exception) -> Response:
    """404, 405, 429 and the like: the site's error page for a browser, else
    FastAPI's JSON ({"detail": ...}) with the exception's headers."""
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if answer_kind(request) != Format.PAGE:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
    title = HTTP_TITLES.get(exc.status_code, f"Error {exc.status_code}")
    response = _error_response(request, exc.status_code, title, {"msg": str(exc.detail)})
    response.headers.update(headers)
    return response


def install(app: FastAPI) -> None:
    """Add the error handlers to `app`."""
    app.add_exception_handler(RunFailed, _run_failed)
    app.add_exception_handler(ScenarioError, _scenario_error)
    app.add_exception_handler(LimitExceeded, _limit_exceeded)
    app.add_exception_handler(BadLink, _bad_link)
    app.add_exception_handler(RateLimited, _rate_limited)
    app.add_exception_handler(StoreRefused, _store_refused)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
