"""Builds the web app: routers, static files, the run cache, the data directory."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.assets import HashedStatic
from app.clients import trusted_proxies
from app.config import data_dir
from app.guard import shared_guard
from app.ratelimit import Limiter
from app.routes import api, compare, docs, gallery, play, scenarios, share
from app.runs import RunCache, json_in_process, run_in_process
from app.security import install as install_security
from app.store import open_store


def create_app(run_cache_size: int = 64, isolate: bool = True) -> FastAPI:
    """The FastAPI app; OpenAPI at /openapi.json, Swagger UI at /docs (app/routes/docs.py).

    Scenarios run in worker processes under a CPU-time bound (app/guard.py),
    or here in the server when `isolate` is false.
    """
    app = FastAPI(
        title="mremap-viz",
        summary="Step through Linux mremap(): VMAs, anon_vmas, folios",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
    )
    app.state.data_dir = data_dir()
    app.state.store = open_store(app.state.data_dir)  # DATABASE_URL may name PostgreSQL
    app.state.limiter = Limiter(app.state.store)  # counts in the store: across servers
    app.state.runs = RunCache(
        run_cache_size,
        runner=shared_guard().run if isolate else run_in_process,
        json_runner=shared_guard().run_json if isolate else json_in_process,
    )
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    docs.mount_assets(app)  # before /static, which would take its paths
    app.mount("/static", HashedStatic(), name="static")
    for module in (gallery, scenarios, play, compare, api, share, docs):
        app.include_router(module.router)
    install_security(app)  # its middleware wraps everything above
    proxies = trusted_proxies()
    if proxies:  # outermost: the limits and the logs see the client the proxy names
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)
    return app
