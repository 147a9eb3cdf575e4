"""The research API: every router here needs a researcher's API token (`Authorization: Bearer ...`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from backend.api import datasets, exports, images, jobs, models_api, stimulus_sets, studies
from backend.api.deps import get_current_user
from backend.schemas.common import ErrorOut

router = APIRouter(
    dependencies=[Depends(get_current_user)],
    responses={401: {"model": ErrorOut, "description": "Missing, unknown or revoked API token."}},
)
#: The resource routers gathered here (tests walk their routes).
ROUTERS = tuple(m.router for m in (datasets, images, models_api, stimulus_sets, studies, exports, jobs))
for _router in ROUTERS:
    router.include_router(_router)
