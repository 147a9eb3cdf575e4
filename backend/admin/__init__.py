"""The researcher dashboard: HTML pages under `/admin`, behind an administrator's login (`backend.admin.security`).

Pages call the same services as the research API (`backend.services.*`); this package only adds the login,
forms, server-side figures (`plots`, `figures`) and images (`imaging`); the annotation zip is built by
`backend.services.coco`, which the research API serves too.
"""

# No `from __future__ import annotations` here: it would shadow the submodule `annotations`.
from fastapi import APIRouter

from backend.admin import (
    annotations,
    datasets,
    login,
    media,
    overview,
    results,
    stimulus_sets,
    studies,
    training,
)

#: The modules of the dashboard, each with its `router` (paths relative to /admin).
MODULES = (login, overview, datasets, stimulus_sets, studies, results, annotations, training, media)

router = APIRouter(include_in_schema=False)
for _module in MODULES:
    router.include_router(_module.router, prefix="/admin")
