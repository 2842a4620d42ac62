"""/scenarios/<slug>?step=N : step through a packaged scenario; its twins and SVGs."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.contexts import ScenarioPage, open_stage
from app.deps import Answer, Entry, Runs, StepAt
from app.links import StageLinks
from app.renderers.registry import resource
from app.share import SharedScenario, encode_token

router = APIRouter(prefix="/scenarios", tags=["scenarios"])


@resource(router, "/{slug}", ScenarioPage.FORMATS)
def scenario(scenario: Entry, at: StepAt, runs: Runs, answer: Answer) -> Response:
    """A packaged scenario at one inner step: the page, .json, .txt, picture.svg, map.svg, anon_vma.svg."""
    # "Short link" freezes today's text of the scenario; the gallery's own link follows it.
    token = encode_token(SharedScenario(source=scenario.source))
    links = StageLinks(f"/scenarios/{scenario.slug}", embed=at.embed, shorten={"s": token})
    stage = open_stage(runs, scenario.source, None, at.step, at.view, links, scenario.slug)
    return answer(ScenarioPage(stage, scenario))
