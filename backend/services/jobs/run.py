"""One claimed run of a job in a worker: progress, cancellation checks, heartbeats and the final status
(`JobRun`), and `run_job`, which claims, runs and records how it ended.

Its own module because it is the worker's view of the lifecycle (`worker/runner.py` calls `run_job`, the job
functions in `worker/jobs/` receive a `JobRun`); creating and reaping jobs is no part of it.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from backend.db import rowcount, session_scope
from backend.models import Job, utcnow
from backend.services.jobs.claims import JobCancelled, JobLost, JobTimings, WaitFor, claim_job, new_worker_id
from backend.services.jobs.common import SessionFactory, settle_stimulus_set

log = logging.getLogger(__name__)


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

    def publish_result(self, result: dict[str, Any]) -> bool:
        """Show `result` as the running job's result before it ends (a train job's per-epoch log, so the job page
        draws the curves while it trains); like progress, written only while this run holds the job. False
        when it no longer does (cancelled, taken over): the row is left as it is."""
        with session_scope(self.session_factory) as session:
            executed = session.execute(
                update(Job)
                .where(Job.id == self.job_id, Job.worker_id == self.worker_id, Job.status == "running")
                .values(result=result)
                .execution_options(synchronize_session=False)
            )
            return rowcount(executed) == 1

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
                settle_stimulus_set(session, self.job_id, status)
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
