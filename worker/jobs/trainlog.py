"""A train job's per-epoch log (the rows `sipat train` writes to train_log.csv) in the job's `result` while it runs.

Why the `result` column: the job page and `GET /api/v1/jobs/{id}` already show it, so the curves grow epoch by
epoch without a new table; the final result keeps the same key (`backend.schemas.jobs.TRAIN_LOG_KEY`) next to
the model's metrics. The write is `JobRun.publish_result`, guarded like its progress writes: only while this run
holds the job.
"""

from __future__ import annotations

from backend.schemas.jobs import TRAIN_LOG_KEY
from backend.services.jobs import JobRun

__all__ = ["publish_train_log"]


def publish_train_log(run: JobRun, history: list[dict[str, float]]) -> None:
    """Store `history` (every epoch so far) as the running job's result ``{"train_log": [...]}``; a job that
    this run no longer holds (cancelled, taken over) is left as it is."""
    run.publish_result({TRAIN_LOG_KEY: [dict(row) for row in history]})
