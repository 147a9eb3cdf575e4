"""What the readiness probe checks: the database answers, its schema is at the code's migration head, the
blob store takes a write.

Kept apart from the route so that a check is a plain function of its resource (tests call them on broken
resources directly). Each check returns `None` when it passes, or a short message that says what to fix; the
messages name no path or credential, since the probe is public.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.orm import Session

from backend.migrate import alembic_config
from backend.storage import BlobStore, StorageError

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def migration_heads() -> frozenset[str]:
    """The head revision(s) of migrations/ (read once per process: the files do not change under it)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def check_database(session: Session) -> str | None:
    """`None` when the database answers a `SELECT 1`."""
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"; the probe must answer, not raise
        log.warning("readiness: database unreachable: %s", str(exc).strip()[:300])
        return "unreachable"
    return None


def check_migrations(session: Session) -> str | None:
    """`None` when the database's alembic revision is the code's head (run `alembic upgrade head` otherwise)."""
    try:
        current = frozenset(MigrationContext.configure(session.connection()).get_current_heads())
    except Exception as exc:
        log.warning("readiness: cannot read the schema revision: %s", str(exc).strip()[:300])
        return "cannot read the schema revision"
    heads = migration_heads()
    if current != heads:
        have = ",".join(sorted(current)) or "none"
        return f"schema at {have}, code expects {','.join(sorted(heads))}: run `alembic upgrade head`"
    return None


def check_blobs(storage: BlobStore) -> str | None:
    """`None` when the blob store's directory takes (and gives back) a small file."""
    try:
        storage.check_writable()
    except StorageError as exc:
        log.warning("readiness: %s", exc)
        return "not writable (disk full, read-only or wrong owner; see the server log)"
    return None
