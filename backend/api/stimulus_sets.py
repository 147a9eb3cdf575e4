"""Stimulus sets: create (with their generation job), list, status and counts per eps, their stimuli."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, status

from backend.api.deps import EnqueueDep, SessionDep
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

router = APIRouter(tags=["stimulus sets"])

Offset = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


@router.post(
    "/stimulus-sets",
    response_model=StimulusSetCreated,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        422: {"model": ErrorOut, "description": "Bad parameters, or a dataset/model/train job that does not exist."},
        503: {"model": ErrorOut, "description": "The job queue cannot be reached."},
    },
)
def create_stimulus_set(body: StimulusSetCreate, session: SessionDep, enqueue: EnqueueDep) -> StimulusSetCreated:
    """Create a set (status pending) and queue its generation; follow it with GET /stimulus-sets/{id}."""
    spec = svc.StimulusSetSpec.of(body)
    sset, job = svc.create_stimulus_set(session, spec)
    commit_and_enqueue(session, job, enqueue)
    return StimulusSetCreated(**StimulusSetOut.model_validate(sset).model_dump(), job=JobOut.model_validate(job))


@router.get("/stimulus-sets", response_model=Page[StimulusSetOut])
def list_stimulus_sets(
    session: SessionDep, offset: Offset = 0, limit: Limit = 50, dataset_id: int | None = None
) -> Page[StimulusSetOut]:
    sets, total = svc.list_stimulus_sets(session, offset=offset, limit=limit, dataset_id=dataset_id)
    items = [StimulusSetOut.model_validate(s) for s in sets]
    return Page[StimulusSetOut](items=items, total=total, offset=offset, limit=limit)


@router.get("/stimulus-sets/{stimulus_set_id}", response_model=StimulusSetDetail, responses={404: {"model": ErrorOut}})
def read_stimulus_set(stimulus_set_id: int, session: SessionDep) -> StimulusSetDetail:
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
    "/stimulus-sets/{stimulus_set_id}/stimuli", response_model=Page[StimulusOut], responses={404: {"model": ErrorOut}}
)
def list_stimuli(
    stimulus_set_id: int,
    request: Request,
    session: SessionDep,
    offset: Offset = 0,
    limit: Limit = 100,
    eps: Annotated[float | None, Query(ge=0)] = None,
    role: Literal["trial", "catch"] | None = None,
) -> Page[StimulusOut]:
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
