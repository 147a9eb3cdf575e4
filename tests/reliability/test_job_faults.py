"""Redis restarted, and a worker SIGKILLed, while jobs run (PostgreSQL + Redis, two real solo-pool workers with
a 0.5 s heartbeat, jobs stale after 3 s, queued messages taken for lost after 3 s, a reaper every second):
every job ends `succeeded` (or `failed` with a reason), none stays `running` or `queued`.

* Redis restarted (it keeps nothing on disk here) under a running training job: the worker reconnects, the job
  finishes and its row says so; a job sent after the restart runs normally.
* A job committed while Redis is down (its send fails): the reaper sends it again once Redis is back, and the
  idle worker runs it (attempt 1). A message that a restart wipes from the queue is recovered the same way
  (not staged here: it needs both workers busy while the message waits).
* The worker running a job SIGKILLed: the other worker's reaper re-queues it and runs it (attempt 2).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from kombu.exceptions import OperationalError
from sqlalchemy import select

from backend.db import session_scope
from backend.migrate import upgrade
from backend.models import Job
from backend.queue import enqueue, make_celery
from backend.services.jobs import create_train_job
from tests.backend.fixtures import fresh_schema
from tests.reliability.faultkit import need
from tests.worker.test_processes import job_row, wait_for, worker
from tests.worker.workerkit import FAST_TRAIN, import_mnist, make_settings
from worker.runtime import Runtime

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(180)]

REDIS_START = [
    "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
    "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
]  # fmt: skip


def _stop_redis() -> None:
    subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"], capture_output=True, timeout=30
    )
    deadline = time.monotonic() + 20
    while subprocess.run(["redis-cli", "-h", "127.0.0.1", "ping"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "redis did not stop"
        time.sleep(0.1)


def _start_redis() -> None:
    deadline = time.monotonic() + 20
    os.makedirs("/var/lib/redis", exist_ok=True)
    os.makedirs("/var/log/redis", exist_ok=True)
    subprocess.run(REDIS_START, check=True, capture_output=True, timeout=30)
    while subprocess.run(["redis-cli", "-h", "127.0.0.1", "ping"], capture_output=True).stdout.strip() != b"PONG":
        assert time.monotonic() < deadline, "redis did not come back"
        time.sleep(0.1)


def _settled(rt: Runtime, job_id: int) -> bool:
    return job_row(rt, job_id).status in ("succeeded", "failed", "cancelled")


def test_jobs_survive_a_redis_restart_and_a_killed_worker(
    root: None, postgres_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need(shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None, "redis tools missing")
    with fresh_schema(postgres_url) as url:
        upgrade(url)
        settings = make_settings(
            url, tmp_path, broker_url=redis_url, queue_prefix=f"f{secrets.token_hex(4)}-", job_requeue_after_s=3.0
        )
        # worker_env passes the workers some settings and the rest of this process's environment.
        monkeypatch.setenv("SIPAT_JOB_REQUEUE_AFTER_S", str(settings.job_requeue_after_s))
        rt = Runtime.from_settings(settings, durable=False)
        logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
        try:
            dataset_id = import_mnist(rt, n_train=96)

            def create(epochs: int) -> Job:
                with session_scope(rt.session_factory) as session:
                    job, _ = create_train_job(session, {"dataset_id": dataset_id, **FAST_TRAIN, "epochs": epochs})
                return job

            def submit(epochs: int) -> Job:
                job = create(epochs)
                enqueue(job, app=make_celery(settings))
                return job

            with worker(settings, logs[0], "a") as a, worker(settings, logs[1], "b") as b:
                first = submit(25)
                wait_for("job 1 to run", lambda: job_row(rt, first.id).status == "running", 90, logs)
                _stop_redis()
                try:
                    stranded = create(1)
                    with pytest.raises(OperationalError):
                        enqueue(stranded, app=make_celery(settings))
                finally:
                    _start_redis()
                wait_for("job 1 to end after the Redis restart", lambda: _settled(rt, first.id), 90, logs)
                row = job_row(rt, first.id)
                assert row.status == "succeeded", (row.status, row.error)
                wait_for("the job sent while Redis was down to run", lambda: _settled(rt, stranded.id), 90, logs)
                row = job_row(rt, stranded.id)
                assert row.status == "succeeded" and row.attempts == 1, (row.status, row.attempts, row.error)

                second = submit(30)
                checkpoint = rt.scratch_dir(second.id) / "train.pt"
                wait_for(
                    "job 2 to pass its first epoch",
                    lambda: checkpoint.is_file() and job_row(rt, second.id).status == "running",
                    90,
                    logs,
                )
                runner_pid = int(job_row(rt, second.id).worker_id.split(":")[1])
                victim = next(p for p in (a, b) if p.pid == runner_pid)
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=10)
                wait_for("job 2 to end on the other worker", lambda: _settled(rt, second.id), 90, logs)
                row = job_row(rt, second.id)
                assert row.status == "succeeded" and row.attempts == 2, (row.status, row.attempts, row.error)
                assert row.worker_id.split(":")[1] != str(runner_pid)
            with session_scope(rt.session_factory) as session:
                assert session.scalars(select(Job.id).where(Job.status.in_(("queued", "running")))).all() == []
        finally:
            rt.close()
