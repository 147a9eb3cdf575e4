"""stimuli.role 'annotate': the clean images of a study's annotation pool (by default the training split), so
the paintings land on the images SIP-AT trains with, apart from the detection stimuli (usually test images).

The CHECK constraint is replaced. On SQLite not by batch mode: its table copy drops `stimuli`, and with
`PRAGMA foreign_keys=ON` that drop is refused (trials RESTRICT) or would take rows with it (see 0002). Widening a
CHECK does not change what is stored, so SQLite's documented way for such changes is used instead: the table's
definition in `sqlite_schema` is edited (writable_schema), with the schema version bumped.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 02:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _check(roles: tuple[str, ...]) -> str:
    return "role IN (" + ", ".join(f"'{r}'" for r in roles) + ")"


def _roles(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_stimuli_role"), "stimuli", type_="check")
        op.create_check_constraint("role", "stimuli", _check(new))
        return
    (sql,) = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'stimuli'").one()
    if _check(old) not in sql:
        raise RuntimeError(f"stimuli's CHECK is not {_check(old)!r}; refusing to edit the schema")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'stimuli'",
        (sql.replace(_check(old), _check(new)),),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    _roles(("trial", "catch"), ("trial", "catch", "annotate"))


def downgrade() -> None:
    op.execute("DELETE FROM stimuli WHERE role = 'annotate'")
    _roles(("trial", "catch", "annotate"), ("trial", "catch"))
