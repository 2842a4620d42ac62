"""Browser tests: Debian's Chromium through Playwright, doing what a person does."""

from __future__ import annotations

from urllib.parse import urlencode

from engine.gallery import find


def state_step(pg: object) -> int:
    return int(pg.get_attribute("#state", "data-step"))  # type: ignore[attr-defined]


def wait_step(pg: object, n: int) -> None:
    pg.wait_for_selector(f'#state[data-step="{n}"]')  # type: ignore[attr-defined]


def wait_step_change(pg: object, old: int) -> None:
    """Wait until the state panel shows a step other than `old` (a swap landed)."""
    pg.wait_for_function(  # type: ignore[attr-defined]
        f"() => document.querySelector('#state').dataset.step !== '{old}'"
    )


def vma_count(pg: object) -> int:
    return int(pg.text_content('td[data-count="vmas"]'))  # type: ignore[attr-defined]


def test_gallery_to_scenario_keys_and_buttons_see_a_merge(page: object, server: str) -> None:
    pg = page
    pg.goto("/")
    pg.get_by_role(
        "link", name="mprotect splits a VMA, and mprotect back merges it", exact=True
    ).click()
    pg.wait_for_url("**/scenarios/merge_on_mprotect")
    assert state_step(pg) == 0
    pg.keyboard.press("ArrowRight")
    wait_step(pg, 1)
    assert pg.url.endswith("/scenarios/merge_on_mprotect?step=1")
    pg.get_by_role("link", name="Next step").click()
    wait_step(pg, 2)
    pg.keyboard.press("ArrowLeft")
    wait_step(pg, 1)
    pg.keyboard.press("End")
    last = int(pg.get_attribute("#step-range", "max"))
    wait_step(pg, last)
    assert vma_count(pg) == 1
    assert pg.input_value("#step-range") == str(last)
    # back through the statement: before the last mprotect there were three VMAs
    pg.get_by_role("link", name="Previous statement").click()
    pg.wait_for_function(
        "() => document.querySelector('#source .current code').textContent.includes('PROT_READ)')"
    )
    pg.get_by_role("link", name="After the statement").click()
    pg.wait_for_selector('.viewtoggle a[aria-current="page"]:text("After the statement")')
    assert vma_count(pg) == 3
    before = state_step(pg)
    pg.get_by_role("link", name="Next statement").click()
    wait_step_change(pg, before)
    pg.get_by_role("link", name="After the statement").click()
    pg.wait_for_function(
        "() => document.querySelector('td[data-count=\"vmas\"]').textContent.trim() === '1'"
    )
    assert pg.locator("svg.vma-map g.vma").count() == 1
    pg.keyboard.press("Home")
    wait_step(pg, 0)
    pg.go_back()
    pg.wait_for_function("() => document.querySelector('#state').dataset.step !== '0'")


def test_scrubber_moves_the_state(page: object) -> None:
    pg = page
    pg.goto("/scenarios/fork_and_cow")
    pg.fill("#step-range", "7")
    wait_step(pg, 7)
    assert pg.url.endswith("step=7")
    assert pg.text_content("#step-out").strip().startswith("8 /")


def test_playground_shows_a_folio_index_change(page: object) -> None:
    """The contract's example: MREMAP_RELOCATE_ANON rewrites the moved folios' index."""
    source = find("relocate_then_merge").source  # the contract's own example
    pg = page
    pg.goto("/play?" + urlencode({"source": source}))
    # htmx must be listening before a key press is turned into a swap.
    pg.wait_for_function("() => window.htmx !== undefined && document.readyState === 'complete'")
    pg.keyboard.press("End")
    last = int(pg.get_attribute("#step-range", "max"))
    wait_step(pg, last)
    # find the first step at which a folio row is marked changed with a new index
    pg.get_by_role("link", name="Previous statement").click()
    wait_step_change(pg, last)
    before = state_step(pg)
    pg.get_by_role("link", name="Next statement").click()
    wait_step_change(pg, before)
    first = state_step(pg)
    seen = None
    for n in range(first, last + 1):
        if pg.locator("table.folios tr.changed").count():
            seen = pg.locator("table.folios tr.changed").first
            break
        pg.keyboard.press("ArrowRight")
        wait_step(pg, n + 1)
    assert seen is not None, "no folio changed under the move"
    folio = seen.get_attribute("data-folio")
    after = seen.locator("td.index").text_content()
    pg.get_by_role("link", name="Previous step").click()
    row = pg.locator(f'table.folios tr[data-folio="{folio}"]').first
    pg.wait_for_function(f"() => document.querySelector('#state').dataset.step === '{n - 1}'")
    assert row.locator("td.index").text_content() != after


def test_compare_view(page: object) -> None:
    pg = page
    pg.goto("/compare/faulted_move_no_merge")
    assert pg.locator("section.side").count() == 2
    pg.keyboard.press("End")
    pg.wait_for_selector("text=Statement 6 of 6, after it")
    pg.get_by_role("link", name="Previous step").click()
    pg.wait_for_selector("#comparison:not([data-step='after'])")
    assert pg.locator(".lockstep").count() == 1
    pg.get_by_role("link", name="Previous statement").click()
    pg.wait_for_selector("text=Statement 5 of 6")
    pg.locator("details.choose > summary").click()
    pg.uncheck('input[name="v"][value="flags"]')
    pg.get_by_role("button", name="Compare").click()
    pg.wait_for_selector("#diff-title:text('Same')")


def test_step_page_without_javascript(browser: object, server: str) -> None:
    context = browser.new_context(base_url=server, java_script_enabled=False)  # type: ignore[attr-defined]
    pg = context.new_page()
    pg.goto("/scenarios/merge_on_mprotect?step=3")
    assert state_step(pg) == 3
    pg.get_by_role("link", name="Next step").click()
    pg.wait_for_url("**step=4")
    assert state_step(pg) == 4
    pg.fill("#step-range", "6")
    pg.get_by_role("button", name="Go").click()
    pg.wait_for_url("**step=6")
    assert state_step(pg) == 6
    context.close()
