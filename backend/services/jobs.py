"""Job rows: the research API creates them, workers run them (see worker/). State lives in our database.

Enqueue the Celery task only after the transaction that created the job has committed (the task re-reads the
row by id); this module only writes rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from backend.models import JOB_KINDS, Job, utcnow
from backend.services.errors import ConflictError, InvalidInputError

FINISHED = ("succeeded", "failed", "cancelled")


def create_job(session: Session, kind: str, params: dict[str, Any], *, max_attempts: int = 3) -> Job:
    """A queued job of `kind` ('generate_stimuli' | 'train' | 'evaluate') with JSON `params`; not committed."""
    if kind not in JOB_KINDS:
        raise InvalidInputError(f"unknown job kind {kind!r}; use one of {', '.join(JOB_KINDS)}")
    if max_attempts < 1:
        raise InvalidInputError(f"max_attempts must be at least 1; got {max_attempts}")
    job = Job(kind=kind, params=params, status="queued", max_attempts=max_attempts)
    session.add(job)
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
    session.flush()
    return job
