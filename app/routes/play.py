"""/play?source=... : an editor for one's own scenario; the source lives in the URL."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from app.htmx import Htmx
from app.models import MAX_SOURCE, ScenarioErrorDetail, ScenarioErrorResponse
from app.stage import stage, stage_json, stage_text
from app.templating import render_page
from app.views import View, source_lines
from engine.scenario.errors import ScenarioError

router = APIRouter(tags=["play"])

SAMPLE = """\
// Edit me: the URL keeps what you write.
char *p = mmap(NULL, 5 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
memset(p, 'x', 5 * page_size);
mprotect(p + 2 * page_size, page_size, PROT_READ);
mprotect(p + 2 * page_size, page_size, PROT_READ | PROT_WRITE);
"""

Source = Annotated[str | None, Query(max_length=MAX_SOURCE, description="scenario text")]
Step = Annotated[int, Query(ge=0)]
ViewParam = Annotated[View, Query()]


def play_stage(request: Request, source: str | None, step: int, view: View) -> dict[str, Any]:
    text = SAMPLE if source is None else source

    def url(n: int, v: View) -> str:
        query = {"source": text, "step": n} | ({"view": v} if v != "step" else {})
        return f"/play?{urlencode(query)}"

    try:
        run = request.app.state.runs.get(text)
    except ScenarioError as err:
        return {
            "source": text,
            "stage": None,
            "error": err,
            "run": None,
            "lines": source_lines(text, None, None, (err.line, err.col)),
        }
    return {"source": text, "error": None, "base": "/play", **stage(run, text, step, view, url)}


def _error_response(err: ScenarioError) -> JSONResponse:
    body = ScenarioErrorResponse(
        detail=[ScenarioErrorDetail(line=err.line, col=err.col, msg=err.message)]
    )
    return JSONResponse(body.model_dump(), status_code=422)


@router.get("/play.json", responses={422: {"model": ScenarioErrorResponse}})
def play_json(
    request: Request, source: Source = None, step: Step = 0, view: ViewParam = "step"
) -> Any:
    """The CLI's JSON for the edited scenario, and the step the page shows."""
    ctx = play_stage(request, source, step, view)
    if ctx["error"] is not None:
        return _error_response(ctx["error"])
    return {"source": ctx["source"], **stage_json(ctx["run"], ctx["stage"])}


@router.get("/play.txt", response_class=PlainTextResponse)
def play_text(
    request: Request, source: Source = None, step: Step = 0, view: ViewParam = "step"
) -> PlainTextResponse:
    ctx = play_stage(request, source, step, view)
    if ctx["error"] is not None:
        return PlainTextResponse(str(ctx["error"]) + "\n", status_code=422)
    return PlainTextResponse(stage_text(ctx["run"], ctx["stage"]))


@router.get("/play", response_class=HTMLResponse)
def play_page(
    request: Request, htmx: Htmx, source: Source = None, step: Step = 0, view: ViewParam = "step"
) -> HTMLResponse:
    ctx = play_stage(request, source, step, view)
    return render_page(
        request,
        "play.html",
        ctx,
        htmx,
        blocks=("state", "stepnav", "source"),
        block_template="stage.html",
    )
