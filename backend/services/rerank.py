"""Refreshing a study's ranking after every K new paintings (study config `rerank_every`, issue 20).

Why after the answer's commit, in its own transaction: the answer path must not wait for it, and a failed
refresh must never cost a painting. The route runs `refresh_after_painting` as a background task once the
response is sent; a study without `rerank_every` costs one indexed query.

The rule: with C the study's accepted paintings (unflagged, no pilots; the ranking's own rule) and L the
count recorded by the newest automatically queued ranking (`after_paintings` in its params; 0 if none), a
job is queued when `C // K > L // K`, i.e. C passed a multiple of K since the last refresh. Comparing with L
rather than testing `C % K == 0` is what keeps two paintings that commit together from both missing the
boundary (each counting C = K + 1). At most one `rank_paintings` job of a study is queued or running: the
decision is taken again under a lock of the study's row (a no-op UPDATE), so simultaneous paintings
at the boundary queue one job. A boundary passed while a job runs is caught up by the first painting after it
ended. The new job takes the params of the study's newest ranking (a researcher's choices carry over) or the
defaults, with the study's seed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from backend.models import Annotation, Job, Participant, Study, Trial
from backend.services.errors import ServiceError
from backend.services.job_requests import commit_and_enqueue, submit_job
from backend.services.paint_next import rank_jobs
from backend.services.training_coverage import COUNTED_PAINTER
from backend.study.config import StudyConfig

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
#: Newest ranking jobs searched for the last automatic one (older refreshes count as "none").
RECENT = 50


def accepted_paintings(session: Session, study_id: int) -> int:
    """Accepted paintings of the study (`training_coverage.COUNTED_PAINTER`)."""
    return (
        session.scalar(
            select(func.count(Annotation.id))
            .join(Trial, Annotation.trial_id == Trial.id)
            .join(Participant, Trial.participant_id == Participant.id)
            .where(Participant.study_id == study_id, COUNTED_PAINTER)
        )
        or 0
    )


def _last_refresh(jobs: list[Job]) -> int:
    for job in jobs:
        after = (job.params or {}).get("after_paintings")
        if isinstance(after, int):
            return after
    return 0


def due(session: Session, study_id: int, every: int) -> tuple[bool, int, list[Job]]:
    """(whether a refresh is due, the study's paintings, its newest ranking jobs)."""
    count = accepted_paintings(session, study_id)
    # populate_existing: the second look, under the lock, must see statuses changed since the first
    jobs = list(session.scalars(rank_jobs(study_id).limit(RECENT).execution_options(populate_existing=True)))
    return count // every > _last_refresh(jobs) // every, count, jobs


def refresh_after_painting(session: Session, trial_id: int) -> Job | None:
    """Queue the study's ranking if the painting of `trial_id` brought it past a multiple of `rerank_every`;
    the created job (not committed, not sent), or None. Call after the painting's commit, in a session of its
    own: it rolls back what the session read before it takes the lock (module docstring)."""
    row = session.execute(
        select(Study.id, Study.config, Study.owner_id)
        .join(Participant, Participant.study_id == Study.id)
        .join(Trial, Trial.participant_id == Participant.id)
        .where(Trial.id == trial_id)
    ).first()
    every = (row.config or {}).get("rerank_every") if row is not None else None
    if row is None or not isinstance(every, int) or every < 1:
        return None
    is_due, _count, jobs = due(session, row.id, every)  # the cheap path: no lock
    if not is_due or any(job.status in ACTIVE for job in jobs):
        return None
    # The study row's lock, as the first statement of a fresh transaction: a no-op UPDATE locks the row on
    # PostgreSQL and takes the write lock on SQLite (where a read earlier in the transaction could not upgrade).
    session.rollback()
    session.execute(update(Study).where(Study.id == row.id).values(next_index=Study.next_index))
    is_due, count, jobs = due(session, row.id, every)  # again, now that simultaneous refreshes wait here
    if not is_due or any(job.status in ACTIVE for job in jobs):
        return None
    config = StudyConfig.model_validate(row.config)
    params = {k: v for k, v in (jobs[0].params if jobs else {"seed": config.seed}).items() if k != "after_paintings"}
    try:
        job = submit_job(session, "rank_paintings", {**params, "study_id": row.id, "after_paintings": count})
    except ServiceError as exc:  # nothing painted enough yet, a reference model deleted, ...: try next painting
        log.info("study %s: no ranking queued after %s paintings: %s", row.id, count, exc.message)
        return None
    job.owner_id = row.owner_id
    job.message = f"queued: {count} paintings passed a multiple of {every} (rerank_every)"
    return job


def refresh_and_send(session_factory: Callable[[], Session], trial_id: int, enqueue: Callable[[Job], object]) -> None:
    """`refresh_after_painting` in a transaction of its own, then the job sent; a broker that cannot be reached
    marks the job failed (logged: the participant whose painting triggered it has long had their answer)."""
    with session_factory() as session:
        job = refresh_after_painting(session, trial_id)
        if job is None:
            session.rollback()
            return
        try:
            commit_and_enqueue(session, job, enqueue)
        except ServiceError as exc:
            log.warning("ranking job %s of trial %s's study not sent: %s", job.id, trial_id, exc.message)


__all__ = ["accepted_paintings", "due", "refresh_after_painting", "refresh_and_send"]
