"""Jobs: submit (train, evaluate, generate_stimuli), list, look up progress, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlalchemy.orm import Session

from backend.api.deps import CurrentUser, EnqueueDep, SessionDep, require_study_access
from backend.models import Job, TrainedModel
from backend.schemas.common import ErrorOut
from backend.schemas.jobs import JobCreate, JobDetail, JobKind, JobOut, JobStatus
from backend.schemas.paging import MAX_LIMIT, Page
from backend.services import job_requests as svc
from backend.services.jobs import request_cancel
from backend.services.lookups import get_or_404

router = APIRouter(tags=["jobs"])


def job_detail(session: Session, job: Job) -> JobDetail:
    model_id = svc.models_of_jobs(session, [job.id]).get(job.id)
    model = session.get(TrainedModel, model_id) if model_id is not None else None
    coverage = (model.config or {}).get("coverage") if model is not None else None
    return JobDetail.model_validate(job).model_copy(update={"model_id": model_id, "coverage": coverage})


@router.post(
    "/jobs",
    response_model=JobDetail,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        403: {"model": ErrorOut, "description": "params.study_id names another researcher's study."},
        409: {"model": ErrorOut, "description": "The stimulus set already has a generation job running."},
        422: {"model": ErrorOut, "description": "Invalid params (named), or a referenced row does not exist."},
        503: {"model": ErrorOut, "description": "The job queue cannot be reached."},
    },
)
def submit_job(body: JobCreate, session: SessionDep, enqueue: EnqueueDep, user: CurrentUser) -> JobDetail:
    """Queue a job; a train job also creates its model row (`model_id`), filled in when training ends."""
    study_id = body.params.get("study_id")
    if isinstance(study_id, int) and not isinstance(study_id, bool):  # the owner rule before anything about
        require_study_access(session, user, study_id)  # the study (its coverage) is checked or told
    job = svc.submit_job(session, body.kind, body.params)
    if job.params.get("study_id") is not None and job.params["study_id"] != study_id:  # e.g. "3" coerced to 3
        require_study_access(session, user, job.params["study_id"])
    svc.commit_and_enqueue(session, job, enqueue)
    return job_detail(session, job)


@router.get("/jobs", response_model=Page[JobOut])
def list_jobs(
    session: SessionDep,
    status: JobStatus | None = None,
    kind: JobKind | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> Page[JobOut]:
    jobs, total = svc.list_jobs(session, offset=offset, limit=limit, status=status, kind=kind)
    models = svc.models_of_jobs(session, [job.id for job in jobs])
    items = [JobOut.model_validate(job).model_copy(update={"model_id": models.get(job.id)}) for job in jobs]
    return Page[JobOut](items=items, total=total, offset=offset, limit=limit)


@router.get("/jobs/{job_id}", response_model=JobDetail, responses={404: {"model": ErrorOut}})
def read_job(job_id: int, session: SessionDep) -> JobDetail:
    return job_detail(session, get_or_404(session, Job, job_id))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobDetail,
    responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut, "description": "The job has finished."}},
)
def cancel_job(job_id: int, session: SessionDep) -> JobDetail:
    """A queued job is cancelled at once; a running one stops at its next progress point."""
    job = request_cancel(session, get_or_404(session, Job, job_id))
    return job_detail(session, job)
