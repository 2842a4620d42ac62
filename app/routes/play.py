"""/play?source=... : an editor for one's own scenario; the source lives in the URL.

/play?s=v1.<token> is the same page from a self-contained link (app.share).
A harness file (FIXTURE/TEST_F blocks, a whole merge.c) lists its tests;
`&test=NAME` steps through one of them.

The editor's "Run" posts its text (POST /play): a selftest file is tens of
kilobytes, more than a URL's `source=` may carry (MAX_SOURCE). The answer
is a redirect, so the URL stays the whole state (reload, back, share it):

- a scenario goes to its self-contained link, /play?s=<token>; the server
  keeps nothing;
- a harness file (or a scenario whose token is over MAX_TOKEN_CHARS) is
  stored and goes to its short link, /s/<id>. The id is a prefix of the
  text's SHA-256 and a stored text never changes, so the URL still names
  exactly what was pasted, on any server of the store. Its every step,
  test and assertion link is then a few dozen characters, not the token
  again (a 59 KB merge.c's test page is 44 KB instead of 760 KB), and it
  fits a plain-text review mail.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from app.contexts import PlayPage, open_stage
from app.deps import (
    Answer,
    Form,
    Policy,
    RateLimits,
    Rmap,
    Runs,
    ShareStore,
    Source,
    StepAt,
    TestName,
    Token,
)
from app.limits import MAX_TOKEN_CHARS
from app.links import StageLinks
from app.ratelimit import RUNS, SHARES
from app.renderers.registry import resource
from app.share import (
    RunOptions,
    SharedScenario,
    decode_token,
    encode_token,
    scenario_from_form,
    share,
)
from engine.mm_types import RmapModel
from engine.scenario.harness import is_harness
from engine.sim.policy import POLICIES

router = APIRouter(tags=["play"])

SAMPLE = """\
// Edit me: the URL keeps what you write.
char *p = mmap(NULL, 5 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
memset(p, 'x', 5 * page_size);
mprotect(p + 2 * page_size, page_size, PROT_READ);
mprotect(p + 2 * page_size, page_size, PROT_READ | PROT_WRITE);
"""


class PlayInput:
    """What names the scenario: a token (`s=`; BadToken says what is wrong
    with it), or `source=` (the sample if absent) and `policy=`."""

    def __init__(
        self, source: str | None, s: str | None, policy: str | None, rmap: RmapModel | None
    ) -> None:
        self.token = s
        if s is not None:
            self.scenario = decode_token(s)
            return
        try:
            options = RunOptions(policy=policy or None, rmap_model=rmap)
        except ValidationError as err:
            raise HTTPException(
                422, [{"loc": ["query", "policy"], "msg": err.errors()[0]["msg"]}]
            ) from None
        text = SAMPLE if source is None else source
        self.scenario = SharedScenario.model_construct(source=text, options=options)

    def links(self, embed: bool = False) -> StageLinks:
        """Steps keep the URL's own form; the links to share are self-contained."""
        scenario = self.scenario
        if self.token is not None:
            query = {"s": self.token}
        else:
            query = (
                {"source": scenario.source}
                | ({"policy": scenario.policy} if scenario.policy else {})
                | ({"rmap": scenario.options.rmap_model} if scenario.options.rmap_model else {})
            )
        try:
            token = self.token or encode_token(scenario)
        except ValidationError:  # over MAX_SHARED_SOURCE_BYTES: no link to share
            return StageLinks("/play", query, embed)
        fits = len(token) <= MAX_TOKEN_CHARS
        return StageLinks(
            "/play",
            query,
            embed,
            shorten={"s": token}
            if fits
            else {
                "source": scenario.source,
                "policy": scenario.policy or "",
                "rmap": scenario.options.rmap_model or "",
            },
            shared={"s": token} if fits else None,
        )


@resource(router, "/play", PlayPage.FORMATS)
def play(
    runs: Runs,
    at: StepAt,
    answer: Answer,
    limits: RateLimits,
    source: Source = None,
    s: Token = None,
    policy: Policy = None,
    rmap: Rmap = None,
    test: TestName = None,
) -> Response:
    """The playground at one inner step (of one test of a harness file): the
    page, .json, .txt, picture.svg, map.svg, anon_vma.svg. `rmap=` runs it
    under that rmap model (the source's `// @rmap` line set so).

    A source no cache holds counts against RUNS_PER_CLIENT before it runs.
    """
    given = PlayInput(source, s, policy, rmap)
    scenario = given.scenario
    if not runs.holds(scenario.run_source, scenario.policy):
        limits.hit(RUNS)
    links = given.links(at.embed)
    stage = open_stage(
        runs, scenario.run_source, scenario.policy, at.step, at.view, links, "play", test
    )
    return answer(
        PlayPage(
            stage,
            scenario.policy,
            {name: p.description for name, p in POLICIES.items()},
            scenario.options.rmap_model,
        )
    )


@router.post("/play", include_in_schema=False)
def paste(form: Form, runs: Runs, store: ShareStore, limits: RateLimits) -> Response:
    """The editor's "Run": see what was posted at its link (the module says why);
    a link that must be stored counts against SHARES_PER_CLIENT."""
    scenario = scenario_from_form(form)
    token = encode_token(scenario)
    if not is_harness(scenario.source) and len(token) <= MAX_TOKEN_CHARS:
        return RedirectResponse("/play?" + urlencode({"s": token}), 303)
    limits.hit(SHARES)
    return RedirectResponse(f"/s/{share(store, runs, scenario)}", 303)
