"""Models shared by several routers."""

from __future__ import annotations

from pydantic import BaseModel


class ErrorOut(BaseModel):
    """Body of every 4xx/5xx answer: what went wrong and what to do about it."""

    detail: str


class HealthOut(BaseModel):
    status: str
    database: str


class LiveOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    """`status` is "ok" or "unavailable"; `checks` maps database, migrations, blobs to "ok" or what to fix."""

    status: str
    checks: dict[str, str]
