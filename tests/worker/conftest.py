"""Fixtures of the worker tests: a migrated SQLite database per test, a runtime on it, tiny real MNIST data.

The data are 60 real digits of `sipat.data.load_builtin("mnist5k")` (48 train + 12 test, 6 classes), written
as PNGs through the dataset import service, with their stroke salience as imported maps. PostgreSQL schemas
for the process tests come from the backend tests' helper (`tests/backend/fixtures.py`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from backend.migrate import upgrade
from backend.settings import Settings
from tests.worker.workerkit import import_mnist, make_settings
from worker.runtime import Runtime


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("worker-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def settings(tmp_path: Path, sqlite_template: Path) -> Settings:
    db = tmp_path / "sipat.db"
    shutil.copyfile(sqlite_template, db)
    return make_settings(f"sqlite:///{db}", tmp_path)


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime.from_settings(settings, durable=False)
    yield runtime
    runtime.close()


@pytest.fixture
def session(rt: Runtime) -> Iterator[Session]:
    with rt.session_factory() as session:
        yield session


@pytest.fixture
def dataset_id(rt: Runtime) -> int:
    return import_mnist(rt)
