"""Short links: POST /api/share, POST /share, and /s/<id> with its twins and SVGs."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.contexts import Drift, SharedPage, open_stage
from app.deps import SHARE_LIMITED, Answer, Form, Runs, ShareStore, StepAt, TestName
from app.links import StageLinks
from app.renderers.registry import resource
from app.share import (
    BadLink,
    SharedScenario,
    ShareResponse,
    decode_token,
    encode_token,
    load,
    scenario_from_form,
    share,
    story,
)
from app.warmup import Link, Warmup
from engine.scenario.errors import ScenarioError
from engine.sim.simulation import Suite
from engine.version import ENGINE_VERSION, first_difference

router = APIRouter(tags=["share"])


@router.post(
    "/api/share",
    response_model=ShareResponse,
    responses={
        422: {"description": "an unknown option, or a source over the size limit"},
        429: {"description": "over SHARES_PER_CLIENT (app/limits.py); see Retry-After"},
        503: {"description": "the store is unavailable"},
        507: {"description": "the store's quota is reached, or its disk full"},
    },
    dependencies=[SHARE_LIMITED],
)
def api_share(
    body: SharedScenario, runs: Runs, store: ShareStore, request: Request
) -> ShareResponse:
    """Store a scenario and answer its short link.

    The id is a prefix of the SHA-256 of the scenario's canonical JSON, so
    the same scenario always gets the same link, on any server of the
    deployment. A scenario that does not parse can be shared too: its page
    shows the error. Its pages are rendered in the background (app/warmup.py).
    """
    ident = share(store, runs, body)
    _warm(request, ident, body)
    return ShareResponse(id=ident, url=f"/s/{ident}", token=encode_token(body))


@router.post("/share", include_in_schema=False, dependencies=[SHARE_LIMITED])
def form_share(form: Form, runs: Runs, store: ShareStore, request: Request) -> Response:
    """The "Short link" button: a form with `s` (a token) or `source`,
    `policy` and `rmap`, and `test` and `step`; stores the scenario and sees the page at /s/<id>."""
    scenario = decode_token(form["s"]) if "s" in form else scenario_from_form(form)
    ident = share(store, runs, scenario)
    _warm(request, ident, scenario)
    query = {"test": form["test"]} if form.get("test") else {}
    if form.get("step", "").isdigit():
        query["step"] = form["step"]
    return RedirectResponse(f"/s/{ident}" + (f"?{urlencode(query)}" if query else ""), 303)


def _warm(request: Request, ident: str, scenario: SharedScenario) -> None:
    """Queue the new link's pages for the warm-up (if it runs and has room)."""
    warmup: Warmup = request.app.state.warmup
    warmup.add_link(Link(ident, scenario.run_source, scenario.policy))


@resource(router, "/s/{ident}", SharedPage.FORMATS)
def shared(
    ident: str,
    at: StepAt,
    runs: Runs,
    store: ShareStore,
    answer: Answer,
    test: TestName = None,
) -> Response:
    """A short link's scenario at one inner step; .txt is what to paste into a
    reply (before and after the step's statement, 75 columns)."""
    loaded = load(store, ident)
    if loaded is None:
        raise BadLink(f"no shared scenario {ident!r}", 404)
    scenario, record = loaded
    today = story(runs, scenario)
    parted = first_difference(record.fingerprint, today)
    drift = Drift(
        engine=record.engine,
        today=ENGINE_VERSION,
        statement=parted,
        test=_test_at(runs, scenario, parted),
    )
    links = StageLinks(f"/s/{ident}", embed=at.embed)
    stage = open_stage(
        runs, scenario.run_source, scenario.policy, at.step, at.view, links, f"s-{ident}", test
    )
    return answer(SharedPage(stage, ident, record, scenario, encode_token(scenario), drift))


def _test_at(runs: Runs, scenario: SharedScenario, index: int | None) -> str | None:
    """Of a harness file, the name of test `index` (where two stories part)."""
    if index is None:
        return None
    try:
        run = runs.get(scenario.run_source, scenario.policy)
    except ScenarioError:
        return None
    if isinstance(run, Suite) and index < len(run.runs):
        return run.runs[index].test
    return None
