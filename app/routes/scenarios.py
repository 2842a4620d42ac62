"""/scenarios/<slug>?step=N : step through a packaged scenario, and its twins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from app.htmx import Htmx
from app.links import StageLinks
from app.runs import gallery_entry
from app.share import SharedScenario, encode_token
from app.stage import stage, stage_json, stage_text
from app.svg import Which, svg_response
from app.templating import render_page
from app.views import View
from engine.gallery import GalleryEntry

router = APIRouter(prefix="/scenarios", tags=["scenarios"])

STAGE_BLOCKS = ("state", "stepnav", "source")


def entry(slug: str) -> GalleryEntry:
    found = gallery_entry(slug)
    if found is None:
        raise HTTPException(404, f"no scenario {slug!r}")
    return found


Entry = Annotated[GalleryEntry, Depends(entry)]
Step = Annotated[int, Query(ge=0, description="inner step index, 0-based")]
ViewParam = Annotated[View, Query(description="step, or the statement's before/after")]


def scenario_stage(
    request: Request, scenario: GalleryEntry, step: int, view: View, embed: bool = False
) -> dict[str, Any]:
    # "Short link" freezes today's text of the scenario; the gallery's own link follows it.
    token = encode_token(SharedScenario(source=scenario.source))
    links = StageLinks(f"/scenarios/{scenario.slug}", embed=embed, shorten={"s": token})
    run = request.app.state.runs.get(scenario.source)
    return {
        "scenario": scenario,
        "base": links.base,
        "links": links,
        **stage(run, scenario.source, step, view, links.page),
    }


@router.get("/{slug}.json")
def scenario_json_twin(
    request: Request, scenario: Entry, step: Step = 0, view: ViewParam = "step"
) -> dict[str, Any]:
    """The CLI's JSON for the scenario, and the step the page shows."""
    ctx = scenario_stage(request, scenario, step, view)
    return {
        "slug": scenario.slug,
        "title": scenario.title,
        "note": scenario.note,
        **stage_json(ctx["run"], ctx["stage"]),
    }


@router.get("/{slug}.txt", response_class=PlainTextResponse)
def scenario_text_twin(
    request: Request, scenario: Entry, step: Step = 0, view: ViewParam = "step"
) -> str:
    ctx = scenario_stage(request, scenario, step, view)
    return f"{scenario.title}\n\n" + stage_text(ctx["run"], ctx["stage"])


def scenario_svg(
    request: Request, scenario: GalleryEntry, step: int, view: View, which: Which
) -> Response:
    ctx = scenario_stage(request, scenario, step, view)
    if ctx["stage"] is None:
        raise HTTPException(404, "nothing to draw: the scenario has no step")
    return svg_response(ctx["stage"], which, scenario.slug)


@router.get("/{slug}/map.svg", response_class=Response)
def scenario_map_svg(
    request: Request, scenario: Entry, step: Step = 0, view: ViewParam = "step"
) -> Response:
    """The address-space map at that step, as a standalone SVG."""
    return scenario_svg(request, scenario, step, view, "map")


@router.get("/{slug}/anon_vma.svg", response_class=Response)
def scenario_anon_svg(
    request: Request, scenario: Entry, step: Step = 0, view: ViewParam = "step"
) -> Response:
    """The anon_vma graph at that step, as a standalone SVG."""
    return scenario_svg(request, scenario, step, view, "anon_vma")


@router.get("/{slug}", response_class=HTMLResponse)
def scenario_page(
    request: Request,
    scenario: Entry,
    htmx: Htmx,
    step: Step = 0,
    view: ViewParam = "step",
    embed: Annotated[int, Query(ge=0, le=1, description="1: no page chrome")] = 0,
) -> HTMLResponse:
    ctx = scenario_stage(request, scenario, step, view, bool(embed))
    return render_page(
        request, "scenario.html", ctx, htmx, blocks=STAGE_BLOCKS, block_template="stage.html"
    )
