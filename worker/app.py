"""The worker's Celery app: `celery -A worker.app worker -Q gpu,cpu --pool=solo` (one job at a time, e.g. one
GPU) or `--pool=prefork --concurrency=N` (CPU). Settings come from `SIPAT_*` like the API's.

Each worker process also runs the stale-job reaper (`backend.queue.Reaper`) in a thread, from the moment the
worker is ready until it shuts down, so jobs of a dead worker are re-queued by any live one.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from backend.queue import Reaper, make_celery, use_app
from worker.runtime import get_runtime

log = logging.getLogger(__name__)

app = make_celery(include=("worker.tasks",))
use_app(app)  # the reaper and the job tasks enqueue with this app

_reaper: Reaper | None = None


@worker_ready.connect
def _start_reaper(**_: Any) -> None:
    global _reaper
    rt = get_runtime()
    log.info(
        "sipat worker on %s; reaper every %g s (jobs stale after %g s)",
        rt.device,
        rt.settings.job_reaper_interval_s,
        rt.settings.job_stale_after_s,
    )
    _reaper = Reaper(rt.session_factory, rt.settings, app=app).start()


@worker_shutdown.connect
def _stop_reaper(**_: Any) -> None:
    if _reaper is not None:
        _reaper.stop()
