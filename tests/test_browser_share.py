"""Browser test of sharing: "Copy link" puts a working link on the clipboard."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

SOURCE = """\
char *p = mmap(NULL, 4 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
memset(p, 'x', 4 * page_size);
mprotect(p + page_size, page_size, PROT_READ);
"""


@pytest.fixture
def clip_page(browser: object, server: str) -> Iterator[object]:
    context = browser.new_context(  # type: ignore[attr-defined]
        base_url=server, permissions=["clipboard-read", "clipboard-write"]
    )
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert errors == []


def test_copy_link_then_copy_as_text_then_open_the_link(clip_page: object, server: str) -> None:
    pg = clip_page
    pg.goto("/play?" + urlencode({"source": SOURCE, "step": 3}))  # type: ignore[attr-defined]
    pg.get_by_role("link", name="Copy link").click()  # type: ignore[attr-defined]
    pg.wait_for_selector('#sharebar .copied:text("Link copied.")')  # type: ignore[attr-defined]
    link = pg.evaluate("navigator.clipboard.readText()")  # type: ignore[attr-defined]
    assert link.startswith(server + "/play?s=v1.") and link.endswith("&step=3")
    assert pg.url.endswith("step=3"), "copying does not navigate"  # type: ignore[attr-defined]
    pg.get_by_role("link", name="Copy as text").click()  # type: ignore[attr-defined]
    pg.wait_for_selector('#sharebar .copied:text("Text copied.")')  # type: ignore[attr-defined]
    text = pg.evaluate("navigator.clipboard.readText()")  # type: ignore[attr-defined]
    assert text.startswith(f"Link: {link}\n"), "the text names its link first, as /s/<id>.txt does"
    assert text.splitlines()[1].startswith("step 4/") and "mmap(NULL" in text and " vma " in text
    pg.goto(link)  # type: ignore[attr-defined]
    pg.wait_for_selector('#state[data-step="3"]')  # type: ignore[attr-defined]
    assert pg.input_value("#source-editor") == SOURCE  # type: ignore[attr-defined]
    # and the short link, through the form
    pg.get_by_role("button", name="Short link").click()  # type: ignore[attr-defined]
    pg.wait_for_url("**/s/*?step=3")  # type: ignore[attr-defined]
    pg.wait_for_selector('#state[data-step="3"]')  # type: ignore[attr-defined]
