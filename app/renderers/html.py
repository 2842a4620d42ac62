"""The page, and for an htmx swap the fragment: blocks of the page template itself,
never a second copy of its markup."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from app.contexts import Page
from app.templating import env, templates


def page(ctx: Page, request: Request) -> HTMLResponse:
    """The whole page. Every answer varies on HX-Request, so no cache hands a
    fragment to a plain load or a page to a swap."""
    return templates.TemplateResponse(
        request,
        ctx.TEMPLATE,
        {"request": request, **ctx.template_context(), "oob": False},
        headers={"Vary": "HX-Request"},
    )


def fragment(ctx: Page, request: Request) -> HTMLResponse:
    """The page's BLOCKS (later ones out of band), or the page if it has none.

    A fragment tells htmx which URL to push, so forms (the scrubber) land on
    the canonical step URL.
    """
    if not ctx.BLOCKS:
        return page(ctx, request)
    template = env.get_template(ctx.BLOCK_TEMPLATE or ctx.TEMPLATE)
    context = {"request": request, **ctx.template_context()}
    parts = []
    for i, block in enumerate(ctx.BLOCKS):
        block_ctx = template.new_context({**context, "oob": i > 0})
        parts.append("".join(template.blocks[block](block_ctx)))
    url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return HTMLResponse("".join(parts), headers={"Vary": "HX-Request", "HX-Push-Url": url})
