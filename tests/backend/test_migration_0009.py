"""0009 widens `stimulus_sets.attack` to the stimulus attacks of the vocabulary, in place, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from backend import models
from backend.db import make_engine
from backend.migrate import alembic_config, upgrade
from sipat.vocabulary import STIMULUS_ATTACKS

_SET = (
    "INSERT INTO stimulus_sets (id, name, dataset_id, attack, norm, eps_levels, masked, steps, status, params, "
    "created_at) VALUES ({id}, 's', 1, '{attack}', 'linf', '[0.1]', false, 10, 'pending', '{{}}', '2026-01-01')"
)
_STIMULUS = "INSERT INTO stimuli (id, stimulus_set_id, image_id, eps, role, sha256) VALUES (1, 1, 1, 0, 'trial', 'x')"
_DATASET = "INSERT INTO datasets (id, name, created_at) VALUES (1, 'd', '2026-01-01')"


def test_the_head_migration_the_orm_and_the_vocabulary_name_the_same_attacks() -> None:
    m = importlib.import_module("migrations.versions.0009_stimulus_set_attacks")
    assert m.AFTER == STIMULUS_ATTACKS == models.ATTACKS
    assert set(m.BEFORE) < set(m.AFTER)


def test_sqlite_0009_widens_the_attack_check_and_keeps_the_stimuli(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    command.upgrade(alembic_config(url), "0008")
    with sqlite3.connect(path) as conn:
        conn.execute(_DATASET)
        conn.execute(_SET.format(id=1, attack="apgd"))
        conn.execute(_STIMULUS)
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute(_SET.format(id=2, attack="square"))
    upgrade(url)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        assert conn.execute("SELECT id, attack FROM stimulus_sets").fetchall() == [(1, "apgd")]
        assert conn.execute("SELECT id, stimulus_set_id FROM stimuli").fetchall() == [(1, 1)]
        for k, attack in enumerate(("square", "square"), start=2):
            conn.execute(_SET.format(id=k, attack=attack))
        for bogus in ("apgd-t", "fab-t", "autoattack", "bogus"):
            with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
                conn.execute(_SET.format(id=9, attack=bogus))
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # Down again is refused while a set uses a new attack (it would have to delete the set and its stimuli) ...
    with pytest.raises(RuntimeError, match="2 stimulus sets use square"):
        command.downgrade(alembic_config(url), "0008")
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM stimulus_sets WHERE id > 1")
    # ... and allowed without one: the old CHECK is back.
    command.downgrade(alembic_config(url), "0008")
    with sqlite3.connect(path) as conn:
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute(_SET.format(id=2, attack="square"))
        assert conn.execute("SELECT id FROM stimuli").fetchall() == [(1,)]


@pytest.mark.postgres
def test_postgres_0009_widens_the_attack_check(empty_postgres_url: str) -> None:
    command.upgrade(alembic_config(empty_postgres_url), "0008")
    engine = make_engine(empty_postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(_DATASET))
            conn.execute(text(_SET.format(id=1, attack="apgd")))
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(_SET.format(id=2, attack="square")))
        upgrade(empty_postgres_url)
        with engine.begin() as conn:
            conn.execute(text(_SET.format(id=2, attack="square")))
            conn.execute(text(_SET.format(id=3, attack="pgd")))
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(_SET.format(id=4, attack="autoattack")))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT attack FROM stimulus_sets ORDER BY id")).scalars().all() == [
                "apgd",
                "square",
                "pgd",
            ]
    finally:
        engine.dispose()
