"""Serving from caches: the warm-up at start, new short links warmed, one panel per
step for all its twins, the .txt twins' origin.

Real app servers (`python -m app`, tests/support/servers.py) where the
warm-up is what is tested: it runs in the server's lifespan, as deployed.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.limits import WARM_QUEUED_LINKS
from app.main import create_app
from app.pagecache import PageCache
from app.runs import RunCache, gallery
from app.warmup import Link, Warmup, gallery_visits
from engine.sim.simulation import Run
from tests.support.servers import free_port, start_app

SOURCE = """\
char *p = mmap(NULL, 4 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
memset(p, 'x', 4 * page_size);
char *q = mremap(p, 2 * page_size, 2 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, p + 8 * page_size);
"""
GZIP = {"Accept-Encoding": "gzip"}
FIRST = gallery()[0].slug
"""The gallery's first scenario: the warm-up renders its pages first."""


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Starts app servers with the given environment; their base URLs."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> str:
        port = free_port()
        procs.append(start_app(tmp_path / f"data{len(procs)}", port, **env))
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


def ready(c: httpx.Client, timeout: float = 120) -> dict[str, Any]:
    """/healthz once it says ready (the warm-up done)."""
    deadline = time.monotonic() + timeout
    while (health := c.get("/healthz").json())["status"] != "ready":
        assert health["status"] == "warming", health
        assert time.monotonic() < deadline, f"still warming: {health}"
        time.sleep(0.1)
    assert c.get("/healthz").status_code == 200
    return health


def caches(c: httpx.Client) -> dict[str, int]:
    caches: dict[str, int] = c.get("/healthz").json()["caches"]
    return caches


def test_the_gallery_warms_at_start_up_to_its_bound(servers: Callable[..., str]) -> None:
    budget = 40
    warm, cold = servers(MREMAP_VIZ_WARM_PAGES=str(budget)), servers()
    with httpx.Client(base_url=warm, timeout=60) as c, httpx.Client(base_url=cold) as plain:
        health = ready(c)
        assert health["warmup"]["pages"] == budget and health["warmup"]["failed"] == 0
        assert health["warmup"]["stopped"] == "WARM_PAGES"
        assert health["caches"]["pages"] == budget
        # Warmed, in order: the gallery, then the first scenario's steps with their twins.
        for url, headers in [
            ("/", {}),
            (f"/scenarios/{FIRST}", {}),
            (f"/scenarios/{FIRST}?step=0", {"HX-Request": "true"}),
            (f"/scenarios/{FIRST}/map.svg?step=1", {}),
        ]:
            before = caches(c)
            page = c.get(url, headers={**headers, **GZIP})
            after = caches(c)
            assert page.status_code == 200
            assert after["page_hits"] == before["page_hits"] + 1, url
            assert after["pages"] == budget, url
            # What the warm-up kept is what a server without one renders.
            assert page.content == plain.get(url, headers={**headers, **GZIP}).content, url
        # Past the bound: rendered on its first visit, kept from then on.
        last = gallery()[-1].slug
        before = caches(c)
        assert c.get(f"/scenarios/{last}?step=1", headers=GZIP).status_code == 200
        assert caches(c)["pages"] == budget + 1
        assert caches(c)["page_hits"] == before["page_hits"]
        assert plain.get("/healthz").json()["status"] == "ready"  # no warm-up: ready at once
        assert plain.get("/healthz").json()["warmup"]["pages"] == 0


def test_a_new_short_link_is_warmed_when_it_is_made(servers: Callable[..., str]) -> None:
    base = servers(MREMAP_VIZ_WARM_PAGES="1")
    with httpx.Client(base_url=base, timeout=60) as c:
        ready(c)
        before = caches(c)
        ident = c.post("/api/share", json={"source": SOURCE}).json()["id"]
        health = ready(c)
        assert health["warmup"]["links"] == 1 and health["warmup"]["dropped"] == 0
        steps = len(c.get(f"/s/{ident}.json").json()["scenario"]["steps"][-1]["inner"])
        assert steps > 0
        # The link's page, and each step's page, fragment, .json and three SVGs (no
        # .txt: this server has no MREMAP_VIZ_PUBLIC_URL).
        warmed = health["caches"]["pages"] - before["pages"]
        doc = c.get(f"/s/{ident}.json?step=0").json()
        total = doc["page"]["total"]
        assert warmed == 1 + 6 * total
        hits = caches(c)["page_hits"]
        step = total - 1
        for url, headers in [
            (f"/s/{ident}?step={step}", {}),
            (f"/s/{ident}?step={step}", {"HX-Request": "true"}),
            (f"/s/{ident}/anon_vma.svg?step={step}", {}),
        ]:
            assert c.get(url, headers={**headers, **GZIP}).status_code == 200
        assert caches(c)["page_hits"] == hits + 3


def test_a_step_and_its_twins_share_one_panel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MREMAP_VIZ_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("MREMAP_VIZ_PUBLIC_URL", raising=False)
    application = create_app(isolate=False)
    with TestClient(application) as c:
        source = c.get("/index.json").json()[0]["source"]

        def derived() -> int:
            count: int = c.get("/healthz").json()["caches"]["derived"]
            return count

        start = derived()
        page = c.get(f"/scenarios/{FIRST}?step=2")
        assert page.status_code == 200 and derived() == start + 1  # the step's panel
        for url, headers in [
            (f"/scenarios/{FIRST}?step=2", {"HX-Request": "true"}),
            (f"/scenarios/{FIRST}/map.svg?step=2", {}),
            (f"/scenarios/{FIRST}/picture.svg?step=2", {}),
            (f"/scenarios/{FIRST}.txt?step=2", {}),
        ]:
            assert c.get(url, headers=headers).status_code == 200
        assert derived() == start + 1
        one = c.get(f"/scenarios/{FIRST}.json?step=2").json()
        assert derived() == start + 2  # the run's JSON document, once
        two = c.get(f"/scenarios/{FIRST}.json?step=3").json()
        assert derived() == start + 3  # step 3's panel; the document again from the cache
        assert one["scenario"] == two["scenario"] and one["page"] != two["page"]
        assert one["page"]["index"] == 2 and two["page"]["index"] == 3
        # A short link to the same source shows the same run: its panel too.
        ident = c.post("/api/share", json={"source": source}).json()["id"]
        shared = c.get(f"/s/{ident}.json?step=3").json()
        assert shared["page"] == two["page"] and derived() == start + 3
    application.state.store.close()


def test_a_txt_twin_names_the_origin_asked_or_the_public_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MREMAP_VIZ_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    url = f"/scenarios/{FIRST}.txt?step=1"
    monkeypatch.delenv("MREMAP_VIZ_PUBLIC_URL", raising=False)
    application = create_app(isolate=False)
    with TestClient(application) as c:
        for host in ("one.example", "two.example", "one.example"):
            link = c.get(url, headers={"Host": host}).text.splitlines()[0]
            assert link == f"Link: http://{host}/scenarios/{FIRST}?step=1"
    application.state.store.close()
    monkeypatch.setenv("MREMAP_VIZ_PUBLIC_URL", "https://mremap.example/")
    application = create_app(isolate=False)
    with TestClient(application) as c:
        for host in ("one.example", "two.example"):
            link = c.get(url, headers={"Host": host}).text.splitlines()[0]
            assert link == f"Link: https://mremap.example/scenarios/{FIRST}?step=1"
    application.state.store.close()
    monkeypatch.setenv("MREMAP_VIZ_PUBLIC_URL", "mremap.example/path")
    with pytest.raises(ValueError, match="MREMAP_VIZ_PUBLIC_URL"):
        create_app(isolate=False)


def test_the_link_queue_is_bounded() -> None:
    runs = RunCache()

    async def queue_links() -> tuple[list[bool], Any]:
        warmup = Warmup(lambda scope, receive, send: None, runs, PageCache(), budget=1)  # type: ignore[arg-type, return-value]
        assert not warmup.add_link(Link("0" * 8, SOURCE, None))  # not running: nothing queued
        warmup._loop = asyncio.get_running_loop()
        queued = [
            warmup.add_link(Link(f"{n:08x}", SOURCE, None)) for n in range(WARM_QUEUED_LINKS + 2)
        ]
        return queued, warmup.status()

    queued, status = asyncio.run(queue_links())
    assert queued == [True] * WARM_QUEUED_LINKS + [False, False]
    assert status.queued == WARM_QUEUED_LINKS and status.dropped == 2
    assert status.state == "warming"


def test_the_gallery_visits_are_every_step_with_its_twins() -> None:
    runs = RunCache()
    visits = gallery_visits(runs, text=True)
    steps = sum(len(r.steps) for e in gallery() if isinstance(r := runs.get(e.source), Run))
    assert len(visits) == 2 + len(gallery()) + 7 * steps
    assert len(set(visits)) == len(visits)
    assert sum(v.htmx for v in visits) == steps
    assert sum(v.path.endswith(".txt") for v in visits) == steps
    assert len(gallery_visits(runs, text=False)) == len(visits) - steps
