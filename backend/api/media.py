"""Stimulus images for participants, under per-trial random keys.

Nothing in the answer may hint at the stimulus (eps, clean or perturbed): the URL is a random key, no file
name, no Content-Length (the size of a PNG grows with its noise), no ETag or Last-Modified, and no caching.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Path
from fastapi.responses import StreamingResponse

from backend.api.deps import SessionDep, StorageDep
from backend.schemas.common import ErrorOut
from backend.services.media import media_type, stimulus_for_key

router = APIRouter(tags=["participant"])

#: nosniff, no-referrer and the CSP come from `backend.security`'s middleware, like on every response.
NO_STORE_HEADERS = {"Cache-Control": "private, no-store"}
_CHUNK = 64 * 1024
_BINARY = {"schema": {"type": "string", "format": "binary"}}


def _chunks(fh: BinaryIO) -> Iterator[bytes]:
    with fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


@router.get(
    "/media/{media_key}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"image/png": _BINARY, "image/jpeg": _BINARY}, "description": "The image."},
        404: {"model": ErrorOut},
    },
)
def get_media(
    media_key: Annotated[str, Path(pattern=r"^[A-Za-z0-9_\-]{16,64}$")], session: SessionDep, storage: StorageDep
) -> StreamingResponse:
    """The image of one trial of one session (the key comes from that session's `next` answer)."""
    stimulus = stimulus_for_key(session, media_key)
    fh = storage.open(stimulus.sha256)
    head = fh.read(16)
    fh.seek(0)
    return StreamingResponse(_chunks(fh), media_type=media_type(head), headers=NO_STORE_HEADERS)
