"""The research API: every router here needs a researcher's API token (`Authorization: Bearer ...`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from backend.api import datasets, exports, images, jobs, models_api, stimulus_sets, studies
from backend.api.deps import check_study_access, get_current_user
from backend.schemas.common import ErrorOut

router = APIRouter(
    dependencies=[Depends(get_current_user), Depends(check_study_access)],  # the owner rule, once
    responses={
        401: {"model": ErrorOut, "description": "Missing, unknown or revoked API token."},
        403: {"model": ErrorOut, "description": "The study belongs to another researcher."},
        429: {"model": ErrorOut, "description": "Too many unknown tokens from this address; see Retry-After."},
    },
)
#: The resource routers gathered here (tests walk their routes).
ROUTERS = tuple(m.router for m in (datasets, images, models_api, stimulus_sets, studies, exports, jobs))
for _router in ROUTERS:
    router.include_router(_router)
