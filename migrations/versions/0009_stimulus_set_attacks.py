"""stimulus_sets.attack: the CHECK widened from ('pgd', 'fgsm', 'apgd') to the registry's stimulus attacks, adding
'square' (the black-box Square Attack; why the other registry attacks make no stimuli: `sipat.vocabulary`).

The list is written out here, not imported: a migration describes the schema at its revision, whatever
`sipat.vocabulary.STIMULUS_ATTACKS` becomes later (`tests/backend/test_migrations.py` checks that the head
migration and the vocabulary agree, so a new name there needs a new migration).

As 0007: on PostgreSQL the named constraint is dropped and created again; on SQLite the table's definition in
`sqlite_master` is edited in place (writable_schema, schema version bumped), because batch mode's table copy
would drop `stimulus_sets`, which stimuli reference with ON DELETE CASCADE: with `PRAGMA foreign_keys=ON` the
drop would delete every stimulus. Widening a CHECK changes nothing stored, which is what makes the edit safe.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 07:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE: tuple[str, ...] = ("pgd", "fgsm", "apgd")
AFTER: tuple[str, ...] = ("pgd", "fgsm", "apgd", "square")


def _check(attacks: tuple[str, ...]) -> str:
    return "attack IN (" + ", ".join(f"'{a}'" for a in attacks) + ")"


def _attacks(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_stimulus_sets_attack"), "stimulus_sets", type_="check")
        op.create_check_constraint("attack", "stimulus_sets", _check(new))
        return
    (sql,) = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'stimulus_sets'").one()
    if _check(old) not in sql:
        raise RuntimeError(f"stimulus_sets' CHECK is not {_check(old)!r}; refusing to edit the schema")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'stimulus_sets'",
        (sql.replace(_check(old), _check(new)),),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    _attacks(BEFORE, AFTER)


def downgrade() -> None:
    """Sets made with a newer attack cannot be described by the old CHECK: refused, rather than deleting them
    (and, by cascade, their stimuli and the trials that showed them)."""
    newer = [a for a in AFTER if a not in BEFORE]
    quoted = ", ".join(f"'{a}'" for a in newer)
    n = op.get_bind().exec_driver_sql(f"SELECT count(*) FROM stimulus_sets WHERE attack IN ({quoted})").scalar_one()
    if n:
        raise RuntimeError(f"{n} stimulus sets use {', '.join(newer)}; delete them before downgrading below 0009")
    _attacks(AFTER, BEFORE)
