"""Stimulus images for participants, under per-trial random keys.

Nothing in the answer may hint at the stimulus (eps, clean or perturbed): the URL is a random key, no file
name, no Content-Length (the size of a PNG grows with its noise), no ETag or Last-Modified, and no caching.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from backend.api.deps import in_transaction
from backend.schemas.common import ErrorOut
from backend.services.media import MediaCache, media_type, stimulus_for_key
from backend.storage import BlobStore

router = APIRouter(tags=["participant"])

#: nosniff, no-referrer and the CSP come from `backend.security`'s middleware, like on every response.
NO_STORE_HEADERS = {"Cache-Control": "private, no-store"}
_BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.get(
    "/media/{media_key}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"image/png": _BINARY, "image/jpeg": _BINARY}, "description": "The image."},
        404: {"model": ErrorOut},
    },
)
async def get_media(
    media_key: Annotated[str, Path(pattern=r"^[A-Za-z0-9_\-]{16,64}$")], request: Request
) -> StreamingResponse:
    """The image of one trial of one session (the key comes from that session's `next` answer).

    Stimuli are small (a few hundred KiB at most), so the body goes out as one chunk: streamed, so that no
    Content-Length header tells the image's size. Usually the process's `MediaCache` has the image (its `next`
    answer was just served here); otherwise the lookup and the read are one thread hand-off.
    """
    cache: MediaCache = request.app.state.media_cache
    data = cache.image(media_key)
    if data is None:
        storage: BlobStore = request.app.state.storage

        def read(session: Session) -> bytes:
            sha256 = stimulus_for_key(session, media_key).sha256
            cache.remember(media_key, sha256)
            blob = cache.blob(sha256)
            if blob is None:
                with storage.open(sha256) as fh:
                    blob = fh.read()
                cache.keep(sha256, blob)
            return blob

        data = await in_transaction(request, read)
    return StreamingResponse(_once(data), media_type=media_type(data[:16]), headers=NO_STORE_HEADERS)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
