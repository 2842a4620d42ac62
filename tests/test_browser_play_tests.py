"""Browser test of /play with a kselftest harness file: paste two tests, run them,
open the failing one, step to its failed assertion and read both values."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.data import two_tests

FAILING = "merge.plain_move_merges_too"
VALUES = "0x7ffff7fdf000 == 0x7ffff7fe4000 failed"
SHOTS = os.environ.get("MREMAP_VIZ_SCREENSHOTS")
"""A directory to save the test list's screenshots to (1280 and 390 px wide)."""


def test_paste_two_tests_open_the_failing_one_and_see_its_values(page: object) -> None:
    pg = page
    pg.goto("/play")  # type: ignore[attr-defined]
    pg.fill("#source-editor", two_tests())  # type: ignore[attr-defined]
    pg.get_by_role("button", name="Run").click()  # type: ignore[attr-defined]
    pg.wait_for_selector(".test-list")  # type: ignore[attr-defined]
    assert "/s/" in pg.url  # type: ignore[attr-defined]
    rows = pg.locator(".test-list li")  # type: ignore[attr-defined]
    assert rows.count() == 2
    assert rows.nth(0).locator(".verdict").inner_text() == "ok"
    assert rows.nth(1).locator(".verdict").inner_text() == "FAIL"

    pg.get_by_role("link", name=FAILING).click()  # type: ignore[attr-defined]
    pg.wait_for_selector(f'.test-list li[aria-current] a:text("{FAILING}")')  # type: ignore[attr-defined]
    failed = pg.locator('.checks li.fail[data-phase="body"] a')  # type: ignore[attr-defined]
    assert failed.inner_text() == "line 42"
    failed.click()
    line = pg.locator("#source .line.current", has=pg.locator(".check.fail"))  # type: ignore[attr-defined]
    line.wait_for()
    assert line.locator(".ln").inner_text() == "42"
    assert VALUES in line.locator(".check.fail").inner_text()
    assert "step=" in pg.url  # type: ignore[attr-defined]

    if SHOTS:
        for width in (1280, 390):
            pg.set_viewport_size({"width": width, "height": 900})  # type: ignore[attr-defined]
            pg.screenshot(path=str(Path(SHOTS) / f"play-tests-{width}.png"), full_page=True)  # type: ignore[attr-defined]
