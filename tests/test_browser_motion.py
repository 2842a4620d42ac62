"""Motion between steps, in Chromium: the picture's kernel objects slide from where the
last step drew them (app.css: motion), not under prefers-reduced-motion, and a
step without JavaScript is a plain page load that shows the same picture."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from engine.sim.policy import POLICIES

# faulted_move_no_merge: step 25 is move_page_tables, which moves the written folios'
# PTEs to the new range: their blocks are drawn elsewhere at step 25 than at step 24.
MOVE = "/scenarios/faulted_move_no_merge?step=24"

# After each htmx settle, what is moving (getAnimations() brings style up to date first).
WATCH = """
window.__moving = null;
document.addEventListener("htmx:afterSettle", () => {
  window.__moving = document.getAnimations()
    .filter(a => a instanceof CSSTransition)
    .map(a => [a.effect.target.id, a.transitionProperty]);
});
"""

OBJECTS = "svg.picture g.pvma, svg.picture g.pfolio, svg.picture g.tnode"


def placed(pg: Any) -> dict[str, str]:
    """id -> transform attribute of every VMA, folio and anon_vma of the picture."""
    return dict(
        pg.evaluate(
            f"[...document.querySelectorAll({OBJECTS!r})]"
            ".map(e => [e.id, e.getAttribute('transform')])"
        )
    )


# The id a picture's object has, from its own kernel object's id (data-*):
# <picture>-p<pid>-vma<id>, <picture>-p<pid>-f<id>[-<n>], <picture>-av<id>.
NAMED = {
    "pvma": ("vma", r"-p\d+-vma{}"),
    "pfolio": ("folio", r"-p\d+-f{}(-\d+)?"),
    "tnode": ("anon-vma", r"-av{}"),
}


def assert_named_by_kernel_id(pg: Any) -> None:
    """Each object's id is made of its kernel object's id, and no id is used twice."""
    for kind, (data, pattern) in NAMED.items():
        found = pg.evaluate(
            f"[...document.querySelectorAll('svg.picture g.{kind}')]"
            f".map(e => [e.id, e.getAttribute('data-{data}')])"
        )
        assert found, kind
        for ident, own in found:
            assert re.fullmatch(r"pic(-\d+)?" + pattern.format(own), ident), (kind, ident)
    ids = pg.evaluate("[...document.querySelectorAll('[id]')].map(e => e.id)")
    assert len(ids) == len(set(ids)), "an id is used twice"


def step_forward(pg: Any, to: int) -> None:
    pg.wait_for_function("() => window.htmx !== undefined && document.readyState === 'complete'")
    pg.keyboard.press("ArrowRight")
    pg.wait_for_selector(f'#state[data-step="{to}"]')
    pg.wait_for_function("() => window.__moving !== null")


def test_a_moved_folio_slides_to_its_new_place(page: Any) -> None:
    pg = page
    pg.add_init_script(WATCH)
    pg.goto(MOVE)
    assert_named_by_kernel_id(pg)
    before = placed(pg)
    step_forward(pg, 25)
    after = placed(pg)
    moved = {i for i in after if i in before and before[i] != after[i]}
    assert any("-f" in i for i in moved), "move_page_tables moved no folio"
    sliding = {ident for ident, prop in pg.evaluate("window.__moving") if prop == "transform"}
    assert moved <= sliding, moved - sliding
    assert_named_by_kernel_id(pg)
    # once it has settled, every object is where the step's own picture puts it
    pg.wait_for_function("() => document.getAnimations().length === 0")
    for ident, transform in after.items():
        x, y = transform.removeprefix("translate(").rstrip(")").split(",")
        matrix = pg.evaluate(f"getComputedStyle(document.getElementById({ident!r})).transform")
        assert matrix.endswith(f", {float(x):g}, {float(y):g})"), (ident, matrix)


def test_compare_columns_move_in_lockstep(page: Any) -> None:
    pg = page
    pg.add_init_script(WATCH)
    query = urlencode([("v", f"policy-{p}") for p in POLICIES])
    pg.goto(f"/compare/relocate_gup_race_policies?{query}&stmt=6&step=0")
    assert_named_by_kernel_id(pg)
    pg.wait_for_function("() => window.htmx !== undefined && document.readyState === 'complete'")
    for n in range(1, 6):
        pg.keyboard.press("ArrowRight")
        pg.wait_for_selector(f'#comparison[data-step="{n}"]')
        assert_named_by_kernel_id(pg)


def test_reduced_motion_moves_nothing(browser: Any, server: str) -> None:
    context = browser.new_context(base_url=server, reduced_motion="reduce")
    context.add_init_script(WATCH)
    pg = context.new_page()
    pg.goto(MOVE)
    before = placed(pg)
    step_forward(pg, 25)
    assert placed(pg) != before
    assert pg.evaluate("window.__moving") == []
    assert pg.evaluate("document.getAnimations().length") == 0
    durations = pg.evaluate(
        f"[...document.querySelectorAll({OBJECTS!r})]"
        ".map(e => getComputedStyle(e).transitionDuration)"
    )
    assert set(durations) == {"0s"}
    context.close()


def test_without_javascript_a_step_is_a_page_with_the_same_picture(
    browser: Any, server: str
) -> None:
    context = browser.new_context(base_url=server, java_script_enabled=False)
    pg = context.new_page()
    pg.goto(MOVE)
    pg.get_by_role("link", name="Next step").click()
    pg.wait_for_url("**step=25")
    assert pg.get_attribute("#state", "data-step") == "25"
    assert_named_by_kernel_id(pg)
    stepped = placed(pg)
    pg.goto(MOVE.replace("24", "25"))
    assert placed(pg) == stepped  # the same picture a direct visit draws
    context.close()
