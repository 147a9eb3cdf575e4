"""The solo pool, made stoppable: a cold or soft shutdown hands the running job back instead of failing it.

Celery's shutdown cancels the running tasks through `pool.terminate_job`; the solo pool has none and raises
`NotImplementedError`, and since the solo pool runs the task in the main thread (where the signal handler
runs too), that error surfaced inside the job and `run_job` recorded the job as *failed* (seen in
tests/worker/test_shutdown_and_health.py). Here `terminate_job` raises `WorkerShutdown` (a `SystemExit`)
instead: `backend.services.jobs.run_job` then puts the row back to `queued` and sends a new message before the
worker exits, so another worker resumes the job from its checkpoint at once; the old, unacknowledged message
is given back by Redis (or made a no-op by `claim_job`).

`worker.app` swaps it in for `--pool=solo` at `worker_init` (before the pool is built), so the command stays
Celery's own.
"""

from __future__ import annotations

from typing import Any

from celery.concurrency import solo
from celery.exceptions import WorkerShutdown


class StoppableSoloPool(solo.TaskPool):
    """`--pool=solo` whose running job can be cancelled by a shutdown (see the module docstring)."""

    def terminate_job(self, pid: int, signal: Any = None) -> None:
        raise WorkerShutdown("the worker is shutting down: the job goes back to the queue")


def stoppable(pool_cls: Any) -> Any:
    """`StoppableSoloPool` in place of Celery's solo pool; any other pool as it is."""
    return StoppableSoloPool if pool_cls is solo.TaskPool else pool_cls
