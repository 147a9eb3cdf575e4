"""owner_id on datasets, stimulus_sets, models and jobs: the researcher who created the row.

The research API lets a researcher see, use and change only their own rows (`backend.services.ownership`),
as 0006 did for studies; an administrator sees all. Rows created before this revision have no owner and are
reachable by administrators only. Plain indexed columns without foreign keys, for the reason given in 0006
(SQLite cannot add one without rebuilding the table, which would cascade deletes).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 08:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("datasets", "stimulus_sets", "models", "jobs")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("owner_id", sa.Integer(), nullable=True))
        op.create_index(op.f(f"ix_{table}_owner_id"), table, ["owner_id"], unique=False)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_index(op.f(f"ix_{table}_owner_id"), table_name=table)
        op.drop_column(table, "owner_id")  # SQLite 3.35+ drops it natively
