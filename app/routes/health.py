"""/healthz: whether the server is ready (its warm-up done), and what its caches hold."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from app.warmup import WarmupStatus

router = APIRouter(tags=["health"])


class Caches(BaseModel):
    pages: int
    """Responses in the page cache (app/pagecache.py)."""
    page_bytes: int
    page_hits: int
    runs: int
    """Runs in the run cache (app/runs.py)."""
    derived: int
    """Panels and run documents computed (each once for all the twins that show it)."""


class Health(BaseModel):
    status: str
    """"ready", or "warming" while the warm-up renders the gallery (app/warmup.py)."""
    warmup: WarmupStatus
    caches: Caches


@router.get("/healthz", response_model=Health)
def healthz(request: Request) -> Health:
    """Always 200 while the server runs; `status` says whether the warm-up is done."""
    state = request.app.state
    warmup = state.warmup.status()
    return Health(
        status=warmup.state,
        warmup=warmup,
        caches=Caches(
            pages=len(state.pages),
            page_bytes=state.pages.bytes,
            page_hits=state.pages.hits,
            runs=len(state.runs),
            derived=state.runs.derivations,
        ),
    )
