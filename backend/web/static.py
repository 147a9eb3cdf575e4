"""Static files of the front end (`study_frontend/static`) at `/static/{path}`, without a CDN.

A plain route rather than a Starlette mount, so that `backend.main` registers the whole front end with one
`include_router`. Files are revalidated on each load (`no-cache` + ETag + Last-Modified): a deployment never
leaves a participant with a stale module next to a new one. The revalidation is real: a request whose
`If-None-Match` names the file's ETag (or whose `If-Modified-Since` is not older than the file) gets a bodiless
304, decided by Starlette's own `StaticFiles.is_not_modified` (a plain `FileResponse` would send the whole file
again on every page load).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles

from study_frontend import STATIC_DIR

router = APIRouter()

#: Content types by suffix; ES modules must be served as JavaScript or the browser refuses them.
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}
STATIC_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
#: Only for its conditional-request logic (`is_not_modified`), which reads the headers alone.
_CONDITIONAL = StaticFiles(directory=STATIC_DIR)


@router.get("/static/{path:path}", name="static")
def get_static(path: str, request: Request) -> Response:
    """One file under `study_frontend/static`, or 304 when the browser's copy is current; 404 for anything
    else (no listing, no way out of the folder)."""
    target = _resolve(path)
    if target is None:
        raise HTTPException(404, f"no static file {path!r}")
    response = FileResponse(
        target, media_type=MEDIA_TYPES[target.suffix], headers=STATIC_HEADERS, stat_result=os.stat(target)
    )
    if _CONDITIONAL.is_not_modified(response.headers, request.headers):
        return NotModifiedResponse(response.headers)
    return response


def _resolve(path: str) -> Path | None:
    root = STATIC_DIR.resolve()
    try:
        target = (root / path).resolve()
    except (OSError, ValueError):
        return None
    if not target.is_relative_to(root) or not target.is_file() or target.suffix not in MEDIA_TYPES:
        return None
    return target
