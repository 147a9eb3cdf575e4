"""The load benchmark's baseline app, its own module so that the uvicorn serving it imports nothing else."""

from __future__ import annotations

from typing import Any


def bare_app() -> Any:
    """The baseline: a FastAPI app with one trivial sync endpoint (the participant routes are sync too)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, bool]:
        return {"ok": True}

    return app
