"""The interactive API docs (`/api/v1/docs`), served without a CDN.

FastAPI's own docs page loads Swagger UI from jsDelivr and starts it with an inline script: on a study machine
without internet (or behind a proxy that blocks CDNs) the page stayed blank. Here the Swagger UI files come from
the `fastapi-offline` package (a kept, versioned copy of Swagger UI 5, which reads the OpenAPI 3.1 schema FastAPI
writes; Swagger UI 4 cannot) at `/api/v1/docs/assets/`. Only its files are used, not its app factory (which
starts Swagger UI with an inline script): the page starts it with a local script (`/static/apidocs/init.js`), so
`backend.security.DOCS_POLICY` allows only this origin: no CDN, no inline code. No OAuth2 redirect page: the
research API takes bearer tokens, which Swagger UI's "Authorize" sends without one.
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

from backend.api import API_PREFIX

DOCS_PATH = f"{API_PREFIX}/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"
#: The Swagger UI files the page uses, with their content types; nothing else of the bundle is served.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
_ASSET_HEADERS = {"Cache-Control": "no-cache"}
_ASSET_DIR = Path(str(files("fastapi_offline") / "static"))

router = APIRouter(include_in_schema=False)


@router.get(DOCS_PATH, response_class=HTMLResponse, name="api_docs")
def api_docs(request: Request) -> HTMLResponse:
    """The Swagger UI page for this server's OpenAPI schema."""
    openapi_url = escape(request.app.openapi_url or "/openapi.json")
    title = escape(f"{request.app.title} - API docs")
    init_js = request.url_for("static", path="apidocs/init.js").path
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon.png">
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="{init_js}"></script>
</body>
</html>
"""
    )


@router.get(ASSETS_PATH + "/{name}", name="api_docs_asset")
def api_docs_asset(name: str) -> FileResponse:
    """One of the Swagger UI files in `ASSETS`, from the installed `fastapi-offline`; 404 for any other name."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, f"no API docs file {name!r}")
    return FileResponse(_ASSET_DIR / name, media_type=media_type, headers=_ASSET_HEADERS)
