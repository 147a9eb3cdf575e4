"""Fixtures of the backend tests: those of `tests/backend/fixtures.py` (a fresh database per test, the app on it,
its blob store)."""

from __future__ import annotations

from tests.backend.fixtures import *  # noqa: F403

# Test modules import their helpers with `from factories import ...` (tests/ has no packages).
