"""jobs.kind 'rank_paintings': a worker job that ranks a study's unpainted training images for painting next
(salience-predictor uncertainty and disagreement with Grad-CAM, class-balanced; issue 20).

The CHECK constraint is widened as in 0007: on PostgreSQL replaced, on SQLite by editing the table's definition
in `sqlite_schema` (batch mode's table copy would drop `jobs`, which models and stimulus sets reference).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 07:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = ("generate_stimuli", "train", "evaluate")
NEW = (*OLD, "rank_paintings")


def _check(kinds: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def _kinds(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_jobs_kind"), "jobs", type_="check")
        op.create_check_constraint("kind", "jobs", _check(new))
        return
    (sql,) = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").one()
    if _check(old) not in sql:
        raise RuntimeError(f"jobs' CHECK is not {_check(old)!r}; refusing to edit the schema")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'jobs'",
        (sql.replace(_check(old), _check(new)),),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    _kinds(OLD, NEW)


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE kind = 'rank_paintings'")
    _kinds(NEW, OLD)
