"""Researcher accounts (bearer-token authenticated)."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import CurrentUser
from backend.schemas.common import ErrorOut
from backend.schemas.users import UserPublic

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserPublic, responses={401: {"model": ErrorOut}})
def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)
