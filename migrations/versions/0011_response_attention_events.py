"""responses.focus_losses, responses.visibility_losses, responses.fullscreen_exits: how often during a detection
trial the window lost focus, the page was hidden and fullscreen was left, as the page counted them. Plain
nullable ADD COLUMNs: existing answers (and answers sent without the counts) keep null, "not reported".

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 07:55:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("focus_losses", "visibility_losses", "fullscreen_exits")


def upgrade() -> None:
    for name in _COLUMNS:
        op.add_column("responses", sa.Column(name, sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
