"""Celery tasks: each takes a job id, runs the job (`worker.runner.execute`), and stores nothing in Celery.

Names and queues come from `backend.queue` (TASK_NAMES, ROUTES), which the API uses to send them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from celery import Task

from backend.queue import REAP_TASK, TASK_NAMES, reap_and_requeue, send_job
from worker.app import app
from worker.runner import execute
from worker.runtime import get_runtime


def _job_task(kind: str) -> Task:
    def run(job_id: int) -> str:
        outcome = execute(job_id, requeue=lambda jid, countdown: send_job(jid, kind, countdown=countdown, app=app))
        return outcome.status

    run.__name__ = run.__qualname__ = kind
    run.__doc__ = f"Run the {kind} job `job_id` (see worker.jobs)."
    return app.task(name=TASK_NAMES[kind])(run)


generate_stimuli = _job_task("generate_stimuli")
train = _job_task("train")
evaluate = _job_task("evaluate")
rank_paintings = _job_task("rank_paintings")


@app.task(name=REAP_TASK)
def reap() -> dict[str, Any]:
    """Run the stale-job reaper once (each worker also runs it periodically)."""
    rt = get_runtime()
    result = reap_and_requeue(rt.session_factory, rt.settings, app=app)
    return dataclasses.asdict(result)
