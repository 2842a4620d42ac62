"""Static files a browser fetches once: content-hashed URLs, long-lived caching.

`asset_url("app.css")` is `/static/app.css?v=<hash>`, the hash the first
ASSET_HASH_CHARS hex digits of the file's SHA-256, computed once per
process: a new release's file has a new URL. `HashedStatic` serves the
directory: a request carrying the file's current hash may be cached for
ASSET_MAX_AGE_SECONDS, immutable; any other (no hash, or an old one)
revalidates with the ETag StaticFiles sends.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from app.limits import ASSET_MAX_AGE_SECONDS

STATIC = Path(__file__).resolve().parent / "static"
ASSET_HASH_CHARS = 12


@cache
def asset_hash(path: str) -> str:
    """The content hash of app/static/`path`."""
    return hashlib.sha256((STATIC / path).read_bytes()).hexdigest()[:ASSET_HASH_CHARS]


def asset_url(path: str) -> str:
    """The URL to link app/static/`path` by: it changes when the file does."""
    return f"/static/{path}?v={asset_hash(path)}"


class HashedStatic(StaticFiles):
    """StaticFiles, with Cache-Control by whether the URL names the current content."""

    def __init__(self, directory: Path = STATIC) -> None:
        super().__init__(directory=directory)

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code not in (200, 304):
            return response
        version = _query_value(scope, b"v")
        current = version is not None and version == asset_hash(path)
        response.headers["Cache-Control"] = (
            f"public, max-age={ASSET_MAX_AGE_SECONDS}, immutable" if current else "no-cache"
        )
        return response


def _query_value(scope: Scope, name: bytes) -> str | None:
    query: bytes = scope.get("query_string", b"")
    for pair in query.split(b"&"):
        key, _, value = pair.partition(b"=")
        if key == name:
            return value.decode("latin-1")
    return None
