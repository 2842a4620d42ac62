"""/play?source=... : an editor for one's own scenario; the source lives in the URL.

/play?s=v1.<token> is the same page from a self-contained link (app.share).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError

from app.htmx import Htmx
from app.limits import MAX_TOKEN_CHARS
from app.links import StageLinks
from app.models import MAX_SOURCE, ScenarioErrorDetail, ScenarioErrorResponse
from app.routes.share import bad_link
from app.share import BadToken, RunOptions, SharedScenario, decode_token, encode_token
from app.stage import stage, stage_json, stage_text
from app.svg import Which, svg_response
from app.templating import render_page
from app.views import View, source_lines
from engine.scenario.errors import ScenarioError
from engine.sim.policy import POLICIES

router = APIRouter(tags=["play"])

SAMPLE = """\
// Edit me: the URL keeps what you write.
char *p = mmap(NULL, 5 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
memset(p, 'x', 5 * page_size);
mprotect(p + 2 * page_size, page_size, PROT_READ);
mprotect(p + 2 * page_size, page_size, PROT_READ | PROT_WRITE);
"""

Source = Annotated[str | None, Query(max_length=MAX_SOURCE, description="scenario text")]
Token = Annotated[
    str | None, Query(description="a self-contained link's token, v1.<base64url(zlib(JSON))>")
]
Policy = Annotated[str | None, Query(description=f"RELOCATE_ANON policy: {', '.join(POLICIES)}")]
Step = Annotated[int, Query(ge=0)]
ViewParam = Annotated[View, Query()]
Embed = Annotated[int, Query(ge=0, le=1, description="1: no page chrome, for an iframe")]


class PlayInput:
    """What names the scenario: a token (`s=`), or `source=` and `policy=`."""

    def __init__(self, source: str | None, s: str | None, policy: str | None) -> None:
        self.token = s
        if s is not None:
            shared = decode_token(s)  # BadToken says what is wrong with the link
        else:
            text = SAMPLE if source is None else source
            try:
                options = RunOptions(policy=policy or None)
            except ValidationError as err:
                raise HTTPException(
                    422, [{"loc": ["query", "policy"], "msg": err.errors()[0]["msg"]}]
                ) from None
            shared = SharedScenario.model_construct(source=text, options=options)
        self.scenario = shared

    def links(self, embed: bool = False) -> StageLinks:
        """Steps keep the URL's own form; the links to share are self-contained."""
        scenario = self.scenario
        if self.token is not None:
            query = {"s": self.token}
        else:
            query = {"source": scenario.source} | (
                {"policy": scenario.policy} if scenario.policy else {}
            )
        try:
            token = self.token or encode_token(scenario)
        except ValidationError:  # over MAX_SHARED_SOURCE_BYTES: no link to share
            return StageLinks("/play", query, embed)
        fits = len(token) <= MAX_TOKEN_CHARS
        return StageLinks(
            "/play",
            query,
            embed,
            shorten={"s": token}
            if fits
            else {"source": scenario.source, "policy": scenario.policy or ""},
            shared={"s": token} if fits else None,
        )


def play_stage(
    request: Request, given: PlayInput, step: int, view: View, embed: bool = False
) -> dict[str, Any]:
    scenario = given.scenario
    text = scenario.source
    links = given.links(embed)
    base = {
        "source": text,
        "policy": scenario.policy,
        "policies": {name: p.description for name, p in POLICIES.items()},
        "links": links,
    }
    try:
        run = request.app.state.runs.get(text, scenario.policy)
    except ScenarioError as err:
        return {
            **base,
            "stage": None,
            "error": err,
            "run": None,
            "lines": source_lines(text, None, None, (err.line, err.col)),
        }
    return {**base, "error": None, "base": "/play", **stage(run, text, step, view, links.page)}


def _given(source: str | None, s: str | None, policy: str | None) -> PlayInput | str:
    try:
        return PlayInput(source, s, policy)
    except BadToken as err:
        return str(err)


def _error_response(err: ScenarioError) -> JSONResponse:
    body = ScenarioErrorResponse(
        detail=[ScenarioErrorDetail(line=err.line, col=err.col, msg=err.message)]
    )
    return JSONResponse(body.model_dump(), status_code=422)


@router.get("/play.json", responses={422: {"model": ScenarioErrorResponse}})
def play_json(
    request: Request,
    source: Source = None,
    s: Token = None,
    policy: Policy = None,
    step: Step = 0,
    view: ViewParam = "step",
) -> Any:
    """The CLI's JSON for the edited scenario, and the step the page shows."""
    given = _given(source, s, policy)
    if isinstance(given, str):
        return bad_link(request, given, "json")
    ctx = play_stage(request, given, step, view)
    if ctx["error"] is not None:
        return _error_response(ctx["error"])
    return {"source": ctx["source"], **stage_json(ctx["run"], ctx["stage"])}


@router.get("/play.txt", response_class=PlainTextResponse)
def play_text(
    request: Request,
    source: Source = None,
    s: Token = None,
    policy: Policy = None,
    step: Step = 0,
    view: ViewParam = "step",
) -> Response:
    given = _given(source, s, policy)
    if isinstance(given, str):
        return bad_link(request, given, "text")
    ctx = play_stage(request, given, step, view)
    if ctx["error"] is not None:
        return PlainTextResponse(str(ctx["error"]) + "\n", status_code=422)
    return PlainTextResponse(stage_text(ctx["run"], ctx["stage"]))


@router.get("/play", response_class=HTMLResponse)
def play_page(
    request: Request,
    htmx: Htmx,
    source: Source = None,
    s: Token = None,
    policy: Policy = None,
    step: Step = 0,
    view: ViewParam = "step",
    embed: Embed = 0,
) -> Response:
    given = _given(source, s, policy)
    if isinstance(given, str):
        return bad_link(request, given, "html")
    ctx = play_stage(request, given, step, view, bool(embed))
    return render_page(
        request,
        "play.html",
        ctx,
        htmx,
        blocks=("state", "stepnav", "source"),
        block_template="stage.html",
    )


def _play_svg(
    request: Request,
    source: str | None,
    s: str | None,
    policy: str | None,
    step: int,
    view: View,
    which: Which,
) -> Response:
    given = _given(source, s, policy)
    if isinstance(given, str):
        return bad_link(request, given, "text")
    ctx = play_stage(request, given, step, view)
    if ctx["stage"] is None:
        return PlainTextResponse("nothing to draw: the scenario has no step\n", status_code=404)
    return svg_response(ctx["stage"], which, "play")


@router.get("/play/map.svg", response_class=Response)
def play_map_svg(
    request: Request,
    source: Source = None,
    s: Token = None,
    policy: Policy = None,
    step: Step = 0,
    view: ViewParam = "step",
) -> Response:
    """The address-space map at that step, as a standalone SVG."""
    return _play_svg(request, source, s, policy, step, view, "map")


@router.get("/play/anon_vma.svg", response_class=Response)
def play_anon_svg(
    request: Request,
    source: Source = None,
    s: Token = None,
    policy: Policy = None,
    step: Step = 0,
    view: ViewParam = "step",
) -> Response:
    """The anon_vma graph at that step, as a standalone SVG."""
    return _play_svg(request, source, s, policy, step, view, "anon_vma")
