"""The error pages a browser reaches only when the service is at a limit: 429 (over
RUNS_PER_CLIENT), 507 (the share store holds MAX_STORE_ROWS links) and 503 (the
share store stays locked past STORE_TIMEOUT_SECONDS), in Chromium with JavaScript
on and off, reached the way a person reaches them: a link, the "Short link" button.
Each is the site's error page: no console error but its own status, no CSP
violation, no serious axe finding, and a way back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from app.runs import gallery
from tests.support.browser import check_clean, serious_axe_findings, watched_page
from tests.support.servers import free_port, start_app

SCENARIO = "/scenarios/fork_and_cow?step=3"


def new_source(n: int) -> str:
    """A scenario no cache holds: its run counts against RUNS_PER_CLIENT."""
    return gallery()[0].source + f"\n// a new source, {n}\n"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server whose store takes no link and whose clients may run one new source
    an hour; that one run is spent here."""
    port = free_port()
    proc = start_app(
        tmp_path_factory.mktemp("limited"),
        port,
        MREMAP_VIZ_MAX_STORE_ROWS="0",
        MREMAP_VIZ_RUNS_PER_CLIENT="1/hour",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        spent = httpx.get(f"{base}/play?" + urlencode({"source": new_source(0)}), timeout=60)
        assert spent.status_code == 200
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server whose share store another process holds the write lock of."""
    port = free_port()
    data = tmp_path_factory.mktemp("locked")
    proc = start_app(data, port)
    holder = None
    try:
        holder = sqlite3.connect(Path(data) / "shares.sqlite3", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        yield f"http://127.0.0.1:{port}"
    finally:
        if holder is not None:
            holder.close()
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(params=[True, False], ids=["js", "nojs"])
def js(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def assert_error_page(pg: Any, status: int, words: str, limit: str) -> None:
    assert f"Error {status}" in pg.text_content(".errorpage .status")
    assert words in pg.text_content(".errorpage h1")
    assert limit in pg.text_content(".error-detail")
    assert pg.locator('.way-back a[href="/"]').count() == 1
    check_clean(pg, str(status))
    if pg.js:  # axe-core runs in the page
        assert serious_axe_findings(pg) == []


def short_link(pg: Any) -> Any:
    """Press the step page's "Short link" button; the response it leads to."""
    pg.goto(SCENARIO)
    with pg.expect_navigation() as navigation:
        pg.get_by_role("button", name="Short link").click()
    return navigation.value


def test_429_over_runs_per_client(browser: Any, limited: str, js: bool) -> None:
    context, pg = watched_page(browser, limited, js)
    response = pg.goto("/play?" + urlencode({"source": new_source(int(js) + 1)}))
    assert response.status == 429
    assert int(response.headers["retry-after"]) > 0
    assert_error_page(pg, 429, "Too many requests", "RUNS_PER_CLIENT")
    context.close()


@pytest.mark.parametrize(
    ("status", "where", "words", "limit"),
    [
        (507, "limited", "links already made still work", "MAX_STORE_ROWS"),
        (503, "locked", "try again shortly", "STORE_TIMEOUT_SECONDS"),
    ],
    ids=["507 full", "503 locked"],
)
def test_a_short_link_the_store_refuses(
    browser: Any,
    js: bool,
    request: pytest.FixtureRequest,
    status: int,
    where: str,
    words: str,
    limit: str,
) -> None:
    context, pg = watched_page(browser, request.getfixturevalue(where), js)
    response = short_link(pg)
    assert response.status == status
    if status == 503:
        assert int(response.headers["retry-after"]) > 0
        assert "Try again in a few seconds" in pg.text_content(".errorpage")
    assert_error_page(pg, status, words, limit)
    context.close()
