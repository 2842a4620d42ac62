"""The renderer registry: a Format to the function that renders a context in it.

As Datasette's views do, a route builds one typed context (app/contexts.py)
and `Answer` renders it in the format the request asked for
(app/formats.py). A new format is one renderer module, one entry in
RENDERERS and in app/formats.py's SUFFIX, and listed in the FORMATS of
the contexts that have it; `resource()` gives every such resource its path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

from app.contexts import Page
from app.formats import SUFFIX, Format, requested
from app.renderers import html, json, svg, text

Renderer = Callable[[Any, Request], Response]

RENDERERS: dict[Format, Renderer] = {
    Format.PAGE: html.page,
    Format.FRAGMENT: html.fragment,
    Format.JSON: json.answer,
    Format.TEXT: text.answer,
    Format.MAP_SVG: svg.address_map,
    Format.ANON_VMA_SVG: svg.anon_graph,
    Format.PICTURE_SVG: svg.picture,
}


class Answer:
    """Renders a context in the format its request asked for (a dependency)."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.format = requested(request.url.path, request.headers)

    def __call__(self, ctx: Page) -> Response:
        fmt = self.format
        if fmt == Format.FRAGMENT and fmt not in ctx.FORMATS:
            fmt = Format.PAGE
        if fmt not in ctx.FORMATS:
            raise HTTPException(404, f"this page has no {fmt} form")
        return RENDERERS[fmt](ctx, self.request)


Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def resource(
    router: APIRouter,
    path: str,
    formats: tuple[Format, ...],
    twins: str | None = None,
    **route: Any,
) -> Callable[[Endpoint], Endpoint]:
    """GET `path` (the page) and each twin, `twins` (default `path`) plus a format's
    suffix, all answered by one endpoint.

    The twins are routed first: a page path ending in a parameter
    (`/s/{ident}`) would also match `/s/3f9a0c12.json`.
    """

    def register(endpoint: Endpoint) -> Endpoint:
        for fmt in formats:
            if fmt in SUFFIX:
                router.add_api_route(
                    (twins or path) + SUFFIX[fmt],
                    endpoint,
                    methods=["GET"],
                    name=f"{endpoint.__name__} {fmt}",
                    **route,
                )
        router.add_api_route(path, endpoint, methods=["GET"], response_class=HTMLResponse, **route)
        return endpoint

    return register
