"""`sipat-admin` from any directory: it finds the project's database, says which it opened, refuses to create
an empty one, and answers a user's mistake with a message, not a traceback."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from backend import cli
from backend.migrate import upgrade
from backend.models import User
from backend.settings import get_settings

SECRET = "cli-test-secret-" + "q" * 40


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory without var/, no SIPAT_DATABASE_URL / SIPAT_DATA_DIR, and a project var/ of its own."""
    for name in ("SIPAT_DATABASE_URL", "SIPAT_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SIPAT_SECRET_KEY", SECRET)
    monkeypatch.setattr(cli, "PROJECT_VAR", tmp_path / "project" / "var")
    cwd = tmp_path / "somewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    get_settings.cache_clear()
    yield cwd
    get_settings.cache_clear()


def test_without_a_database_it_refuses_and_writes_nothing(elsewhere: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["create-token", "ada@example.org"]) == 1
    err = capsys.readouterr().err
    assert "no database at" in err and "sipat-admin migrate" in err and "Traceback" not in err
    assert list(elsewhere.iterdir()) == [] and not cli.PROJECT_VAR.exists()


def test_from_another_directory_it_uses_the_projects_database(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    db = cli.PROJECT_VAR / "sipat.db"
    db.parent.mkdir(parents=True)
    upgrade(f"sqlite:///{db}")
    monkeypatch.setattr("sys.stdin", io.StringIO("a long passphrase\n"))
    assert cli.main(["create-admin", "ada@example.org", "--password-stdin"]) == 0
    assert f"database sqlite:///{db}" in capsys.readouterr().err
    engine = create_engine(f"sqlite:///{db}")
    with Session(engine) as session:
        assert session.scalar(select(User.email)) == "ada@example.org"
    engine.dispose()
    assert list(elsewhere.iterdir()) == []


def test_a_database_without_the_schema_says_to_migrate(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (elsewhere / "var").mkdir()
    (elsewhere / "var" / "sipat.db").touch()  # an empty SQLite file
    assert cli.main(["revoke-token", "7"]) == 1
    err = capsys.readouterr().err
    assert "no such table" in err and "run `sipat-admin migrate`" in err and "Traceback" not in err
