"""studies.owner_id: the researcher who created the study. The research API lets a researcher read and change
only their own studies (export, close, withdraw participants, results); an administrator sees all. Studies
created before this revision have no owner and are reachable by administrators only.

A plain indexed column, without a foreign key: SQLite cannot add a named foreign key to an existing table
without batch mode, and batch mode would copy `studies` and drop the old table, which with
`PRAGMA foreign_keys=ON` deletes every participant (see 0002). Accounts are never deleted by the service, so
an owner id cannot dangle; an owner id that names no user gives access to administrators only.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 02:55:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("studies", sa.Column("owner_id", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_studies_owner_id"), "studies", ["owner_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_studies_owner_id"), table_name="studies")
    op.drop_column("studies", "owner_id")  # SQLite 3.35+ drops it natively
