"""Stimulus sets: create (with their generation job), list, status and counts per eps, their stimuli."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, status

from backend.api.deps import CurrentUser, EnqueueDep, SessionDep
from backend.models import StimulusSet
from backend.schemas.common import ErrorOut
from backend.schemas.jobs import JobOut
from backend.schemas.paging import MAX_LIMIT, Page
from backend.schemas.stimulus_sets import (
    EpsCount,
    StimulusOut,
    StimulusSetCreate,
    StimulusSetCreated,
    StimulusSetDetail,
    StimulusSetOut,
)
from backend.services import stimulus_sets as svc
from backend.services.job_requests import commit_and_enqueue
from backend.services.ownership import owner_scope, require_owner

router = APIRouter(tags=["stimulus sets"])

Offset = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


@router.post(
    "/stimulus-sets",
    response_model=StimulusSetCreated,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        403: {"model": ErrorOut, "description": "The dataset, model or train job belongs to another researcher."},
        422: {"model": ErrorOut, "description": "Bad parameters, or a dataset/model/train job that does not exist."},
        503: {"model": ErrorOut, "description": "The job queue cannot be reached."},
    },
)
def create_stimulus_set(
    body: StimulusSetCreate, session: SessionDep, enqueue: EnqueueDep, user: CurrentUser
) -> StimulusSetCreated:
    """Create a set (status pending, the caller's) and queue its generation; follow it with GET
    /stimulus-sets/{id}. The dataset and model must be the caller's (an administrator's: any)."""
    spec = svc.StimulusSetSpec.of(body)
    sset, job = svc.create_stimulus_set(session, spec, owner=user)
    commit_and_enqueue(session, job, enqueue)
    return StimulusSetCreated(**StimulusSetOut.model_validate(sset).model_dump(), job=JobOut.model_validate(job))


@router.get("/stimulus-sets", response_model=Page[StimulusSetOut])
def list_stimulus_sets(
    session: SessionDep, user: CurrentUser, offset: Offset = 0, limit: Limit = 50, dataset_id: int | None = None
) -> Page[StimulusSetOut]:
    """The caller's stimulus sets (an administrator's: all)."""
    sets, total = svc.list_stimulus_sets(
        session, offset=offset, limit=limit, dataset_id=dataset_id, owner_id=owner_scope(user)
    )
    items = [StimulusSetOut.model_validate(s) for s in sets]
    return Page[StimulusSetOut](items=items, total=total, offset=offset, limit=limit)


_OWNED: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "The stimulus set belongs to another researcher."}
}


@router.get(
    "/stimulus-sets/{stimulus_set_id}", response_model=StimulusSetDetail, responses={404: {"model": ErrorOut}, **_OWNED}
)
def read_stimulus_set(stimulus_set_id: int, session: SessionDep, user: CurrentUser) -> StimulusSetDetail:
    require_owner(session, user, StimulusSet, stimulus_set_id)
    s = svc.stimulus_set_summary(session, stimulus_set_id)
    return StimulusSetDetail(
        **StimulusSetOut.model_validate(s.stimulus_set).model_dump(),
        job=JobOut.model_validate(s.job) if s.job is not None else None,
        n_images=s.n_images,
        n_stimuli=s.n_stimuli,
        n_catch=s.n_catch,
        per_eps=[EpsCount(**row) for row in s.per_eps],
    )


@router.get(
    "/stimulus-sets/{stimulus_set_id}/stimuli",
    response_model=Page[StimulusOut],
    responses={404: {"model": ErrorOut}, **_OWNED},
)
def list_stimuli(
    stimulus_set_id: int,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    offset: Offset = 0,
    limit: Limit = 100,
    eps: Annotated[float | None, Query(ge=0)] = None,
    role: Literal["trial", "catch"] | None = None,
) -> Page[StimulusOut]:
    require_owner(session, user, StimulusSet, stimulus_set_id)
    rows, total = svc.list_stimuli(session, stimulus_set_id, offset=offset, limit=limit, eps=eps, role=role)
    items = [
        StimulusOut(
            id=stimulus.id,
            stimulus_set_id=stimulus.stimulus_set_id,
            image_id=stimulus.image_id,
            label=label,
            eps=stimulus.eps,
            role=stimulus.role,  # type: ignore[arg-type]
            sha256=stimulus.sha256,
            linf=stimulus.linf,
            l2=stimulus.l2,
            pred_before=stimulus.pred_before,
            pred_after=stimulus.pred_after,
            file_url=str(request.app.url_path_for("stimulus_file", stimulus_id=stimulus.id)),
        )
        for stimulus, label in rows
    ]
    return Page[StimulusOut](items=items, total=total, offset=offset, limit=limit)
