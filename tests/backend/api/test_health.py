"""The probes: liveness touches nothing, readiness names each failing check (database, migrations, blobs)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from backend.health import migration_heads
from backend.main import create_app
from backend.settings import Settings
from tests.backend.factories import BOTH_DATABASES


def test_liveness_answers_without_the_database(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()  # the database "file" is a directory: no connection can open it
    settings = Settings(database_url=f"sqlite:///{tmp_path}/db", data_dir=tmp_path, secret_key="k" * 40)
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/health/live").json() == {"status": "ok"}
        ready = client.get("/api/v1/health/ready")
    assert ready.status_code == 503 and ready.headers["retry-after"]
    assert ready.json()["checks"] == {
        "database": "unreachable",
        "migrations": "not checked: database unreachable",
        "blobs": "ok",
    }


@BOTH_DATABASES
def test_ready_on_a_migrated_database_with_a_writable_store(client: TestClient, settings: Settings) -> None:
    response = client.get("/api/v1/health/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok", "blobs": "ok"}}
    blobs = settings.data_dir / "blobs"
    assert blobs.is_dir() and not any(blobs.iterdir())  # the probe file is gone again


@BOTH_DATABASES
def test_not_ready_while_the_schema_is_behind_the_code(client: TestClient, session: Session) -> None:
    (head,) = migration_heads()
    session.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    session.commit()
    response = client.get("/api/v1/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"].startswith(f"schema at 0001, code expects {head}")
    session.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
    session.commit()
    assert client.get("/api/v1/health/ready").status_code == 200


def test_not_ready_when_the_blob_store_cannot_be_written(client: TestClient, settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "blobs").write_bytes(b"a file where the directory should be")  # root cannot chmod it away
    response = client.get("/api/v1/health/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok" and checks["migrations"] == "ok"
    assert checks["blobs"].startswith("not writable") and str(settings.data_dir) not in checks["blobs"]
    assert client.get("/api/v1/health/live").status_code == 200
