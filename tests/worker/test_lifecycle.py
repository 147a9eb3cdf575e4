"""The job lifecycle of backend.services.jobs: claim, progress, heartbeat, cancel, failure, wait, reaper."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from backend.db import make_engine, make_session_factory, session_scope
from backend.migrate import upgrade
from backend.models import Job, StimulusSet, utcnow
from backend.services.jobs import (
    JobCancelled,
    JobLost,
    JobRun,
    JobTimings,
    ReapResult,
    WaitFor,
    claim_job,
    create_job,
    create_stimuli_job,
    reap_stale_jobs,
    request_cancel,
    run_job,
)
from backend.storage import LocalBlobStore
from tests.backend.factories import make_dataset
from tests.backend.fixtures import fresh_schema

FAST = JobTimings(heartbeat_s=0.05, stale_after_s=60, progress_min_interval_s=1.0, wait_retry_s=2.0)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def factory(request: pytest.FixtureRequest, tmp_path: Path):
    """A session factory on a migrated database: SQLite, and PostgreSQL (a schema of its own)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
        upgrade(url)
        engine = make_engine(url)
        yield make_session_factory(engine)
        engine.dispose()
        return
    with fresh_schema(request.getfixturevalue("postgres_url")) as url:
        upgrade(url)
        engine = make_engine(url)
        yield make_session_factory(engine)
        engine.dispose()


def new_job(factory, kind: str = "train", **kw) -> int:
    with session_scope(factory) as session:
        return create_job(session, kind, {"x": 1}, **kw).id


def job(factory, job_id: int) -> Job:
    with session_scope(factory) as session:
        return session.get(Job, job_id)


def age(factory, job_id: int, seconds: float = 3600) -> None:
    """Pretend the job's last heartbeat was `seconds` ago."""
    with session_scope(factory) as session:
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds)))


def reap(factory, now: datetime | None = None, *, stale_after_s: float = 60) -> ReapResult:
    """One round of the reaper: heartbeats stale after `stale_after_s`, queued messages lost after 600 s."""
    return reap_stale_jobs(factory, stale_after_s=stale_after_s, requeue_after_s=600, now=now)


def claimed_run(factory, job_id: int, worker_id: str = "w1", **kw) -> JobRun:
    assert claim_job(factory, job_id, worker_id=worker_id, stale_after_s=60)
    return JobRun(factory, job(factory, job_id), worker_id, kw.pop("timings", FAST), **kw)


