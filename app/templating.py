"""Jinja2 set-up: where the templates are, escaping, filters and globals.

The renderers (app/renderers/html.py, svg.py) and the error pages use it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates
from jinja2 import select_autoescape

from app.assets import asset_url

TEMPLATES = Path(__file__).resolve().parent / "templates"
HTMX_VERSION = "2.0.11"

templates = Jinja2Templates(directory=TEMPLATES)
env = templates.env
# The SVG partials carry scenario text (process names, maps lines): escape them too.
env.autoescape = select_autoescape(("html", "htm", "xml", "svg"))
env.trim_blocks = True
env.lstrip_blocks = True
env.filters["hex"] = lambda n: "" if n is None else f"{n:#x}"
env.globals["HTMX_VERSION"] = HTMX_VERSION
env.globals["static"] = asset_url  # {{ static("app.css") }}: a content-hashed URL
