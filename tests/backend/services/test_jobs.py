"""Job rows: creation with validation, cancellation of queued and running jobs."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from backend.services.errors import ConflictError, InvalidInputError
from backend.services.jobs import create_job, request_cancel


def test_create_and_cancel(session: Session) -> None:
    job = create_job(session, "generate_stimuli", {"stimulus_set_id": 3})
    assert job.id and job.status == "queued" and job.progress == 0.0 and job.max_attempts == 3
    request_cancel(session, job)
    assert job.status == "cancelled" and job.cancel_requested and job.finished_at is not None
    with pytest.raises(ConflictError, match="already cancelled"):
        request_cancel(session, job)

    running = create_job(session, "train", {})
    running.status = "running"
    request_cancel(session, running)
    assert running.status == "running" and running.cancel_requested  # the worker stops it


def test_create_refuses_unknown_kind(session: Session) -> None:
    with pytest.raises(InvalidInputError, match="generate_stimuli"):
        create_job(session, "mine", {})
    with pytest.raises(InvalidInputError, match="max_attempts"):
        create_job(session, "train", {}, max_attempts=0)
