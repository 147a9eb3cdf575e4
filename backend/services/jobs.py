"""Job rows and their lifecycle, shared by the research API (create, cancel) and the workers (run, reap).

State lives in our database, not in Celery's result backend. A job goes

    queued --claim--> running --> succeeded | failed | cancelled
      |                  |--(waits for another job / worker shut down)--> queued   (attempt given back)
      |                  '--(heartbeat older than stale_after_s: reaper)--> queued (attempts < max) | failed
      '--(still queued requeue_after_s after enqueued_at: reaper)--> queued, sent again | cancelled (if asked)

* **Claim** is one conditional UPDATE (`claim_job`): it takes a job that is `queued`, or `running` with a stale
  heartbeat, and not cancelled, and counts an attempt. A redelivered message for a job another live worker
  runs, or that has finished, claims nothing and is a no-op, so duplicate messages are harmless.
* **Lost messages**: every move to `queued` sets `enqueued_at`, the time its message is due at the broker
  (now, or now + countdown for a retry that waits), in the same UPDATE; the message is sent after the commit.
  A broker can still lose it (a Redis without persistence restarted; the send failed after the commit), so
  the reaper treats a job still `queued` `requeue_after_s` after `enqueued_at` as lost and sends it again
  (see `reap_stale_jobs`). It cannot tell a lost message from one waiting behind busy workers; the claim makes
  the extra message a no-op either way.
* **Ownership**: each run has its own `worker_id`; heartbeats and the final status are written only while the
  row still names that run, so a run that was declared lost (and re-run elsewhere) cannot overwrite it.
* **Progress** (`JobRun.progress`: fraction 0..1, message, ETA in seconds) is written at most once per
  `progress_min_interval_s`; the heartbeat thread writes the newest pending value with every beat, so the row
  is at most `heartbeat_s` behind while work goes on. Each call checks for cancellation (the flag is re-read
  with every write and beat) and raises `JobCancelled` to stop the work.
* **Failure** stores the error and the traceback; it is final (a bug or bad input fails again on retry).
  Only lost workers cost an attempt that is retried (see `reap_stale_jobs`).

Enqueue the Celery task only after the transaction that created or re-queued the job has committed (the task
re-reads the row by id); `backend.queue.enqueue` / `enqueue_on_commit` do the sending.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from backend.db import rowcount, session_scope
from backend.models import JOB_KINDS, Job, StimulusSet, TrainedModel, utcnow
from backend.services.errors import ConflictError, InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from backend.settings import Settings

log = logging.getLogger(__name__)

FINISHED = ("succeeded", "failed", "cancelled")
SessionFactory = sessionmaker[Session]


# ------------------------------------------------------------------------------------------------------------
# creating and cancelling (the API)


def create_job(session: Session, kind: str, params: dict[str, Any], *, max_attempts: int = 3) -> Job:
    """A queued job of `kind` ('generate_stimuli' | 'train' | 'evaluate') with JSON `params`; not committed."""
    if kind not in JOB_KINDS:
        raise InvalidInputError(f"unknown job kind {kind!r}; use one of {', '.join(JOB_KINDS)}")
    if max_attempts < 1:
        raise InvalidInputError(f"max_attempts must be at least 1; got {max_attempts}")
    job = Job(kind=kind, params=params, status="queued", max_attempts=max_attempts, enqueued_at=utcnow())
    session.add(job)
    session.flush()
    return job


def create_train_job(session: Session, params: dict[str, Any], *, max_attempts: int = 3) -> tuple[Job, TrainedModel]:
    """A queued `train` job and its model row (no checkpoint yet), so stimulus sets can name the model at once.

    `params` are validated (`backend.services.job_params.TrainParams`, 422 when wrong) and stored completed
    with defaults. The worker fills in the checkpoint and metrics of this same row (one model per job).
    The planned salience coverage (`backend.services.training_coverage`) is kept in the model's config and
    told in the job's message; a job on a study's annotations that no training image has is refused (422).
    """
    from backend.services.job_params import validate_job_params
    from backend.services.training_coverage import describe, plan_coverage

    clean = validate_job_params("train", params)
    coverage = plan_coverage(session, clean)
    job = create_job(session, "train", clean, max_attempts=max_attempts)
    if coverage is not None:
        job.message = f"queued; {describe(coverage)}"[:2000]
    arch = clean["arch"] or "auto"
    model = TrainedModel(
        name=clean["name"] or f"{clean['method']} {arch} (job {job.id})",
        arch=arch,
        method=clean["method"],
        dataset_id=clean["dataset_id"],
        config={"params": clean, "coverage": coverage},
        job_id=job.id,
    )
    session.add(model)
    session.flush()
    return job, model


def create_stimuli_job(session: Session, stimulus_set: StimulusSet, *, max_attempts: int = 3) -> Job:
    """A queued `generate_stimuli` job for `stimulus_set` (set back to `pending` and pointed at the job)."""
    job = create_job(session, "generate_stimuli", {"stimulus_set_id": stimulus_set.id}, max_attempts=max_attempts)
    stimulus_set.job_id = job.id
    stimulus_set.status = "pending"
    session.flush()
    return job


def request_cancel(session: Session, job: Job) -> Job:
    """Ask for `job` to stop: a queued job is cancelled at once, a running one when its worker next checks."""
    if job.status in FINISHED:
        raise ConflictError(f"job {job.id} already {job.status}; nothing to cancel")
    job.cancel_requested = True
    if job.status == "queued":
        job.status = "cancelled"
        job.finished_at = utcnow()
        _settle_stimulus_set(session, job.id, "cancelled")
    session.flush()
    return job


def _settle_stimulus_set(session: Session, job_id: int, outcome: str) -> None:
    """A stimulus set whose generation job ended without success: `failed`, or back to `pending` if cancelled."""
    session.execute(
        update(StimulusSet)
        .where(StimulusSet.job_id == job_id, StimulusSet.status.in_(("pending", "generating")))
        .values(status="pending" if outcome == "cancelled" else "failed")
    )


# ------------------------------------------------------------------------------------------------------------
# running (the workers)


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


@dataclass
class _Pending:
    fraction: float
    message: str | None
    eta_s: float | None


class JobRun:
    """One claimed run of a job: progress, cancellation checks, heartbeats, and the final status.

    Use `run_job`, which claims, starts the heartbeat thread and records the outcome. Thread-safe: the
    heartbeat thread and the job's thread write through their own sessions; the pending progress is locked.
    """

    def __init__(
        self,
        session_factory: SessionFactory,
        job: Job,
        worker_id: str,
        timings: JobTimings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session_factory = session_factory
        self.job_id = job.id
        self.kind = job.kind
        self.params: dict[str, Any] = dict(job.params or {})
        self.attempt = job.attempts
        self.max_attempts = job.max_attempts
        self.worker_id = worker_id
        self.timings = timings
        self._clock = clock
        self._t0 = clock()
        self._last_write = -float("inf")
        self._pending: _Pending | None = None
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._lost = threading.Event()
        self.writes = 0  # progress/heartbeat UPDATEs done (for tests and logs)

    # -- progress and checks -------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise `JobCancelled` / `JobLost` if the last write or beat saw the job cancelled or taken away."""
        if self._lost.is_set():
            raise JobLost(f"job {self.job_id} was taken over by another run; this run stops")
        if self._cancelled.is_set():
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def progress(self, fraction: float, message: str | None = None, eta_s: float | None = None) -> None:
        """Report `fraction` done (0..1, clamped) with a short `message` and an ETA in seconds (estimated from
        the elapsed time when not given). Cheap to call often: writes at most once per
        `progress_min_interval_s`; raises `JobCancelled` when the job should stop."""
        self.check()
        fraction = min(1.0, max(0.0, float(fraction)))
        now = self._clock()
        if eta_s is None and fraction > 0:
            eta_s = (now - self._t0) * (1 - fraction) / fraction
        with self._lock:
            self._pending = _Pending(fraction, message, eta_s)
            due = now - self._last_write >= self.timings.progress_min_interval_s
        if due:
            self._write()
            self.check()

    def beat(self) -> None:
        """One heartbeat: refresh `heartbeat_at`, flush pending progress, re-read the cancellation flag."""
        self._write()

    def _write(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
            self._last_write = self._clock()
        values: dict[str, Any] = {"heartbeat_at": utcnow()}
        if pending is not None:
            values.update(progress=pending.fraction, eta_s=pending.eta_s)
            if pending.message is not None:
                values["message"] = pending.message[:2000]
        with session_scope(self.session_factory) as session:
            executed = session.execute(
                update(Job)
                .where(Job.id == self.job_id, Job.worker_id == self.worker_id, Job.status == "running")
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            mine = rowcount(executed)
            cancel = session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id))
        self.writes += 1
        if mine != 1:
            self._lost.set()
        if cancel:
            self._cancelled.set()

    @contextmanager
    def heartbeat(self) -> Iterator[None]:
        """Beat every `heartbeat_s` in a daemon thread while the block runs (failed beats are logged)."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self.timings.heartbeat_s):
                try:
                    self.beat()
                except Exception:  # a database hiccup must not kill the thread; the next beat retries
                    log.warning("heartbeat of job %s failed", self.job_id, exc_info=True)

        thread = threading.Thread(target=loop, name=f"heartbeat-job-{self.job_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=max(5.0, self.timings.heartbeat_s))

    # -- outcomes ------------------------------------------------------------------------------------------

    def _finish(self, status: str, **values: Any) -> bool:
        now = utcnow()
        with session_scope(self.session_factory) as session:
            executed = session.execute(
                update(Job)
                .where(Job.id == self.job_id, Job.worker_id == self.worker_id, Job.status == "running")
                .values(status=status, heartbeat_at=now, **values)
                .execution_options(synchronize_session=False)
            )
            done = rowcount(executed)
            if done == 1 and status in ("failed", "cancelled") and self.kind == "generate_stimuli":
                _settle_stimulus_set(session, self.job_id, status)
        if done != 1:
            log.warning("job %s: not marked %s, the row no longer names run %s", self.job_id, status, self.worker_id)
        return done == 1

    def succeed(self, result: dict[str, Any] | None) -> bool:
        return self._finish("succeeded", result=result, progress=1.0, eta_s=0.0, message="done", finished_at=utcnow())

    def fail(self, exc: BaseException, tb: str) -> bool:
        error = f"{type(exc).__name__}: {exc}"[:10_000]
        return self._finish("failed", error=error, traceback=tb, eta_s=None, message="failed", finished_at=utcnow())

    def cancel(self) -> bool:
        return self._finish("cancelled", eta_s=None, message="cancelled", finished_at=utcnow())

    def release(self, reason: str, countdown_s: float | None = None) -> bool:
        """Back to `queued` with the attempt given back (waiting for another job, or the worker shut down);
        its next message is due in `countdown_s` seconds (`enqueued_at`, so the reaper waits that much longer)."""
        due = utcnow() + timedelta(seconds=countdown_s or 0)
        return self._finish(
            "queued", attempts=Job.attempts - 1, worker_id=None, eta_s=None, message=reason[:2000], enqueued_at=due
        )


@dataclass
class RunOutcome:
    """What `run_job` did: `status` is skipped | succeeded | failed | cancelled | lost | waiting | interrupted;
    `countdown_s` is set for `waiting` (enqueue again after that long)."""

    status: str
    countdown_s: float | None = None
    result: dict[str, Any] | None = field(default=None, repr=False)


JobFunction = Callable[[JobRun], "dict[str, Any] | None"]


def run_job(
    session_factory: SessionFactory,
    job_id: int,
    func: JobFunction,
    *,
    timings: JobTimings,
    worker_id: str | None = None,
    requeue: Callable[[int, float | None], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RunOutcome:
    """Claim `job_id`, run `func(run)` with heartbeats, and record how it ended. Never raises for the job's
    own errors (they are stored on the row), so the broker message can be acknowledged.

    `requeue(job_id, countdown_s)` is called after the row went back to `queued`: when the job waits for
    another one (`WaitFor`), and when the worker is shutting down under it (`SystemExit`,
    `KeyboardInterrupt`; these are re-raised after).
    """
    worker_id = worker_id or new_worker_id()
    if not claim_job(session_factory, job_id, worker_id=worker_id, stale_after_s=timings.stale_after_s):
        log.info("job %s: not claimable (running elsewhere, finished, cancelled or out of attempts)", job_id)
        return RunOutcome("skipped")
    with session_scope(session_factory) as session:
        job = session.get(Job, job_id)
        if job is None:  # deleted between the claim and now
            return RunOutcome("skipped")
        run = JobRun(session_factory, job, worker_id, timings, clock=clock)
    log.info("job %s (%s): attempt %d of %d as %s", job_id, run.kind, run.attempt, run.max_attempts, worker_id)
    try:
        with run.heartbeat():
            result = func(run)
    except JobCancelled:
        run.cancel()
        return RunOutcome("cancelled")
    except JobLost:
        return RunOutcome("lost")
    except WaitFor as wait:
        countdown = wait.countdown_s if wait.countdown_s is not None else timings.wait_retry_s
        if run.release(f"waiting: {wait.reason}", countdown) and requeue is not None:
            requeue(job_id, countdown)
        return RunOutcome("waiting", countdown_s=countdown)
    except Exception as exc:
        log.exception("job %s failed", job_id)
        run.fail(exc, traceback.format_exc())
        return RunOutcome("failed")
    except BaseException:
        released = run.release("interrupted: the worker shut down; the job runs again")
        if released and requeue is not None:
            try:
                requeue(job_id, None)
            except Exception:  # the broker may be gone already; the reaper or a redelivery picks it up
                log.warning("job %s: could not re-enqueue after shutdown", job_id, exc_info=True)
        raise
    if run.succeed(result):
        return RunOutcome("succeeded", result=result)
    return RunOutcome("lost")


# ------------------------------------------------------------------------------------------------------------
# the reaper


@dataclass
class ReapResult:
    """Job ids the reaper put back in the queue from `running`, found `queued` with a lost message (`resend`),
    failed, or cancelled. Send a message for each of `requeued` and `resend` after this returned."""

    requeued: list[int] = field(default_factory=list)
    resend: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)


def reap_stale_jobs(
    session_factory: SessionFactory, *, stale_after_s: float, requeue_after_s: float, now: datetime | None = None
) -> ReapResult:
    """Settle `running` jobs whose heartbeat is older than `stale_after_s` (`_settle_stale_running`), then
    collect `queued` jobs whose message is older than `requeue_after_s` (`_find_lost_messages`). The rows are
    committed when this returns; the caller sends `requeued` and `resend`."""
    now = now or utcnow()
    result = _settle_stale_running(session_factory, stale_after_s, now)
    resend, cancelled = _find_lost_messages(session_factory, requeue_after_s, now)
    result.resend += resend
    result.cancelled += cancelled
    return result


def _settle_stale_running(session_factory: SessionFactory, stale_after_s: float, now: datetime) -> ReapResult:
    """Settle `running` jobs whose heartbeat is older than `stale_after_s` (their worker died or hangs):
    cancelled if cancellation was requested, re-queued while attempts < max_attempts, else failed with the
    reason. Never leaves them `running`. Each job is settled by a conditional UPDATE in its own transaction,
    so a heartbeat or claim that comes in between wins."""
    cutoff = now - timedelta(seconds=stale_after_s)
    stale = or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff)
    result = ReapResult()
    with session_scope(session_factory) as session:
        rows = session.execute(
            select(
                Job.id, Job.kind, Job.worker_id, Job.attempts, Job.max_attempts, Job.cancel_requested, Job.heartbeat_at
            )
            .where(Job.status == "running", stale)
            .order_by(Job.id)
        ).all()
    for job_id, kind, worker_id, attempts, max_attempts, cancel, beat in rows:
        since = beat.isoformat(timespec="seconds") if beat else "never"
        lost = f"worker lost ({worker_id or 'unknown'}): no heartbeat since {since} for more than {stale_after_s:g} s"
        if cancel:
            status, values = "cancelled", {"message": f"cancelled; {lost}", "finished_at": now}
        elif attempts < max_attempts:
            status = "queued"
            values = {
                "message": f"{lost}; re-queued after attempt {attempts} of {max_attempts}",
                "worker_id": None,
                "enqueued_at": now,
            }
        else:
            status = "failed"
            values = {
                "message": "failed",
                "error": f"{lost}; gave up after {attempts} of {max_attempts} attempts",
                "finished_at": now,
            }
        with session_scope(session_factory) as session:
            executed = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "running", Job.worker_id.is_not_distinct_from(worker_id), stale)
                .values(status=status, eta_s=None, **values)
                .execution_options(synchronize_session=False)
            )
            done = rowcount(executed)
            if done == 1 and kind == "generate_stimuli" and status != "queued":
                _settle_stimulus_set(session, job_id, status)
        if done != 1:
            continue
        log.warning("job %s: %s -> %s", job_id, lost, status)
        {"queued": result.requeued, "failed": result.failed, "cancelled": result.cancelled}[status].append(job_id)
    return result


def _find_lost_messages(
    session_factory: SessionFactory, requeue_after_s: float, now: datetime
) -> tuple[list[int], list[int]]:
    """(to re-send, cancelled): the `queued` jobs whose message was due (`enqueued_at`, or `created_at` on rows
    older than that column) more than `requeue_after_s` ago, with `enqueued_at` moved to `now`; and those of
    them whose cancellation was asked, settled `cancelled` (no claim takes them, so re-sending would never end).

    The broker may have lost their message, or it may still wait behind busy workers: there is no cheap way
    to tell, and no need to, because `claim_job` is one conditional UPDATE, so the second message of a job
    claims nothing. A job waiting long thus gets one extra message per `requeue_after_s`. Each UPDATE
    re-checks the age, so of several reapers (one per worker) exactly one re-sends a job per interval. A
    countdown (a `WaitFor` retry) puts `enqueued_at` in the future: such a job is not lost before then.
    """
    cutoff = now - timedelta(seconds=requeue_after_s)
    lost = (Job.status == "queued") & (func.coalesce(Job.enqueued_at, Job.created_at) < cutoff)
    with session_scope(session_factory) as session:
        cancelled = session.scalars(
            update(Job)
            .where(lost, Job.cancel_requested.is_(True))
            .values(status="cancelled", message="cancelled", eta_s=None, finished_at=now)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        ).all()
        for job_id in cancelled:
            _settle_stimulus_set(session, job_id, "cancelled")
        resend = session.scalars(
            update(Job)
            .where(lost, Job.cancel_requested.is_(False))
            .values(enqueued_at=now)
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        ).all()
    if resend:
        log.warning("jobs %s: still queued %g s after their message was due; sending again", resend, requeue_after_s)
    return sorted(resend), sorted(cancelled)


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    return job
