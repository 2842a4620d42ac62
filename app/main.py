"""Builds the web app: routers, static files, the run and page caches, the data directory."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.assets import HashedStatic
from app.clients import trusted_proxies
from app.config import data_dir, public_url
from app.guard import shared_guard
from app.limits import WARM_PAGES
from app.pagecache import PageCache
from app.ratelimit import Limiter
from app.routes import api, compare, docs, gallery, health, play, scenarios, share
from app.runs import RunCache, json_in_process, run_in_process
from app.security import install as install_security
from app.store import open_store
from app.warmup import Warmup


@contextlib.asynccontextmanager
async def _warming(app: FastAPI) -> AsyncIterator[None]:
    """Runs the warm-up in the background while the server serves."""
    task = asyncio.create_task(app.state.warmup.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(run_cache_size: int = 64, isolate: bool = True, warm_pages: int = 0) -> FastAPI:
    """The FastAPI app; OpenAPI at /openapi.json, Swagger UI at /docs (app/routes/docs.py).

    Scenarios run in worker processes under a CPU-time bound (app/guard.py),
    or here in the server when `isolate` is false. With `warm_pages`, the
    server renders up to that many of the gallery's pages into its page
    cache at start (app/warmup.py); `serving_app` is what `serve` runs.
    """
    app = FastAPI(
        title="mremap-viz",
        summary="Step through Linux mremap(): VMAs, anon_vmas, folios",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=_warming if warm_pages > 0 else None,
    )
    app.state.data_dir = data_dir()
    app.state.public_url = public_url()
    app.state.store = open_store(app.state.data_dir)  # DATABASE_URL may name PostgreSQL
    app.state.limiter = Limiter(app.state.store)  # counts in the store: across servers
    app.state.runs = RunCache(
        run_cache_size,
        runner=shared_guard().run if isolate else run_in_process,
        json_runner=shared_guard().run_json if isolate else json_in_process,
    )
    app.state.pages = PageCache()
    app.state.warmup = Warmup(
        app, app.state.runs, app.state.pages, warm_pages, text=app.state.public_url is not None
    )
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    docs.mount_assets(app)  # before /static, which would take its paths
    app.mount("/static", HashedStatic(), name="static")
    for module in (gallery, scenarios, play, compare, api, share, docs, health):
        app.include_router(module.router)
    install_security(app)  # its middleware wraps everything above
    proxies = trusted_proxies()
    if proxies:  # outermost: the limits and the logs see the client the proxy names
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)
    return app


SWITCH_INTERVAL_SECONDS = 0.001
"""How long a thread may hold the GIL while another waits for it (CPython's
default is 5 ms). Cached pages are answered by the event loop's thread; a
page being rendered, or a run being unpickled, in a worker thread would
otherwise hold it up to 5 ms each time the loop wakes."""


def serving_app() -> FastAPI:
    """The app `mremap-viz serve` runs: it warms up to WARM_PAGES pages at start,
    and hands the GIL to the event loop within SWITCH_INTERVAL_SECONDS."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    return create_app(warm_pages=WARM_PAGES)
