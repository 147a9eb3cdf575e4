"""trials.shown_count: how many times the trial's image was handed to the participant's browser (a reload
shows the same trial again; the data say so). Plain ADD COLUMN with a server default of 0.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 02:41:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("trials", sa.Column("shown_count", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("shown_count")
