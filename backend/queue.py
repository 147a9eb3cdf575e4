"""The Celery app shared by the API (which sends) and the workers (which run); no torch, no worker code.

Broker: `Settings.broker_url`, by default kombu's SQLAlchemy transport on SQLite (`sqla+sqlite:////abs/var/
broker.db`, no server), `redis://...` when distributed. Delivery is at-least-once: `task_acks_late` (a message is
acknowledged after its task returned), prefetch 1, `task_reject_on_worker_lost` (a pool child that dies gives its
message back), Celery's soft shutdown (`Settings.worker_soft_shutdown_s`: a stopped worker gives the running job
that long, then hands its message back) and, on Redis, a `visibility_timeout` above the longest job
(`Settings.broker_visibility_timeout_s`; Redis's default of 1 h would deliver a long training twice). A job may
therefore be delivered twice, or its message may be lost: with a SIGKILLed worker (the SQLite transport keeps no
unacknowledged copies), with a Redis without persistence that restarts, or because the send failed after the commit.
`backend.services.jobs.claims.claim_job` makes duplicates no-ops, and the reaper (`reap_and_requeue`, run by
every worker) sends new messages: for jobs whose heartbeat stopped (after re-queueing them) and for jobs still `queued`
`Settings.job_requeue_after_s` after their message was due (`Job.enqueued_at`, written in the transaction that made
the job `queued`, so sending costs no extra UPDATE). Job state lives in the database; the result backend is not used
(`task_ignore_result`).

Routes: one table. Queue `gpu` (with `Settings.queue_prefix` in front) takes the heavy tasks
(generate_stimuli, train, evaluate, rank_paintings), queue `cpu` the light ones (the reaper task). Start workers with
`celery -A worker.app worker -Q gpu,cpu --pool=solo` (or `--pool=prefork --concurrency=N` on the CPU).
Tasks are sent by name (`send_task`), so the API never imports `worker` or torch.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from celery import Celery
from kombu import Exchange, Queue
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from backend.services.jobs import ReapResult, SessionFactory, reap_stale_jobs
from backend.settings import Settings, get_settings

if TYPE_CHECKING:
    from backend.models import Job

log = logging.getLogger(__name__)

#: Celery task name of each job kind (`backend.models.JOB_KINDS`).
TASK_NAMES = {
    "generate_stimuli": "sipat.generate_stimuli",
    "train": "sipat.train",
    "evaluate": "sipat.evaluate",
    "rank_paintings": "sipat.rank_paintings",
}
REAP_TASK = "sipat.reap"
GPU, CPU = "gpu", "cpu"
#: The route table: task name -> queue (before the prefix).
ROUTES = {**dict.fromkeys(TASK_NAMES.values(), GPU), REAP_TASK: CPU}

#: Seconds a SQLite broker connection waits for another process's lock (API and worker share the file).
SQLITE_BROKER_TIMEOUT_S = 30


def queue_names(settings: Settings) -> tuple[str, str]:
    """(gpu queue, cpu queue) with the settings' prefix, e.g. ('gpu', 'cpu')."""
    return settings.queue_prefix + GPU, settings.queue_prefix + CPU


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings for `settings` (also what tests inspect)."""
    gpu, cpu = queue_names(settings)
    by_name = {GPU: gpu, CPU: cpu}
    transport_options: dict[str, Any] = {}
    if settings.broker_url.startswith(("redis://", "rediss://", "redis+socket://", "sentinel://")):
        # Above the longest job: an unacknowledged message is redelivered after this long (Redis's default: 1 h).
        transport_options["visibility_timeout"] = settings.broker_visibility_timeout_s
    if settings.broker_url.startswith("sqla+sqlite"):
        # Passed to sqlalchemy.create_engine by kombu; `polling_interval` must not go here (it would fail).
        transport_options["connect_args"] = {"timeout": SQLITE_BROKER_TIMEOUT_S}
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport_options,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A cold shutdown lets the running job go on for this long, then cancels it; its unacknowledged message
        # is given back to the broker (Redis restores a channel's unacknowledged messages when it closes).
        "worker_soft_shutdown_timeout": settings.worker_soft_shutdown_s,
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_queues": tuple(Queue(q, Exchange(q, type="direct"), routing_key=q) for q in (gpu, cpu)),
        "task_default_queue": cpu,
        "task_routes": {name: {"queue": by_name[q]} for name, q in ROUTES.items()},
        "enable_utc": True,
        "timezone": "UTC",
    }


def make_celery(settings: Settings | None = None, *, include: tuple[str, ...] = ()) -> Celery:
    """A Celery app configured from `settings` (default: the process's `SIPAT_*` settings)."""
    settings = settings or get_settings()
    app = Celery("sipat", include=list(include))
    app.conf.update(celery_config(settings))
    return app


_apps: dict[tuple[str, str], Celery] = {}
_apps_lock = threading.Lock()


def get_celery(settings: Settings | None = None) -> Celery:
    """A Celery app for sending with `settings` (default: the process's), one per broker URL and queue prefix."""
    settings = settings or get_settings()
    key = (settings.broker_url, settings.queue_prefix)
    with _apps_lock:
        if key not in _apps:
            _apps[key] = make_celery(settings)
        return _apps[key]


_app_override: Celery | None = None


def use_app(app: Celery) -> None:
    """Make `app` the one `enqueue` sends with in this process (the worker's app, so one connection pool)."""
    global _app_override
    _app_override = app


def _app(app: Celery | None) -> Celery:
    return app or _app_override or get_celery()


def send_job(job_id: int, kind: str, *, countdown: float | None = None, app: Celery | None = None) -> str:
    """Send the task of job `job_id` (of `kind`) to its queue; returns the message id."""
    if kind not in TASK_NAMES:
        raise ValueError(f"unknown job kind {kind!r}; use one of {', '.join(TASK_NAMES)}")
    result = _app(app).send_task(TASK_NAMES[kind], args=[job_id], countdown=countdown)
    log.info("enqueued job %s (%s)%s", job_id, kind, f" in {countdown:g} s" if countdown else "")
    return result.id


def enqueue(job: Job, *, countdown: float | None = None, app: Celery | None = None) -> str:
    """Send `job`'s task. Call it only after the transaction that created the row has committed (the task
    re-reads the row by id and would find nothing); inside a transaction use `enqueue_on_commit`."""
    state = inspect(job)
    if job.id is None or state.pending or state.transient:
        raise ValueError("the job has no committed row yet; commit first, or use enqueue_on_commit(session, job)")
    return send_job(job.id, job.kind, countdown=countdown, app=app)


def enqueue_on_commit(session: Session, job: Job, *, app: Celery | None = None) -> None:
    """Send `job`'s task once `session`'s transaction has committed (nothing is sent if it rolls back).

    For code that does not own the commit, e.g. a route whose `SessionDep` commits after it returns.
    """
    session.flush()
    pending: list[tuple[int, str, Celery | None]] | None = session.info.get(_PENDING_KEY)
    if pending is None:
        pending = session.info[_PENDING_KEY] = []
        event.listen(session, "after_commit", _send_pending)
        event.listen(session, "after_rollback", _drop_pending)
    pending.append((job.id, job.kind, app))


_PENDING_KEY = "sipat_enqueue_after_commit"


def _send_pending(session: Session) -> None:
    pending = session.info.get(_PENDING_KEY) or []
    jobs, pending[:] = list(pending), []
    for job_id, kind, app in jobs:
        send_job(job_id, kind, app=app)


def _drop_pending(session: Session) -> None:
    pending = session.info.get(_PENDING_KEY)
    if pending:
        log.info("transaction rolled back: not enqueueing jobs %s", [job_id for job_id, _, _ in pending])
        pending.clear()


def reap_and_requeue(session_factory: SessionFactory, settings: Settings, *, app: Celery | None = None) -> ReapResult:
    """Run the reaper once (`backend.services.jobs.reaper.reap_stale_jobs`) and send the jobs it re-queued or found
    with a lost message. If a send fails (the broker is away) the job stays `queued` and the next round after
    `job_requeue_after_s` sends it again."""
    result = reap_stale_jobs(
        session_factory, stale_after_s=settings.job_stale_after_s, requeue_after_s=settings.job_requeue_after_s
    )
    to_send = result.requeued + result.resend
    if to_send:
        from backend.db import session_scope
        from backend.models import Job

        with session_scope(session_factory) as session:
            kinds = dict(session.query(Job.id, Job.kind).filter(Job.id.in_(to_send)).all())
        for job_id in to_send:
            send_job(job_id, kinds[job_id], app=app)
    return result


class Reaper:
    """Runs `reap_and_requeue` now and then every `settings.job_reaper_interval_s` in a daemon thread."""

    def __init__(self, session_factory: SessionFactory, settings: Settings, *, app: Celery | None = None) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sipat-reaper", daemon=True)
        self.session_factory, self.settings, self.app = session_factory, settings, app

    def start(self) -> Reaper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            try:
                reap_and_requeue(self.session_factory, self.settings, app=self.app)
            except Exception:  # database or broker briefly away: try again next round
                log.warning(
                    "the job reaper failed; retrying in %s s", self.settings.job_reaper_interval_s, exc_info=True
                )
            if self._stop.wait(self.settings.job_reaper_interval_s):
                return
