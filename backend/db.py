"""Engine and session factory (SQLAlchemy 2.0) for SQLite (embedded) and PostgreSQL (distributed).

One transaction per unit of work: `session_scope(factory)` commits when the block ends normally and rolls back
on any exception, so a request that fails half-way leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Result, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

#: PostgreSQL connections kept open per process, and how many more may be opened under a burst: together the
#: size of the API's thread pool (40), so no request thread waits for a connection. The default (5 + 10)
#: closed and reopened connections all the time under load (a server process forked per connection, every
#: prepared statement lost): measured with benchmarks/load/. Two API processes plus workers stay well
#: under PostgreSQL's default max_connections (100).
POSTGRES_POOL_SIZE = 20
POSTGRES_MAX_OVERFLOW = 20
#: Transactions of the participant protocol running at once per API process (`backend.api.deps.in_transaction`);
#: more only queue up for the GIL and the database's cores: with 40 (the thread pool's size) the thread
#: hand-offs themselves took 13% of the service's CPU time under benchmarks/load/.
DB_THREADS = 8
#: Session starts running at once per API process; 4 made starts and everyone's next trial slower under
#: benchmarks/load/'s arrival burst (CPU-bound on 2 cores).
ENROL_THREADS = 2
#: How long a SQLite writer waits for the lock held by another process (the worker) before failing.
SQLITE_BUSY_TIMEOUT_MS = 15_000


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url` with the settings each backend needs.

    SQLite: the file's directory is created, connections may cross threads (FastAPI runs sync endpoints in a
    thread pool), WAL journal (readers do not block the writer), foreign keys enforced, busy timeout.
    PostgreSQL: `pool_pre_ping` so connections dropped by the server are replaced transparently (the API
    turns it off: `backend.main.create_app`), and a pool sized for the thread pool (`POSTGRES_POOL_SIZE`).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"check_same_thread": False, **kwargs.pop("connect_args", {})}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", POSTGRES_POOL_SIZE)
    kwargs.setdefault("max_overflow", POSTGRES_MAX_OVERFLOW)
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (responses are built after the commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit at the end of the block, roll back if it raises, always close."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE or DELETE. `Session.execute` returns a `CursorResult` for those statements,
    but its stubs say `Result`, which has no `rowcount`."""
    return cast(CursorResult[Any], result).rowcount
