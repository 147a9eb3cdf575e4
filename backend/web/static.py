"""Static files of the front end (`study_frontend/static`) at `/static/{path}`, without a CDN.

A plain route rather than a Starlette mount, so that `backend.main` registers the whole front end with one
`include_router`. Files are revalidated on each load (`no-cache` + ETag): a deployment never leaves a
participant with a stale module next to a new one.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

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


@router.get("/static/{path:path}", name="static")
def get_static(path: str) -> FileResponse:
    """One file under `study_frontend/static`; 404 for anything else (no listing, no way out of the folder)."""
    target = _resolve(path)
    if target is None:
        raise HTTPException(404, f"no static file {path!r}")
    return FileResponse(target, media_type=MEDIA_TYPES[target.suffix], headers=STATIC_HEADERS)


def _resolve(path: str) -> Path | None:
    root = STATIC_DIR.resolve()
    try:
        target = (root / path).resolve()
    except (OSError, ValueError):
        return None
    if not target.is_relative_to(root) or not target.is_file() or target.suffix not in MEDIA_TYPES:
        return None
    return target
