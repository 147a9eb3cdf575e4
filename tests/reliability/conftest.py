"""Fixtures of the fault tests: they restart PostgreSQL and Redis, kill workers and mount file systems, so they
need root and the machine's own services, and they run last (moved to the end of the session here) and
serially: never run them with `-n` next to other tests.

Outside CI a test whose privilege or tool is missing skips and says why; in CI (CI=true) it fails instead.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.backend.fixtures import *  # noqa: F403
from tests.reliability.faultkit import need


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fault tests last: they restart services that the other tests use."""
    faults = [item for item in items if item.get_closest_marker("faults")]
    if faults:
        items[:] = [item for item in items if not item.get_closest_marker("faults")] + faults


@pytest.fixture
def root() -> None:
    need(os.geteuid() == 0, "fault tests restart services and mount file systems: they need root")


@pytest.fixture
def pg_cluster(root: None, postgres_url: str) -> str:
    """The version of the machine's PostgreSQL cluster `main` (for pg_ctlcluster)."""
    need(shutil.which("pg_ctlcluster") is not None, "pg_ctlcluster is not installed (Debian's postgresql-common)")
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    need(bool(versions), "no /etc/postgresql/<version>: not Debian's packaged PostgreSQL")
    return versions[-1]
