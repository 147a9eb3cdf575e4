"""A real worker on Redis: `python -m worker.healthcheck` gets its answer, and a stopped worker (SIGTERM, as
`docker stop` sends, remapped to Celery's cold shutdown with its soft timeout) hands its training job's
message back to the queue at once instead of finishing hours of training or keeping it invisible for the
visibility timeout. Another worker then finishes the job from its checkpoint."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_lib

from backend.db import session_scope
from backend.queue import enqueue, make_celery, queue_names
from backend.services.jobs import create_train_job
from backend.settings import Settings
from tests.worker.test_processes import REPO, finished, job_row, wait_for, worker_env
from tests.worker.workerkit import FAST_TRAIN, import_mnist, make_settings
from worker.runtime import Runtime

pytestmark = [pytest.mark.redis, pytest.mark.timeout(180)]

EPOCHS = 400  # far longer than the test waits: the job must not finish on the stopped worker


def start_worker(settings: Settings, log: Path, name: str, **extra_env: str) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool=solo", "--loglevel=INFO",
        "--without-mingle", "--without-gossip", "-n", name, "-Q", ",".join(queue_names(settings)),
    ]  # fmt: skip
    env = {
        **worker_env(settings),
        "SIPAT_WORKER_SOFT_SHUTDOWN_S": "1",
        "REMAP_SIGTERM": "SIGQUIT",  # as docker-compose.yml sets it: SIGTERM starts the (soft) cold shutdown
        "SIPAT_WORKER_ALIVE_FILE": str(log.with_suffix(".alive")),
        **extra_env,
    }
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def healthcheck(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.healthcheck", *args],
        cwd=REPO, env=worker_env(settings), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_healthcheck_and_a_stopped_worker_hands_its_job_back(
    tmp_path: Path, sqlite_template: Path, redis_url: str
) -> None:
    db = tmp_path / "sipat.db"
    db.write_bytes(sqlite_template.read_bytes())
    prefix = f"t{secrets.token_hex(4)}-"
    settings = make_settings(f"sqlite:///{db}", tmp_path, broker_url=redis_url, queue_prefix=prefix)
    gpu_queue = queue_names(settings)[0]
    broker = redis_lib.Redis.from_url(redis_url)
    rt = Runtime.from_settings(settings, durable=False)
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    name_a = f"a-{secrets.token_hex(3)}@test"
    try:
        dataset_id = import_mnist(rt, n_train=96)
        with session_scope(rt.session_factory) as session:
            job, _model = create_train_job(session, {"dataset_id": dataset_id, **FAST_TRAIN, "epochs": EPOCHS})
        enqueue(job, app=make_celery(settings))
        checkpoint = rt.scratch_dir(job.id) / "train.pt"
        a = start_worker(settings, logs[0], name_a)
        try:
            wait_for("worker A to checkpoint", lambda: checkpoint.is_file(), 90, logs)
            assert broker.llen(gpu_queue) == 0  # the message is out, unacknowledged, on worker A
            alive = logs[0].with_suffix(".alive")
            ok = healthcheck(settings, "--file", str(alive))  # in the middle of a job: still healthy
            assert ok.returncode == 0, ok.stderr
            pinged = healthcheck(settings, "--file", str(alive), "--ping", "--name", name_a, "--timeout", "1")
            assert pinged.returncode == 1 and "no answer" in pinged.stderr  # why the default is no ping (solo)

            stopped_at = time.monotonic()
            a.send_signal(signal.SIGTERM)
            a.wait(timeout=30)
            took = time.monotonic() - stopped_at
        finally:
            stop(a)
        assert took < 20, f"worker A took {took:.1f} s to stop"
        assert not alive.exists() and healthcheck(settings, "--file", str(alive)).returncode == 1
        log_a = logs[0].read_text()
        assert "does not implement kill_job" not in log_a and f"job {job.id} failed" not in log_a, log_a[-3000:]
        row = job_row(rt, job.id)
        # handed back at once, its attempt given back (a shutdown is not the job's fault)
        assert row.status == "queued" and row.attempts == 0 and "interrupted" in (row.message or ""), log_a[-3000:]
        assert broker.llen(gpu_queue) >= 1  # its message is waiting for the next worker

        b = start_worker(settings, logs[1], f"b-{secrets.token_hex(3)}@test", SIPAT_LOG_FORMAT="json")
        try:
            wait_for("worker B to take the job", lambda: job_row(rt, job.id).attempts == 1, 60, logs)
            # the claim commits before its log line is written: wait for the line, not only the row
            wait_for(
                "worker B to log its attempt",
                lambda: f"job {job.id} (train): attempt 1" in logs[1].read_text(),
                30,
                logs,
            )
        finally:
            stop(b)
        assert job_row(rt, job.id).status == "running" and not finished(rt, job.id)  # B had it when stopped
        records = [json.loads(line) for line in logs[1].read_text().splitlines() if line.startswith("{")]
        attempt = [r for r in records if r["message"].startswith(f"job {job.id} (train): attempt 1")]
        assert attempt and attempt[0]["logger"].startswith("backend.services.jobs"), records[-5:]  # JSON log lines
    finally:
        rt.close()
        broker.close()
