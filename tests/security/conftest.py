"""Fixtures of the security tests: the backend tests' fresh database, app and client (`tests/backend/fixtures.py`),
plus a logged-in administrator and a researcher's API client."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.backend.fixtures import *  # noqa: F403
from tests.security.securitykit import ADMIN_EMAIL, ADMIN_PASSWORD, admin_login


@pytest.fixture
def admin_client(client: TestClient, session) -> TestClient:
    """The client logged in to the dashboard as an administrator."""
    from tests.backend.factories import make_user

    make_user(session, ADMIN_EMAIL, password=ADMIN_PASSWORD, admin=True)
    r = admin_login(client)
    assert r.status_code == 303, r.text
    return client


@pytest.fixture
def api(client: TestClient, session) -> TestClient:
    """The client with a researcher's bearer token (research API)."""
    from backend.auth import create_token
    from tests.backend.factories import make_user

    token = create_token(session, make_user(session, "researcher@example.org", admin=False))
    session.commit()
    client.headers["Authorization"] = f"Bearer {token}"
    return client
