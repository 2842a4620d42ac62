"""Short links: POST /api/share, POST /share, and /s/<id> with its twins and SVGs."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from app.contexts import Drift, SharedPage, open_stage
from app.deps import Answer, Runs, ShareStore, StepAt
from app.limits import MAX_SHARE_BODY_BYTES
from app.links import StageLinks
from app.renderers.registry import resource
from app.share import (
    BadLink,
    SharedScenario,
    ShareResponse,
    decode_token,
    encode_token,
    load,
    share,
    story,
)
from engine.version import ENGINE_VERSION, first_difference

router = APIRouter(tags=["share"])


@router.post(
    "/api/share",
    response_model=ShareResponse,
    responses={422: {"description": "an unknown option, or a source over the size limit"}},
)
def api_share(body: SharedScenario, runs: Runs, store: ShareStore) -> ShareResponse:
    """Store a scenario and answer its short link.

    The id is a prefix of the SHA-256 of the scenario's canonical JSON, so
    the same scenario always gets the same link, on any server of the
    deployment. A scenario that does not parse can be shared too: its page
    shows the error.
    """
    ident = share(store, runs, body)
    return ShareResponse(id=ident, url=f"/s/{ident}", token=encode_token(body))


@router.post("/share", include_in_schema=False)
async def form_share(request: Request, runs: Runs, store: ShareStore) -> Response:
    """The "Short link" button: a form with `s` (a token) or `source` and
    `policy`, and `step`; stores the scenario and sees the page at /s/<id>."""
    body = await request.body()
    if len(body) > MAX_SHARE_BODY_BYTES:
        raise BadLink(f"form over MAX_SHARE_BODY_BYTES ({MAX_SHARE_BODY_BYTES})", 413)
    form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    if "s" in form:
        scenario = decode_token(form["s"])
    else:
        options = {"policy": form["policy"]} if form.get("policy") else {}
        try:
            scenario = SharedScenario.model_validate(
                {"source": form.get("source", ""), "options": options}
            )
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BadLink(f"{where}: {first['msg']}", 422) from None
    ident = share(store, runs, scenario)
    query = {"step": form["step"]} if form.get("step", "").isdigit() else {}
    return RedirectResponse(f"/s/{ident}" + (f"?{urlencode(query)}" if query else ""), 303)


@resource(router, "/s/{ident}", SharedPage.FORMATS)
def shared(ident: str, at: StepAt, runs: Runs, store: ShareStore, answer: Answer) -> Response:
    """A short link's scenario at one inner step; .txt is what to paste into a
    reply (before and after the step's statement, 75 columns)."""
    loaded = load(store, ident)
    if loaded is None:
        raise BadLink(f"no shared scenario {ident!r}", 404)
    scenario, record = loaded
    today = story(runs, scenario)
    drift = Drift(
        engine=record.engine,
        today=ENGINE_VERSION,
        statement=first_difference(record.fingerprint, today),
    )
    links = StageLinks(f"/s/{ident}", embed=at.embed)
    stage = open_stage(
        runs, scenario.source, scenario.policy, at.step, at.view, links, f"s-{ident}"
    )
    return answer(SharedPage(stage, ident, record, scenario, encode_token(scenario), drift))
