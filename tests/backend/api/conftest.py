"""Fixtures of the research API tests: a researcher's token on the client, and a fake job enqueuer."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.api.deps import get_enqueuer
from backend.auth import create_token
from tests.backend.factories import make_user
from tests.backend.research_factories import FakeEnqueuer


@pytest.fixture
def api(client: TestClient, session: Session) -> TestClient:
    """The test client with a researcher's bearer token."""
    token = create_token(session, make_user(session))
    session.commit()
    client.headers["Authorization"] = f"Bearer {token}"
    return client


@pytest.fixture
def enqueued(app: FastAPI, engine: Engine) -> FakeEnqueuer:
    fake = FakeEnqueuer(engine)
    app.dependency_overrides[get_enqueuer] = lambda: fake
    return fake
