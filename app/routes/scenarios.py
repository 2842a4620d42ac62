"""/scenarios/<slug>?step=N : step through a packaged scenario, and its twins."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from app.htmx import Htmx
from app.runs import gallery_entry
from app.stage import stage, stage_json, stage_text
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
    request: Request, scenario: GalleryEntry, step: int, view: View
) -> dict[str, Any]:
    def url(n: int, v: View) -> str:
        query = {"step": n} | ({"view": v} if v != "step" else {})
        return f"/scenarios/{scenario.slug}?{urlencode(query)}"

    run = request.app.state.runs.get(scenario.source)
    return {
        "scenario": scenario,
        "base": f"/scenarios/{scenario.slug}",
        **stage(run, scenario.source, step, view, url),
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


@router.get("/{slug}", response_class=HTMLResponse)
def scenario_page(
    request: Request, scenario: Entry, htmx: Htmx, step: Step = 0, view: ViewParam = "step"
) -> HTMLResponse:
    ctx = scenario_stage(request, scenario, step, view)
    return render_page(
        request, "scenario.html", ctx, htmx, blocks=STAGE_BLOCKS, block_template="stage.html"
    )
