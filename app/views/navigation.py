"""The step controls: Run.neighbours as the URLs the controls link to."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from engine.sim.simulation import Run, View

StepUrl = Callable[[int, View], str]
"""The URL of inner step N of a page, in a view (app.links.StageLinks.page)."""


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


def nav(run: Run, step: int, url: StepUrl) -> Nav:
    n = run.neighbours(step)

    def to(target: int | None) -> str | None:
        return None if target is None else url(target, "step")

    return Nav(
        first=to(n.first),
        prev=to(n.prev),
        next=to(n.next),
        last=to(n.last),
        prev_statement=to(n.prev_statement),
        next_statement=to(n.next_statement),
        before=url(step, "before"),
        after=url(step, "after"),
        this_step=url(step, "step"),
    )
