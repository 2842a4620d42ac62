"""Every kind of page, in Chromium, with JavaScript on and off: no console error,
no CSP violation, no serious or critical axe-core finding, pictures with text
alternatives, controls a keyboard reaches."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from app.runs import gallery
from engine.sim.policy import POLICIES
from engine.sim.simulation import run_source
from tests.support.browser import check_clean, serious_axe_findings, watched_page

BROKEN = "char *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\nmunmap(p,\n"
EVERY_POLICY = urlencode([("v", f"policy-{p}") for p in POLICIES])
WRITTEN = "char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\np[0] = 'x';\n"
COW_STEP = "/scenarios/cow_fork_chain_exits?step=21"
"""A context exited, a child not yet linked, and the walk's misses marked unfinished."""
BOTH_MODELS = "/compare/cow_fork_then_mremap?v=rmap-anon_vma&v=rmap-cow_context&stmt=6"
SHOTS = os.environ.get("MREMAP_VIZ_SCREENSHOTS")
"""A directory to save the cow_context pages' screenshots to (1280 and 390 px wide)."""


def scenario_steps() -> list[str]:
    """Every packaged scenario at its first, middle and last step."""
    urls = []
    for e in gallery():
        last = len(run_source(e.source).steps) - 1
        urls += [f"/scenarios/{e.slug}?step={n}" for n in sorted({0, last // 2, last})]
    return urls


@pytest.fixture(scope="module")
def short_link(server: str) -> str:
    source = gallery()[0].source
    return str(httpx.post(f"{server}/api/share", json={"source": source}).json()["url"])


def page_kinds(short_link: str) -> dict[str, tuple[str, int]]:
    """A URL of every kind of page, and the status it answers with."""
    return {
        "gallery": ("/", 200),
        "scenario": ("/scenarios/relocate_gup_race_policies?step=31", 200),
        "play, broken": ("/play?" + urlencode({"source": BROKEN}), 200),
        "compare, every policy": (
            f"/compare/relocate_gup_race_policies?{EVERY_POLICY}&stmt=6&step=3",
            200,
        ),
        "short link": (short_link + "?step=3", 200),
        "scenario, cow_context": (COW_STEP, 200),
        "compare, both rmap models": (BOTH_MODELS, 200),
        "play, cow_context": (
            "/play?" + urlencode({"source": WRITTEN, "rmap": "cow_context"}),
            200,
        ),
        "docs": ("/docs", 200),
        "404": ("/no/such/page", 404),
        "404 scenario": ("/scenarios/no_such_scenario", 404),
        "422": ("/scenarios/fork_and_cow?step=many", 422),
    }


@pytest.fixture(params=[True, False], ids=["js", "nojs"])
def visit(browser: Any, server: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page (JavaScript on or off) that records console errors and CSP reports."""
    context, pg = watched_page(browser, server, request.param)
    yield pg
    context.close()


def test_every_scenario_at_first_middle_and_last_step(visit: Any) -> None:
    for path in scenario_steps():
        response = visit.goto(path)
        assert response.status == 200, path
        visit.wait_for_selector("svg.picture")
        check_clean(visit, path)


def test_every_page_kind(visit: Any, short_link: str) -> None:
    for kind, (path, status) in page_kinds(short_link).items():
        response = visit.goto(path)
        assert response.status == status, kind
        if visit.js and kind == "docs":
            visit.wait_for_selector("#swagger-ui .opblock")
        check_clean(visit, path)
        if status != 200:
            assert visit.locator('.way-back a[href="/"]').count() == 1, kind


def test_a_browser_reaches_405_through_a_form(visit: Any) -> None:
    if not visit.js:
        pytest.skip("the form is written into the page by a script")
    visit.goto("/")
    visit.set_content(
        '<form method="post" action="/scenarios/fork_and_cow"><button>send</button></form>'
    )
    with visit.expect_navigation():
        visit.click("button")
    assert "Error 405" in visit.text_content(".errorpage .status")
    check_clean(visit, "405")


def test_no_serious_accessibility_violation(browser: Any, server: str, short_link: str) -> None:
    # Contrast is judged on the settled page: what a step created fades in.
    context = browser.new_context(base_url=server, reduced_motion="reduce")
    pg = context.new_page()
    found = {}
    kinds = page_kinds(short_link)
    kinds.pop("docs")  # Swagger UI's own markup is the package's, not ours
    for kind, (path, _) in kinds.items():
        pg.goto(path)
        bad = serious_axe_findings(pg)
        if bad:
            found[kind] = bad
    context.close()
    assert found == {}


def test_step_controls_work_from_the_keyboard(page: Any) -> None:
    pg = page
    pg.goto("/scenarios/fork_and_cow?step=3")
    for _ in range(40):  # Tab to "Forward", then Enter
        pg.keyboard.press("Tab")
        if pg.evaluate("document.activeElement.dataset.nav") == "next":
            break
    else:
        pytest.fail("Forward is not reachable by Tab")
    pg.keyboard.press("Enter")
    pg.wait_for_selector('#state[data-step="4"]')
    # the picture's box scrolls from the keyboard too
    assert pg.locator(".picture-box[tabindex='0']").count() == 1
    # and the tables open from the keyboard
    pg.focus("#folio-details > summary")
    pg.keyboard.press("Enter")
    assert pg.evaluate("document.getElementById('folio-details').open")


def test_compare_steps_from_the_keyboard(page: Any) -> None:
    pg = page
    pg.goto(f"/compare/relocate_gup_race_policies?{EVERY_POLICY}&stmt=6&step=0")
    assert pg.locator("section.side svg.picture").count() == len(POLICIES)
    pg.keyboard.press("ArrowRight")
    pg.wait_for_selector('#comparison[data-step="1"]')


@pytest.mark.parametrize("width", [1280, 1024, 390])
def test_no_page_scrolls_sideways(browser: Any, server: str, short_link: str, width: int) -> None:
    context = browser.new_context(base_url=server, viewport={"width": width, "height": 800})
    pg = context.new_page()
    kinds = page_kinds(short_link)
    for kind, (path, _) in kinds.items():
        pg.goto(path)
        pg.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        wide = pg.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, (kind, width, wide)
    context.close()


FIVE_POLICIES = urlencode([("v", f"policy-{p}") for p in list(POLICIES)[:5]])


def test_five_policies_side_by_side_on_a_projector_and_a_phone(browser: Any, server: str) -> None:
    path = f"/compare/relocate_gup_race_policies?{FIVE_POLICIES}&stmt=6"
    measure = """() => [...document.querySelectorAll('section.side')].map(s => {
        const svg = s.querySelector('svg.picture');
        const label = svg.querySelector('g.pvma text.strong').getBoundingClientRect();
        return {top: s.getBoundingClientRect().top, left: s.getBoundingClientRect().left,
                label: label.height, picture: svg.getBoundingClientRect().top,
                bottom: svg.getBoundingClientRect().bottom};
      })"""
    for width, height in ((1280, 800), (390, 844)):
        context = browser.new_context(base_url=server, viewport={"width": width, "height": height})
        pg = context.new_page()
        pg.goto(path)
        sides = pg.evaluate(measure)
        assert len(sides) == 5
        assert len({round(s["top"]) for s in sides}) == 1, "the five are not in one row"
        assert len({round(s["picture"]) for s in sides}) == 1, "the pictures do not line up"
        # a VMA's label is drawn at 8 px or more, on the projector as on the phone
        assert min(s["label"] for s in sides) >= 8, sides
        assert pg.evaluate("document.documentElement.scrollWidth") <= width
        if width == 1280:  # all five pictures whole on one screen
            assert max(s["left"] for s in sides) < width
            assert max(s["bottom"] for s in sides) <= height, sides
        else:  # on a phone the row scrolls inside its own box, from the keyboard too
            box = pg.locator(".sides")
            assert pg.evaluate("document.querySelector('.sides').scrollWidth") > width
            box.focus()
            pg.keyboard.press("ArrowRight")
            pg.wait_for_function("() => document.querySelector('.sides').scrollLeft > 0")
        context.close()


def test_the_cow_context_pages_step_and_switch_models(page: Any) -> None:
    """Stepping a cow_context page swaps in the contexts (htmx); the model link and
    the compare link lead to the other model and to both side by side."""
    pg = page
    pg.goto(COW_STEP)
    before = pg.locator("svg.picture g.tnode[data-cow-context]").count()
    assert before > 0
    assert pg.locator("svg.picture g.tnode.exited").count() >= 1
    assert pg.locator("svg.picture g.unfinished-mark").count() >= 1
    pg.click('#stepnav [data-nav="next"]')
    pg.wait_for_selector('#state[data-step="22"]')
    assert pg.locator("svg.picture g.tnode[data-cow-context]").count() > 0
    assert pg.locator('.counts-table[data-rmap-model="cow_context"]').count() == 1
    pg.click("a[data-compare-models]")
    pg.wait_for_selector("section.side .counts-table")
    models = pg.locator("section.side .counts-table").evaluate_all(
        "ts => ts.map(t => t.dataset.rmapModel)"
    )
    assert models == ["anon_vma", "cow_context"]


@pytest.mark.skipif(not SHOTS, reason="MREMAP_VIZ_SCREENSHOTS names no directory")
def test_screenshots_of_the_cow_context_pages(browser: Any, server: str) -> None:
    for name, path in (("cow-step", COW_STEP), ("cow-compare", BOTH_MODELS)):
        for width in (1280, 390):
            context = browser.new_context(
                base_url=server, viewport={"width": width, "height": 900}, reduced_motion="reduce"
            )
            pg = context.new_page()
            pg.goto(path)
            pg.wait_for_selector("svg.picture")
            pg.screenshot(path=str(Path(str(SHOTS)) / f"{name}-{width}.png"), full_page=True)
            context.close()
