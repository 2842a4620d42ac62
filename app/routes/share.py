"""Short links: POST /api/share, POST /share, and /s/<id> with its twins and SVGs."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from pydantic import BaseModel, ValidationError

from app.htmx import Htmx
from app.limits import MAX_SHARE_BODY_BYTES
from app.links import StageLinks
from app.share import (
    BadToken,
    SharedScenario,
    ShareResponse,
    decode_token,
    encode_token,
    load,
    share,
    story,
)
from app.stage import stage, stage_json
from app.store import ShareRecord
from app.svg import Which, svg_response
from app.templating import render_page, templates
from app.views import View, source_lines
from engine.present.statement import render_before_after
from engine.scenario.errors import ScenarioError
from engine.version import ENGINE_VERSION, first_difference

router = APIRouter(tags=["share"])

Step = Annotated[int, Query(ge=0, description="inner step index, 0-based")]
ViewParam = Annotated[View, Query(description="step, or the statement's before/after")]
Embed = Annotated[int, Query(ge=0, le=1, description="1: no page chrome, for an iframe")]


class Drift(BaseModel):
    """How the story the link was made with compares with today's engine's."""

    engine: str
    today: str
    statement: int | None
    """0-based statement where the stories part; None when they agree."""


def bad_link(request: Request, message: str, kind: str, status: int = 400) -> Response:
    """A link that cannot be read, as the page, JSON or text the request asked for."""
    if kind == "json":
        return JSONResponse({"detail": message}, status_code=status)
    if kind == "text":
        return PlainTextResponse(f"This link does not work: {message}\n", status_code=status)
    return templates.TemplateResponse(
        request, "bad_link.html", {"message": message, "oob": False}, status_code=status
    )


def _share(request: Request, scenario: SharedScenario) -> str:
    return share(request.app.state.store, request.app.state.runs, scenario)


@router.post(
    "/api/share",
    response_model=ShareResponse,
    responses={422: {"description": "an unknown option, or a source over the size limit"}},
)
def api_share(request: Request, body: SharedScenario) -> ShareResponse:
    """Store a scenario and answer its short link.

    The id is a prefix of the SHA-256 of the scenario's canonical JSON, so
    the same scenario always gets the same link, on any server of the
    deployment. A scenario that does not parse can be shared too: its page
    shows the error.
    """
    ident = _share(request, body)
    return ShareResponse(id=ident, url=f"/s/{ident}", token=encode_token(body))


@router.post("/share", include_in_schema=False)
async def form_share(request: Request) -> Response:
    """The "Short link" button: a form with `s` (a token) or `source` and
    `policy`, and `step`; stores the scenario and sees the page at /s/<id>."""
    body = await request.body()
    if len(body) > MAX_SHARE_BODY_BYTES:
        return bad_link(
            request, f"form over MAX_SHARE_BODY_BYTES ({MAX_SHARE_BODY_BYTES})", "html", 413
        )
    form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    try:
        if "s" in form:
            scenario = decode_token(form["s"])
        else:
            options = {"policy": form["policy"]} if form.get("policy") else {}
            scenario = SharedScenario.model_validate(
                {"source": form.get("source", ""), "options": options}
            )
    except BadToken as err:
        return bad_link(request, str(err), "html")
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return bad_link(request, f"{where}: {first['msg']}", "html", 422)
    ident = _share(request, scenario)
    query = {"step": form["step"]} if form.get("step", "").isdigit() else {}
    return RedirectResponse(f"/s/{ident}" + (f"?{urlencode(query)}" if query else ""), 303)


def shared_stage(
    request: Request, ident: str, step: int, view: View, embed: bool = False
) -> dict[str, Any]:
    """The stage of a short link; HTTPException 404 when no scenario has that id."""
    loaded = load(request.app.state.store, ident)
    if loaded is None:
        raise HTTPException(404, f"no shared scenario {ident!r}")
    scenario, record = loaded
    links = StageLinks(f"/s/{ident}", embed=embed)
    base = {
        "ident": ident,
        "record": record,
        "scenario": scenario,
        "source": scenario.source,
        "token": encode_token(scenario),
        "links": links,
        "base": links.base,
        "drift": drift(request, scenario, record),
    }
    try:
        run = request.app.state.runs.get(scenario.source, scenario.policy)
    except ScenarioError as err:
        return {
            **base,
            "stage": None,
            "error": err,
            "run": None,
            "lines": source_lines(scenario.source, None, None, (err.line, err.col)),
        }
    return {**base, "error": None, **stage(run, scenario.source, step, view, links.page)}


def drift(request: Request, scenario: SharedScenario, record: ShareRecord) -> Drift:
    today = story(request.app.state.runs, scenario)
    return Drift(
        engine=record.engine,
        today=ENGINE_VERSION,
        statement=first_difference(record.fingerprint, today),
    )


def _lookup(request: Request, ident: str, step: int, view: View, kind: str) -> Any:
    try:
        return shared_stage(request, ident, step, view)
    except HTTPException as err:
        return bad_link(request, str(err.detail), kind, err.status_code)


@router.get("/s/{ident}.json")
def shared_json(request: Request, ident: str, step: Step = 0, view: ViewParam = "step") -> Any:
    """The shared scenario, the engine that stored it, today's verdict, the CLI's JSON."""
    ctx = _lookup(request, ident, step, view, "json")
    if isinstance(ctx, Response):
        return ctx
    head = {
        "id": ident,
        "url": f"/s/{ident}",
        "source": ctx["source"],
        "options": ctx["scenario"].options.model_dump(exclude_none=True),
        "token": ctx["token"],
        "engine": ctx["record"].engine,
        "created": ctx["record"].created,
        "drift": ctx["drift"].model_dump(),
    }
    if ctx["error"] is not None:
        err = ctx["error"]
        return {**head, "error": {"line": err.line, "col": err.col, "msg": err.message}}
    return {**head, **stage_json(ctx["run"], ctx["stage"])}


def drift_line(d: Drift, statements: int) -> str:
    if d.statement is None:
        if d.engine == d.today:
            return f"engine {d.today}"
        return f"made with engine {d.engine}; today's {d.today} tells the same story"
    where = f"statement {d.statement + 1}" if d.statement < statements else "the end"
    return (
        f"this link was made with engine {d.engine}; today's engine ({d.today})\n"
        f"tells a different story at {where}"
    )


@router.get("/s/{ident}.txt", response_class=PlainTextResponse)
def shared_text(request: Request, ident: str, step: Step = 0, view: ViewParam = "step") -> Response:
    """What to paste into a reply: the statement at that step, before and after,
    one column per page, at most 75 columns."""
    ctx = _lookup(request, ident, step, view, "text")
    if isinstance(ctx, Response):
        return ctx
    origin = str(request.base_url).rstrip("/")
    panel = ctx["stage"]
    index = 0 if panel is None else panel.index
    head = f"Link: {origin}{ctx['links'].link(index)}\n"
    if ctx["error"] is not None:
        return PlainTextResponse(head + f"{ctx['error']}\n", status_code=200)
    run = ctx["run"]
    head += drift_line(ctx["drift"], len(run.statements)) + "\n"
    if panel is None:
        return PlainTextResponse(head + "(no statements)\n")
    head += (
        f"step {panel.index + 1}/{panel.total}, "
        f"statement {panel.statement.index + 1}/{panel.statements}\n\n"
    )
    return PlainTextResponse(head + render_before_after(run, panel.statement.index) + "\n")


def shared_svg(request: Request, ident: str, step: int, view: View, which: Which) -> Response:
    ctx = _lookup(request, ident, step, view, "text")
    if isinstance(ctx, Response):
        return ctx
    if ctx["stage"] is None:
        return bad_link(request, "the scenario has no step to draw", "text", 404)
    return svg_response(ctx["stage"], which, f"s-{ident}")


@router.get("/s/{ident}/map.svg", response_class=Response)
def shared_map_svg(
    request: Request, ident: str, step: Step = 0, view: ViewParam = "step"
) -> Response:
    """The address-space map at that step, as a standalone SVG."""
    return shared_svg(request, ident, step, view, "map")


@router.get("/s/{ident}/anon_vma.svg", response_class=Response)
def shared_anon_svg(
    request: Request, ident: str, step: Step = 0, view: ViewParam = "step"
) -> Response:
    """The anon_vma graph at that step, as a standalone SVG."""
    return shared_svg(request, ident, step, view, "anon_vma")


@router.get("/s/{ident}", response_class=HTMLResponse)
def shared_page(
    request: Request,
    ident: str,
    htmx: Htmx,
    step: Step = 0,
    view: ViewParam = "step",
    embed: Embed = 0,
) -> Response:
    try:
        ctx = shared_stage(request, ident, step, view, bool(embed))
    except HTTPException as err:
        return bad_link(request, str(err.detail), "html", err.status_code)
    return render_page(
        request,
        "shared.html",
        ctx,
        htmx,
        blocks=("state", "stepnav", "source"),
        block_template="stage.html",
    )
