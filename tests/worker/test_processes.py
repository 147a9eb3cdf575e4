"""Real worker processes (`celery -A worker.app worker --pool=solo`) against real brokers and databases.

(a) embedded: SQLite database + kombu's SQLAlchemy transport on a SQLite file;
(b) distributed: PostgreSQL (a schema of its own) + Redis (queues with a prefix of their own);
    in both, jobs are submitted through the research API (`POST /api/v1/jobs`, `POST /api/v1/stimulus-sets`)
    and must end `succeeded` with metrics and valid stimuli;
(c) a worker SIGKILLed in the middle of a training job: another worker's reaper re-queues it (short heartbeat
    and staleness limits via SIPAT_* settings) and it finishes there, resuming from the job's checkpoint.
"""

from __future__ import annotations

import io
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import select

from backend import auth
from backend.api.deps import get_enqueuer
from backend.db import session_scope
from backend.main import create_app
from backend.migrate import upgrade
from backend.models import Job, Stimulus, TrainedModel
from backend.queue import enqueue, make_celery, queue_names
from backend.services.jobs import create_train_job
from backend.settings import Settings
from sipat.training import read_checkpoint
from tests.backend.fixtures import fresh_schema
from tests.worker.workerkit import FAST_TRAIN, import_mnist, make_settings
from worker.runtime import Runtime

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(150)


def worker_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "SIPAT_DATABASE_URL": settings.database_url,
        "SIPAT_DATA_DIR": str(settings.data_dir),
        "SIPAT_BROKER_URL": settings.broker_url,
        "SIPAT_SECRET_KEY": settings.secret_key.get_secret_value(),
        "SIPAT_QUEUE_PREFIX": settings.queue_prefix,
        "SIPAT_JOB_HEARTBEAT_S": str(settings.job_heartbeat_s),
        "SIPAT_JOB_STALE_AFTER_S": str(settings.job_stale_after_s),
        "SIPAT_JOB_REAPER_INTERVAL_S": str(settings.job_reaper_interval_s),
        "SIPAT_JOB_REQUEUE_AFTER_S": str(settings.job_requeue_after_s),
        "SIPAT_JOB_WAIT_RETRY_S": str(settings.job_wait_retry_s),
        "OMP_NUM_THREADS": "1",
    }


@contextmanager
def worker(settings: Settings, log_path: Path, name: str) -> Iterator[subprocess.Popen[bytes]]:
    """A solo-pool worker on the settings' queues; stopped (or killed) when the block ends, its log shown
    if the test failed."""
    cmd = [
        sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool=solo", "--loglevel=INFO",
        "--without-mingle", "--without-gossip", "-n", f"{name}-{secrets.token_hex(3)}@%h",
        "-Q", ",".join(queue_names(settings)),
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=worker_env(settings), stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # cold shutdown: do not wait for a job
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(what: str, check: Callable[[], Any], timeout: float, logs: list[Path]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in logs if p.exists())
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}\n{tails}")


def job_row(rt: Runtime, job_id: int) -> Job:
    with session_scope(rt.session_factory) as session:
        return session.get(Job, job_id)


def finished(rt: Runtime, *job_ids: int) -> bool:
    rows = [job_row(rt, j) for j in job_ids]
    for row in rows:
        if row.status in ("failed", "cancelled"):
            pytest.fail(f"job {row.id} ended {row.status}: {row.error}\n{row.traceback}")
    return all(row.status == "succeeded" for row in rows)


def api_client(settings: Settings, rt: Runtime) -> TestClient:
    """The research API on the test's settings; jobs are sent with a Celery app of the same settings."""
    app = create_app(settings)
    app.dependency_overrides[get_enqueuer] = lambda: partial(enqueue, app=make_celery(settings))
    with session_scope(rt.session_factory) as session:
        token = auth.create_token(session, auth.create_user(session, "r@example.org", "researcher-pw", is_admin=True))
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


def assert_valid_stimuli(rt: Runtime, set_id: int, levels: list[float]) -> None:
    with session_scope(rt.session_factory) as session:
        stimuli = list(session.scalars(select(Stimulus).where(Stimulus.stimulus_set_id == set_id)))
    clean = {st.image_id: st.sha256 for st in stimuli if st.eps == 0 and st.role == "trial"}
    assert len(clean) == 6 and len(stimuli) == 6 * (len(levels) + 1) + 6
    for st in stimuli:
        with rt.storage.open(st.sha256) as a, rt.storage.open(clean[st.image_id]) as b:
            diff = np.abs(
                np.asarray(PILImage.open(io.BytesIO(a.read())), dtype=np.int16)
                - np.asarray(PILImage.open(io.BytesIO(b.read())), dtype=np.int16)
            )
        assert diff.max() / 255 <= st.eps + 1e-9 and st.linf == pytest.approx(diff.max() / 255)


