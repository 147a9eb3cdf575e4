"""The backend tests' fixtures: a fresh database per test, the app on it, its blob store.

A plain module, so that the conftests of tests/backend, tests/security and tests/reliability share these
fixtures by `from tests.backend.fixtures import *` (pytest finds a conftest's fixtures by name; it allows
`pytest_plugins` only in the root conftest, which would hand them to every directory).

SQLite (always): one database migrated with Alembic per test session, copied to each test's tmp_path.
PostgreSQL (key tests, via `tests/conftest.py`'s `postgres_url`): one schema `t_<random>` per test session,
migrated once and emptied before each test, dropped at the end; the shared `test` database is never
touched outside it. Tests that should run on both take the `db_url` fixture and the `BOTH_DATABASES` mark.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from backend.db import make_engine, make_session_factory
from backend.main import create_app
from backend.migrate import upgrade
from backend.models import Base
from backend.settings import Settings, get_settings
from backend.storage import LocalBlobStore

__all__ = [  # the fixtures the conftests take
    "_cheap_password_hashing",
    "app",
    "client",
    "db_url",
    "empty_postgres_url",
    "engine",
    "env_settings",
    "postgres_schema_url",
    "session",
    "settings",
    "sqlite_template",
    "storage",
]

TEST_SECRET = "test-secret-key-" + "x" * 32


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with tiny cost parameters: the same code path, about 1 ms instead of ~30 ms per hash."""
    from argon2 import PasswordHasher

    from backend import auth

    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; tests get copies."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def schema_url(base_url: str, schema: str) -> str:
    """`base_url` with every connection's search_path set to `schema` (libpq `options`)."""
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options=-csearch_path%3D{schema}"


@contextmanager
def fresh_schema(postgres_url: str) -> Iterator[str]:
    """URL of a new empty schema `t_<random>` in the shared test database; dropped afterwards."""
    schema = f"t_{secrets.token_hex(6)}"
    admin = make_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield schema_url(postgres_url, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A schema of this test session, migrated to head once."""
    with fresh_schema(postgres_url) as url:
        upgrade(url)
        yield url


@pytest.fixture
def empty_postgres_url(postgres_url: str) -> Iterator[str]:
    """A new empty schema for this test alone (e.g. to run the migrations on)."""
    with fresh_schema(postgres_url) as url:
        yield url


def _empty_all_tables(url: str) -> None:
    """DELETE every row (children first): much faster than TRUNCATE on a handful of rows."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
    finally:
        engine.dispose()


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """URL of an empty, migrated database for this test (SQLite unless parametrised with 'postgres')."""
    kind = getattr(request, "param", "sqlite")
    if kind == "postgres":
        url = request.getfixturevalue("postgres_schema_url")
        _empty_all_tables(url)
        return url
    path = tmp_path / "sipat.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path / "data", secret_key=TEST_SECRET, env="development")


@pytest.fixture
def env_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The same settings exported as SIPAT_* variables, for code that reads `get_settings()` (the CLI)."""
    monkeypatch.setenv("SIPAT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SIPAT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SIPAT_SECRET_KEY", TEST_SECRET)
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


@pytest.fixture
def storage(settings: Settings) -> LocalBlobStore:
    """The app's blob store, without fsync (atomic but not crash-safe: fast on slow test disks)."""
    return LocalBlobStore(settings.data_dir / "blobs", durable=False)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session for arranging and inspecting data; commit what the app must see."""
    with make_session_factory(engine)() as session:
        yield session


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client
