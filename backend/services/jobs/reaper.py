"""The reaper: settles jobs whose worker was lost (stale heartbeat) and re-sends jobs whose message the broker
may have lost (still `queued` long after it was due).

Its own module because it runs on a timer beside the workers (`backend.queue.reap_and_requeue`), never inside
a job, and its rules (attempts, cancellation, one re-send per interval) are tested on their own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update

from backend.db import rowcount, session_scope
from backend.models import Job, utcnow
from backend.services.jobs.common import SessionFactory, settle_stimulus_set

log = logging.getLogger(__name__)


@dataclass
class ReapResult:
    """Job ids the reaper put back in the queue from `running`, found `queued` with a lost message (`resend`),
    failed, or cancelled. Send a message for each of `requeued` and `resend` after this returned."""

    requeued: list[int] = field(default_factory=list)
    resend: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)


def reap_stale_jobs(
    session_factory: SessionFactory, *, stale_after_s: float, requeue_after_s: float, now: datetime | None = None
) -> ReapResult:
    """Settle `running` jobs whose heartbeat is older than `stale_after_s` (`_settle_stale_running`), then
    collect `queued` jobs whose message is older than `requeue_after_s` (`_find_lost_messages`). The rows are
    committed when this returns; the caller sends `requeued` and `resend`."""
    now = now or utcnow()
    result = _settle_stale_running(session_factory, stale_after_s, now)
    resend, cancelled = _find_lost_messages(session_factory, requeue_after_s, now)
    result.resend += resend
    result.cancelled += cancelled
    return result


def _settle_stale_running(session_factory: SessionFactory, stale_after_s: float, now: datetime) -> ReapResult:
    """Settle `running` jobs whose heartbeat is older than `stale_after_s` (their worker died or hangs):
    cancelled if cancellation was requested, re-queued while attempts < max_attempts, else failed with the
    reason. Never leaves them `running`. Each job is settled by a conditional UPDATE in its own transaction,
    so a heartbeat or claim that comes in between wins."""
    cutoff = now - timedelta(seconds=stale_after_s)
    stale = or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff)
    result = ReapResult()
    with session_scope(session_factory) as session:
        rows = session.execute(
            select(
                Job.id, Job.kind, Job.worker_id, Job.attempts, Job.max_attempts, Job.cancel_requested, Job.heartbeat_at
            )
            .where(Job.status == "running", stale)
            .order_by(Job.id)
        ).all()
    for job_id, kind, worker_id, attempts, max_attempts, cancel, beat in rows:
        since = beat.isoformat(timespec="seconds") if beat else "never"
        lost = f"worker lost ({worker_id or 'unknown'}): no heartbeat since {since} for more than {stale_after_s:g} s"
        if cancel:
            status, values = "cancelled", {"message": f"cancelled; {lost}", "finished_at": now}
        elif attempts < max_attempts:
            status = "queued"
            values = {
                "message": f"{lost}; re-queued after attempt {attempts} of {max_attempts}",
                "worker_id": None,
                "enqueued_at": now,
            }
        else:
            status = "failed"
            values = {
                "message": "failed",
                "error": f"{lost}; gave up after {attempts} of {max_attempts} attempts",
                "finished_at": now,
            }
        with session_scope(session_factory) as session:
            executed = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "running", Job.worker_id.is_not_distinct_from(worker_id), stale)
                .values(status=status, eta_s=None, **values)
                .execution_options(synchronize_session=False)
            )
            done = rowcount(executed)
            if done == 1 and kind == "generate_stimuli" and status != "queued":
                settle_stimulus_set(session, job_id, status)
        if done != 1:
            continue
        log.warning("job %s: %s -> %s", job_id, lost, status)
        {"queued": result.requeued, "failed": result.failed, "cancelled": result.cancelled}[status].append(job_id)
    return result


def _find_lost_messages(
    session_factory: SessionFactory, requeue_after_s: float, now: datetime
) -> tuple[list[int], list[int]]:
    """(to re-send, cancelled): the `queued` jobs whose message was due (`enqueued_at`, or `created_at` on rows
    older than that column) more than `requeue_after_s` ago, with `enqueued_at` moved to `now`; and those of
    them whose cancellation was asked, settled `cancelled` (no claim takes them, so re-sending would never end).

    The broker may have lost their message, or it may still wait behind busy workers: there is no cheap way
    to tell, and no need to, because `claim_job` is one conditional UPDATE, so the second message of a job
    claims nothing. A job waiting long thus gets one extra message per `requeue_after_s`. Each UPDATE
    re-checks the age, so of several reapers (one per worker) exactly one re-sends a job per interval. A
    countdown (a `WaitFor` retry) puts `enqueued_at` in the future: such a job is not lost before then.
    """
    cutoff = now - timedelta(seconds=requeue_after_s)
    lost = (Job.status == "queued") & (func.coalesce(Job.enqueued_at, Job.created_at) < cutoff)
    with session_scope(session_factory) as session:
        cancelled = session.scalars(
            update(Job)
            .where(lost, Job.cancel_requested.is_(True))
            .values(status="cancelled", message="cancelled", eta_s=None, finished_at=now)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        ).all()
        for job_id in cancelled:
            settle_stimulus_set(session, job_id, "cancelled")
        resend = session.scalars(
            update(Job)
            .where(lost, Job.cancel_requested.is_(False))
            .values(enqueued_at=now)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        ).all()
    if resend:
        log.warning("jobs %s: still queued %g s after their message was due; sending again", resend, requeue_after_s)
    return sorted(resend), sorted(cancelled)
