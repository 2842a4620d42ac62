"""The picture, the address-space map and the anon_vma graph as standalone SVG files.

The same partial templates the pages inline (_picture.svg, _vma_map.svg, _anon_graph.svg),
with an XML declaration, a size, and the stylesheet rules they need copied
in, so a slide or an image viewer shows what the page shows.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Literal

from fastapi import HTTPException, Request, Response

from app.assets import STATIC
from app.contexts import StagePage
from app.templating import env

BEGIN = "/* standalone-svg: begin"
END = "/* standalone-svg: end */"


@cache
def svg_style() -> str:
    """The :root colours and the marked SVG rules of app/static/app.css."""
    css = (STATIC / "app.css").read_text()
    root = re.search(r":root\s*\{[^}]*\}", css)
    start = css.index(BEGIN)
    rules = css[css.index("*/", start) + 2 : css.index(END)]
    return ((root.group(0) if root else "") + "\n" + rules.strip()).replace("\n", " ")


def _svg(ctx: StagePage, which: Literal["map", "anon_vma", "picture"]) -> Response:
    """An image/svg+xml answer, named `<name>-step<N>-<which>.svg` for Save As."""
    _, panel = ctx.stage.runnable()
    if panel is None:
        raise HTTPException(404, "nothing to draw: the scenario has no step")
    document = env.get_template("standalone.svg").render(
        s=panel, which=which, svg_style=svg_style()
    )
    filename = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{ctx.stage.name}-step{panel.index}-{which}.svg")
    return Response(
        document,
        media_type="image/svg+xml",
        headers={
            "Content-Disposition": f'inline; filename="{filename}"',
            # Opened on its own, the file needs its <style>; it never needs a script.
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        },
    )


def address_map(ctx: StagePage, request: Request) -> Response:
    return _svg(ctx, "map")


def anon_graph(ctx: StagePage, request: Request) -> Response:
    return _svg(ctx, "anon_vma")


def picture(ctx: StagePage, request: Request) -> Response:
    return _svg(ctx, "picture")
