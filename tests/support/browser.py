"""Browser fixtures: Debian's Chromium through Playwright, against a real app server.

A pytest plugin (tests/conftest.py loads it): `server` (module scope) is
`python -m app` on a free loopback port, `browser` a headless Chromium,
`page` a fresh context on `server` that fails the test on any console
error. Without Playwright or /usr/bin/chromium the tests that use them skip.
`watched_page` opens a page (JavaScript on or off) that records console
errors and CSP violations for `check_clean`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import free_port, start_app

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    proc = start_app(tmp_path_factory.mktemp("data"), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no {CHROMIUM}")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    context = browser.new_context(base_url=server)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.errors = errors
    yield pg
    context.close()
    assert errors == [], "console errors"


# Record CSP violations from the first script on, before any of the page's own.
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  e => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""


def watched_page(browser: Any, base_url: str, js: bool) -> tuple[Any, Any]:
    """A new context and page on `base_url` that record console errors (`page.errors`)
    and, with JavaScript, CSP violations (`window.__csp`)."""
    context = browser.new_context(base_url=base_url, java_script_enabled=js)
    context.add_init_script(WATCH_CSP)
    pg = context.new_page()
    pg.errors = []
    pg.js = js

    def on_console(message: Any) -> None:
        # The browser logs a page's own error status as a failed load; that is the
        # answer under test, not a fault in it. Anything else fails.
        own = message.location.get("url", "").split("?")[0] == pg.url.split("?")[0]
        if message.type == "error" and not (own and "Failed to load resource" in message.text):
            pg.errors.append(message.text)

    pg.on("console", on_console)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    return context, pg


def check_clean(pg: Any, path: str) -> None:
    """No console error, no CSP violation, and every SVG picture has a title."""
    assert pg.errors == [], (path, pg.errors)
    if pg.js:
        assert pg.evaluate("window.__csp") == [], path
    for svg in pg.locator("svg[role=img]").all():
        label = svg.get_attribute("aria-labelledby") or ""
        title = pg.locator(f"[id='{label.split()[0]}']").text_content() if label else ""
        assert title and title.strip(), (path, "an SVG without a title")


def serious_axe_findings(pg: Any) -> list[str]:
    """axe-core's serious and critical findings on the page as it is (details open)."""
    axe = pytest.importorskip("axe_playwright_python.sync_playwright").Axe()
    pg.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    results = axe.run(pg)
    return [
        f"{v['id']}: {v['help']}: " + ", ".join(str(n["target"]) for n in v["nodes"][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
