"""The Alembic migrations build exactly the ORM's schema (no drift), on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, inspect

from backend.db import make_engine
from backend.migrate import alembic_config, upgrade
from backend.models import Base


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


@pytest.mark.postgres
def test_postgres_migrations_match_models(empty_postgres_url: str) -> None:
    upgrade(empty_postgres_url)
    assert _diffs(empty_postgres_url) == []
    assert any(d[0] == "add_column" for d in _diffs(empty_postgres_url, _metadata_with_extra_column()))
