"""PostgreSQL restarted while participants answer: they retry (503 + Retry-After, connection errors), no
acknowledged answer is lost or stored twice, no request fails with 500, and the service recovers by itself
(the same uvicorn process: the first request on a dead connection makes SQLAlchemy discard the pool; the API
runs without pre-ping)."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from pathlib import Path

import pytest

from backend.db import make_engine, make_session_factory
from backend.migrate import upgrade
from backend.storage import LocalBlobStore
from tests.backend.factories import make_open_study
from tests.backend.fixtures import fresh_schema
from tests.reliability.faultkit import assert_exactly_once, run_participants, uvicorn_server

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.timeout(120)]

PARTICIPANTS = 24
SECRET = "fault-test-secret-" + "q" * 32


HELD_AT = 3  # every participant holds its 4th answer until PostgreSQL is down


def _down(timeout_s: float = 30.0) -> bool:
    """Poll (every 10 ms) until PostgreSQL stops accepting connections; False if it never did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode != 0:
            return True
        time.sleep(0.01)
    return False


def _restart_postgres(version: str, all_held: threading.Event, is_down: threading.Event, done: list[float]) -> None:
    """Restart once every participant holds an answer, and open the gate as soon as the server is down: the held
    answers are then sent while PostgreSQL is stopped or starting, by construction rather than by a sleep."""
    all_held.wait(timeout=60)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if _down():
            is_down.set()
    finally:
        is_down.set()  # never leave the participants waiting; the assertions say if the restart hit nothing
        proc.wait(timeout=60)
    if proc.returncode == 0:
        done.append(time.monotonic() - t0)


def _gate(n: int, all_held: threading.Event, is_down: threading.Event):
    held = 0

    async def gate(k: int) -> None:
        nonlocal held
        if k != HELD_AT:
            return
        held += 1
        if held == n:
            all_held.set()
        await asyncio.to_thread(is_down.wait, 90)

    return gate


def test_answers_survive_a_postgres_restart(pg_cluster: str, postgres_url: str, tmp_path: Path) -> None:
    with fresh_schema(postgres_url) as url:
        upgrade(url)
        engine = make_engine(url)
        data_dir = tmp_path / "data"
        with make_session_factory(engine)() as session:
            store = LocalBlobStore(data_dir / "blobs", durable=False)
            make_open_study(session, store, n_main=6, n_catch=2, n_annotate=1)
        env = {"SIPAT_DATABASE_URL": url, "SIPAT_DATA_DIR": str(data_dir), "SIPAT_SECRET_KEY": SECRET}
        with uvicorn_server(env, tmp_path / "uvicorn.log") as (proc, base):
            restarted: list[float] = []
            all_held, is_down = threading.Event(), threading.Event()
            restarter = threading.Thread(target=_restart_postgres, args=(pg_cluster, all_held, is_down, restarted))
            restarter.start()
            gate = _gate(PARTICIPANTS, all_held, is_down)
            out = asyncio.run(run_participants(base, PARTICIPANTS, slug="pilot", think_s=0.05, gate=gate))
            restarter.join()
            log = (tmp_path / "uvicorn.log").read_text(errors="replace")
            assert restarted, "PostgreSQL was not restarted"
            assert not out.errors, (out.errors[:5], log[-3000:])
            assert out.statuses[500] == 0, log[-3000:]
            assert out.statuses[503] + out.statuses[0] > 0, f"the restart hit no request: {out.statuses}"
            assert out.retry_after <= {"2"} and out.completed == PARTICIPANTS
            assert proc.poll() is None  # recovered in the same process, nobody restarted it
            import httpx

            assert httpx.get(f"{base}/api/v1/health", timeout=5).json() == {"status": "ok", "database": "ok"}
        engine.dispose()
        engine = make_engine(url)
        assert_exactly_once(out, engine)
        assert len(out.acknowledged) == PARTICIPANTS * (2 + 6 + 2 + 1)
        engine.dispose()
