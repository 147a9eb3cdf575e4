"""Jobs asked for through the research API: validate, create, commit, enqueue; list and look them up.

Parameters are checked where they enter (`backend.services.job_params`, 422 naming the field) and so are the
rows they refer to (422 naming the field when a dataset, model, study or stimulus set does not exist), so a
worker never starts on a job that could only fail. The Celery task is sent after the commit (the task re-reads
the row); if the broker cannot be reached the job is marked failed, so no queued row waits forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from backend.models import Dataset, Job, StimulusSet, Study, TrainedModel, User, utcnow
from backend.services.errors import InvalidInputError, UnavailableError
from backend.services.job_params import validate_job_params
from backend.services.jobs import create_job, create_train_job
from backend.services.lookups import get_referenced
from backend.services.ownership import require_owner
from backend.services.stimulus_sets import regenerate
from backend.services.training_coverage import painting_pool
from backend.vocabulary import eps_ramp_problem

log = logging.getLogger(__name__)

#: params field -> table it refers to, checked for every kind that has the field.
_REFERENCES = {
    "dataset_id": Dataset,
    "model_id": TrainedModel,
    "reference_model_id": TrainedModel,
    "study_id": Study,
    "stimulus_set_id": StimulusSet,
}


def submit_job(session: Session, kind: str, params: dict[str, Any], *, owner: User | None = None) -> Job:
    """A queued job of `kind` with validated `params` (not committed, not enqueued), owned by `owner`.

    Every row the params name must be one `owner` may use (`backend.services.ownership`: 403 naming the
    field), checked before anything else about it is looked at or told. `train` also creates its model row
    (see `create_train_job`), owned by `owner` too; `generate_stimuli` (re)generates an existing stimulus set
    (409 while it has a job queued or running);
    `rank_paintings` needs painted training images (422 otherwise).

    A `train` job whose eps ramp is as long as its epochs or longer is refused (422 saying what to fix,
    `backend.vocabulary.eps_ramp_problem`, the rule by which `sipat.training.train` warns and an experiment
    config refuses): it would never train at the eps its model is filed under. The rule applies here, where a
    person asks for a job, not in `TrainParams`, which the worker also applies to jobs already stored.
    """
    clean = validate_job_params(kind, params)
    if kind == "train":
        problem = eps_ramp_problem(clean["method"], clean["eps"], clean["epochs"], clean["eps_ramp_epochs"])
        if problem is not None:
            raise InvalidInputError(f"invalid train parameters: {problem}")
    for name, model in _REFERENCES.items():
        if clean.get(name) is not None and owner is not None:
            require_owner(session, owner, model, clean[name], field=f"params.{name}")
    for name, model in _REFERENCES.items():
        if clean.get(name) is not None:
            get_referenced(session, model, clean[name], field=f"params.{name}")
    owner_id = owner.id if owner is not None else None
    if kind == "train":
        job, trained = create_train_job(session, clean)
        trained.owner_id = owner_id
    elif kind == "generate_stimuli":
        job = regenerate(session, clean["stimulus_set_id"])
    else:
        if kind == "rank_paintings":  # 422 before queueing when the predictor would have nothing to learn from
            painting_pool(session, clean["study_id"], clean["seed"], clean["min_annotators"])
        job = create_job(session, kind, clean)
    job.owner_id = owner_id
    return job


def commit_and_enqueue(session: Session, job: Job, enqueue: Callable[[Job], object]) -> None:
    """Commit the transaction that created `job`, then send its task. When sending fails the job (and a
    stimulus set waiting on it) is marked failed and committed, and 503 tells the caller to try again."""
    session.commit()
    try:
        enqueue(job)
    except Exception as exc:
        log.exception("could not enqueue job %s", job.id)
        job.status = "failed"
        job.message = "failed"
        job.error = f"the job queue could not be reached ({type(exc).__name__}: {exc}); nothing was run"
        job.finished_at = utcnow()
        session.execute(
            update(StimulusSet)
            .where(StimulusSet.job_id == job.id, StimulusSet.status.in_(("pending", "generating")))
            .values(status="failed")
        )
        session.commit()
        raise UnavailableError(
            f"job {job.id} was saved but the job queue (broker) cannot be reached, so it was marked failed; "
            "check that the broker and a worker are running, then submit it again",
            retry_after_s=30,
        ) from exc


def list_jobs(
    session: Session,
    *,
    offset: int,
    limit: int,
    status: str | None = None,
    kind: str | None = None,
    owner_id: int | None = None,
) -> tuple[list[Job], int]:
    """A page of jobs, newest first; only those of `owner_id` when given (a researcher's own)."""
    query = select(Job)
    if owner_id is not None:
        query = query.where(Job.owner_id == owner_id)
    if status is not None:
        query = query.where(Job.status == status)
    if kind is not None:
        query = query.where(Job.kind == kind)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return list(session.scalars(query.order_by(Job.id.desc()).offset(offset).limit(limit))), total


def models_of_jobs(session: Session, job_ids: list[int]) -> dict[int, int]:
    """job id -> id of the model row a train job fills in."""
    if not job_ids:
        return {}
    rows = session.execute(select(TrainedModel.job_id, TrainedModel.id).where(TrainedModel.job_id.in_(job_ids)))
    return {job_id: model_id for job_id, model_id in rows if job_id is not None}
