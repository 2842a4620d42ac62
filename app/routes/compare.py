"""/compare/<slug>?a=original&b=flags&stmt=N : one scenario under two variants."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.contexts import ComparePage
from app.deps import Answer, Entry, Runs, Variants
from app.renderers.registry import resource
from app.views.compare import compare_view
from engine.variants import VARIANTS, apply

router = APIRouter(prefix="/compare", tags=["compare"])


@resource(router, "/{slug}", ComparePage.FORMATS)
def compare(scenario: Entry, pair: Variants, runs: Runs, answer: Answer) -> Response:
    """Both variants after one statement, side by side; .json has both runs' CLI JSON."""
    sources = (apply(pair.a, scenario.source), apply(pair.b, scenario.source))
    both = (runs.get(sources[0]), runs.get(sources[1]))
    count = min(len(r.statements) for r in both)
    described = ((pair.a, VARIANTS[pair.a].description), (pair.b, VARIANTS[pair.b].description))
    view = compare_view(both, described, min(pair.stmt, count - 1)) if count else None
    return answer(ComparePage(scenario, pair.a, pair.b, VARIANTS, both, sources, view))
