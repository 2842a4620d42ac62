"""The warm-up: pages rendered into the page cache before anyone asks, in the background.

Every page of the gallery (the gallery itself and, for every inner step of
every packaged scenario, the step page, its htmx fragment, its `.json` and
its three SVGs) is a function of the package alone, so a server renders
them at start: a visitor, or 32 connections of a load test, then finds them
in the page cache. A new short link's pages are rendered the same way when
it is made (POST /api/share, POST /share): its readers find them cached.

`Warmup` asks for each page through the app's own middleware, one request
at a time, so the cache keeps exactly what a visitor is sent (gzip-encoded,
as browsers ask) and the warm-up never takes more than one thread; a step's
twins one after another, so they share one panel (RunCache.derived).

Bounded: at most WARM_PAGES pages at start, WARM_LINK_PAGES per new link,
WARM_QUEUED_LINKS links waiting (a link made past that is rendered on its
first visit), and never past the page cache's room (MAX_PAGE_CACHE_BYTES).
The `.txt` twins are warmed only when the server knows its public origin
(MREMAP_VIZ_PUBLIC_URL): their `Link:` line names it. /healthz says
"warming" until the gallery and every queued link are done.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message

from app.formats import Format
from app.guard import RunFailed
from app.limits import (
    MAX_PAGE_CACHE_ENTRY_BYTES,
    WARM_LINK_PAGES,
    WARM_QUEUED_LINKS,
)
from app.links import StageLinks
from app.pagecache import PageCache
from app.runs import RunCache, gallery
from app.views.tests import find_test
from engine.scenario.errors import ScenarioError
from engine.sim.simulation import Run

log = logging.getLogger("mremap_viz.warmup")

TWINS = (Format.JSON, Format.MAP_SVG, Format.ANON_VMA_SVG, Format.PICTURE_SVG)
"""The twins warmed with each step's page and fragment (and .txt: see above)."""


@dataclass(frozen=True)
class Visit:
    """One request the warm-up makes: a path, its query, and whether as an htmx swap."""

    path: str
    query: str = ""
    htmx: bool = False


@dataclass(frozen=True)
class Link:
    """A new short link to warm: its id, and what its pages run."""

    ident: str
    source: str
    policy: str | None


class WarmupStatus(BaseModel):
    """What /healthz tells of the warm-up."""

    state: Literal["warming", "ready"]
    pages: int
    """Pages rendered into the cache so far."""
    failed: int
    """Requests that did not answer 200 (logged)."""
    links: int
    """Short links warmed."""
    queued: int
    """Short links waiting to be warmed."""
    dropped: int
    """Short links not warmed: the queue was full (WARM_QUEUED_LINKS)."""
    stopped: str | None
    """The last limit that stopped a warm-up early (WARM_PAGES, WARM_LINK_PAGES,
    MAX_PAGE_CACHE_BYTES), if one did."""
    seconds: float
    """How long the warm-up at start took (so far, while it runs)."""


def step_visits(
    runs: RunCache, base: str, source: str, policy: str | None, text: bool
) -> list[Visit]:
    """The page at `base`, then each inner step's page, fragment and twins (the
    first test's, of a harness file); none if the source does not run."""
    try:
        run = runs.get(source, policy)
    except (ScenarioError, RunFailed):
        return []
    if not isinstance(run, Run):
        found = find_test(run, None)
        if found is None:
            return [Visit(base)]
        run = found[1]
    links = StageLinks(base)
    twins = (*TWINS, Format.TEXT) if text else TWINS
    visits = [Visit(base)]
    for step in range(len(run.steps)):
        query = links.page(step).partition("?")[2]
        visits += [Visit(base, query), Visit(base, query, htmx=True)]
        visits += [Visit(links.twin(fmt, step).partition("?")[0], query) for fmt in twins]
    return visits


def gallery_visits(runs: RunCache, text: bool) -> list[Visit]:
    """The gallery (page and .json), then every packaged scenario's steps."""
    visits = [Visit("/"), Visit("/index.json")]
    for entry in gallery():
        visits += step_visits(runs, f"/scenarios/{entry.slug}", entry.source, None, text)
    return visits


