"""The Alembic migrations build exactly the ORM's schema (no drift), on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, inspect, select

from backend.db import make_engine, make_session_factory, session_scope
from backend.migrate import alembic_config, upgrade
from backend.models import Base, Dataset, Job, StimulusSet


def _diffs(url: str, metadata: MetaData = Base.metadata) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def _metadata_with_extra_column() -> MetaData:
    copy = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(copy)
    copy.tables["studies"].append_column(Column("extra", Integer, nullable=True))
    return copy


def test_sqlite_migrations_match_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    assert _diffs(url) == []
    # The check itself sees drift when there is some.
    assert any(d[0] == "add_column" for d in _diffs(url, _metadata_with_extra_column()))


def test_sqlite_downgrade_to_base_and_back(tmp_path: Path) -> None:
    from alembic import command

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    engine = make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    upgrade(url)
    assert _diffs(url) == []


def test_sqlite_job_column_migrations_keep_the_rows_that_point_at_jobs(tmp_path: Path) -> None:
    """0002 alters `jobs` in place: a batch-mode copy would drop the old table, and with foreign keys on
    SQLite would set every stimulus set's `job_id` to NULL."""
    from alembic import command

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            job = Job(kind="train", params={}, status="queued")
            dataset = Dataset(name="d")
            session.add_all([job, dataset])
            session.flush()
            session.add(StimulusSet(dataset_id=dataset.id, eps_levels=[0.1], job_id=job.id))
        command.downgrade(alembic_config(url), "0001")
        upgrade(url)
        with engine.connect() as conn:
            assert conn.scalar(select(StimulusSet.job_id)) == job.id
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_migrations_match_models(empty_postgres_url: str) -> None:
    upgrade(empty_postgres_url)
    assert _diffs(empty_postgres_url) == []
    assert any(d[0] == "add_column" for d in _diffs(empty_postgres_url, _metadata_with_extra_column()))


def test_sqlite_0003_hashes_existing_session_tokens_and_they_keep_working(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import text

    from backend.services.participants import participant_by_token

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    command.upgrade(alembic_config(url), "0002")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:  # a session started before 0003: its token stored as it is
            conn.execute(
                text("INSERT INTO studies (id, slug, title, status, config, created_at) VALUES (1, 's', 'S', 'open', "
                     "'{}', '2026-01-01')")
            )  # fmt: skip
            conn.execute(
                text("INSERT INTO participants (id, study_id, token, \"index\", consent, client_info, started_at, "
                     "flagged) VALUES (7, 1, 'old-plain-token', 0, 1, '{}', '2026-01-01', 0)")
            )  # fmt: skip
        upgrade(url)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT token FROM participants")) == hashlib.sha256(b"old-plain-token").hexdigest()
        with session_scope(make_session_factory(engine)) as session:
            assert participant_by_token(session, "old-plain-token").id == 7
    finally:
        engine.dispose()


def test_sqlite_0004_starts_each_study_counter_after_its_highest_index(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    command.upgrade(alembic_config(url), "0003")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for study_id in (1, 2):
                conn.execute(
                    text("INSERT INTO studies (id, slug, title, status, config, created_at) VALUES (:id, :slug, 'S', "
                         "'open', '{}', '2026-01-01')"),
                    {"id": study_id, "slug": f"s{study_id}"},
                )  # fmt: skip
            for pid, index in enumerate([0, 1, 4]):  # a gap: the counter goes after the highest
                conn.execute(
                    text("INSERT INTO participants (id, study_id, token, \"index\", consent, client_info, started_at, "
                         "flagged) VALUES (:id, 1, :token, :index, 1, '{}', '2026-01-01', 0)"),
                    {"id": pid + 1, "token": f"t{pid}", "index": index},
                )  # fmt: skip
        upgrade(url)
        with engine.connect() as conn:
            assert dict(conn.execute(text("SELECT id, next_index FROM studies")).all()) == {1: 5, 2: 0}
    finally:
        engine.dispose()


_STIMULUS = "INSERT INTO stimuli (id, stimulus_set_id, image_id, eps, role, sha256) VALUES (?, 1, 1, 0, ?, ?)"
_TRIAL = (
    "INSERT INTO trials (id, participant_id, position, phase, stimulus_id, media_key) VALUES (1, 1, 0, 'main', 1, 'k')"
)


def test_sqlite_0007_widens_the_role_check_without_copying_stimuli(tmp_path: Path) -> None:
    """Batch mode would drop `stimuli`, which trials reference (RESTRICT): refused or lossy with foreign keys on."""
    import sqlite3

    from alembic import command

    path = tmp_path / "old.db"
    command.upgrade(alembic_config(f"sqlite:///{path}"), "0006")
    with sqlite3.connect(path) as conn:  # rows only, parents left out: the check is what the upgrade does to them
        conn.execute(_STIMULUS, (1, "trial", "x"))
        conn.execute(_TRIAL)
    upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT id, role FROM stimuli").fetchall() == [(1, "trial")]
        assert conn.execute("SELECT id, stimulus_id FROM trials").fetchall() == [(1, 1)]
        conn.execute(_STIMULUS, (2, "annotate", "y"))
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute(_STIMULUS, (3, "bogus", "z"))
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
