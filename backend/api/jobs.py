"""Jobs: submit (train, evaluate, generate_stimuli), list, look up progress, cancel."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from backend.api.deps import CurrentUser, EnqueueDep, SessionDep
from backend.models import Job, TrainedModel
from backend.schemas.common import ErrorOut
from backend.schemas.jobs import JobCreate, JobDetail, JobKind, JobOut, JobStatus
from backend.schemas.paging import MAX_LIMIT, Page
from backend.services import job_requests as svc
from backend.services.errors import InvalidInputError
from backend.services.job_params import PARAMS_BY_KIND
from backend.services.jobs import request_cancel
from backend.services.lookups import get_or_404
from backend.services.ownership import owner_scope, require_owner


def params_error(errors: Sequence[Any]) -> str | None:
    """The research API's one-line 422 for a job body whose `kind` or `params` are wrong (as
    `job_params.validate_job_params` words it: "invalid train parameters: epochs: ..."), or None for other
    errors (a body that is not a job at all), which keep FastAPI's list of field errors."""
    if len(errors) == 1 and errors[0].get("type") == "union_tag_invalid":
        kind = (errors[0].get("ctx") or {}).get("tag")
        return f"unknown job kind {kind!r}; use one of {', '.join(PARAMS_BY_KIND)}"
    locs = [tuple(err.get("loc") or ()) for err in errors]
    if not errors or any(len(loc) < 3 or loc[0] != "body" or loc[2] != "params" for loc in locs):
        return None
    problems = "; ".join(
        f"{'.'.join(str(p) for p in loc[3:]) or 'params'}: {err['msg']}" for loc, err in zip(locs, errors, strict=True)
    )
    return f"invalid {locs[0][1]} parameters: {problems}"


class JobParamsRoute(APIRoute):
    """A route whose bad job params answer the research API's one-line 422 (`params_error`), as the dashboard's
    form and the worker word them, while the OpenAPI schema shows each kind's params (`JobCreate`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                message = params_error(exc.errors())
                if message is None:
                    raise
                raise InvalidInputError(message) from None

        return route


router = APIRouter(tags=["jobs"], route_class=JobParamsRoute)


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
        403: {"model": ErrorOut, "description": "The params name another researcher's study, dataset or model."},
        409: {"model": ErrorOut, "description": "The stimulus set already has a generation job running."},
        422: {"model": ErrorOut, "description": "Invalid params (named), or a referenced row does not exist."},
        503: {"model": ErrorOut, "description": "The job queue cannot be reached."},
    },
)
def submit_job(
    body: Annotated[JobCreate, Body()], session: SessionDep, enqueue: EnqueueDep, user: CurrentUser
) -> JobDetail:
    """Queue a job; a train job also creates its model row (`model_id`), filled in when training ends.

    The params of each kind are in the schema of the body (`kind` picks them); omitted ones take their
    defaults, which the answer's `params` show. A train job's defaults include the training recipe
    (`eps_ramp_epochs`, `warmup_epochs`, `grad_clip`, `weight_decay`, `augment`, `flip`, ...). A train job
    whose eps ramp is as long as its epochs or longer (so it would never train at its eps) is refused with 422
    (`backend.vocabulary.eps_ramp_problem`)."""
    # The owner rule for every row the params name (study, dataset, models, stimulus set) comes first in
    # `submit_job`, before anything about them (a study's coverage) is checked or told.
    job = svc.submit_job(session, body.kind, body.params.model_dump(mode="json"), owner=user)
    svc.commit_and_enqueue(session, job, enqueue)
    return job_detail(session, job)


@router.get("/jobs", response_model=Page[JobOut])
def list_jobs(
    session: SessionDep,
    user: CurrentUser,
    status: JobStatus | None = None,
    kind: JobKind | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> Page[JobOut]:
    """The caller's jobs (an administrator's: all)."""
    jobs, total = svc.list_jobs(
        session, offset=offset, limit=limit, status=status, kind=kind, owner_id=owner_scope(user)
    )
    models = svc.models_of_jobs(session, [job.id for job in jobs])
    items = [JobOut.model_validate(job).model_copy(update={"model_id": models.get(job.id)}) for job in jobs]
    return Page[JobOut](items=items, total=total, offset=offset, limit=limit)


_OWNED: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "The job belongs to another researcher."}
}


@router.get("/jobs/{job_id}", response_model=JobDetail, responses={404: {"model": ErrorOut}, **_OWNED})
def read_job(job_id: int, session: SessionDep, user: CurrentUser) -> JobDetail:
    require_owner(session, user, Job, job_id)
    return job_detail(session, get_or_404(session, Job, job_id))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobDetail,
    responses={**_OWNED, 404: {"model": ErrorOut}, 409: {"model": ErrorOut, "description": "The job has finished."}},
)
def cancel_job(job_id: int, session: SessionDep, user: CurrentUser) -> JobDetail:
    """A queued job is cancelled at once; a running one stops at its next progress point."""
    require_owner(session, user, Job, job_id)
    job = request_cancel(session, get_or_404(session, Job, job_id))
    return job_detail(session, job)
