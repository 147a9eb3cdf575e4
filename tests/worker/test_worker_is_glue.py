"""`worker/` holds no SQL: what a job reads or writes in the database is a function of `backend/services/`.

Why a test: the worker's queries drifted from the service's before (the annotation means of a train job were
one query in `worker/jobs/train.py` and a near-copy in the coverage the API shows); a query written in the
worker again would pass every behaviour test. Read from the source with `ast` (nothing is imported): the worker
may name SQLAlchemy's types (`Engine`, `Session`) for its wiring and hints, but imports no statement builder
(`select`, `update`, `text`, ...) and calls none of a session's query or write methods.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "worker"
#: What the worker may take from SQLAlchemy: types for wiring (runtime) and annotations, no statements.
ALLOWED_SQLALCHEMY = {"Engine", "Session"}
#: A session's methods that read or write rows.
SESSION_METHODS = {
    "add",
    "add_all",
    "delete",
    "execute",
    "flush",
    "get",
    "merge",
    "query",
    "refresh",
    "scalar",
    "scalars",
}


def _receiver(node: ast.expr) -> str | None:
    """The name a method is called on: `session` of `session.execute(...)`, `self.session` -> `session`."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def sql_in(source: str) -> list[str]:
    """Where `source` issues SQL itself: a statement builder imported from SQLAlchemy, or a query/write method
    called on something named like a session (`session`, `db_session`, `s.session`)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            found += [f"line {node.lineno}: from {node.module} import {a.name}" for a in node.names
                      if a.name not in ALLOWED_SQLALCHEMY]  # fmt: skip
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "sqlalchemy"]
            found += [f"line {node.lineno}: import {name}" for name in names]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = _receiver(node.func.value)
            if node.func.attr in SESSION_METHODS and receiver is not None and "session" in receiver.lower():
                found.append(f"line {node.lineno}: {receiver}.{node.func.attr}(...)")
    return found


def test_the_rule_finds_sql() -> None:
    """The check itself: each way of issuing SQL that the worker once had is found, a service call is not."""
    assert sql_in("from sqlalchemy import select, update\n") == [
        "line 1: from sqlalchemy import select",
        "line 1: from sqlalchemy import update",
    ]
    assert sql_in("import sqlalchemy\n") == ["line 1: import sqlalchemy"]
    assert sql_in("row = session.get(TrainedModel, 1)\n") == ["line 1: session.get(...)"]
    assert sql_in("rows = session.execute(q).all()\n") == ["line 1: session.execute(...)"]
    assert sql_in("self.session.add_all(rows)\n") == ["line 1: session.add_all(...)"]
    assert sql_in("from sqlalchemy.orm import Session\nrow = find_model(session, 1)\nd.get('k')\n") == []


@pytest.mark.parametrize("path", sorted(WORKER.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_worker_module_issues_no_sql(path: Path) -> None:
    found = sql_in(path.read_text(encoding="utf-8"))
    assert not found, (
        f"{path.relative_to(ROOT)} issues SQL itself ({'; '.join(found)}): move the query into a function of "
        "backend/services/ and call that (docs/ARCHITECTURE.md: the worker is glue)"
    )
