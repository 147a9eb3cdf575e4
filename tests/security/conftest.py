"""Fixtures of the security tests: the backend tests' fresh database, app and client (`tests/backend/conftest.py`,
loaded as a module so its fixtures are shared rather than copied), plus a logged-in administrator."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS / "backend"))  # factories.py, research_factories.py
sys.path.insert(0, str(TESTS / "security"))  # securitykit.py

from securitykit import ADMIN_EMAIL, ADMIN_PASSWORD, admin_login  # noqa: E402

_spec = importlib.util.spec_from_file_location("_security_backend_conftest", TESTS / "backend" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_backend = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_backend)

_cheap_password_hashing = _backend._cheap_password_hashing
sqlite_template = _backend.sqlite_template
postgres_schema_url = _backend.postgres_schema_url
db_url = _backend.db_url
settings = _backend.settings
storage = _backend.storage
engine = _backend.engine
session = _backend.session
app = _backend.app
client = _backend.client
TEST_SECRET = _backend.TEST_SECRET


@pytest.fixture
def admin_client(client: TestClient, session) -> TestClient:
    """The client logged in to the dashboard as an administrator."""
    from factories import make_user

    make_user(session, ADMIN_EMAIL, password=ADMIN_PASSWORD, admin=True)
    r = admin_login(client)
    assert r.status_code == 303, r.text
    return client


@pytest.fixture
def api(client: TestClient, session) -> TestClient:
    """The client with a researcher's bearer token (research API)."""
    from factories import make_user

    from backend.auth import create_token

    token = create_token(session, make_user(session, "researcher@example.org", admin=False))
    session.commit()
    client.headers["Authorization"] = f"Bearer {token}"
    return client
