"""Regenerate the README's screenshots from a running app, in Debian's Chromium.

    ./dev serve &                      # or: python -m app --port 8000
    python scripts/screenshots.py      # --url http://127.0.0.1:8000 --out docs/screenshots

Each shot is a page a reader of the README should recognise: a step page at
projector width and on a phone, the compare view with five RELOCATE_ANON
policies on a projector, and the gallery.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import urlencode

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
POLICIES = ("posted", "pinned_aborts", "no_pin_check", "isolate", "split", "posted_stale_stack")

SHOTS: tuple[tuple[str, str, int, int, str | None], ...] = (
    # name, path, viewport width and height, what to scroll to (None: the top)
    ("step", "/scenarios/relocate_pinned_folio?step=34", 1280, 1000, None),
    ("step-phone", "/scenarios/faulted_move_no_merge?step=28", 390, 844, "#state"),
    (  # five policies on a projector: 1280 x 800
        "compare",
        "/compare/relocate_gup_race_policies?"
        + urlencode([("v", f"policy-{p}") for p in POLICIES[:5]])
        + "&stmt=6",
        1280,
        800,
        None,
    ),
    ("gallery", "/", 1280, 1000, None),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running app")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        for name, path, width, height, anchor in SHOTS:
            context = browser.new_context(
                viewport={"width": width, "height": height}, reduced_motion="reduce"
            )
            page = context.new_page()
            page.goto(args.url + path)
            page.evaluate("document.querySelectorAll('img').forEach(i => i.loading = 'eager')")
            page.wait_for_load_state("load")
            if anchor is not None:
                page.locator(anchor).scroll_into_view_if_needed()
                page.evaluate(f"document.querySelector({anchor!r}).scrollIntoView()")
            page.wait_for_timeout(800)
            target = args.out / f"{name}.png"
            page.screenshot(path=str(target))
            print(target)
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
