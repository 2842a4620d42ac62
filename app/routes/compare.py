"""/compare/<slug>?a=original&b=flags&stmt=N : one scenario under two variants."""

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
def compare(scenario: Entry, pair: Variants, runs: Runs, answer: Answer) -> Response:
    """Both variants after one statement, side by side; .json has both runs' CLI JSON."""
    sources = (apply(pair.a, scenario.source), apply(pair.b, scenario.source))
    both = (_scenario_run(runs, sources[0]), _scenario_run(runs, sources[1]))
    count = min(len(r.statements) for r in both)
    described = ((pair.a, VARIANTS[pair.a].description), (pair.b, VARIANTS[pair.b].description))
    view = compare_view(both, described, min(pair.stmt, count - 1)) if count else None
    return answer(ComparePage(scenario, pair.a, pair.b, VARIANTS, both, sources, view))


def _scenario_run(runs: RunCache, source: str) -> Run:
    """A variant's run; the variants rewrite scenarios, not harness files."""
    run = runs.get(source)
    if isinstance(run, Suite):
        raise HTTPException(404, "a harness file has no compare view")
    return run
