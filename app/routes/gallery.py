"""/ : the gallery of packaged scenarios, as learning paths; /index.json and
/index.txt its twins."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.contexts import GalleryPage
from app.deps import Answer, Runs
from app.renderers.registry import resource
from app.runs import gallery
from app.views.gallery import learning_paths
from engine.sim.simulation import Run

router = APIRouter(tags=["gallery"])


@resource(router, "/", GalleryPage.FORMATS, twins="/index")
def gallery_page(runs: Runs, answer: Answer) -> Response:
    """Every packaged scenario: slug, title, note, source; the page groups them into
    learning paths, each with a thumbnail of its key moment."""
    entries = gallery()
    ran = {e.slug: run for e in entries if isinstance(run := runs.get(e.source), Run)}
    return answer(GalleryPage(entries, learning_paths(entries, ran)))
