"""What every part of the job lifecycle shares: the finished states, the session factory type, and what
happens to a stimulus set whose generation job ended without success.

Its own module so that creating (`create`), running (`run`) and reaping (`reaper`) a job can each import it
without importing one another.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from backend.models import StimulusSet

FINISHED = ("succeeded", "failed", "cancelled")
SessionFactory = sessionmaker[Session]


def settle_stimulus_set(session: Session, job_id: int, outcome: str) -> None:
    """A stimulus set whose generation job ended without success: `failed`, or back to `pending` if cancelled."""
    session.execute(
        update(StimulusSet)
        .where(StimulusSet.job_id == job_id, StimulusSet.status.in_(("pending", "generating")))
        .values(status="pending" if outcome == "cancelled" else "failed")
    )
