"""/scenarios/<slug>?step=N : step through a packaged scenario; its twins and SVGs."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.contexts import ScenarioPage, open_stage
from app.deps import Answer, Entry, Rmap, Runs, StepAt
from app.links import StageLinks
from app.models import with_rmap_model
from app.renderers.registry import resource
from app.share import SharedScenario, encode_token

router = APIRouter(prefix="/scenarios", tags=["scenarios"])


@resource(router, "/{slug}", ScenarioPage.FORMATS)
def scenario(
    scenario: Entry, at: StepAt, runs: Runs, answer: Answer, rmap: Rmap = None
) -> Response:
    """A packaged scenario at one inner step: the page, .json, .txt, picture.svg, map.svg, anon_vma.svg.

    `rmap=` runs it under that rmap model (the scenario's `// @rmap` line set so)."""
    source = with_rmap_model(scenario.source, rmap)
    # "Short link" freezes today's text of the scenario; the gallery's own link follows it.
    token = encode_token(SharedScenario(source=source))
    query: dict[str, str] = {} if rmap is None else {"rmap": rmap}
    links = StageLinks(f"/scenarios/{scenario.slug}", query, at.embed, shorten={"s": token})
    stage = open_stage(runs, source, None, at.step, at.view, links, scenario.slug)
    return answer(ScenarioPage(stage, scenario))