@pytest.fixture(params=["embedded", pytest.param("distributed", marks=[pytest.mark.postgres, pytest.mark.redis])])
def stack(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Settings]:
    """Settings of a whole stack: SQLite + SQLite broker, or PostgreSQL + Redis."""
    if request.param == "embedded":
        db = tmp_path / "sipat.db"
        db.write_bytes(sqlite_template.read_bytes())
        yield make_settings(f"sqlite:///{db}", tmp_path)
        return
    redis_url = request.getfixturevalue("redis_url")
    with fresh_schema(request.getfixturevalue("postgres_url")) as url:
        upgrade(url)
        yield make_settings(url, tmp_path, broker_url=redis_url, queue_prefix=f"t{secrets.token_hex(4)}-")


def test_worker_runs_jobs_submitted_through_the_api(stack: Settings, tmp_path: Path) -> None:
    rt = Runtime.from_settings(stack, durable=False)
    try:
        dataset_id = import_mnist(rt)
        client = api_client(stack, rt)
        response = client.post(
            "/api/v1/jobs",  # no eps ramp: the API refuses one as long as FAST_TRAIN's single epoch
            json={"kind": "train", "params": {"dataset_id": dataset_id, **FAST_TRAIN, "eps_ramp_epochs": 0}},
        )
        assert response.status_code == 202, response.text
        train = response.json()
        levels = [4 / 255, 0.1]
        response = client.post(
            "/api/v1/stimulus-sets",
            json={
                "dataset_id": dataset_id,
                "train_job_id": train["id"],
                "eps_levels": levels,
                "steps": 3,
                "split": "test",
                "n_images": 6,
            },
        )
        assert response.status_code == 202, response.text
        sset = response.json()
        logs = [tmp_path / "worker.log"]
        with worker(stack, logs[0], "w"):
            wait_for("both jobs to succeed", lambda: finished(rt, train["id"], sset["job"]["id"]), 100, logs)
        body = client.get(f"/api/v1/jobs/{train['id']}").json()
        assert body["status"] == "succeeded" and body["model_id"] == train["model_id"] and body["progress"] == 1.0
        with session_scope(rt.session_factory) as session:
            metrics = session.get(TrainedModel, train["model_id"]).metrics
        assert 0 <= metrics["robust_acc"]["pgd"]["0.1"] <= metrics["clean_acc"] <= 1
        assert client.get(f"/api/v1/stimulus-sets/{sset['id']}").json()["status"] == "ready"
        assert_valid_stimuli(rt, sset["id"], levels)
    finally:
        rt.close()


EPOCHS = 30  # long enough to be killed in the middle (about 0.2 s per epoch)


def test_a_killed_workers_job_finishes_on_another_worker(settings: Settings, tmp_path: Path) -> None:
    rt = Runtime.from_settings(settings, durable=False)
    try:
        dataset_id = import_mnist(rt, n_train=96)
        with session_scope(rt.session_factory) as session:
            job, model = create_train_job(session, {"dataset_id": dataset_id, **FAST_TRAIN, "epochs": EPOCHS})
        enqueue(job, app=make_celery(settings))
        logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]

        checkpoint = rt.scratch_dir(job.id) / "train.pt"

        def past_epoch_1() -> bool:
            return checkpoint.is_file() and job_row(rt, job.id).status == "running"

        with worker(settings, logs[0], "a") as a:
            wait_for("worker A to finish the first epoch", past_epoch_1, 90, logs)
            a.send_signal(signal.SIGKILL)
            a.wait(timeout=10)
        lost = job_row(rt, job.id)
        assert lost.status == "running" and lost.attempts == 1  # nobody has noticed yet
        resume = read_checkpoint(checkpoint)["resume"]
        assert 1 <= resume["epoch"] < EPOCHS

        with worker(settings, logs[1], "b"):
            wait_for("the job to succeed on worker B", lambda: finished(rt, job.id), 90, logs)
        row = job_row(rt, job.id)
        assert row.attempts == 2 and row.worker_id != lost.worker_id
        with session_scope(rt.session_factory) as session:
            history = session.get(TrainedModel, model.id).metrics["history"]
        assert len(history) == EPOCHS and history[: resume["epoch"]] == resume["history"]  # resumed, not redone
        assert f"job {job.id}: worker lost" in logs[1].read_text()  # worker B's reaper re-queued it
    finally:
        rt.close()
