"""Every query parameter and shared object a route takes, as Annotated dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, HTTPException, Query, Request

from app.clients import client_key
from app.limits import COMPARE_MAX_VARIANTS, MAX_SHARE_BODY_BYTES, MAX_SOURCE, MAX_TEST_NAME
from app.ratelimit import RUNS, SHARES, Limiter, NamedLimit
from app.renderers.registry import Answer as Answerer
from app.runs import RunCache, gallery_entry
from app.store import Store
from engine.gallery import GalleryEntry
from engine.mm_types import RmapModel
from engine.sim.policy import POLICIES
from engine.sim.simulation import View
from engine.variants import VARIANTS

Answer = Annotated[Answerer, Depends(Answerer)]
"""Renders the route's context in the format the request asked for."""


def _runs(request: Request) -> RunCache:
    runs: RunCache = request.app.state.runs
    return runs


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


Runs = Annotated[RunCache, Depends(_runs)]
ShareStore = Annotated[Store, Depends(_store)]


@dataclass(frozen=True)
class ClientLimits:
    """The rate limiter, and the client this request counts against."""

    limiter: Limiter
    client: str

    def hit(self, limit: NamedLimit) -> None:
        """Count this request against `limit`; RateLimited (a 429) if over it."""
        self.limiter.hit(limit, self.client)


def _client_limits(request: Request) -> ClientLimits:
    return ClientLimits(request.app.state.limiter, client_key(request))


def _share_limited(limits: Annotated[ClientLimits, Depends(_client_limits)]) -> None:
    limits.hit(SHARES)


def _run_limited(limits: Annotated[ClientLimits, Depends(_client_limits)]) -> None:
    limits.hit(RUNS)


RateLimits = Annotated[ClientLimits, Depends(_client_limits)]
"""For a route that decides itself when to count (/play: only uncached runs)."""
SHARE_LIMITED = Depends(_share_limited)
"""A route dependency: each request counts against SHARES_PER_CLIENT."""
RUN_LIMITED = Depends(_run_limited)
"""A route dependency: each request counts against RUNS_PER_CLIENT."""


@dataclass(frozen=True)
class At:
    """Which inner step a stage page shows, how, and whether in embed mode."""

    step: int
    view: View
    embed: bool


def _at(
    step: Annotated[int, Query(ge=0, description="inner step index, 0-based")] = 0,
    view: Annotated[View, Query(description="step, or the statement's before/after")] = "step",
    embed: Annotated[int, Query(ge=0, le=1, description="1: no page chrome, for an iframe")] = 0,
) -> At:
    return At(step, view, bool(embed))


StepAt = Annotated[At, Depends(_at)]


def _entry(slug: str) -> GalleryEntry:
    found = gallery_entry(slug)
    if found is None:
        raise HTTPException(404, f"no scenario {slug!r}")
    return found


Entry = Annotated[GalleryEntry, Depends(_entry)]
"""The packaged scenario the path's `slug` names; 404 if none does."""

Source = Annotated[str | None, Query(max_length=MAX_SOURCE, description="scenario text")]
Token = Annotated[
    str | None, Query(description="a self-contained link's token, v1.<base64url(zlib(JSON))>")
]
Policy = Annotated[str | None, Query(description=f"RELOCATE_ANON policy: {', '.join(POLICIES)}")]
Rmap = Annotated[
    RmapModel | None,
    Query(
        description="rmap model: anon_vma (Linux 6.18) or cow_context (the COW-context"
        " proposal, branch project/cow-context at a4ac1966: no kernel runs it);"
        " default: the scenario's // @rmap line, else anon_vma"
    ),
]
TestName = Annotated[
    str | None,
    Query(
        max_length=MAX_TEST_NAME,
        description="a harness file's test to step through: merge.NAME or NAME (default: the first)",
    ),
]


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the last value of each), at most
    MAX_SHARE_BODY_BYTES: a larger one is a 413 naming it."""
    body = await request.body()
    if len(body) > MAX_SHARE_BODY_BYTES:
        raise HTTPException(413, f"form over MAX_SHARE_BODY_BYTES ({MAX_SHARE_BODY_BYTES})")
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


Form = Annotated[dict[str, str], Depends(_form)]
"""The fields of a posted form: "Run" in the editor, "Short link"."""


@dataclass(frozen=True)
class VariantSet:
    """The variants a compare page shows, the statement, and the inner step within
    it (None: the state after the statement)."""

    names: tuple[str, ...]
    stmt: int
    step: int | None


def _variants(
    v: Annotated[
        list[str] | None,
        Query(
            description=f"variants, in order, 1 to {COMPARE_MAX_VARIANTS} of: {', '.join(VARIANTS)}"
        ),
    ] = None,
    stmt: Annotated[int, Query(ge=0, description="statement index, 0-based")] = 0,
    step: Annotated[
        int | None, Query(ge=0, description="inner step within the statement, 0-based")
    ] = None,
) -> VariantSet:
    names = tuple(v or ("original", "flags"))
    if len(names) > COMPARE_MAX_VARIANTS:
        raise HTTPException(
            422, f"at most COMPARE_MAX_VARIANTS = {COMPARE_MAX_VARIANTS} variants at once"
        )
    for name in names:
        if name not in VARIANTS:
            raise HTTPException(422, f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    if len(set(names)) != len(names):
        raise HTTPException(422, "a variant is named twice")
    return VariantSet(names, stmt, step)


Variants = Annotated[VariantSet, Depends(_variants)]
