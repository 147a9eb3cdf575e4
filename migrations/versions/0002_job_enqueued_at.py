"""jobs.enqueued_at: when a queued job's message was due at the broker, so the reaper can re-send lost ones.

Nullable: rows that exist before this migration keep NULL and the reaper reads their `created_at` instead.
Plain ALTER TABLE, not batch mode, on SQLite too (3.35+ drops columns natively): batch mode would copy `jobs`
into a new table and drop the old one, and with `PRAGMA foreign_keys=ON` that drop sets the `job_id` of every
stimulus set and model to NULL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 14:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "enqueued_at")
