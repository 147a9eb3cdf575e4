"""Stimulus images served under per-trial random keys, so that a URL tells nothing about the stimulus."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Stimulus, Trial
from backend.services.errors import NotFoundError

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
)


def stimulus_for_key(session: Session, media_key: str) -> Stimulus:
    """The stimulus of the trial whose media key is `media_key` (unguessable, bound to one participant)."""
    stimulus = session.scalar(
        select(Stimulus).join(Trial, Trial.stimulus_id == Stimulus.id).where(Trial.media_key == media_key)
    )
    if stimulus is None:
        raise NotFoundError("no such image")
    return stimulus


def media_type(head: bytes) -> str:
    """The MIME type of an image from its first (>= 12) bytes; unknown formats as opaque bytes."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    for signature, mime in _SIGNATURES:
        if head.startswith(signature):
            return mime
    return "application/octet-stream"
