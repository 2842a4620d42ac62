"""The stepping stage shared by the scenario page and the playground.

A stage is a Run, the source it came from, one inner step and a URL
builder; from those come the source listing, the step controls and the
state panel (app.views), and the pages' .json and .txt twins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from app.runs import scenario_json
from app.views import StepView, View, source_lines, statement_of, step_view
from engine.present.statement import render_statement
from engine.sim.simulation import Run

StepUrl = Callable[[int, View], str]


class Nav(BaseModel):
    """The step controls' targets; None where the control is disabled."""

    first: str | None
    prev: str | None
    next: str | None
    last: str | None
    prev_statement: str | None
    next_statement: str | None
    before: str
    after: str
    this_step: str


def clamp(run: Run, step: int) -> int:
    return max(0, min(step, len(run.steps) - 1))


def nav(run: Run, step: int, url: StepUrl) -> Nav:
    last = len(run.steps) - 1
    s = statement_of(run, step)
    return Nav(
        first=url(0, "step") if step > 0 else None,
        prev=url(step - 1, "step") if step > 0 else None,
        next=url(step + 1, "step") if step < last else None,
        last=url(last, "step") if step < last else None,
        prev_statement=url(run.statements[s - 1].first, "step") if s > 0 else None,
        next_statement=(
            url(run.statements[s + 1].first, "step") if s + 1 < len(run.statements) else None
        ),
        before=url(step, "before"),
        after=url(step, "after"),
        this_step=url(step, "step"),
    )


def stage(run: Run, source: str, step: int, view: View, url: StepUrl) -> dict[str, Any]:
    """The template context of a stage; `stage` is None when there is nothing to step."""
    if not run.steps or not run.statements:
        return {"stage": None, "lines": source_lines(source, run, None), "run": run}
    step = clamp(run, step)
    panel = step_view(run, step, view)
    return {
        "stage": panel,
        "lines": source_lines(source, run, panel.statement.index),
        "nav": nav(run, step, url),
        "url": url,
        "run": run,
    }


def stage_json(run: Run, panel: StepView | None) -> dict[str, Any]:
    """A stage page's JSON twin: the CLI's JSON for the run, and what the page shows."""
    return {"scenario": scenario_json(run), "page": None if panel is None else panel.model_dump()}


def stage_text(run: Run, panel: StepView | None) -> str:
    """A stage page's text twin: the step, then the engine's picture of its statement."""
    if panel is None:
        return "(no statements)\n"
    head = (
        f"step {panel.index + 1}/{panel.total}  {panel.function}: {panel.summary}\n"
        f"statement {panel.statement.index + 1}/{panel.statements}\n\n"
    )
    return head + render_statement(run, panel.statement.index, inner=True) + "\n"
