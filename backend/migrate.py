"""Run the Alembic migrations from code (the CLI's `migrate`, tests, the dev server)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> Config:
    """A Config for migrations/ that targets `url` (or an open `connection`) and leaves logging alone."""
    ini = _ROOT / "alembic.ini"
    config = Config(str(ini)) if ini.is_file() else Config()
    config.set_main_option("script_location", str(_ROOT / "migrations"))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    config.attributes["configure_logger"] = False
    return config


def upgrade(url: str | None = None, *, connection: Connection | None = None, revision: str = "head") -> None:
    """Bring the database at `url` (default: the settings' database) up to `revision`."""
    command.upgrade(alembic_config(url, connection=connection), revision)
