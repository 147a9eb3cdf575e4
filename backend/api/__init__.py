"""HTTP routers, one per resource, all under `API_PREFIX`; `api_router` gathers them."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api import health, media, participant, research, users

API_PREFIX = "/api/v1"

api_router = APIRouter()
api_router.include_router(participant.sessions_router)  # the per-trial hot path first: matched in order
api_router.include_router(media.router)
api_router.include_router(health.router)
api_router.include_router(research.router)  # before participant: /studies/{id:int} vs /studies/{slug}
api_router.include_router(participant.router)
api_router.include_router(users.router)
