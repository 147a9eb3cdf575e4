"""`sipat-admin create-researcher`: a non-admin account whose token reaches only its own studies; an existing
administrator keeps its role when its password is reset this way."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend import auth
from backend.cli import main
from backend.models import User
from backend.settings import Settings
from backend.storage import BlobStore
from tests.backend.factories import make_open_study


def test_create_researcher(
    env_settings: Settings,
    session: Session,
    client: TestClient,
    storage: BlobStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["create-researcher", "Rita@Example.org", "--password-stdin"]) == 0
    user = session.scalar(select(User).where(User.email == "rita@example.org"))
    assert user is not None and not user.is_admin and auth.verify_password(user.password_hash, "a long password")
    capsys.readouterr()
    assert main(["create-token", "rita@example.org"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    study = make_open_study(session, storage)  # nobody's: administrators only
    r = client.get(f"/api/v1/studies/{study.id}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403

    monkeypatch.setattr("sys.stdin", io.StringIO("admin password\n"))
    assert main(["create-admin", "boss@example.org", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("another password\n"))
    assert main(["create-researcher", "boss@example.org", "--password-stdin"]) == 0
    assert "stays an administrator" in capsys.readouterr().out
    session.expire_all()
    boss = session.scalar(select(User).where(User.email == "boss@example.org"))
    assert boss is not None and boss.is_admin and auth.verify_password(boss.password_hash, "another password")
