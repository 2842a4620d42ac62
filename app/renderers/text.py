"""The .txt twins: what to paste into a reply, within 75 columns (but the link).

Every stage page (a packaged scenario, the playground, a short link) tells
one story: the link to the step, what names the scenario, the step and its
decisions, then the statement's processes before and after it.
"""

from __future__ import annotations

from functools import singledispatch

from fastapi import Request
from fastapi.responses import PlainTextResponse

from app.contexts import ComparePage, Drift, GalleryPage, PlayPage, ScenarioPage, SharedPage, Stage
from app.views.step import Counts, ViolationView
from engine.present.statement import (
    metadata_lines,
    render_before_after,
    render_statement,
    step_lines,
    unfinished_lines,
)
from engine.present.text import fit
from engine.sim.simulation import rmap_model_note
from engine.sim.trace import Unfinished


def answer(ctx: object, request: Request) -> PlainTextResponse:
    """The text; its links name MREMAP_VIZ_PUBLIC_URL if set, else the request's origin."""
    origin = request.app.state.public_url or str(request.base_url).rstrip("/")
    return PlainTextResponse(body(ctx, origin))


@singledispatch
def body(ctx: object, origin: str) -> str:
    raise TypeError(f"no text for {type(ctx).__name__}")


@body.register
def _gallery(ctx: GalleryPage, origin: str) -> str:
    """The learning paths, in order: each scenario's slug, title, what you will see
    and its note, within 75 columns."""
    lines: list[str] = []
    for path in ctx.paths:
        lines += [path.title, f"  {path.intro}", ""]
        for card in path.cards:
            lines += [
                f"  {card.order}. {card.slug}",
                f"     {card.title}",
                f"     You will see: {card.see}",
                f"     {card.note}",
                "",
            ]
    return "\n".join(fit(lines)) + "\n"


def stage_text(stage: Stage, origin: str, about: list[str]) -> str:
    """Link, `about` (what names the scenario; of a test, its verdict and the
    assertions that read this step's state), the step, before and after."""
    run, panel = stage.runnable()
    if stage.suite is not None:
        test = stage.suite.current
        about = [
            *about,
            f"{test.name}: {test.result}" + (f" ({test.reason})" if test.reason else ""),
        ]
        about += [
            f"line {c.line}: {c.text}"
            for c in stage.suite.checks
            if panel is not None and c.step == panel.index
        ]
    view = "step" if panel is None else panel.view
    link = f"Link: {origin}{stage.links.link(stage.index, view)}"
    if panel is None:
        return "\n".join([link, *fit([*about, "(no statements)"])]) + "\n"
    step = run.steps[panel.index]
    note = rmap_model_note(run.rmap_model)
    head = [
        *about,
        *([note] if note else []),
        f"step {panel.index + 1}/{panel.total}, "
        f"statement {panel.statement.index + 1}/{panel.statements}",
        *step_lines(step.function, step.summary, step.events, step.warnings),
        *violation_lines(panel.violations),
        *metadata_lines(run.shown(panel.index, panel.view).state),
    ]
    picture = render_before_after(run, panel.statement.index)
    return "\n".join([link, *fit(head), "", picture]) + "\n"


def counts_text(counts: Counts) -> str:
    """The compare view's counts of one column, as its table has them."""
    rows = ", ".join(f"{what} {value}" for _, what, value in counts.rows())
    walks = "".join(f"  rmap walk of {line}\n" for line in counts.walk_rows())
    return f"counts ({counts.rmap_model}): {rows}\n{walks}"


def violation_lines(violations: list[ViolationView]) -> list[str]:
    """The state's invariant violations, each with where the proposal is unfinished."""
    lines = []
    for v in violations:
        lines.append(f"  VIOLATION {v.kind}: {v.message}")
        if v.unfinished is not None:
            lines += unfinished_lines(Unfinished(**v.unfinished.model_dump()))
    return lines


@body.register
def _scenario(ctx: ScenarioPage, origin: str) -> str:
    return stage_text(ctx.stage, origin, [ctx.scenario.title])


@body.register
def _play(ctx: PlayPage, origin: str) -> str:
    return stage_text(ctx.stage, origin, [])


def drift_line(d: Drift, statements: int) -> str:
    if d.statement is None:
        if d.engine == d.today:
            return f"engine {d.today}"
        return f"made with engine {d.engine}; today's {d.today} tells the same story"
    if d.test is not None:
        where = f"test {d.test}"
    else:
        where = f"statement {d.statement + 1}" if d.statement < statements else "the end"
    return (
        f"this link was made with engine {d.engine}; today's engine ({d.today})\n"
        f"tells a different story at {where}"
    )


@body.register
def _shared(ctx: SharedPage, origin: str) -> str:
    run, _ = ctx.stage.runnable()
    return stage_text(ctx.stage, origin, drift_line(ctx.drift, len(run.statements)).splitlines())


@body.register
def _compare(ctx: ComparePage, origin: str) -> str:
    view = ctx.compare
    if view is None:
        return "(no statements)\n"
    parts = [f"{ctx.scenario.title}: statement {view.index + 1}/{view.statements}\n"]
    for side, run in zip(view.sides, ctx.runs, strict=True):
        parts.append(
            f"\n== {side.variant}: {side.description}\n"
            f"{side.statement.source}  => {side.statement.result}\n"
        )
        parts.append(render_statement(run, view.index) + "\n")
        parts.append(counts_text(side.counts))
    parts.append(
        f"\ndiffers from {view.sides[0].variant}:" + ("\n" if view.differences else " nothing\n")
    )
    parts += [f"- {d}\n" for d in view.differences]
    return "\n".join(fit("".join(parts).splitlines())) + "\n"
