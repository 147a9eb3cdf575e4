"""Fixtures of the research API tests: a researcher's token on the client, and a fake job enqueuer."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from factories import make_user
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.api.deps import get_enqueuer
from backend.auth import create_token
from backend.db import make_session_factory
from backend.models import Job


@pytest.fixture
def api(client: TestClient, session: Session) -> TestClient:
    """The test client with a researcher's bearer token."""
    token = create_token(session, make_user(session))
    session.commit()
    client.headers["Authorization"] = f"Bearer {token}"
    return client


@dataclass
class FakeEnqueuer:
    """Records the jobs sent, and whether each was committed (visible to another connection) when sent."""

    engine: Engine
    sent: list[int] = field(default_factory=list)
    committed: list[bool] = field(default_factory=list)
    fail: bool = False

    def __call__(self, job: Job) -> str:
        with make_session_factory(self.engine)() as other:
            row = other.get(Job, job.id)
            self.committed.append(row is not None and row.status == "queued")
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.sent.append(job.id)
        return f"message-{job.id}"


@pytest.fixture
def enqueued(app: FastAPI, engine: Engine) -> FakeEnqueuer:
    fake = FakeEnqueuer(engine)
    app.dependency_overrides[get_enqueuer] = lambda: fake
    return fake
