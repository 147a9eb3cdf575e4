"""Fixtures of the dashboard tests: a logged-in administrator's client, a fake enqueuer, a seeded study."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from backend.api.deps import get_enqueuer
from backend.storage import BlobStore
from tests.backend.admin.admin_factories import Enqueued, Seeded, log_in, seed_study
from tests.backend.factories import make_user


@pytest.fixture
def enqueued(app: FastAPI) -> Enqueued:
    fake = Enqueued()
    app.dependency_overrides[get_enqueuer] = lambda: fake
    return fake


@pytest.fixture
def admin(client: TestClient, session: Session, enqueued: Enqueued) -> TestClient:
    """The test client logged in as an administrator; `admin.csrf` is the session's CSRF token."""
    make_user(session)
    client.csrf = log_in(client)  # type: ignore[attr-defined]
    return client


@pytest.fixture
def seeded(session: Session, storage: BlobStore) -> Callable[..., Seeded]:
    """`seeded(slug)`: see `admin_factories.seed_study`."""
    return lambda slug="pilot": seed_study(session, storage, slug=slug)
