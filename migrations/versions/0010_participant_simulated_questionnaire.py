"""participants.simulated (a researcher's pilot run, left out of results and exports unless asked for) and
participants.questionnaire (the end-of-study questionnaire's answers as JSON). Plain ADD COLUMNs: the flag
with a server default of false, so existing sessions count as real ones.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 07:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("participants", sa.Column("simulated", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("participants", sa.Column("questionnaire", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("participants") as batch:
        batch.drop_column("questionnaire")
        batch.drop_column("simulated")
