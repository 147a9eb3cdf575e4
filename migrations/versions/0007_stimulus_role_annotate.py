"""stimuli.role 'annotate': the clean images of a study's annotation pool (by default the training split), so
the paintings land on the images SIP-AT trains with, apart from the detection stimuli (usually test images).

The CHECK constraint is replaced (a table copy on SQLite, through batch mode).

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


def _roles(*roles: str) -> None:
    quoted = ", ".join(f"'{r}'" for r in roles)
    with op.batch_alter_table("stimuli") as batch:
        batch.drop_constraint(op.f("ck_stimuli_role"), type_="check")
        batch.create_check_constraint("role", f"role IN ({quoted})")


def upgrade() -> None:
    _roles("trial", "catch", "annotate")


def downgrade() -> None:
    op.execute("DELETE FROM stimuli WHERE role = 'annotate'")
    _roles("trial", "catch")
