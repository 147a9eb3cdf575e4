"""`make run` prints a line when the demo is ready to take part in (or says that its stimuli failed)."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from sqlalchemy import update

from backend.db import make_engine, make_session_factory, session_scope
from backend.devserver import announce_when_ready, prepare
from backend.models import Job, StimulusSet
from backend.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    var = tmp_path / "var"
    values = Settings(
        database_url=f"sqlite:///{var / 'sipat.db'}",
        broker_url=f"sqla+sqlite:///{var / 'broker.db'}",
        data_dir=var / "data",
        secret_key="s" * 40,
    )
    prepare(values)
    return values


def _set(settings: Settings, **values: object) -> None:
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            session.execute(update(StimulusSet).values(**values))
            session.execute(update(Job).where(Job.kind == "generate_stimuli").values(error="RuntimeError: no model"))
    finally:
        engine.dispose()


def test_the_ready_line_comes_once_the_stimuli_exist(settings: Settings) -> None:
    out, stop = io.StringIO(), threading.Event()
    thread = threading.Thread(
        target=announce_when_ready,
        args=(settings, "http://127.0.0.1:8123", stop),
        kwargs={"interval_s": 0.05, "out": out},
    )
    thread.start()
    thread.join(0.3)
    assert thread.is_alive() and out.getvalue() == ""  # still being prepared: nothing said yet
    _set(settings, status="ready")
    thread.join(5)
    assert not thread.is_alive() and out.getvalue() == "demo ready: take part at http://127.0.0.1:8123/s/demo\n"


def test_failed_stimuli_are_said_and_stop_ends_the_wait(settings: Settings) -> None:
    stop = threading.Event()
    stop.set()
    assert announce_when_ready(settings, "http://h:1", stop, interval_s=0.01, out=io.StringIO()) == "preparing"
    _set(settings, status="failed")
    out = io.StringIO()
    assert announce_when_ready(settings, "http://h:1", threading.Event(), out=out) == "failed"
    assert "demo stimuli failed (RuntimeError: no model)" in out.getvalue()
