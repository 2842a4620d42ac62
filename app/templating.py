"""Jinja2 set-up, and page-or-fragment rendering for htmx.

A page's htmx fragment is a set of blocks of the page template itself
(`render_page(..., blocks=...)`), never a second copy of its markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import select_autoescape

from app.htmx import HtmxInfo

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
HTMX_VERSION = "2.0.11"

templates = Jinja2Templates(directory=TEMPLATES)
env = templates.env
# The SVG partials carry scenario text (process names, maps lines): escape them too.
env.autoescape = select_autoescape(("html", "htm", "xml", "svg"))
env.trim_blocks = True
env.lstrip_blocks = True
env.filters["hex"] = lambda n: "" if n is None else f"{n:#x}"
env.globals["HTMX_VERSION"] = HTMX_VERSION
env.globals["PALETTE_SIZE"] = 8


def render_page(
    request: Request,
    name: str,
    context: Mapping[str, Any],
    htmx: HtmxInfo,
    blocks: Sequence[str] = (),
    block_template: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The whole page, or for an htmx swap only `blocks` of it (later ones out of band).

    `block_template` names the template (in `name`'s chain) that defines the
    blocks, when `name` inherits them.

    Every answer varies on HX-Request, so no cache hands a fragment to a
    plain load or a page to a swap. A fragment also tells htmx which URL
    to push, so forms (the scrubber) land on the canonical step URL.
    """
    ctx = {"request": request, **context}
    headers = {"Vary": "HX-Request"}
    if htmx.fragment and blocks:
        template = env.get_template(block_template or name)
        parts = []
        for i, block in enumerate(blocks):
            block_ctx = template.new_context({**ctx, "oob": i > 0})
            parts.append("".join(template.blocks[block](block_ctx)))
        url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers["HX-Push-Url"] = url
        return HTMLResponse("".join(parts), status_code=status_code, headers=headers)
    return templates.TemplateResponse(
        request, name, {**ctx, "oob": False}, status_code=status_code, headers=headers
    )
