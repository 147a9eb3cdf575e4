"""Claiming a job for one run: the worker-side exceptions, the timings, and the one conditional UPDATE that
makes a job this run's (`claim_job`).

Its own module because the claim is the lifecycle's one concurrency rule (duplicate messages, lost workers)
and both the run (`run`) and the tests of the queue use it on its own.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import or_, update

from backend.db import rowcount, session_scope
from backend.models import Job, utcnow
from backend.services.jobs.common import SessionFactory

if TYPE_CHECKING:
    from backend.settings import Settings


class JobCancelled(Exception):
    """Raised at a progress point when the job's cancellation was requested."""


class JobLost(Exception):
    """Raised at a progress point when the row no longer names this run (declared lost, re-run elsewhere)."""


class WaitFor(Exception):
    """Raised by a job that cannot start yet (e.g. its model is still training): it goes back to `queued`,
    its attempt is given back, and it is enqueued again after `countdown_s` (default: the settings')."""

    def __init__(self, reason: str, countdown_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.countdown_s = countdown_s


@dataclass(frozen=True)
class JobTimings:
    """Seconds: heartbeat period, staleness limit, minimum gap between progress writes, wait before retry."""

    heartbeat_s: float = 5.0
    stale_after_s: float = 120.0
    progress_min_interval_s: float = 1.0
    wait_retry_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> JobTimings:
        return cls(
            heartbeat_s=settings.job_heartbeat_s,
            stale_after_s=settings.job_stale_after_s,
            progress_min_interval_s=min(1.0, settings.job_heartbeat_s),
            wait_retry_s=settings.job_wait_retry_s,
        )


def new_worker_id() -> str:
    """A name for one run of one job: host, process and a random suffix (unique even for the same process)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def claim_job(session_factory: SessionFactory, job_id: int, *, worker_id: str, stale_after_s: float) -> bool:
    """Atomically make `job_id` this run's: one UPDATE that succeeds only for a job that is `queued`, or
    `running` with a heartbeat older than `stale_after_s` (its worker was lost), not cancelled, and with
    attempts left. Counts the attempt. False means someone else runs it or it is over: nothing to do."""
    now = utcnow()
    cutoff = now - timedelta(seconds=stale_after_s)
    with session_scope(session_factory) as session:
        executed = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.cancel_requested.is_(False),
                Job.attempts < Job.max_attempts,
                or_(
                    Job.status == "queued",
                    (Job.status == "running") & (or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff)),
                ),
            )
            .values(
                status="running",
                attempts=Job.attempts + 1,
                worker_id=worker_id,
                heartbeat_at=now,
                started_at=now,
                finished_at=None,
                message="started",
                eta_s=None,
                error=None,
                traceback=None,
            )
            .execution_options(synchronize_session=False)
        )
        claimed = rowcount(executed)
    return claimed == 1
