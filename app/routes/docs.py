"""/docs: Swagger UI for the API, from the swagger-ui-bundle-v2 package (Swagger UI 5,
which reads OpenAPI 3.1).

Its assets are the package's files (no CDN); static/docs.js starts it,
so the page needs no inline script and keeps the site's CSP.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from app.templating import templates

ASSETS = "/static/swagger-ui"

router = APIRouter(include_in_schema=False)


def mount_assets(app: FastAPI) -> None:
    """Serve the package's Swagger UI files under ASSETS."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="swagger-ui")


@router.get("/docs", response_class=HTMLResponse)
def docs(request: Request) -> HTMLResponse:
    """Swagger UI reading /openapi.json."""
    return templates.TemplateResponse(
        request, "docs.html", {"assets": ASSETS, "openapi": request.app.openapi_url, "oob": False}
    )
