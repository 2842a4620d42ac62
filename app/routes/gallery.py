"""/ : the gallery of packaged scenarios; /index.json and /index.txt its twins."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.contexts import GalleryPage
from app.deps import Answer
from app.renderers.registry import resource
from app.runs import gallery

router = APIRouter(tags=["gallery"])


@resource(router, "/", GalleryPage.FORMATS, twins="/index")
def gallery_page(answer: Answer) -> Response:
    """Every packaged scenario: slug, title, note, source."""
    return answer(GalleryPage(gallery()))
