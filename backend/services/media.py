"""Stimulus images served under per-trial random keys, so that a URL tells nothing about the stimulus."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Stimulus, Trial
from backend.services.errors import NotFoundError

_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))


def stimulus_for_key(session: Session, media_key: str) -> Stimulus:
    """The stimulus of the trial whose media key is `media_key` (unguessable, bound to one participant)."""
    stimulus = session.scalar(
        select(Stimulus).join(Trial, Trial.stimulus_id == Stimulus.id).where(Trial.media_key == media_key)
    )
    if stimulus is None:
        raise NotFoundError("no such image")
    return stimulus


def media_type(head: bytes) -> str:
    """The MIME type of an image from its first bytes (PNG or JPEG; anything else as opaque bytes)."""
    for signature, mime in _SIGNATURES:
        if head.startswith(signature):
            return mime
    return "application/octet-stream"
