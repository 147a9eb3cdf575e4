"""participants.token: the sha256 of each session token instead of the token itself.

The column keeps its name, type and unique constraint (the model calls it `Participant.token_hash`), so no
table is rebuilt: on SQLite a rebuild of `participants` would cascade-delete every trial. Existing sessions
keep working, since their tokens hash to the stored values.

Downgrade cannot recover the tokens: it leaves the hashes, and sessions started before it can no longer be
continued (their participants must start again).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 15:00:00.000000
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_participants = sa.table("participants", sa.column("id", sa.Integer), sa.column("token", sa.String(64)))


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_participants.c.id, _participants.c.token)).all()
    for pid, token in rows:
        digest = hashlib.sha256(token.encode()).hexdigest()
        conn.execute(sa.update(_participants).where(_participants.c.id == pid).values(token=digest))


def downgrade() -> None:
    pass  # the tokens cannot be recovered from their hashes (see the module docstring)
