"""The .json twins: the CLI's JSON for the run, and what the page shows."""

from __future__ import annotations

from dataclasses import asdict
from functools import singledispatch
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from app.contexts import ComparePage, GalleryPage, PlayPage, ScenarioPage, SharedPage, Stage
from app.runs import scenario_json
from engine.present.report import verdict_json


def answer(ctx: object, request: Request) -> JSONResponse:
    return JSONResponse(document(ctx))


@singledispatch
def document(ctx: object) -> Any:
    raise TypeError(f"no JSON for {type(ctx).__name__}")


@document.register
def _gallery(ctx: GalleryPage) -> list[dict[str, str]]:
    """Every packaged scenario: slug, title, note, source."""
    return [asdict(e) for e in ctx.entries]


def stage_document(stage: Stage) -> dict[str, Any]:
    """The CLI's JSON for the run (of a harness file's test: `run FILE --test
    NAME --json`, and every test's verdict), and the step the page shows."""
    run, panel = stage.runnable()
    page = None if panel is None else panel.model_dump(mode="json")
    if stage.suite is None:
        return {"scenario": stage.run_document(), "page": page}
    return {
        "test": stage.suite.current.name,
        "tests": [t.model_dump(mode="json") for t in stage.suite.tests],
        "scenario": {**stage.run_document(), **verdict_json(run)},
        "checks": [c.model_dump(mode="json") for c in stage.suite.checks],
        "page": page,
    }


@document.register
def _scenario(ctx: ScenarioPage) -> dict[str, Any]:
    entry = ctx.scenario
    return {
        "slug": entry.slug,
        "title": entry.title,
        "note": entry.note,
        **stage_document(ctx.stage),
    }


@document.register
def _play(ctx: PlayPage) -> dict[str, Any]:
    return {"source": ctx.stage.source, **stage_document(ctx.stage)}


@document.register
def _shared(ctx: SharedPage) -> dict[str, Any]:
    """The shared scenario, the engine that stored it, today's verdict, the CLI's JSON."""
    return {
        "id": ctx.ident,
        "url": ctx.stage.links.base,
        "source": ctx.scenario.source,
        "options": ctx.scenario.options.model_dump(exclude_none=True),
        "token": ctx.token,
        "engine": ctx.record.engine,
        "created": ctx.record.created,
        "drift": ctx.drift.model_dump(),
        **stage_document(ctx.stage),
    }


@document.register
def _compare(ctx: ComparePage) -> dict[str, Any]:
    """Every variant's CLI JSON, and the statement (and step) the page shows side by side."""
    runs = [
        {"variant": variant, "source": source, "scenario": scenario_json(run)}
        for variant, source, run in zip(ctx.names, ctx.sources, ctx.runs, strict=True)
    ]
    page = None if ctx.compare is None else ctx.compare.model_dump(mode="json")
    return {"slug": ctx.scenario.slug, "variants": runs, "page": page}
