"""The address-space map and the anon_vma graph as standalone SVG files.

The same partial templates the pages inline (_vma_map.svg, _anon_graph.svg),
with an XML declaration, a size, and the stylesheet rules they need copied
in, so a slide or an image viewer shows what the page shows.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Literal

from fastapi import Response

from app.templating import TEMPLATES, env
from app.views import StepView

Which = Literal["map", "anon_vma"]
BEGIN = "/* standalone-svg: begin"
END = "/* standalone-svg: end */"


@cache
def svg_style() -> str:
    """The :root colours and the marked SVG rules of static/app.css."""
    css = (TEMPLATES.parent / "static" / "app.css").read_text()
    root = re.search(r":root\s*\{[^}]*\}", css)
    start = css.index(BEGIN)
    rules = css[css.index("*/", start) + 2 : css.index(END)]
    return ((root.group(0) if root else "") + "\n" + rules.strip()).replace("\n", " ")


def svg_document(panel: StepView, which: Which) -> str:
    template = env.get_template("standalone.svg")
    return template.render(s=panel, which=which, svg_style=svg_style())


def svg_response(panel: StepView, which: Which, name: str) -> Response:
    """An image/svg+xml answer, named `<name>-step<N>-<which>.svg` for Save As."""
    filename = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{name}-step{panel.index}-{which}.svg")
    return Response(
        svg_document(panel, which),
        media_type="image/svg+xml",
        headers={
            "Content-Disposition": f'inline; filename="{filename}"',
            # Opened on its own, the file needs its <style>; it never needs a script.
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        },
    )
