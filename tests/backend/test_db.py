"""Engine settings per backend, one transaction per scope, timezone-aware timestamps on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError

from backend.db import make_engine, make_session_factory, session_scope
from backend.models import Dataset, Image, Job
from tests.backend.factories import BOTH_DATABASES


def test_sqlite_pragmas_and_directory(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() > 0
    finally:
        engine.dispose()
    assert (tmp_path / "nested" / "dir" / "x.db").is_file()


@BOTH_DATABASES
def test_session_scope_commits_or_rolls_back(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        s.add(Dataset(name="kept"))
    with pytest.raises(RuntimeError), session_scope(factory) as s:
        s.add(Dataset(name="dropped"))
        s.flush()
        raise RuntimeError("boom")
    with factory() as s:
        assert s.scalars(select(Dataset.name)).all() == ["kept"]


@BOTH_DATABASES
def test_foreign_keys_enforced(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with pytest.raises(IntegrityError), session_scope(factory) as s:
        s.add(Image(dataset_id=12345, label="x", sha256="0" * 64, width=1, height=1, filename="x.png"))
        s.flush()


@BOTH_DATABASES
def test_timestamps_are_utc_aware(engine: Engine) -> None:
    factory = make_session_factory(engine)
    local = datetime(2025, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with session_scope(factory) as s:
        s.add(Job(kind="train", params={"a": [1, 2]}, started_at=local))
    with factory() as s:
        job = s.scalar(select(Job))
        assert job.started_at == local and job.started_at.tzinfo is not None
        assert job.started_at.utcoffset() == timedelta(0) and job.started_at.hour == 10
        assert job.created_at.tzinfo is not None and abs(datetime.now(UTC) - job.created_at) < timedelta(minutes=5)
        assert job.params == {"a": [1, 2]} and job.status == "queued" and job.attempts == 0
        assert s.scalar(select(func.count()).select_from(Job)) == 1
    with pytest.raises(Exception, match="naive datetime"), session_scope(factory) as s:
        s.add(Job(kind="train", params={}, started_at=datetime(2025, 1, 1)))
        s.flush()


@BOTH_DATABASES
def test_enumerations_checked_by_the_database(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with pytest.raises(IntegrityError), session_scope(factory) as s:
        s.add(Job(kind="mine_bitcoin", params={}))
        s.flush()