def _keep() -> None:
    """What a warm-up made lives long (cached pages, runs): out of the cyclic
    collector's sight, a full collection no longer walks it, a pause that
    would stall every request at once. (Garbage first, so none is kept.)"""
    gc.collect()
    gc.freeze()


class Warmup:
    """Renders pages into `pages` through `app`: the gallery's at start (at most
    `budget`), then each new short link's; `text`: the .txt twins too."""

    def __init__(
        self, app: ASGIApp, runs: RunCache, pages: PageCache, budget: int, text: bool = False
    ) -> None:
        self.app = app
        self.runs = runs
        self.pages = pages
        self.budget = budget
        self.text = text
        self.warmed = 0
        self.failed = 0
        self.links = 0
        self.dropped = 0
        self.stopped: str | None = None
        self._started = time.monotonic()
        self._at_start_done: float | None = None
        self._queue: asyncio.Queue[Link] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = 0  # queued or being warmed; guarded by _lock
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.budget > 0

    def status(self) -> WarmupStatus:
        with self._lock:
            pending = self._pending
        done = self._at_start_done if self.enabled else self._started
        end = done if done is not None else time.monotonic()
        return WarmupStatus(
            state="ready" if done is not None and pending == 0 else "warming",
            pages=self.warmed,
            failed=self.failed,
            links=self.links,
            queued=pending,
            dropped=self.dropped,
            stopped=self.stopped,
            seconds=round(end - self._started, 3),
        )

    def add_link(self, link: Link) -> bool:
        """Queue a new short link's pages (from any thread); False if not queued:
        no warm-up, or WARM_QUEUED_LINKS already wait."""
        loop = self._loop
        if loop is None:
            return False
        with self._lock:
            if self._pending >= WARM_QUEUED_LINKS:
                self.dropped += 1
                return False
            self._pending += 1
        loop.call_soon_threadsafe(self._queue.put_nowait, link)
        return True

    async def run(self) -> None:
        """Warm the gallery, then each short link queued, until cancelled."""
        self._loop = asyncio.get_running_loop()
        try:
            visits = await run_in_threadpool(gallery_visits, self.runs, self.text)
            await self._warm(visits, self.budget, "WARM_PAGES")
        finally:
            _keep()
            self._at_start_done = time.monotonic()
            log.info("warm-up: %s", self.status().model_dump_json())
        while True:
            link = await self._queue.get()
            try:
                visits = await run_in_threadpool(
                    step_visits, self.runs, f"/s/{link.ident}", link.source, link.policy, self.text
                )
                await self._warm(visits, WARM_LINK_PAGES, "WARM_LINK_PAGES")
                self.links += 1
                _keep()
            finally:
                with self._lock:
                    self._pending -= 1

    async def _warm(self, visits: list[Visit], budget: int, limit: str) -> None:
        for n, visit in enumerate(visits):
            if n >= budget:
                self.stopped = limit
                return
            if not self.pages.room_for(MAX_PAGE_CACHE_ENTRY_BYTES):
                self.stopped = "MAX_PAGE_CACHE_BYTES"
                return
            await self._visit(visit)

    async def _visit(self, visit: Visit) -> None:
        headers = [(b"host", b"warmup.invalid"), (b"accept-encoding", b"gzip")]
        if visit.htmx:
            headers.append((b"hx-request", b"true"))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": visit.path,
            "raw_path": visit.path.encode(),
            "query_string": visit.query.encode(),
            "root_path": "",
            "headers": headers,
            "client": None,
            "server": None,
        }
        status = 0
        received = False

        async def receive() -> Message:
            nonlocal received
            if received:
                return {"type": "http.disconnect"}
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await self.app(scope, receive, send)
        if status == 200:
            self.warmed += 1
        else:
            self.failed += 1
            log.warning("warm-up: %s?%s answered %d", visit.path, visit.query, status)
