"""/compare/<slug>?v=original&v=flags&stmt=N&step=K : one scenario under up to
COMPARE_MAX_VARIANTS variants, stepped together."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from app.contexts import ComparePage
from app.deps import Answer, Entry, Runs, Variants
from app.renderers.registry import resource
from app.runs import RunCache
from app.views.compare import compare_view
from engine.sim.simulation import Run, Suite
from engine.variants import VARIANTS, apply

router = APIRouter(prefix="/compare", tags=["compare"])


@resource(router, "/{slug}", ComparePage.FORMATS)
def compare(scenario: Entry, chosen: Variants, runs: Runs, answer: Answer) -> Response:
    """The variants at one statement (and inner step), side by side; .json has every
    run's CLI JSON."""
    sources = tuple(apply(name, scenario.source) for name in chosen.names)
    ran = tuple(_scenario_run(runs, source) for source in sources)
    count = min(len(r.statements) for r in ran)
    described = [(name, VARIANTS[name].description) for name in chosen.names]
    view = (
        compare_view(list(ran), described, min(chosen.stmt, count - 1), chosen.step)
        if count
        else None
    )
    return answer(ComparePage(scenario, chosen.names, VARIANTS, ran, sources, view))


def _scenario_run(runs: RunCache, source: str) -> Run:
    """A variant's run; the variants rewrite scenarios, not harness files."""
    run = runs.get(source)
    if isinstance(run, Suite):
        raise HTTPException(404, "a harness file has no compare view")
    return run
