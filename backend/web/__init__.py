"""The participant pages (`/s/{slug}`), their static files (`/static/...`) and the API docs page, from the same
origin as the API.

Same origin matters: the annotation canvas exports its mask only when the image it shows is not cross-origin,
and the pages' strict Content-Security-Policy (`script-src 'self'`) allows only these local files.
"""

from __future__ import annotations

from fastapi import APIRouter

from backend.web import apidocs, pages, static

router = APIRouter(include_in_schema=False)
router.include_router(pages.router)
router.include_router(static.router)
router.include_router(apidocs.router)  # /api/v1/docs and its Swagger UI files, no CDN
