"""/compare/<slug>?a=original&b=flags&stmt=N : one scenario under two variants."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from app.htmx import Htmx
from app.routes.scenarios import Entry
from app.runs import scenario_json
from app.templating import render_page
from app.views import compare_view
from engine.gallery import GalleryEntry
from engine.present.statement import render_statement
from engine.variants import VARIANTS, apply

router = APIRouter(prefix="/compare", tags=["compare"])

VariantName = Annotated[str, Query(description=f"one of: {', '.join(VARIANTS)}")]
Stmt = Annotated[int, Query(ge=0, description="statement index, 0-based")]


def compare_context(
    request: Request, scenario: GalleryEntry, a: str, b: str, stmt: int
) -> dict[str, Any]:
    for name in (a, b):
        if name not in VARIANTS:
            raise HTTPException(422, f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    sources = (apply(a, scenario.source), apply(b, scenario.source))
    runs = (request.app.state.runs.get(sources[0]), request.app.state.runs.get(sources[1]))
    count = min(len(r.statements) for r in runs)

    def url(n: int) -> str:
        return f"/compare/{scenario.slug}?{urlencode({'a': a, 'b': b, 'stmt': n})}"

    base = {
        "scenario": scenario,
        "a": a,
        "b": b,
        "variants": VARIANTS,
        "runs": runs,
        "sources": sources,
        "url": url,
        "count": count,
    }
    if not count:
        return {**base, "compare": None}
    stmt = min(stmt, count - 1)
    view = compare_view(runs, ((a, VARIANTS[a].description), (b, VARIANTS[b].description)), stmt)
    return {**base, "compare": view, "stmt": stmt}


@router.get("/{slug}.json")
def compare_json(
    request: Request,
    scenario: Entry,
    a: VariantName = "original",
    b: VariantName = "flags",
    stmt: Stmt = 0,
) -> dict[str, Any]:
    """Both variants' CLI JSON, and the statement the page shows side by side."""
    ctx = compare_context(request, scenario, a, b, stmt)
    view = ctx["compare"]
    return {
        "slug": scenario.slug,
        "a": {"variant": a, "source": ctx["sources"][0], "scenario": scenario_json(ctx["runs"][0])},
        "b": {"variant": b, "source": ctx["sources"][1], "scenario": scenario_json(ctx["runs"][1])},
        "page": None if view is None else view.model_dump(),
    }


@router.get("/{slug}.txt", response_class=PlainTextResponse)
def compare_text(
    request: Request,
    scenario: Entry,
    a: VariantName = "original",
    b: VariantName = "flags",
    stmt: Stmt = 0,
) -> str:
    ctx = compare_context(request, scenario, a, b, stmt)
    view = ctx["compare"]
    if view is None:
        return "(no statements)\n"
    parts = [f"{scenario.title}: statement {view.index + 1}/{view.statements}\n"]
    for side, run in zip((view.a, view.b), ctx["runs"], strict=True):
        parts.append(
            f"\n== {side.variant}: {side.description}\n"
            f"{side.statement.source}  => {side.statement.result}\n"
        )
        parts.append(render_statement(run, view.index) + "\n")
    parts.append("\ndiffers: " + ("; ".join(view.differences) or "nothing") + "\n")
    return "".join(parts)


@router.get("/{slug}", response_class=HTMLResponse)
def compare_page(
    request: Request,
    scenario: Entry,
    htmx: Htmx,
    a: VariantName = "original",
    b: VariantName = "flags",
    stmt: Stmt = 0,
) -> HTMLResponse:
    ctx = compare_context(request, scenario, a, b, stmt)
    return render_page(request, "compare.html", ctx, htmx, blocks=("comparison",))
