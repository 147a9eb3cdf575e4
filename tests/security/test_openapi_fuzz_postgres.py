"""Schemathesis against /openapi.json on PostgreSQL, with *generated* path parameters: ids far past the
integer range, slugs and tokens with NUL characters or anything else the schema allows reach the database
(the issue found 500s there that SQLite never shows: NUL in a text, integers past int64). No 5xx.
Skipped without SIPAT_TEST_POSTGRES_URL (outside CI), like the other PostgreSQL tests.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from sqlalchemy import text

from backend.api.deps import get_enqueuer
from backend.auth import create_token
from backend.db import make_engine, make_session_factory
from backend.main import create_app
from backend.migrate import upgrade
from backend.settings import Settings
from backend.storage import LocalBlobStore
from tests.backend.factories import make_open_study, make_user
from tests.backend.fixtures import schema_url

MAX_EXAMPLES = 8
_BASE = os.environ.get("SIPAT_TEST_POSTGRES_URL", "")
_SCHEMA = f"t_fuzz_{secrets.token_hex(4)}"
_ROOT = Path(tempfile.mkdtemp(prefix="sipat-fuzz-pg-"))
# The app exists at import (Schemathesis reads its schema then); no connection is made until a request.
_URL = schema_url(_BASE, _SCHEMA) if _BASE else f"sqlite:///{_ROOT / 'unused.db'}"
app = create_app(Settings(database_url=_URL, data_dir=_ROOT / "data", secret_key="f" * 40))
app.dependency_overrides[get_enqueuer] = lambda: lambda job: f"message-{job.id}"
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
_token: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def seeded_postgres(postgres_url: str) -> Iterator[None]:
    """A schema of its own, migrated, with an open study and an administrator's token; dropped after."""
    admin = make_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {_SCHEMA}"))
    try:
        upgrade(_URL)
        engine = make_engine(_URL)
        with make_session_factory(engine)() as session:
            make_open_study(session, LocalBlobStore(_ROOT / "data" / "blobs", durable=False))
            _token["api"] = create_token(session, make_user(session))
            session.commit()
        engine.dispose()
        yield
    finally:
        app.state.engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {_SCHEMA} CASCADE"))
        admin.dispose()
        shutil.rmtree(_ROOT, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_generated_ids_and_text_reach_postgres_without_a_500(case: schemathesis.Case) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {_token['api']}"},
        checks=[not_a_server_error],  # answers' shapes: test_openapi_fuzz.py (generated ids that are not
        # integers fall through `{study_id:int}` to the slug routes and get 404/405, a routing quirk, not a 5xx)
    )
