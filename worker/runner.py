"""Run one job by id: claim it, call its function from `worker.jobs`, record the outcome (no broker needed)."""

from __future__ import annotations

from collections.abc import Callable

from backend.services.jobs import JobRun, RunOutcome, run_job
from worker.jobs import JOB_FUNCTIONS
from worker.runtime import Runtime, get_runtime


def execute(
    job_id: int,
    *,
    runtime: Runtime | None = None,
    requeue: Callable[[int, float | None], object] | None = None,
) -> RunOutcome:
    """Run job `job_id` in this process (see `backend.services.jobs.run_job` for the lifecycle).

    `requeue(job_id, countdown_s)` sends the job's message again (the Celery task passes one); without it a
    job that waits for another is only put back to `queued`.
    """
    rt = runtime or get_runtime()

    def call(run: JobRun) -> dict:
        return JOB_FUNCTIONS[run.kind](run, rt)

    return run_job(rt.session_factory, job_id, call, timings=rt.timings, requeue=requeue)
