"""Builds the web app: routers, static files, the run cache, the data directory."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import GZipMiddleware

from app.config import data_dir
from app.routes import api, compare, gallery, play, scenarios
from app.runs import RunCache
from app.templating import TEMPLATES

STATIC = TEMPLATES.parent / "static"


def create_app(run_cache_size: int = 64) -> FastAPI:
    """The FastAPI app; OpenAPI at /docs."""
    app = FastAPI(
        title="mremap-viz",
        summary="Step through Linux mremap(): VMAs, anon_vmas, folios",
        version="0.1.0",
    )
    app.state.data_dir = data_dir()
    app.state.runs = RunCache(run_cache_size)
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (gallery, scenarios, play, compare, api):
        app.include_router(module.router)
    return app