def test_claim_is_atomic_and_idempotent(factory) -> None:
    job_id = new_job(factory)
    wins: list[str] = []
    barrier = threading.Barrier(8)

    def contender(name: str) -> None:
        barrier.wait()
        if claim_job(factory, job_id, worker_id=name, stale_after_s=60):
            wins.append(name)

    threads = [threading.Thread(target=contender, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    row = job(factory, job_id)
    assert (row.status, row.attempts, row.worker_id) == ("running", 1, wins[0])
    assert row.heartbeat_at is not None and row.started_at is not None

    # A redelivered message while the first run is alive: no-op.
    assert not claim_job(factory, job_id, worker_id="late", stale_after_s=60)
    # The first run's heartbeat went stale (its worker died): the next message takes it over.
    age(factory, job_id)
    assert claim_job(factory, job_id, worker_id="second", stale_after_s=60)
    assert (job(factory, job_id).attempts, job(factory, job_id).worker_id) == (2, "second")

    # Finished, cancelled or out of attempts: nothing to claim.
    JobRun(factory, job(factory, job_id), "second", FAST).succeed({"ok": True})
    assert not claim_job(factory, job_id, worker_id="again", stale_after_s=60)
    cancelled = new_job(factory)
    with session_scope(factory) as session:
        request_cancel(session, session.get(Job, cancelled))
    assert not claim_job(factory, cancelled, worker_id="w", stale_after_s=60)
    spent = new_job(factory, max_attempts=1)
    assert claim_job(factory, spent, worker_id="w", stale_after_s=60)
    age(factory, spent)
    assert not claim_job(factory, spent, worker_id="w2", stale_after_s=60)


def test_progress_is_throttled_and_flushed_by_the_heartbeat(factory) -> None:
    now = [100.0]
    run = claimed_run(factory, new_job(factory), clock=lambda: now[0])
    run.progress(0.1, "a")
    assert run.writes == 1 and job(factory, run.job_id).progress == pytest.approx(0.1)
    now[0] = 100.5
    run.progress(0.2, "b")  # within 1 s of the last write: kept pending
    assert run.writes == 1 and job(factory, run.job_id).progress == pytest.approx(0.1)
    now[0] = 101.2
    run.progress(0.3, "c")
    row = job(factory, run.job_id)
    assert run.writes == 2 and row.progress == pytest.approx(0.3) and row.message == "c"
    assert row.eta_s == pytest.approx(1.2 * 0.7 / 0.3)  # elapsed * (1 - f) / f
    now[0] = 101.4
    run.progress(1.7, "d", eta_s=9.0)  # clamped to 1; pending
    before = job(factory, run.job_id).heartbeat_at
    time.sleep(0.01)
    run.beat()  # the heartbeat writes the newest pending value
    row = job(factory, run.job_id)
    assert (row.progress, row.message, row.eta_s) == (1.0, "d", 9.0)
    assert row.heartbeat_at > before

    # The heartbeat thread beats on its own while work goes on.
    before = row.heartbeat_at
    with run.heartbeat():
        time.sleep(0.3)
    assert job(factory, run.job_id).heartbeat_at > before
    assert run.writes >= 4


def test_cancel_stops_the_work_at_the_next_progress_point(factory) -> None:
    job_id = new_job(factory)
    timings = JobTimings(heartbeat_s=0.05, stale_after_s=60, progress_min_interval_s=0.0)
    steps: list[int] = []

    def work(run: JobRun) -> dict:
        for i in range(1000):
            run.progress(i / 1000, f"step {i}")
            steps.append(i)
            if i == 3:
                with session_scope(factory) as session:
                    request_cancel(session, session.get(Job, job_id))
            time.sleep(0.005)
        return {"finished": True}

    outcome = run_job(factory, job_id, work, timings=timings)
    row = job(factory, job_id)
    assert outcome.status == "cancelled"
    assert row.status == "cancelled" and row.cancel_requested and row.finished_at is not None
    assert row.result is None and len(steps) < 10


def test_failure_stores_the_error_and_traceback(factory) -> None:
    job_id = new_job(factory)

    def broken_job_function(run: JobRun) -> dict:
        run.progress(0.5, "half way")
        raise ValueError("the dataset has no images of split 'test'")

    assert run_job(factory, job_id, broken_job_function, timings=FAST).status == "failed"
    row = job(factory, job_id)
    assert row.status == "failed" and row.finished_at is not None
    assert row.error == "ValueError: the dataset has no images of split 'test'"
    assert "broken_job_function" in row.traceback and "Traceback" in row.traceback
    assert run_job(factory, job_id, broken_job_function, timings=FAST).status == "skipped"  # final


def test_waiting_gives_the_attempt_back_and_requeues(factory) -> None:
    job_id = new_job(factory)
    sent: list[tuple[int, float | None]] = []

    def not_yet(run: JobRun) -> dict:
        raise WaitFor("model 3 is not trained yet")

    outcome = run_job(factory, job_id, not_yet, timings=FAST, requeue=lambda j, c: sent.append((j, c)))
    row = job(factory, job_id)
    assert outcome.status == "waiting" and sent == [(job_id, 2.0)]
    assert (row.status, row.attempts, row.worker_id) == ("queued", 0, None)
    assert row.message == "waiting: model 3 is not trained yet"
    assert run_job(factory, job_id, lambda run: {"v": run.attempt}, timings=FAST).status == "succeeded"
    assert job(factory, job_id).result == {"v": 1}


def test_a_worker_shutting_down_puts_its_job_back(factory) -> None:
    job_id = new_job(factory)
    sent: list[int] = []

    def interrupted(run: JobRun) -> dict:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_job(factory, job_id, interrupted, timings=FAST, requeue=lambda j, c: sent.append(j))
    row = job(factory, job_id)
    assert (row.status, row.attempts, sent) == ("queued", 0, [job_id])


def test_a_run_that_was_taken_over_stops_and_cannot_overwrite(factory) -> None:
    job_id = new_job(factory)
    first = claimed_run(factory, job_id, "first", timings=JobTimings(progress_min_interval_s=0.0))
    age(factory, job_id)
    assert claim_job(factory, job_id, worker_id="second", stale_after_s=60)
    with pytest.raises(JobLost):
        first.progress(0.5)
    assert not first.succeed({"stale": True})
    row = job(factory, job_id)
    assert (row.status, row.worker_id, row.result) == ("running", "second", None)


def test_a_result_shown_while_running_is_written_only_by_the_run_that_holds_the_job(factory) -> None:
    """`publish_result` (a train job's per-epoch log while it trains) follows the ownership rule of progress."""
    job_id = new_job(factory)
    first = claimed_run(factory, job_id, "first")
    assert first.publish_result({"train_log": [{"epoch": 1.0}]})
    assert job(factory, job_id).result == {"train_log": [{"epoch": 1.0}]}
    age(factory, job_id)
    assert claim_job(factory, job_id, worker_id="second", stale_after_s=60)
    assert not first.publish_result({"train_log": [{"epoch": 2.0}]})
    assert job(factory, job_id).result == {"train_log": [{"epoch": 1.0}]}


def test_reaper_requeues_lost_jobs_then_fails_them(factory, tmp_path: Path) -> None:
    job_id = new_job(factory, "generate_stimuli", max_attempts=2)
    with session_scope(factory) as session:
        store = LocalBlobStore(tmp_path / "blobs", durable=False)
        sset = StimulusSet(dataset_id=make_dataset(session, store).id, eps_levels=[0.1], status="pending")
        session.add(sset)
        session.flush()
        sset.job_id = job_id
        set_id = sset.id
    fresh = new_job(factory)
    claimed_run(factory, fresh, "alive")

    claimed_run(factory, job_id, "dead-1")
    assert reap(factory).requeued == []  # heartbeat recent: left alone
    age(factory, job_id, 120)
    result = reap(factory)
    row = job(factory, job_id)
    assert result.requeued == [job_id] and result.failed == []
    assert (row.status, row.worker_id, row.attempts) == ("queued", None, 1)
    assert "worker lost (dead-1)" in row.message and "attempt 1 of 2" in row.message
    assert row.enqueued_at > row.created_at  # its new message is dated now, not at creation

    claimed_run(factory, job_id, "dead-2")
    age(factory, job_id, 120)
    result = reap(factory)
    row = job(factory, job_id)
    assert result.failed == [job_id] and result.requeued == []
    assert row.status == "failed" and row.finished_at is not None
    assert row.error.startswith("worker lost (dead-2)") and "gave up after 2 of 2 attempts" in row.error
    with session_scope(factory) as session:
        assert session.get(StimulusSet, set_id).status == "failed"
    assert job(factory, fresh).status == "running"  # the live one was never touched

    cancelled = new_job(factory)
    claimed_run(factory, cancelled, "dead-3")
    with session_scope(factory) as session:
        request_cancel(session, session.get(Job, cancelled))
    age(factory, cancelled)
    assert reap(factory).cancelled == [cancelled]
    assert job(factory, cancelled).status == "cancelled"


def wait_an_hour(run: JobRun) -> dict:
    raise WaitFor("model 3 is not trained yet", countdown_s=3600)


def test_reaper_resends_a_lost_queued_job_once_per_interval(factory) -> None:
    def reap_queued(at: datetime) -> ReapResult:  # no heartbeat is stale: only the queued side acts
        return reap(factory, at, stale_after_s=10**6)

    lost, legacy, waiting = new_job(factory), new_job(factory), new_job(factory)
    running, done = new_job(factory), new_job(factory)
    enqueued = job(factory, lost).enqueued_at
    assert enqueued is not None and abs((enqueued - utcnow()).total_seconds()) < 60
    with session_scope(factory) as session:  # a row from before the column: its age is its created_at
        session.execute(update(Job).where(Job.id == legacy).values(enqueued_at=None))
    assert run_job(factory, waiting, wait_an_hour, timings=FAST).status == "waiting"
    due = job(factory, waiting).enqueued_at
    assert abs((due - utcnow()).total_seconds() - 3600) < 60  # its next message is due after the countdown
    claimed_run(factory, running, "alive")
    claimed_run(factory, done, "done").succeed({})

    assert reap_queued(utcnow()).resend == []  # just enqueued
    later = utcnow() + timedelta(seconds=601)
    assert reap_queued(later).resend == [lost, legacy]  # not `waiting`: its message is due in an hour
    assert reap_queued(later).resend == []  # another reaper at once: nothing (one per interval)
    row = job(factory, lost)
    assert (row.status, row.attempts, row.enqueued_at) == ("queued", 0, later)
    assert reap_queued(later + timedelta(seconds=601)).resend == [lost, legacy]
    result = reap_queued(later + timedelta(seconds=3700))
    assert result.resend == [lost, legacy, waiting] and result.requeued == result.failed == []
    assert [job(factory, j).status for j in (running, done)] == ["running", "succeeded"]


def test_reaper_cancels_a_lost_queued_job_whose_cancel_was_asked(factory) -> None:
    job_id = new_job(factory)
    run = claimed_run(factory, job_id)
    with session_scope(factory) as session:
        request_cancel(session, session.get(Job, job_id))  # running: only flags it
    assert run.release("interrupted: the worker shut down")  # back to queued, but no claim will take it
    result = reap(factory, utcnow() + timedelta(seconds=601))
    row = job(factory, job_id)
    assert (result.resend, result.cancelled) == ([], [job_id])
    assert row.status == "cancelled" and row.finished_at is not None


def test_stimuli_job_creation_points_the_set_at_its_job(factory, tmp_path: Path) -> None:
    with session_scope(factory) as session:
        sset = StimulusSet(
            dataset_id=make_dataset(session, LocalBlobStore(tmp_path / "b")).id, eps_levels=[0.1], status="failed"
        )
        session.add(sset)
        session.flush()
        created = create_stimuli_job(session, sset)
        assert (sset.job_id, sset.status, created.params) == (created.id, "pending", {"stimulus_set_id": sset.id})
        request_cancel(session, created)
        session.flush()
        session.refresh(sset)
        assert sset.status == "pending"


def test_job_cancelled_is_raised_by_check(factory) -> None:
    run = claimed_run(factory, new_job(factory), timings=JobTimings(progress_min_interval_s=0.0))
    with session_scope(factory) as session:
        session.execute(update(Job).where(Job.id == run.job_id).values(cancel_requested=True))
    run.beat()
    with pytest.raises(JobCancelled):
        run.check()
