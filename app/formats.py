"""The formats a page can answer in, and the one rule that picks one for a request.

A resource's page is at its path; each twin at the path plus the format's
suffix (`/scenarios/x.json`, `/s/3f9a0c12/map.svg`). An htmx swap of a page
asks for its fragment. Error pages (app/errors.py) answer by the same rule.
"""

from __future__ import annotations

from enum import StrEnum

from starlette.datastructures import Headers


class Format(StrEnum):
    PAGE = "page"
    FRAGMENT = "fragment"
    JSON = "json"
    TEXT = "text"
    MAP_SVG = "map.svg"
    ANON_VMA_SVG = "anon_vma.svg"
    PICTURE_SVG = "picture.svg"


SUFFIX: dict[Format, str] = {
    Format.JSON: ".json",
    Format.TEXT: ".txt",
    Format.MAP_SVG: "/map.svg",
    Format.ANON_VMA_SVG: "/anon_vma.svg",
    Format.PICTURE_SVG: "/picture.svg",
}
"""What a twin's path adds to its page's path."""

STAGE_FORMATS = tuple(Format)
"""A stepping stage (scenario, playground, short link) has every format."""


def requested(path: str, headers: Headers) -> Format:
    """The format a request at `path` asks for: its suffix, else JSON under /api/,
    else the page, or its fragment for an htmx swap (not a history restore,
    which wants the whole page as a plain load does)."""
    for fmt, suffix in SUFFIX.items():
        if path.endswith(suffix):
            return fmt
    if path.startswith("/api/"):
        return Format.JSON
    if headers.get("hx-request") == "true" and headers.get("hx-history-restore-request") != "true":
        return Format.FRAGMENT
    return Format.PAGE
