"""studies.next_index: the index the study's next new participant gets, so that a session start locks the
study's row for one UPDATE instead of for its whole transaction.

Filled with one more than the highest index each study has handed out. Plain ADD COLUMN (no table rebuild).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 15:05:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("studies", sa.Column("next_index", sa.Integer(), server_default="0", nullable=False))
    studies = sa.table("studies", sa.column("id", sa.Integer), sa.column("next_index", sa.Integer))
    participants = sa.table("participants", sa.column("study_id", sa.Integer), sa.column("index", sa.Integer))
    highest = (
        sa.select(sa.func.max(participants.c.index) + 1)
        .where(participants.c.study_id == studies.c.id)
        .scalar_subquery()
    )
    op.execute(sa.update(studies).values(next_index=sa.func.coalesce(highest, 0)))


def downgrade() -> None:
    op.drop_column("studies", "next_index")
