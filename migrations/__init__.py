"""Alembic migrations of the platform's database (see alembic.ini and backend/migrate.py)."""
