"""`sipat-admin`: migrate, create-admin, create-token, revoke-token, import-dataset on a real database."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, inspect, select
from sqlalchemy.orm import Session

from backend import auth
from backend.cli import main
from backend.models import ApiToken, Dataset, Image, SalienceMap, User
from backend.settings import Settings
from backend.storage import LocalBlobStore
from tests.backend.factories import png_bytes


@pytest.fixture
def cli_env(env_settings: Settings) -> Settings:
    return env_settings


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def test_migrate_creates_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'sipat.db'}"
    monkeypatch.setenv("SIPAT_DATABASE_URL", url)
    monkeypatch.setenv("SIPAT_DATA_DIR", str(tmp_path / "data"))
    from backend.settings import get_settings

    get_settings.cache_clear()
    try:
        assert main(["migrate"]) == 0
        assert main(["migrate"]) == 0  # idempotent
    finally:
        get_settings.cache_clear()
    engine = create_engine(url)
    assert {"participants", "alembic_version"} <= set(inspect(engine).get_table_names())
    engine.dispose()
    assert "latest schema" in capsys.readouterr().out


def test_create_admin_token_revoke(cli_env: Settings, session: Session, monkeypatch, capsys) -> None:
    _stdin(monkeypatch, "s3cret-password\n")
    assert main(["create-admin", "Ada@Example.org", "--password-stdin"]) == 0
    user = session.scalar(select(User))
    assert user.email == "ada@example.org" and user.is_admin
    assert auth.verify_password(user.password_hash, "s3cret-password")

    capsys.readouterr()
    assert main(["create-token", "ada@example.org", "--name", "laptop"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    session.expire_all()
    row = session.scalar(select(ApiToken))
    assert row.name == "laptop" and row.token_hash == auth.token_hash(token) and token not in row.token_hash
    assert auth.user_for_token(session, token).id == user.id
    session.rollback()

    assert main(["revoke-token", token]) == 0
    session.expire_all()
    assert auth.user_for_token(session, token) is None
    session.rollback()

    capsys.readouterr()
    assert main(["create-token", "ada@example.org"]) == 0
    second = capsys.readouterr().out.strip().splitlines()[-1]
    second_id = auth.find_token(session, second).id
    session.rollback()
    assert main(["revoke-token", str(second_id)]) == 0
    session.expire_all()
    assert auth.user_for_token(session, second) is None


def test_create_admin_resets_password(cli_env: Settings, session: Session, monkeypatch) -> None:
    _stdin(monkeypatch, "first-password\n")
    assert main(["create-admin", "ada@example.org", "--password-stdin"]) == 0
    _stdin(monkeypatch, "second-password\n")
    assert main(["create-admin", "ada@example.org", "--password-stdin"]) == 0
    users = session.scalars(select(User)).all()
    assert len(users) == 1 and auth.verify_password(users[0].password_hash, "second-password")


def test_create_admin_prompts_with_getpass(cli_env: Settings, session: Session, monkeypatch) -> None:
    answers = iter(["prompted-password", "prompted-password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["create-admin", "bob@example.org"]) == 0
    assert auth.authenticate_password(session, "bob@example.org", "prompted-password") is not None


def test_cli_errors_are_messages(cli_env: Settings, session: Session, monkeypatch, capsys) -> None:
    _stdin(monkeypatch, "short\n")
    assert main(["create-admin", "ada@example.org", "--password-stdin"]) == 1
    assert "at least 8" in capsys.readouterr().err
    assert main(["create-token", "nobody@example.org"]) == 1
    assert "create-admin" in capsys.readouterr().err
    assert main(["revoke-token", "sipat_unknown"]) == 1
    assert "no such token" in capsys.readouterr().err
    assert main(["import-dataset", "/does/not/exist.zip"]) == 1
    assert session.scalar(select(func.count()).select_from(User)) == 0


def _imagefolder_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for i, label in enumerate(["cat", "cat", "dog"]):
            zf.writestr(f"{label}/img{i}.png", png_bytes(seed=i))
        zf.writestr("dog/copy.png", png_bytes(seed=2))  # same bytes as dog/img2.png
        zf.writestr("salience/cat/img0.png", png_bytes(seed=9, mode="L"))
    return path


def test_import_dataset(cli_env: Settings, session: Session, tmp_path: Path, capsys) -> None:
    archive = _imagefolder_zip(tmp_path / "pets.zip")
    assert main(["import-dataset", str(archive)]) == 0, capsys.readouterr().err
    assert "3 images" in capsys.readouterr().out
    dataset = session.scalar(select(Dataset))
    assert dataset.name == "pets"
    images = session.scalars(select(Image).order_by(Image.filename)).all()
    assert sorted(i.label for i in images) == ["cat", "cat", "dog"]
    store = LocalBlobStore(cli_env.data_dir / "blobs")
    assert all(store.exists(i.sha256) for i in images)
    maps = session.scalars(select(SalienceMap)).all()
    assert len(maps) == 1 and maps[0].source == "imported" and store.exists(maps[0].sha256)

    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    assert main(["import-dataset", str(bad), "--name", "broken"]) == 1
    assert "not a zip archive" in capsys.readouterr().err
    assert session.scalar(select(func.count()).select_from(Dataset)) == 1
