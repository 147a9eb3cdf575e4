"""The worker's Celery app: `celery -A worker.app worker -Q gpu,cpu --pool=solo` (one job at a time, e.g. one
GPU) or `--pool=prefork --concurrency=N` (CPU). Settings come from `SIPAT_*` like the API's.

Each worker process also runs the stale-job reaper (`backend.queue.Reaper`) in a thread, from the moment the
worker is ready until it shuts down, so jobs of a dead worker are re-queued by any live one, and touches its
alive file (`worker.healthcheck`) from another.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger, worker_init, worker_ready, worker_shutdown

from backend.logjson import json_on_logger
from backend.queue import Reaper, make_celery, use_app
from backend.settings import get_settings
from worker.healthcheck import AliveFile
from worker.pool import stoppable
from worker.runtime import get_runtime

log = logging.getLogger(__name__)

app = make_celery(include=("worker.tasks",))
use_app(app)  # the reaper and the job tasks enqueue with this app

_reaper: Reaper | None = None
_alive: AliveFile | None = None


@after_setup_logger.connect
@after_setup_task_logger.connect
def _json_logs(logger: logging.Logger | None = None, **_: Any) -> None:
    """`SIPAT_LOG_FORMAT=json`: Celery's handlers (worker and task loggers) write JSON lines (backend.logjson)."""
    if logger is not None and get_settings().log_format == "json":
        json_on_logger(logger)


@worker_init.connect
def _stoppable_solo_pool(sender: Any = None, **_: Any) -> None:
    """Before the pool is built: a shutdown hands the solo pool's running job back (`worker.pool`)."""
    if sender is not None and hasattr(sender, "pool_cls"):
        sender.pool_cls = stoppable(sender.pool_cls)


@worker_ready.connect
def _start_reaper(**_: Any) -> None:
    global _reaper, _alive
    rt = get_runtime()
    log.info(
        "sipat worker on %s; reaper every %g s (jobs stale after %g s)",
        rt.device,
        rt.settings.job_reaper_interval_s,
        rt.settings.job_stale_after_s,
    )
    _reaper = Reaper(rt.session_factory, rt.settings, app=app).start()
    _alive = AliveFile(rt.settings.worker_alive_file).start()  # read by `python -m worker.healthcheck`


@worker_shutdown.connect
def _stop_reaper(**_: Any) -> None:
    if _reaper is not None:
        _reaper.stop()
    if _alive is not None:
        _alive.stop()
