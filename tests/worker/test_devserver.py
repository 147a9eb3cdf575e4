"""`make run` (backend.devserver): seeding once, and the real command serving at once and stopping cleanly."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from backend import auth
from backend.db import make_engine, make_session_factory, session_scope
from backend.devserver import DEMO_EPS, DEMO_SLUG, prepare
from backend.models import Dataset, Image, Job, SalienceMap, StimulusSet, Study, TrainedModel
from backend.settings import Settings
from backend.study.config import StudyConfig
from tests.netkit import free_port

REPO = Path(__file__).resolve().parents[2]


def test_prepare_seeds_the_demo_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    var = tmp_path / "var"  # a fresh clone: nothing there yet
    settings = Settings(
        database_url=f"sqlite:///{var / 'sipat.db'}",
        broker_url=f"sqla+sqlite:///{var / 'broker.db'}",
        data_dir=var / "data",
        secret_key="s" * 40,
    )

    first = prepare(settings)
    assert first.demo_created and first.admin_password and first.password_file == tmp_path / "var/admin_password.txt"
    assert stat.S_IMODE(first.password_file.stat().st_mode) == 0o600
    assert first.password_file.read_text() == f"email: {first.admin_email}\npassword: {first.admin_password}\n"
    assert sorted(kind for _, kind in first.queued_jobs) == ["generate_stimuli", "train"]

    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            assert auth.authenticate_password(session, first.admin_email, first.admin_password) is not None
            (dataset,) = session.scalars(select(Dataset)).all()
            labels = session.execute(select(Image.split, func.count()).group_by(Image.split)).all()
            assert dict(labels) == {"train": 240, "test": 60}
            assert session.scalar(select(func.count()).select_from(SalienceMap)) == 300
            study = session.scalar(select(Study).where(Study.slug == DEMO_SLUG))
            config = StudyConfig.model_validate(study.config)
            sset = session.get(StimulusSet, config.stimulus_set_id)
            model = session.get(TrainedModel, sset.model_id)
            train = session.get(Job, model.job_id)
            assert study.status == "open" and sset.dataset_id == dataset.id and sset.status == "pending"
            assert sset.eps_levels == DEMO_EPS and session.get(Job, sset.job_id).status == "queued"
            assert train.kind == "train" and train.params["arch"] == "small_cnn" and train.params["epochs"] == 10

        second = prepare(settings)  # a second `make run`
        assert not second.demo_created and second.admin_password is None
        assert second.admin_email == first.admin_email and second.queued_jobs == first.queued_jobs
        with session_scope(make_session_factory(engine)) as session:
            assert session.scalar(select(func.count()).select_from(Dataset)) == 1
            assert session.scalar(select(func.count()).select_from(Study)) == 1
    finally:
        engine.dispose()


def http(method: str, url: str, body: dict | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def children(pid: int) -> list[int]:
    out = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat_file.parent.name))
    return out


@pytest.mark.timeout(150)
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc to find the worker process")
def test_make_run_serves_at_once_and_stops_both_processes(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SIPAT_PORT": str(port),
        "SIPAT_JOB_WAIT_RETRY_S": "1",
        # An idle worker's warm shutdown took over 10 s on a loaded 2-core CI machine; the check is that it is warm.
        "SIPAT_WORKER_GRACE_S": "60",
        "OMP_NUM_THREADS": "1",
    }
    kept = ("SIPAT_PORT", "SIPAT_JOB_WAIT_RETRY_S", "SIPAT_WORKER_GRACE_S")
    env = {k: v for k, v in env.items() if not k.startswith("SIPAT_") or k in kept}
    log_path = tmp_path / "devserver.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backend.devserver"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while http("GET", f"{base}/api/v1/health")[0] != 200:
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-4000:]
            time.sleep(0.2)
        started = time.monotonic()
        code, _ = http("POST", f"{base}/api/v1/studies/{DEMO_SLUG}/sessions", {"consent": True})
        assert code in (201, 503)  # 503 "study is being prepared" until the worker made the stimuli
        text = log_path.read_text()
        assert f"{base}/s/{DEMO_SLUG}" in text and f"{base}/admin" in text and "admin@sipat.local /" in text
        (worker_pid,) = children(proc.pid)

        db = tmp_path / "var" / "sipat.db"
        while True:
            with sqlite3.connect(db) as conn:
                states = dict(conn.execute("select kind, status from jobs").fetchall())
            if states == {"train": "succeeded", "generate_stimuli": "succeeded"}:
                break
            assert "failed" not in states.values(), log_path.read_text()[-4000:]
            assert time.monotonic() - started < 100, f"{states}\n{log_path.read_text()[-4000:]}"
            time.sleep(0.5)
        code, body = http("POST", f"{base}/api/v1/studies/{DEMO_SLUG}/sessions", {"consent": True})
        assert code == 201, body

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=90) == 0
        assert not Path(f"/proc/{worker_pid}").exists() or "Z" in Path(f"/proc/{worker_pid}/stat").read_text()
        assert "worker stopped (exit code 0)" in log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
