"""Schemathesis against /openapi.json, in process (ASGI) on SQLite, with a seeded open study, a participant
session and a researcher's token: no 5xx, every status code and content type as documented, bodies matching
their schemas. Path parameters are pinned to the seeded rows (slug, token, ids) so that requests reach the code
behind the 404s; bodies, queries and the remaining parameters are generated. Bounded: a few examples per
operation, so the whole module runs in well under a minute.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from backend.api.deps import get_enqueuer
from backend.auth import create_token
from backend.db import make_engine, make_session_factory
from backend.main import create_app
from backend.migrate import upgrade
from backend.settings import Settings
from backend.storage import LocalBlobStore
from tests.backend.factories import make_open_study, make_user

MAX_EXAMPLES = 6
_ROOT = Path(tempfile.mkdtemp(prefix="sipat-fuzz-"))
_URL = f"sqlite:///{_ROOT / 'sipat.db'}"
# The app exists at import (Schemathesis reads its schema then); its database is made by the fixture below.
app = create_app(Settings(database_url=_URL, data_dir=_ROOT / "data", secret_key="f" * 40))
app.dependency_overrides[get_enqueuer] = lambda: lambda job: f"message-{job.id}"  # no broker in this test
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
_seeded: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def seeded_database() -> Iterator[None]:
    """Migrate, seed an open study, a researcher's token and one participant session; remove it all after."""
    from fastapi.testclient import TestClient

    try:
        upgrade(_URL)
        engine = make_engine(_URL)
        with make_session_factory(engine)() as session:
            study = make_open_study(session, LocalBlobStore(_ROOT / "data" / "blobs", durable=False))
            _seeded["api_token"] = create_token(session, make_user(session))
            session.commit()
            _seeded["study_id"] = str(study.id)
        engine.dispose()
        with TestClient(app) as client:
            _seeded["token"] = client.post("/api/v1/studies/pilot/sessions", json={"consent": True}).json()["token"]
        yield
    finally:
        app.state.engine.dispose()
        shutil.rmtree(_ROOT, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors_and_documented_answers(case: schemathesis.Case) -> None:
    params = case.path_parameters or {}
    for name in list(params):
        if name == "slug":
            params[name] = "pilot"
        elif name == "token":
            params[name] = _seeded["token"]
        elif name in ("study_id", "dataset_id", "stimulus_set_id", "image_id", "model_id", "job_id"):
            params[name] = int(_seeded["study_id"]) if name == "study_id" else 1
    headers = {"Authorization": f"Bearer {_seeded['api_token']}"}
    case.call_and_validate(
        headers=headers,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
