"""users.session_generation: a counter in every dashboard session cookie of the user; logging out raises it,
which ends every session of that account at once (the cookies are signed, not stored, so without a counter a
copied cookie and its CSRF token kept working until they expired, 12 h after login).

Plain ADD COLUMN with a server default of 0 (no table rebuild); cookies issued before it stay valid at 0.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 02:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("session_generation", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_column("users", "session_generation")
