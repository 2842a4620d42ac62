"""/ : the gallery of packaged scenarios, and its twins."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from app.htmx import Htmx
from app.runs import gallery
from app.templating import render_page

router = APIRouter(tags=["gallery"])


@router.get("/index.json")
def gallery_json() -> list[dict[str, str]]:
    """Every packaged scenario: slug, title, note, source."""
    return [asdict(e) for e in gallery()]


@router.get("/index.txt", response_class=PlainTextResponse)
def gallery_text() -> str:
    return "".join(f"{e.slug}\n  {e.title}\n  {e.note}\n\n" for e in gallery())


@router.get("/", response_class=HTMLResponse)
def gallery_page(request: Request, htmx: Htmx) -> HTMLResponse:
    return render_page(request, "gallery.html", {"entries": gallery()}, htmx)
