"""Creating and cancelling jobs: the research API's and the dashboard's side of the lifecycle.

Its own module because it runs inside a request's transaction (nothing is committed or sent here; the caller
enqueues after its commit), while `run` and `reaper` run in workers with their own sessions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from backend.models import JOB_KINDS, Job, StimulusSet, TrainedModel, utcnow
from backend.services.errors import ConflictError, InvalidInputError, NotFoundError
from backend.services.jobs.common import FINISHED, settle_stimulus_set


def create_job(session: Session, kind: str, params: dict[str, Any], *, max_attempts: int = 3) -> Job:
    """A queued job of `kind` (one of `JOB_KINDS`) with JSON `params`; not committed."""
    if kind not in JOB_KINDS:
        raise InvalidInputError(f"unknown job kind {kind!r}; use one of {', '.join(JOB_KINDS)}")
    if max_attempts < 1:
        raise InvalidInputError(f"max_attempts must be at least 1; got {max_attempts}")
    job = Job(kind=kind, params=params, status="queued", max_attempts=max_attempts, enqueued_at=utcnow())
    session.add(job)
    session.flush()
    return job


def create_train_job(session: Session, params: dict[str, Any], *, max_attempts: int = 3) -> tuple[Job, TrainedModel]:
    """A queued `train` job and its model row (no checkpoint yet), so stimulus sets can name the model at once.

    `params` are validated (`backend.services.job_params.TrainParams`, 422 when wrong) and stored completed
    with defaults. The worker fills in the checkpoint and metrics of this same row (one model per job).
    The planned salience coverage (`backend.services.training_coverage`) is kept in the model's config and
    told in the job's message; a job on a study's annotations that no training image has is refused (422).
    """
    from backend.services.job_params import validate_job_params
    from backend.services.training_coverage import describe, plan_coverage

    clean = validate_job_params("train", params)
    coverage = plan_coverage(session, clean)
    job = create_job(session, "train", clean, max_attempts=max_attempts)
    if coverage is not None:
        job.message = f"queued; {describe(coverage)}"[:2000]
    arch = clean["arch"] or "auto"
    model = TrainedModel(
        name=clean["name"] or f"{clean['method']} {arch} (job {job.id})",
        arch=arch,
        method=clean["method"],
        dataset_id=clean["dataset_id"],
        config={"params": clean, "coverage": coverage},
        job_id=job.id,
    )
    session.add(model)
    session.flush()
    return job, model


def create_stimuli_job(session: Session, stimulus_set: StimulusSet, *, max_attempts: int = 3) -> Job:
    """A queued `generate_stimuli` job for `stimulus_set` (set back to `pending` and pointed at the job)."""
    job = create_job(session, "generate_stimuli", {"stimulus_set_id": stimulus_set.id}, max_attempts=max_attempts)
    stimulus_set.job_id = job.id
    stimulus_set.status = "pending"
    session.flush()
    return job


def request_cancel(session: Session, job: Job) -> Job:
    """Ask for `job` to stop: a queued job is cancelled at once, a running one when its worker next checks."""
    if job.status in FINISHED:
        raise ConflictError(f"job {job.id} already {job.status}; nothing to cancel")
    job.cancel_requested = True
    if job.status == "queued":
        job.status = "cancelled"
        job.finished_at = utcnow()
        settle_stimulus_set(session, job.id, "cancelled")
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    return job
